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
- New objects get new UIDs. Nothing is ever written into the folder the study was read from, a
  non-empty folder is refused unless ``overwrite=True``, and the set is written into a temporary
  folder beside the target and renamed into place at the end: a crash leaves no half-written set
  under the final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pydicom

from .errors import GRTVError, ValidationError, warn


def _check_target(study, export_dir: Path, overwrite: bool) -> None:
    src = study.source.get("folder")
    if export_dir.exists() and not export_dir.is_dir():
        raise ValidationError(f"exportDir '{export_dir}' is a file, not a folder")
    if src is not None and export_dir.resolve() == Path(src).resolve():
        raise ValidationError(f"exportDir '{export_dir}' is the folder the study was read from; "
                              "exports never write into their source folder")
    if export_dir.exists() and any(export_dir.iterdir()) and not overwrite:
        raise ValidationError(f"exportDir '{export_dir}' is not empty; pass overwrite=True to replace its content")


def _export_images(study, tmp: Path, ps) -> tuple[str, str, list[tuple[float, str]]]:
    """Copy (or rewrite where needed) the image slices; returns (series UID, SOP class, slices)."""
    from .dicom.common import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, new_uid, save_atomic

    files = study.source.get("image_files") or []
    if not files:
        return "", "", []
    # from the files, not study.image_headers: those are empty when the dose grid is the reference
    # grid (e.g. 1 CT slice of 98), yet the slices are exported and the RTSTRUCT must name their series
    first = pydicom.dcmread(files[0], stop_before_pixels=True, force=True)
    series_uid = str(first.get("SeriesInstanceUID", "") or "") or new_uid()
    sop_class = ""
    slices = []
    normal = np.cross(*np.asarray(first.ImageOrientationPatient, float).reshape(2, 3))
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f, force=True)
        changed = False
        for kw, val in (("PatientName", ps.patient_name), ("PatientID", ps.patient_id),
                        ("StudyInstanceUID", ps.study_uid), ("SeriesInstanceUID", series_uid),
                        ("FrameOfReferenceUID", ps.frame_of_reference_uid)):
            if not str(ds.get(kw, "") or "").strip():
                setattr(ds, kw, val)
                changed = True
        if not str(ds.get("SOPClassUID", "") or "").strip():
            ds.SOPClassUID = (str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
                              or {"MR": MR_IMAGE_STORAGE}.get(str(ds.get("Modality", "")), CT_IMAGE_STORAGE))
            changed = True
        if str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) != ds.SOPClassUID:
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            changed = True
        if not str(ds.get("SOPInstanceUID", "") or "").strip():
            uid = str(getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "") or "") or new_uid()
            ds.SOPInstanceUID = uid
            changed = True
        if str(getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "")) != ds.SOPInstanceUID:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            changed = True
        name = f"{ds.Modality or 'IMG'}_{i + 1:04d}.dcm"
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
        Target folder: created, or empty, or replaced when ``overwrite``.
    overwrite : bool
        Replace the content of a non-empty ``export_dir``.
    dose_grid : {"image", "original"}
        Grid of the exported RTDOSE.
    label : str
        StructureSetLabel.

    Returns
    -------
    Path of the folder written.
    """
    from .dicom.common import PatientStudy, new_uid, save_atomic
    from .dicom.rtdose import build_rtdose
    from .dicom.rtstruct import ROI, ImageReference, build_rtstruct, interpreted_type

    if not isinstance(export_dir, str | os.PathLike):
        raise ValidationError(f"exportDir must be a folder path, got {type(export_dir).__name__}")
    if dose_grid not in ("image", "original"):
        raise ValidationError(f"dose_grid must be 'image' or 'original', got {dose_grid!r}")
    export_dir = Path(export_dir)
    _check_target(study, export_dir, overwrite)
    first = study.image_headers[0] if study.image_headers else study.source.get("rtstruct_ds")
    for_uid = study.grid.frame_of_reference_uid or new_uid()
    if first is not None:
        ps = PatientStudy.from_dataset(first, for_uid)
    else:
        ps = PatientStudy(frame_of_reference_uid=for_uid)
    if first is None or not str(first.get("PatientID", "") or "").strip():
        warn(f"the study has no PatientID; the export uses '{ps.patient_id}'")
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{export_dir.name}.tmp-", dir=export_dir.parent))
    try:
        series_uid, sop_class, slices = _export_images(study, tmp, ps)
        if not slices:
            warn("the study has no image series to export; the RTSTRUCT and RTDOSE refer to no images")
        # RTSTRUCT
        rois = []
        for r in study.rois:
            if len(r.name) > 16:
                warn(f"ROI name '{r.name}' is longer than 16 characters; some systems truncate it")
            contours = [c for c in r.contours if len(c) >= 3]
            rois.append(ROI(name=r.name, number=r.number, color=r.color, roi_type=interpreted_type(r.name, r.roi_type),
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
                rd = build_rtdose(study.ds["dose"].values, study.grid, ps, summation_type="PLAN")
            save_atomic(rd, tmp / "RD_grtv_nb.dcm")
        # move into place
        if export_dir.exists():
            if any(export_dir.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{export_dir.name}.old-", dir=export_dir.parent))
                os.replace(export_dir, old / "content")
                os.replace(tmp, export_dir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                export_dir.rmdir()
                os.replace(tmp, export_dir)
        else:
            os.replace(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return export_dir


__all__ = ["export_rt", "GRTVError"]
