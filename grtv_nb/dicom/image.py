"""Building an image volume (CT, MR) from the slices of one series.

Slices are sorted along the slice normal (``ImagePositionPatient`` projected on the cross product
of the ``ImageOrientationPatient`` direction cosines), never by InstanceNumber or file name.
Rescale slope/intercept is applied per slice; CT is returned in HU as int16. Gantry-tilted and
mixed-orientation series are refused; missing slices (gaps) and duplicated positions are
reported. Compressed transfer syntaxes are decoded by pydicom's pixel handlers (pylibjpeg
plugins for JPEG 2000, JPEG-LS, JPEG lossless and RLE).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .._record import Record
from ..errors import DicomReadError, GeometryError
from ..geometry import Grid, StorageLayout, grid_from_planes, median
from . import values
from .folder import DicomFile, ImageSeries

if TYPE_CHECKING:
    import pydicom

_ORIENT_TOL = 1e-4
_TILT_TOL_MM = 0.05


class ImageVolume(Record):
    """A decoded image series in the canonical frame (see :mod:`grtv_nb.geometry`)."""

    _fields = ("array", "grid", "layout", "modality", "files", "notes")

    array: np.ndarray  # (z, y, x)
    grid: Grid
    layout: StorageLayout
    modality: str
    files: list[DicomFile]  # in sorted slice order (storage order)
    notes: list[str]

    def __init__(self, array: np.ndarray, grid: Grid, layout: StorageLayout, modality: str, files: list[DicomFile],
                 notes: list[str] | None = None):
        self.array, self.grid, self.layout, self.modality, self.files = array, grid, layout, modality, files
        self.notes = [] if notes is None else notes

    @property
    def first(self) -> pydicom.Dataset:
        return self.files[0].ds


def _floats(ds, name, n=None):
    from pydicom.multival import MultiValue  # ds is a pydicom dataset: pydicom is imported

    v = ds.get(name)
    if v is None:
        return None
    arr = np.asarray([float(x) for x in (v if isinstance(v, list | tuple | MultiValue) else [v])])
    if n is not None and arr.size != n:
        return None
    return arr


_PIXEL_DATA = 0x7FE00010
_NATIVE_TS = values.NATIVE_LE_TRANSFER_SYNTAXES


def _decode(f: DicomFile) -> np.ndarray:
    """Pixels of one slice. Native little-endian data is read straight from the file at the offset
    the header read recorded (no second parse); compressed data goes through pydicom's handlers."""
    ds = f.ds
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "1.2.840.10008.1.2") or "")
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise DicomReadError(f"{f.path.name}: multi-frame image objects are not supported ({frames} frames)")
    bits = int(ds.get("BitsAllocated", 16))
    if ts in _NATIVE_TS and bits in (8, 16, 32) and int(ds.get("SamplesPerPixel", 1)) == 1 and _PIXEL_DATA in ds:
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
        n = rows * cols
        elem = ds.get_item(_PIXEL_DATA, keep_deferred=True)  # deferred (reader.py): read into the array
        raw = getattr(elem, "value", None)
        if isinstance(raw, bytes | bytearray):
            if len(raw) < n * dtype.itemsize:
                raise DicomReadError(f"{f.path.name}: pixel data truncated ({len(raw)} of {n * dtype.itemsize} bytes)")
            arr = np.frombuffer(raw, dtype=dtype, count=n)
        elif raw is None and getattr(elem, "value_tell", None) is not None:
            arr = np.fromfile(f.path, dtype=dtype, count=n, offset=int(elem.value_tell))
            if arr.size < n:
                raise DicomReadError(f"{f.path.name}: pixel data truncated ({arr.size} of {n} pixels)")
        else:
            arr = ds.pixel_array
        stored = int(ds.get("BitsStored", bits))
        if signed and stored < bits:  # sign-extend e.g. 12-bit signed values
            shift = bits - stored
            arr = (arr << shift) >> shift
        return arr.reshape(rows, cols)
    arr = ds.pixel_array
    if arr.ndim != 2:
        raise DicomReadError(f"{f.path.name}: multi-frame image objects are not supported (shape {arr.shape})")
    return arr


