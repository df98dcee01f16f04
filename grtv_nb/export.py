"""Writing a study as a new DICOM-RT set (image series, RTSTRUCT, RTDOSE, and the RTPLAN the dose
refers to when the source had it).

Rules
-----
- The image series keeps its UIDs so references hold; its files are copied unchanged unless an
  attribute clinical systems require is empty (PatientName/PatientID, Study/Series/SOP Instance
  UID, FrameOfReferenceUID), in which case that slice is rewritten with the attribute filled.
- The RTSTRUCT holds every ROI (read, added from masks, auto-segmented): CLOSED_PLANAR contours,
  holes as separate inner loops (the even-odd encoding Eclipse, RayStation and Monaco read),
  coordinates rounded to 0.001 mm so every decimal string fits 16 characters; colours, RT ROI
  Observations (every ROI with an RTROIInterpretedType; a body outline as EXTERNAL) and the
  Referenced Frame of Reference / Study / Series sequences. ROI names over 16 characters get a
  warning (some systems truncate them).
- The RTDOSE (when the study has a dose) is uint32 with DoseGridScaling, on the image grid
  (default) or on the original RTDOSE grid (``dose_grid="original"``). It references an RTPLAN
  only when that plan is exported too.
- New objects get new UIDs. File names come from a fixed vocabulary (``CT_0001.dcm``, ``MR_``,
  ``PT_`` or ``IMG_`` by Modality, ``RS_grtv_nb.dcm``, ``RD_grtv_nb.dcm``, ``RP_plan.dcm``), never
  from an input value. ROI names DICOM can't hold (see :func:`grtv_nb.validate.check_roi_name`)
  are repaired with a warning.

Where it writes (:func:`grtv_nb.fileio.replace_folder`)
-------------------------------------------------------
- The target folder may not be, lie inside or contain a folder the study was read from
  (resolved paths; symlinks included). It must be missing or empty; ``overwrite=True`` replaces
  only a previous grtv_nb export (recognised by its manifest ``.grtv_nb-export.json``, written
  last) and only the files that manifest lists: a folder holding anything else is refused.
- The set is written into a staging folder inside the target and moved into place under a
  journal: a failed export leaves the target as it was; a killed one is finished or cleaned
  up by the next run into the same folder. Concurrent exports into one folder: the first
  holds its lock, the others fail at once with :class:`~grtv_nb.errors.FolderBusyError`.
- Files and folders get the umask's permissions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ._lazyimports import import_pydicom
from .dicom.values import text
from .errors import GRTVError, ValidationError, warn
from .fileio import replace_folder
from .validate import check_roi_name

#: file-name prefix of exported image slices by Modality (anything else: "IMG"); names never come
#: from an input value
IMAGE_PREFIXES = {"CT": "CT", "MR": "MR", "PT": "PT"}


def source_paths(study) -> list:
    """The files and folder ``study`` was read from (what an export may not touch)."""
    src = study.source or {}
    return [src.get("folder"), *(src.get("image_files") or []), src.get("rtstruct"), *(src.get("rtdoses") or []),
            src.get("rtplan")]


def _export_images(study, tmp: Path, ps) -> tuple[str, str, list[tuple[float, str]]]:
    """Copy (or rewrite where needed) the image slices; returns (series UID, SOP class, slices)."""
    import_pydicom()  # pydicom without its eager import of requests (see grtv_nb._lazyimports)
    import pydicom

    from .dicom.common import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, new_uid, save_atomic
    from .dicom.folder import drop_unknown_vrs

    files = study.source.get("image_files") or []
    if not files:
        return "", "", []
    # from the files, not study.image_headers: those are empty when the dose grid is the reference
    # grid (e.g. 1 CT slice of 98), yet the slices are exported and the RTSTRUCT must name their series
    first = pydicom.dcmread(files[0], stop_before_pixels=True, force=True)
    series_uid = text(first, "SeriesInstanceUID") or new_uid()
    sop_class = ""
    slices = []
    normal = np.cross(*np.asarray(first.ImageOrientationPatient, float).reshape(2, 3))
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f, force=True)
        changed = bool(drop_unknown_vrs(ds))  # corrupt elements (the reader warned) are not copied
        for kw, val in (("PatientName", ps.patient_name), ("PatientID", ps.patient_id),
                        ("StudyInstanceUID", ps.study_uid), ("SeriesInstanceUID", series_uid),
                        ("FrameOfReferenceUID", ps.frame_of_reference_uid)):
            if not text(ds, kw):
                setattr(ds, kw, val)
                changed = True
        if not text(ds, "SOPClassUID"):
            ds.SOPClassUID = (str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
                              or {"MR": MR_IMAGE_STORAGE}.get(text(ds, "Modality"), CT_IMAGE_STORAGE))
            changed = True
        if str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) != ds.SOPClassUID:
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            changed = True
        if not text(ds, "SOPInstanceUID"):
            uid = str(getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "") or "") or new_uid()
            ds.SOPInstanceUID = uid
            changed = True
        if str(getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "")) != ds.SOPInstanceUID:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            changed = True
        name = f"{IMAGE_PREFIXES.get(text(ds, 'Modality'), 'IMG')}_{i + 1:04d}.dcm"
        if changed:
            save_atomic(ds, tmp / name)
        else:
            shutil.copyfile(f, tmp / name)
        sop_class = str(ds.SOPClassUID)
        pos = float(np.asarray(ds.ImagePositionPatient, float) @ normal)
        slices.append((pos, str(ds.SOPInstanceUID)))
    slices.sort()
    return series_uid, sop_class, slices


def export_rt(
    study,
    export_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    dose_grid: str = "image",
    label: str = "grtv_nb",
) -> Path:
    """Write ``study`` as a new DICOM-RT set in ``export_dir`` (see the module docstring).

    Parameters
    ----------
    study : grtv_nb.Study
    export_dir : path
        Target folder: created if missing, or empty, or (with ``overwrite``) a previous grtv_nb
        export; never a source folder of the study, inside one, or holding one.
    overwrite : bool
        Replace the files of a previous grtv_nb export in ``export_dir`` (nothing else).
    dose_grid : {"image", "original"}
        Grid of the exported RTDOSE.
    label : str
        StructureSetLabel.

    Returns
    -------
    Path of the folder written.

    Raises
    ------
    ValidationError
        Bad arguments or target (nothing written).
    FolderBusyError
        Another export writes into ``export_dir``.
    WriteError
        The disk refused a write (``export_dir`` left as it was).
    """
    import_pydicom()  # pydicom without its eager import of requests (see grtv_nb._lazyimports)
    import pydicom

    from .dicom.common import PatientStudy, new_uid, save_atomic
    from .dicom.rtdose import build_rtdose
    from .dicom.rtstruct import ROI, ImageReference, build_rtstruct, interpreted_type

    if not isinstance(export_dir, str | os.PathLike):
        raise ValidationError(f"exportDir must be a folder path, got {type(export_dir).__name__}")
    if dose_grid not in ("image", "original"):
        raise ValidationError(f"dose_grid must be 'image' or 'original', got {dose_grid!r}")
    if not isinstance(overwrite, bool | np.bool_):
        raise ValidationError(f"overwrite must be True or False, got {overwrite!r}")
    first = study.image_headers[0] if study.image_headers else study.source.get("rtstruct_ds")
    for_uid = study.grid.frame_of_reference_uid or new_uid()
    if first is not None:
        ps = PatientStudy.from_dataset(first, for_uid)
    else:
        ps = PatientStudy(frame_of_reference_uid=for_uid)
    if first is None or not text(first, "PatientID"):
        warn(f"the study has no PatientID; the export uses '{ps.patient_id}'")
    with replace_folder(export_dir, "exportDir", overwrite=bool(overwrite), kind="DICOM-RT",
                        sources=source_paths(study)) as tmp:
        series_uid, sop_class, slices = _export_images(study, tmp, ps)
        if not slices:
            warn("the study has no image series to export; the RTSTRUCT and RTDOSE refer to no images")
        # RTSTRUCT
        rois = []
        for r in study.rois:
            name = check_roi_name(r.name, fix=True)
            if len(name) > 16:
                warn(f"ROI name '{name}' is longer than 16 characters; some systems truncate it")
            contours = [c for c in r.contours if len(c) >= 3]
            rois.append(ROI(name=name, number=r.number, color=r.color, roi_type=interpreted_type(name, r.roi_type),
                            contours=contours, geometric_type=r.geometric_type, other_data=r.other_data,
                            source=r.source))
        ref = ImageReference(series_uid, sop_class, slices) if slices else None
        normal = study.grid.direction[:, 2]
        rs = build_rtstruct(rois, ps, ref, label=label, normal=normal)
        save_atomic(rs, tmp / "RS_grtv_nb.dcm")
        # RTPLAN the dose refers to, when the source has it: a new instance (its content changes)
        # that refers to the exported structure set, not to the source one (absent from the export)
        plan_uid = None
        plan_path = study.source.get("rtplan")
        if plan_path is not None and study.has_dose and study.native_doses and dose_grid == "original":
            plan = pydicom.dcmread(plan_path, force=True)
            for item in plan.get("ReferencedStructureSetSequence", []):
                item.ReferencedSOPClassUID = rs.SOPClassUID
                item.ReferencedSOPInstanceUID = rs.SOPInstanceUID
            plan.SOPInstanceUID = new_uid()
            plan.file_meta.MediaStorageSOPInstanceUID = plan.SOPInstanceUID
            plan_uid = str(plan.SOPInstanceUID)
            save_atomic(plan, tmp / "RP_plan.dcm")
        # RTDOSE
        if study.has_dose:
            if dose_grid == "original" and study.native_doses and len(study.native_doses) == 1:
                dv = study.native_doses[0]
                rd = build_rtdose(dv.array, dv.grid, ps, summation_type="PLAN",
                                  plan_uid=plan_uid)
            else:
                if dose_grid == "original":
                    warn("the original dose grid is not available (dose replaced or summed); exporting the dose "
                         "on the image grid")
                rd = build_rtdose(study.dose_values, study.grid, ps, summation_type="PLAN")
            save_atomic(rd, tmp / "RD_grtv_nb.dcm")
    return Path(export_dir)


__all__ = ["export_rt", "GRTVError"]
