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
        slice_thickness=float(abs(offsets[1] - offsets[0])) if len(offsets) > 1 else float(ds.get("SliceThickness", 0) or 0),
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
