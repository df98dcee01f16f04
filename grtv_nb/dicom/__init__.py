"""DICOM input and output: one module per DICOM object (image series, RTSTRUCT, RTDOSE), the
folder scan, the file reader interface and value checks. Layer: imports only geometry and below.

pydicom is imported when first needed (a full dataset, an RTSTRUCT, an RTDOSE, a writer; an image
series read by the dicomsdl backend needs none, see :mod:`grtv_nb.dicom.rawheader`), always through
:func:`grtv_nb._lazyimports.import_pydicom`.
"""