#: the elements that decide a slice's pixel format, matrix, spacing and rescale (with its transfer
#: syntax: :func:`grtv_nb.dicom.values.raw_signature`): slices with the same bytes for them are
#: checked once
_FORMAT_TAGS = (
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280030,  # PixelSpacing
    0x00281053,  # RescaleSlope
    0x00281052,  # RescaleIntercept
    0x00280002,  # SamplesPerPixel
    0x00280008,  # NumberOfFrames
    0x00280100,  # BitsAllocated
    0x00280101,  # BitsStored
    0x00280103,  # PixelRepresentation
)


def _direct_dtype(ds) -> np.dtype | None:
    """The pixel type of a single-frame, single-sample native little-endian slice header, None
    for anything else."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or values.text(meta, "TransferSyntaxUID") not in _NATIVE_TS:
        return None
    if 0x00280008 in ds:  # NumberOfFrames
        return None  # _decode checks and names it
    bits = values.us_value(ds, "BitsAllocated", 16)
    if bits not in (8, 16, 32) or values.us_value(ds, "SamplesPerPixel", 1) != 1:
        return None
    signed = values.us_value(ds, "PixelRepresentation", 0) == 1
    if signed and values.us_value(ds, "BitsStored", bits) < bits:
        return None  # sign extension: _decode
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")


def _direct_plan(f: DicomFile, sig: tuple | None = None,
                 known: dict | None = None) -> tuple[int, np.dtype, int | None] | None:
    """(file offset, pixel type, pixel data length) of a single-frame, single-sample native
    little-endian slice whose pixel data the reader left in the file (deferred, see
    :mod:`grtv_nb.dicom.reader`): its pixels can be read straight into the series' stack. None
    for anything else (decoded by :func:`_decode`). ``known``: pixel type by format signature
    (``sig``, see :data:`_FORMAT_TAGS`) of the slices already planned."""
    ds = f.hdr
    try:
        elem = ds.get_item(_PIXEL_DATA, keep_deferred=True) if _PIXEL_DATA in ds else None
        if elem is None or getattr(elem, "value", b"") is not None or getattr(elem, "value_tell", None) is None:
            return None
        if sig is not None and known is not None and sig in known:
            dtype = known[sig]
        else:
            dtype = _direct_dtype(ds)
            if sig is not None and known is not None:
                known[sig] = dtype
        if dtype is None:
            return None
        return int(elem.value_tell), dtype, getattr(elem, "length", None)
    except Exception:
        return None


def _read_into(f: DicomFile, offset: int, out: np.ndarray) -> None:
    """Read one slice's native pixels from ``f.path`` at ``offset`` straight into ``out``."""
    need = out.nbytes
    buf = memoryview(out).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
    if hasattr(os, "preadv"):  # one system call, no Python file object (~8 us a slice less)
        fd = os.open(f.path, os.O_RDONLY)
        try:
            got = 0
            while got < need:
                n = os.preadv(fd, [buf[got:]], offset + got)
                if n <= 0:
                    break
                got += n
        finally:
            os.close(fd)
    else:
        with open(f.path, "rb") as fh:
            fh.seek(offset)
            got = fh.readinto(buf)
    if got < need:
        raise DicomReadError(f"{f.path.name}: pixel data truncated ({got // out.itemsize} of {out.size} pixels)")


