"""RT Dose: reading the dose grid (Gy) and its geometry.

Attributes mapped
-----------------
ImagePositionPatient, ImageOrientationPatient, PixelSpacing, GridFrameOffsetVector (relative
form: first value 0, offsets along the plane normal; absolute form: first value equal to the
z of ImagePositionPatient, offsets are z positions), DoseGridScaling, DoseUnits (GY or
RELATIVE), DoseType, DoseSummationType, ReferencedRTPlanSequence.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._lazyimports import import_pydicom
from .._record import Record
from ..errors import DicomReadError, DicomValueError, warn
from ..geometry import Grid, grid_from_planes
from . import values
from .folder import DicomFile
from .rawheader import RawHeader

if TYPE_CHECKING:
    import pydicom


class DoseVolume(Record):
    """A dose in the canonical frame of its own grid."""

    _fields = ("array", "grid", "units", "dose_type", "summation_type", "files")

    array: np.ndarray  # float32 (z, y, x), Gy (or relative units if units != "GY")
    grid: Grid
    units: str
    dose_type: str
    summation_type: str
    files: list[DicomFile]

    def __init__(self, array: np.ndarray, grid: Grid, units: str, dose_type: str, summation_type: str,
                 files: list[DicomFile]):
        self.array, self.grid, self.units, self.dose_type = array, grid, units, dose_type
        self.summation_type, self.files = summation_type, files


def read_dose(f: DicomFile, *, report=None) -> DoseVolume:
    """Decode one RTDOSE file.

    Raises
    ------
    DicomReadError
        Pixel data that can't be decoded. Its subclass DicomValueError: a missing or implausible
        geometry attribute, frame count, GridFrameOffsetVector (not strictly monotonic) or
        DoseGridScaling (missing, 0, negative, or giving doses beyond MAX_DOSE_GY).
    """
    report = report or warn
    name = f.path.name
    hdr = f.raw_header
    ds: pydicom.Dataset | RawHeader
    if hdr is not None:
        ds = hdr  # the file's raw elements (reader.read_rt_header), anything else by pydicom
    else:
        import_pydicom()
        import pydicom

        try:
            ds = pydicom.dcmread(f.path, force=True)
        except Exception as exc:
            raise DicomReadError(f"RTDOSE {name}: can't be read ({type(exc).__name__}: {exc})") from exc
    # every value through grtv_nb.dicom.values (DicomValueError names file and attribute); sizes are
    # checked against the pixel data before anything is decoded or allocated
    ipp = values.image_position(ds, f.path)
    iop = values.image_orientation(ds, f.path)
    ps = values.pixel_spacing(ds, f.path)
    nframes = values.number_of_frames(ds, f.path)
    rows, cols = values.matrix_size(ds, f.path, frames=nframes)
    offsets = values.grid_frame_offsets(ds, f.path, nframes)
    scaling = values.dose_grid_scaling(ds, f.path)
    values.check_pixel_length(ds, f.path, rows, cols, nframes)
    try:
        arr = _native_pixels(ds, rows, cols, nframes, f.path) if isinstance(ds, RawHeader) else None
        if arr is None:
            arr = ds.pixel_array
        arr = arr.reshape(nframes, rows, cols)
    except Exception as exc:
        raise DicomReadError(f"RTDOSE {name}: pixel data can't be decoded as {nframes} frame(s) of {rows}x{cols} "
                             f"({type(exc).__name__}: {exc})") from exc
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
    if (order != np.arange(len(order))).any():  # frames stored out of order (usually they are not: no copy)
        arr = arr[order]
        positions = positions[order]
        offsets = offsets[order]
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype.kind == "c":
        raise DicomValueError(f.path, "PixelData", f"has unsupported pixel type {arr.dtype}")
    if arr.dtype.kind == "i" and int(arr.min(initial=0)) < 0:  # (unsigned values never are)
        raise DicomValueError(f.path, "PixelData", f"holds negative dose values (min {int(arr.min())}; "
                              "PixelRepresentation signed)")
    values_gy = arr.astype(np.float32)
    values_gy *= np.float32(scaling)  # (in place: one float32 volume, not two)
    vmax = float(values_gy.max()) if values_gy.size else 0.0
    # integers times a finite scaling are all finite when their maximum is (an overflow is +inf): one pass
    finite = math.isfinite(vmax) if arr.dtype.kind in "iu" else bool(np.isfinite(values_gy).all())
    if not finite or vmax > values.MAX_DOSE_GY:
        raise DicomValueError(f.path, "DoseGridScaling",
                              f"value {scaling:g} gives a dose maximum of {float(np.nanmax(values_gy)):g}, "
                              f"beyond {values.MAX_DOSE_GY:g} Gy")
    units = (values.text(ds, "DoseUnits") or "GY").upper()
    grid, layout = grid_from_planes(
        positions, iop, (float(ps[0]), float(ps[1])), rows, cols,
        frame_of_reference_uid=values.text(ds, "FrameOfReferenceUID"),
        slice_thickness=(float(abs(offsets[1] - offsets[0])) if len(offsets) > 1
                         else values.slice_thickness(ds, f.path)),
    )
    return DoseVolume(
        layout.to_canonical(values_gy), grid, units, values.text(ds, "DoseType"),
        values.text(ds, "DoseSummationType"), [f],
    )


def _native_pixels(hdr: RawHeader, rows: int, cols: int, frames: int, path=None) -> np.ndarray | None:
    """The dose grid of a raw header's native pixel data, as pydicom's ``pixel_array`` gives it,
    for the usual form only: little-endian native transfer syntax, one sample of 16 or 32 stored
    bits filling their allocation (no bit masking, no sign extension), exactly the declared length
    (an odd one padded by one byte); None otherwise (pydicom decodes it). A deferred pixel element
    (:func:`grtv_nb.dicom.reader.read_rt_header`) is read from ``path`` straight into the array."""
    meta = hdr.file_meta
    if meta is None or values.text(meta, "TransferSyntaxUID") not in values.NATIVE_LE_TRANSFER_SYNTAXES:
        return None
    elem = hdr.get_item(0x7FE00010)
    raw = getattr(elem, "value", None)
    deferred = raw is None and path is not None and getattr(elem, "value_tell", None) is not None
    if not isinstance(raw, bytes) and not deferred:
        return None
    bits = values.raw_numbers(hdr, "BitsAllocated")
    stored = values.raw_numbers(hdr, "BitsStored")
    rep = values.raw_numbers(hdr, "PixelRepresentation")
    spp = values.raw_numbers(hdr, "SamplesPerPixel")
    if bits not in ([16], [32]) or stored != bits or rep not in ([0], [1]) or spp != [1]:
        return None
    n = rows * cols * frames
    need = n * bits[0] // 8
    if (len(raw) if isinstance(raw, bytes) else elem.length) != need + (need & 1):
        return None
    dtype = np.dtype(f"<{'i' if rep == [1] else 'u'}{bits[0] // 8}")
    if isinstance(raw, bytes):
        return np.frombuffer(raw, dtype=dtype, count=n).astype(dtype.newbyteorder("="))
    arr = np.fromfile(path, dtype=dtype, count=n, offset=int(elem.value_tell))
    if arr.size != n:
        return None  # the file changed since its header was read: pydicom reads (and reports) it
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def sum_doses(doses: list[DoseVolume], target: Grid) -> np.ndarray:
    """Interpolate each dose onto ``target`` (linear, 0 outside its grid) and sum them."""
    from ..geometry import resample_onto

    # Doses on one grid are summed before interpolation.
    groups: list[tuple[Grid, np.ndarray]] = []
    for d in doses:
        for i, (g, a) in enumerate(groups):
            if g.same_as(d.grid):
                groups[i] = (g, a + d.array)
                break
        else:
            groups.append((d.grid, d.array.copy() if len(doses) > 1 else d.array))
    total = None
    for g, a in groups:
        r = resample_onto(a, g, target, fill=0.0)
        if total is None and r.dtype == np.float32 and r.shape == target.shape and r.flags.writeable \
                and not np.may_share_memory(r, a):
            total = r  # the first sum, in place: no zeroed volume (0 + r, computed: -0.0 becomes 0.0 as before)
            np.add(total, np.float32(0.0), out=total)
        elif total is None:
            total = np.zeros(target.shape, dtype=np.float32)
            total += r
        else:
            total += r
    return total if total is not None else np.zeros(target.shape, dtype=np.float32)


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
    import_pydicom()
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
