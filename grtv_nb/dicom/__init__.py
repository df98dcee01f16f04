"""DICOM input and output: one module per DICOM object (image series, RTSTRUCT, RTDOSE), the
folder scan, the file reader interface and value checks. Layer: imports only geometry and below.

pydicom is imported here first, by :func:`grtv_nb._lazyimports.import_pydicom`.
"""

from .._lazyimports import import_pydicom

import_pydicom()