def _rescale_array(raw: np.ndarray, rescale: list[tuple[float, float]], ct: bool) -> np.ndarray:
    """:func:`_rescale_stack` on slices already stacked in one (z, rows, cols) array: the same
    values and type, computed in whole-stack operations (``raw`` may be overwritten)."""
    slopes = np.array([sl for sl, _ in rescale], dtype=np.float64)
    icpts = np.array([b for _, b in rescale], dtype=np.float64)
    if np.issubdtype(raw.dtype, np.integer) and (slopes == 1).all() and (icpts == np.round(icpts)).all():
        b64 = icpts.astype(np.int64)
        # unsigned stored values: the lowest HU is at least the lowest intercept (no pass for it)
        lo_ok = bool(raw.dtype.kind == "u" and b64.min() >= -32768) or \
            int((raw.min(axis=(1, 2)).astype(np.int64) + b64).min()) >= -32768
        top = raw.max(axis=(1, 2)).astype(np.int64)
        hi_ok = int((top + b64).max()) <= 32767
        if ct or (lo_ok and hi_ok):
            b = icpts.astype(np.int32)[:, None, None]
            if lo_ok and hi_ok:
                if raw.dtype.itemsize == 2 and raw.flags.c_contiguous and raw.flags.writeable and \
                        (raw.dtype.kind == "i" or int(top.max()) <= 32767) and \
                        -32768 <= int(b64.min()) and int(b64.max()) <= 32767:
                    # stored values and intercepts are int16 numbers and so is every sum: the HU
                    # are added in int16, in place (the same numbers as through int32)
                    out = raw.view(np.int16)
                    np.add(out, b64.astype(np.int16)[:, None, None], out=out)
                    return out
                out = np.empty(raw.shape, dtype=np.int16)
                np.add(raw, b, out=out, casting="unsafe")
                return out
            return np.clip(raw.astype(np.int32) + b, -32768, 32767).astype(np.int16)
    vals = np.empty(raw.shape, dtype=np.float32)
    np.multiply(raw, slopes.astype(np.float32)[:, None, None], out=vals, casting="unsafe")
    vals += icpts.astype(np.float32)[:, None, None]
    if ct or np.array_equal(vals, np.round(vals)) and vals.min() >= -32768 and vals.max() <= 32767:
        return np.clip(np.rint(vals), -32768, 32767).astype(np.int16)
    return vals


def _rescale_stack(raws: list[np.ndarray], rescale: list[tuple[float, float]], ct: bool) -> np.ndarray:
    """Stack slices applying each slice's slope/intercept. Integer results that fit int16 (always
    the case for CT in HU, rounded) are int16; otherwise float32."""
    integral = all(sl == 1 and float(b).is_integer() for sl, b in rescale) and all(
        np.issubdtype(r.dtype, np.integer) for r in raws)
    if integral:
        lo = min(int(r.min()) + int(b) for r, (_, b) in zip(raws, rescale))
        hi = max(int(r.max()) + int(b) for r, (_, b) in zip(raws, rescale))
        if ct or (lo >= -32768 and hi <= 32767):
            out = np.empty((len(raws), *raws[0].shape), dtype=np.int16)
            for k, (r, (_, b)) in enumerate(zip(raws, rescale)):
                if lo >= -32768 and hi <= 32767:
                    np.add(r, np.int32(b), out=out[k], casting="unsafe")
                else:
                    out[k] = np.clip(r.astype(np.int32) + int(b), -32768, 32767)
            return out
    vals = np.empty((len(raws), *raws[0].shape), dtype=np.float32)
    for k, (r, (sl, b)) in enumerate(zip(raws, rescale)):
        np.multiply(r, np.float32(sl), out=vals[k], casting="unsafe")
        vals[k] += np.float32(b)
    if ct or np.array_equal(vals, np.round(vals)) and vals.min() >= -32768 and vals.max() <= 32767:
        return np.clip(np.rint(vals), -32768, 32767).astype(np.int16)
    return vals


