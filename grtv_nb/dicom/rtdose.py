"""RT Dose: reading the dose grid (Gy) and its geometry.

Attributes mapped
-----------------
ImagePositionPatient, ImageOrientationPatient, PixelSpacing, GridFrameOffsetVector (relative
form: first value 0, offsets along the plane normal; absolute form: first value equal to the
z of ImagePositionPatient, offsets are z positions), DoseGridScaling, DoseUnits (GY or
RELATIVE), DoseType, DoseSummationType, ReferencedRTPlanSequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom

from ..errors import DicomReadError, warn
from ..geometry import Grid, grid_from_planes
from .folder import DicomFile


@dataclass
class DoseVolume:
    """A dose in the canonical frame of its own grid."""

    array: np.ndarray  # float32 (z, y, x), Gy (or relative units if units != "GY")
    grid: Grid
    units: str
    dose_type: str
    summation_type: str
    files: list[DicomFile]


def read_dose(f: DicomFile, *, report=None) -> DoseVolume:
    """Decode one RTDOSE file.

    Raises
    ------
    DicomReadError
        Missing geometry attributes, pixel data that can't be decoded, or frame count mismatch.
    """
    report = report or warn
    ds = pydicom.dcmread(f.path, force=True)
    name = f.path.name
    try:
        ipp = np.array([float(x) for x in ds.ImagePositionPatient])
        iop = np.array([float(x) for x in ds.ImageOrientationPatient])
        ps = [float(x) for x in ds.PixelSpacing]
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, ValueError, TypeError) as exc:
        raise DicomReadError(f"RTDOSE {name}: geometry attributes missing or malformed ({exc})") from exc
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise DicomReadError(f"RTDOSE {name}: pixel data can't be decoded ({type(exc).__name__}: {exc})") from exc
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    arr = arr.reshape(nframes, rows, cols)
    gfov = ds.get("GridFrameOffsetVector")
    if gfov is None or nframes == 1:
        offsets = np.zeros(1) if nframes == 1 else None
        if offsets is None:
            raise DicomReadError(f"RTDOSE {name}: {nframes} frames but no GridFrameOffsetVector")
    else:
        offsets = np.array([float(x) for x in gfov], dtype=np.float64)
    if len(offsets) != nframes:
        raise DicomReadError(f"RTDOSE {name}: GridFrameOffsetVector has {len(offsets)} values for {nframes} frames")
    u, v = iop[:3], iop[3:]
    n = np.cross(u, v)
    if offsets[0] != 0:
        if abs(offsets[0] - ipp[2]) < 1e-3 and abs(abs(n[2]) - 1) < 1e-3:
            offsets = (offsets - ipp[2]) * n[2]  # absolute z positions -> offsets along the normal
        else:
            report(f"RTDOSE {name}: GridFrameOffsetVector starts at {offsets[0]} (neither 0 nor the z of "
                   "ImagePositionPatient); taken as offsets relative to the first frame")
            offsets = offsets - offsets[0]
    positions = ipp[None, :] + offsets[:, None] * n[None, :]
    order = np.argsort(offsets, kind="stable")
    arr = arr[order]
    positions = positions[order]
    scaling = float(ds.get("DoseGridScaling", 1.0) or 1.0)
    values = arr.astype(np.float32) * np.float32(scaling)
    units = str(ds.get("DoseUnits", "GY") or "GY").upper()
    grid, layout = grid_from_planes(
        positions, iop, (ps[0], ps[1]), rows, cols,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        slice_thickness=(float(abs(offsets[1] - offsets[0])) if len(offsets) > 1
                         else float(ds.get("SliceThickness", 0) or 0)),
    )
    return DoseVolume(
        layout.to_canonical(values), grid, units, str(ds.get("DoseType", "") or ""),
        str(ds.get("DoseSummationType", "") or ""), [f],
    )


def sum_doses(doses: list[DoseVolume], target: Grid) -> np.ndarray:
    """Interpolate each dose onto ``target`` (linear, 0 outside its grid) and sum them."""
    from ..geometry import resample_onto

    total = np.zeros(target.shape, dtype=np.float32)
    # Doses on one grid are summed before interpolation.
    groups: list[tuple[Grid, np.ndarray]] = []
    for d in doses:
        for i, (g, a) in enumerate(groups):
            if g.same_as(d.grid):
                groups[i] = (g, a + d.array)
                break
        else:
            groups.append((d.grid, d.array.copy() if len(doses) > 1 else d.array))
    for g, a in groups:
        total += resample_onto(a, g, target, fill=0.0)
    return total


RTDOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"


def build_rtdose(
    dose_gy: np.ndarray,
    grid: Grid,
    ps,
    *,
    sop_uid: str | None = None,
    series_uid: str | None = None,
    summation_type: str = "PLAN",
    plan_uid: str | None = None,
    series_number: int = 3,
    comment: str = "",
) -> pydicom.Dataset:
    """Build an RT Dose dataset (uint32 pixels with DoseGridScaling, Gy) of a dose on ``grid``.

    The grid's canonical axes become the dose's rows/columns/frames; GridFrameOffsetVector is written
    in the relative form (first value 0). ``plan_uid`` adds a ReferencedRTPlanSequence: pass it only
    when that plan is exported too.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.tag import Tag

    from .common import base_dataset, choose_charset, ds_list, ds_str, new_uid, set_grey_pixel_module

    dose = np.asarray(dose_gy, dtype=np.float64)
    if dose.shape != grid.shape:
        raise ValueError(f"dose shape {dose.shape} != grid shape {grid.shape}")
    sop_uid = sop_uid or new_uid()
    ds = base_dataset(RTDOSE_SOP_CLASS, sop_uid, "RTDOSE", ps, series_uid=series_uid or new_uid(),
                      series_number=series_number, series_description="grtv_nb dose")
    ds.FrameOfReferenceUID = ps.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = 1
    origin = grid.to_patient_points(np.array([[grid.x[0], grid.y[0], grid.z[0]]]))[0]
    ds.ImagePositionPatient = ds_list(origin, 4)
    ds.ImageOrientationPatient = ds_list(np.concatenate([grid.direction[:, 0], grid.direction[:, 1]]), 6)
    ds.PixelSpacing = ds_list([grid.dy, grid.dx], 6)
    if len(grid.z) > 1:
        ds.SliceThickness = ds_str(grid.dz, 4)
    else:
        ds.SliceThickness = ds_str(grid.slice_thickness or 1.0, 4)
    ds.GridFrameOffsetVector = ds_list(grid.z - grid.z[0], 4)
    ds.NumberOfFrames = len(grid.z)
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    set_grey_pixel_module(ds, grid.shape[1], grid.shape[2], 32)
    ds.PixelRepresentation = 0
    dmax = float(dose.max()) if dose.size else 0.0
    # 2**22 levels up to the maximum: a step (14 uGy at 60 Gy) coarser than float32's resolution of the
    # dose, so values survive a write/read round trip within one step, and far finer than any clinical need.
    scaling = float(ds_str(dmax / 2.0**22, 12)) if dmax > 0 else 1.0
    if scaling <= 0:
        scaling = 1e-9
    ds.DoseGridScaling = ds_str(scaling, 12) if len(ds_str(scaling, 12)) <= 16 else f"{scaling:.6e}"
    scaling = float(ds.DoseGridScaling)
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation_type
    if comment:
        ds.DoseComment = comment[:64]
    if plan_uid:
        it = Dataset()
        it.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
        it.ReferencedSOPInstanceUID = plan_uid
        ds.ReferencedRTPlanSequence = Sequence([it])
    pix = np.clip(np.rint(dose / scaling), 0, 2**32 - 1).astype(np.uint32)
    ds.PixelData = np.ascontiguousarray(pix).tobytes()
    choose_charset(ds)
    return ds
