"""Shared pieces of the DICOM writers: UIDs, the patient/study/series/equipment modules, decimal
strings that fit 16 characters, and atomic file saving."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._lazyimports import import_pydicom

import_pydicom()  # pydicom without its eager import of requests (see grtv_nb._lazyimports)

import pydicom  # noqa: E402
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid  # noqa: E402

from .._version import __version__  # noqa: E402

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"
MANUFACTURER = "grtv_nb"


def new_uid(*entropy) -> str:
    """A new UID; deterministic when entropy sources are given."""
    if entropy:
        return generate_uid(entropy_srcs=[str(e) for e in entropy])
    return generate_uid()


@dataclass
class PatientStudy:
    """The identity shared by every object of one export (patient, study, frame of reference)."""

    patient_name: str = "ANONYMOUS"
    patient_id: str = "GRTV0001"
    patient_birth_date: str = ""
    patient_sex: str = "O"
    study_uid: str = field(default_factory=new_uid)
    study_id: str = "1"
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    frame_of_reference_uid: str = field(default_factory=new_uid)
    accession_number: str = ""
    referring_physician: str = ""

    def __post_init__(self):
        now = _dt.datetime.now()
        self.patient_name = self.patient_name or "ANONYMOUS"
        self.patient_id = self.patient_id or "GRTV0001"
        self.study_date = self.study_date or now.strftime("%Y%m%d")
        self.study_time = self.study_time or now.strftime("%H%M%S")

    @classmethod
    def from_dataset(cls, ds: pydicom.Dataset, frame_of_reference_uid: str = "") -> PatientStudy:
        from .values import text

        def t(name):
            return text(ds, name)

        return cls(
            patient_name=t("PatientName"),
            patient_id=t("PatientID"),
            patient_birth_date=t("PatientBirthDate"),
            patient_sex=t("PatientSex") or "O",
            study_uid=t("StudyInstanceUID") or new_uid(),
            study_id=t("StudyID") or "1",
            study_date=t("StudyDate"),
            study_time=t("StudyTime"),
            study_description=t("StudyDescription"),
            frame_of_reference_uid=frame_of_reference_uid or t("FrameOfReferenceUID") or new_uid(),
            accession_number=t("AccessionNumber"),
            referring_physician=t("ReferringPhysicianName"),
        )


def base_dataset(
    sop_class_uid: str,
    sop_instance_uid: str,
    modality: str,
    ps: PatientStudy,
    *,
    series_uid: str,
    series_number: int = 1,
    series_description: str = "",
) -> FileDataset:
    """A dataset with file meta, SOP Common, Patient, General Study, (RT) Series and General
    Equipment modules filled."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"GRTVNB_{__version__}"[:16]
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    now = _dt.datetime.now()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.PatientName = ps.patient_name
    ds.PatientID = ps.patient_id
    ds.PatientBirthDate = ps.patient_birth_date
    ds.PatientSex = ps.patient_sex
    ds.StudyInstanceUID = ps.study_uid
    ds.StudyDate = ps.study_date
    ds.StudyTime = ps.study_time
    ds.ReferringPhysicianName = ps.referring_physician
    ds.StudyID = ps.study_id
    ds.AccessionNumber = ps.accession_number
    if ps.study_description:
        ds.StudyDescription = ps.study_description
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    if series_description:
        ds.SeriesDescription = series_description
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = __version__
    return ds


_TEXT_VRS = {"PN", "LO", "SH", "ST", "LT", "UT", "UC"}


def choose_charset(ds: pydicom.Dataset) -> None:
    """Keep SpecificCharacterSet ISO_IR 100 (Latin-1) when every text value fits it, else switch to
    ISO_IR 192 (UTF-8), so that e.g. Japanese ROI or patient names are not written as '?'."""
    for elem in ds.iterall():
        if elem.VR not in _TEXT_VRS or elem.value is None:
            continue
        values = elem.value if isinstance(elem.value, list | tuple | pydicom.multival.MultiValue) else [elem.value]
        try:
            for v in values:
                str(v).encode("latin-1")
        except UnicodeEncodeError:
            ds.SpecificCharacterSet = "ISO_IR 192"
            return


def ds_str(value: float, decimals: int = 3) -> str:
    """Format a number as a DICOM DS string of at most 16 characters."""
    s = f"{float(value):.{decimals}f}".rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    if len(s) > 16:
        s = f"{float(value):.8g}"
        if len(s) > 16:
            s = f"{float(value):.6e}"
    return s


def ds_list(values, decimals: int = 3) -> list[str]:
    """Numbers as DICOM DS strings (:func:`ds_str`), flattened."""
    return [ds_str(v, decimals) for v in np.asarray(values, dtype=np.float64).ravel()]


def set_grey_pixel_module(ds: pydicom.Dataset, rows: int, cols: int, bits: int) -> None:
    """Image Pixel Module attributes of a single-sample grey image whose stored values use all
    ``bits`` of each word (PixelRepresentation and PixelData are the caller's)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.BitsAllocated = ds.BitsStored = int(bits)
    ds.HighBit = int(bits) - 1


def save_atomic(ds: pydicom.Dataset, path: str | os.PathLike) -> Path:
    """Write a dataset to ``path`` through a temporary file in the same folder (never leaves a
    half-written file under the final name)."""
    from ..fileio import atomic_path

    with atomic_path(path, "DICOM file path", create_parent=True) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)