def read_series(series: ImageSeries, *, report=None) -> ImageVolume:
    """Decode and stack an image series.

    Raises
    ------
    GeometryError
        Mixed orientations, gantry tilt, mixed matrix sizes or pixel spacings.
    DicomReadError
        No slice could be decoded.
    """
    from ..errors import warn

    report = report or warn
    notes: list[str] = []
    files = list(series.files)
    # --- geometry checks (every value through grtv_nb.dicom.values: a bad one names its file)
    iops, ipps = [], []
    for f in files:
        iops.append(values.image_orientation(f.hdr, f.path))
        ipps.append(values.image_position(f.hdr, f.path))
    iops = np.array(iops)
    if np.abs(iops - iops[0]).max() > _ORIENT_TOL * 10:
        n_or = len({tuple(np.round(i, 3)) for i in iops})
        odd = files[int(np.argmax(np.abs(iops - iops[0]).max(axis=1)))].path.name
        raise GeometryError(
            f"{series.describe()} mixes {n_or} slice orientations (ImageOrientationPatient of {odd} differs from "
            f"{files[0].path.name}'s); multi-orientation series are not supported: split the series first"
        )
    iop = iops[0]
    u, v = iop[:3], iop[3:]
    n = np.cross(u, v)
    ipps = np.array(ipps)
    s = ipps @ n
    order = np.argsort(s, kind="stable")
    files = [files[i] for i in order]
    ipps, s = ipps[order], s[order]
    # duplicates
    keep = np.ones(len(files), dtype=bool)
    if len(files) > 1:
        dup = np.where(np.abs(np.diff(s)) < 1e-3)[0]
        for i in dup:
            keep[i + 1] = False
        if dup.size:
            report(
                f"{series.describe()}: {dup.size} slice(s) duplicate the position of another slice "
                f"(z = {', '.join(f'{s[i]:.2f}' for i in dup[:5])} mm); kept the first of each, dropped "
                + ", ".join(files[i + 1].path.name for i in dup[:5])
            )
    files = [f for f, k in zip(files, keep) if k]
    ipps, s = ipps[keep], s[keep]
    # tilt: slice origins must move along the normal only
    rel = ipps - ipps[0]
    inplane = rel - np.outer(rel @ n, n)
    if len(files) > 1 and np.abs(inplane).max() > _TILT_TOL_MM:
        tilt = float(np.degrees(np.arctan2(np.linalg.norm(inplane[-1]), abs(rel[-1] @ n))))
        raise GeometryError(
            f"{series.describe()} is gantry-tilted (slices shift {np.abs(inplane).max():.2f} mm in-plane, "
            f"about {tilt:.1f} degrees, largest at {files[int(np.argmax(np.abs(inplane).max(axis=1)))].path.name}; "
            f"GantryDetectorTilt={files[0].ds.get('GantryDetectorTilt', 'n/a')}); "
            "tilted series are not supported: resample it to an orthogonal grid first"
        )
    rows, cols = values.matrix_size(files[0].hdr, files[0].path)
    ps = values.pixel_spacing(files[0].hdr, files[0].path, required=False)
    if ps is None:
        ps = values.pixel_spacing(files[0].hdr, files[0].path, "ImagerPixelSpacing", required=False)
        if ps is None:
            raise GeometryError(f"{files[0].path.name}: PixelSpacing missing")
        notes.append("PixelSpacing missing; used ImagerPixelSpacing")
    rescales: list[tuple[float, float]] = []
    sigs = []
    last_sig = None  # of the last slice whose values passed: a slice of the same bytes passes too
    for f in files:
        sig = values.raw_signature(f.hdr, _FORMAT_TAGS)
        sigs.append(sig)
        if sig is not None and sig == last_sig:
            rescales.append(rescales[-1])
            continue
        r2, c2 = values.matrix_size(f.hdr, f.path)
        if (r2, c2) != (rows, cols):
            raise GeometryError(f"{f.path.name}: matrix {r2}x{c2} differs from {rows}x{cols} "
                                f"(of {files[0].path.name})")
        p2 = values.pixel_spacing(f.hdr, f.path, required=False)
        if p2 is not None and np.abs(p2 - ps).max() > 1e-4:
            raise GeometryError(f"{f.path.name}: PixelSpacing {list(p2)} differs from {list(ps)} "
                                f"(of {files[0].path.name})")
        rescales.append(values.rescale(f.hdr, f.path))
        last_sig = sig
    # --- decode pixels
    modality = series.modality.upper() or "CT"
    known: dict = {}
    plans = [_direct_plan(f, sig, known) for f, sig in zip(files, sigs)]
    direct_plans = [p for p in plans if p is not None]
    direct = bool(files) and len(direct_plans) == len(plans) and len({p[1] for p in direct_plans}) == 1
    raws, rescale, ok, bad = [], [], [], []
    if direct:
        # every slice native, deferred by the reader, one pixel type: read straight into the stack
        raw_stack = np.empty((len(files), rows, cols), dtype=direct_plans[0][1])
    checked: set = set()  # (format signature, pixel data length) of the slices that passed
    for i, f in enumerate(files):
        try:
            key = (sigs[i], direct_plans[i][2]) if direct and sigs[i] is not None else None
            if key is None or key not in checked:
                values.check_pixel_length(f.hdr, f.path, rows, cols)  # before anything is allocated
                if key is not None:
                    checked.add(key)
            if direct:
                _read_into(f, direct_plans[i][0], raw_stack[i])
            else:
                arr = _decode(f)
                if arr.shape != (rows, cols):
                    raise ValueError(f"pixel matrix {arr.shape} != {(rows, cols)}")
        except Exception as exc:
            bad.append(f"{f.path.name} ({type(exc).__name__}: {exc})")
            continue
        f.drop_pixels()
        if not direct:
            raws.append(arr)
        rescale.append(rescales[i])
        ok.append(i)
    if bad:
        report(f"{series.describe()}: {len(bad)} slice(s) could not be decoded and were left out: "
               + "; ".join(bad[:5]))
    files = [files[i] for i in ok]
    ipps, s = ipps[ok], s[ok]
    if not files:
        raise DicomReadError(f"{series.describe()}: no slice could be decoded: " + "; ".join(bad[:3]))
    if direct:
        stack = _rescale_array(raw_stack if len(ok) == len(raw_stack) else raw_stack[ok], rescale,
                               ct=modality == "CT")
    else:
        stack = _rescale_stack(raws, rescale, ct=modality == "CT")
    # --- gaps
    if len(s) > 2:
        d = np.diff(s)
        med = median(d)
        big = np.where(d > 1.5 * med)[0]
        if big.size:
            report(
                f"{series.describe()}: irregular slice gaps (typical spacing {med:.3g} mm): "
                + ", ".join(f"{d[i]:.3g} mm between slice {i} and {i + 1}" for i in big[:5])
                + " - slices may be missing; every slice keeps its own z"
            )
        elif np.abs(d - med).max() > 1e-2 * max(med, 1.0):
            notes.append(f"non-uniform slice spacing ({d.min():.3g}..{d.max():.3g} mm); every slice keeps its own z")
    thickness = values.slice_thickness(files[0].hdr, files[0].path)
    if not thickness and len(s) > 1:
        thickness = median(np.diff(s))
    grid, layout = grid_from_planes(
        ipps,
        iop,
        (float(ps[0]), float(ps[1])),
        rows,
        cols,
        frame_of_reference_uid=files[0].frame_of_reference_uid,
        slice_thickness=thickness,
    )
    if not grid.axis_aligned:
        notes.append("oblique series: coordinates are along the image axes (see Grid.direction)")
    return ImageVolume(layout.to_canonical(stack), grid, layout, modality, files, notes)


def build_image_slice(
    pixels: np.ndarray,
    *,
    ps,
    series_uid: str,
    sop_uid: str,
    position: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing: tuple[float, float],
    slice_thickness: float,
    instance_number: int,
    modality: str = "CT",
    patient_position: str = "HFS",
    series_description: str = "",
    rescale_intercept: float = -1024.0,
    body_part: str = "",
) -> pydicom.Dataset:
    """A single-frame CT (or MR) image dataset. ``pixels`` (rows, cols) are the stored values
    in real units (HU for CT); they are written with the given rescale intercept and slope 1."""
    from .common import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, base_dataset, ds_list, ds_str, set_grey_pixel_module

    sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    ds = base_dataset(sop_class, sop_uid, modality, ps, series_uid=series_uid,
                      series_description=series_description)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = ps.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = patient_position
    if body_part:
        ds.BodyPartExamined = body_part
    ds.InstanceNumber = instance_number
    ds.AcquisitionNumber = 1
    ds.ImagePositionPatient = ds_list(position, 4)
    ds.ImageOrientationPatient = ds_list(orientation, 6)
    ds.PixelSpacing = ds_list(pixel_spacing, 6)
    ds.SliceThickness = ds_str(slice_thickness, 4)
    ds.SliceLocation = ds_str(float(position[2]), 4)
    set_grey_pixel_module(ds, pixels.shape[0], pixels.shape[1], 16)
    if modality == "CT":
        ds.KVP = "120"
        ds.RescaleIntercept = ds_str(rescale_intercept)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        stored = np.rint(np.asarray(pixels, dtype=np.float64) - rescale_intercept)
        if stored.min() >= 0 and stored.max() <= 65535:
            ds.PixelRepresentation = 0
            arr = stored.astype(np.uint16)
        else:
            ds.PixelRepresentation = 1
            arr = np.clip(stored, -32768, 32767).astype(np.int16)
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
    else:
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTime = "10"
        ds.EchoTrainLength = "1"
        ds.RepetitionTime = "500"
        ds.PixelRepresentation = 1
        arr = np.asarray(pixels).astype(np.int16)
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    return ds
