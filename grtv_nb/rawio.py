"""Headerless raw volume files (the original's ``writeRaw``) and their MetaImage ``.mhd`` headers.

Conventions
-----------
A raw file holds the voxels of a ``[z, y, x]`` volume in C order (x fastest), little-endian,
nothing else: ``nz * ny * nx * itemsize`` bytes. Its optional MetaImage header
(``<name>.mhd`` beside ``<name>.raw``) names the raw file and gives ``DimSize = nx ny nz``,
``ElementSpacing = dx dy dz`` (mm), ``Offset`` (the first voxel centre, x y z) and the element
type, so that ITK, SimpleITK and 3D Slicer open it. Every file is written atomically
(:mod:`grtv_nb.fileio`): to a temporary name in the same folder, then renamed, so a final name
never holds a partial file; a raw file and its header are renamed only once both are complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ValidationError
from .fileio import atomic_open, atomic_paths, check_file_name, check_file_target
from .validate import count_out_of_range, warn_clipped

_MET_TYPES = {
    np.dtype(np.int8): "MET_CHAR",
    np.dtype(np.uint8): "MET_UCHAR",
    np.dtype(np.int16): "MET_SHORT",
    np.dtype(np.uint16): "MET_USHORT",
    np.dtype(np.int32): "MET_INT",
    np.dtype(np.uint32): "MET_UINT",
    np.dtype(np.float32): "MET_FLOAT",
    np.dtype(np.float64): "MET_DOUBLE",
}
_MET_DTYPES = {v: k for k, v in _MET_TYPES.items()}

#: dtypes a raw file may hold (bool volumes are written as uint8 0/1)
RAW_DTYPES = tuple(_MET_TYPES)

_SLAB_BYTES = 16 << 20  # conversion is done by slabs of about this size to bound memory


def write_array(arr: np.ndarray, f) -> None:
    """Write an array's bytes (C order) to an open binary file. Unlike ``ndarray.tofile``, a
    failing write raises the OSError with its errno (ENOSPC: "No space left on device")."""
    f.write(memoryview(np.ascontiguousarray(arr)).cast("B"))


_tofile = write_array  # module-level so tests can simulate a failing disk


def _raw_dtype(dtype, argname: str = "dataType") -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValidationError(f"{argname} {dtype!r} is not a numpy dtype") from None
    if dt == np.bool_:
        dt = np.dtype(np.uint8)
    dt = dt.newbyteorder("=")
    if dt not in _MET_TYPES:
        names = ", ".join(str(d) for d in _MET_TYPES)
        raise ValidationError(f"{argname} {dt} is not supported for raw files ({names})")
    return dt


def _convert(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert to ``dtype``: floats to integers rounded half away from zero; clipped to range."""
    if block.dtype == dtype:
        return block
    if block.dtype == np.bool_:
        return block.astype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if np.issubdtype(block.dtype, np.floating):
            from .transforms import _cast

            return _cast(block, dtype)
        bi = np.iinfo(block.dtype)
        if bi.min < info.min or bi.max > info.max:
            block = np.clip(block, max(info.min, bi.min), min(info.max, bi.max))
        return block.astype(dtype)
    return block.astype(dtype)


def _check_target(path, argname: str) -> Path:
    """A raw/header target: a file path outside the source folders (its folder may be missing)."""
    return check_file_target(path, argname, create_parent=True)


def write_raw(
    path: str | os.PathLike,
    volume: np.ndarray,
    dtype: np.dtype | type = np.int16,
    *,
    header: bool = False,
    spacing: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
) -> Path:
    """Write ``volume`` as a headerless raw file of ``dtype`` (the original's ``writeRaw``).

    Parameters
    ----------
    path : path
        The raw file (its parent folders are created). An existing file is replaced, atomically.
        It may not lie in a folder a loaded study was read from.
    volume : ndarray
        Any shape (usually ``[z, y, x]``); written in C order, little-endian.
    dtype : dtype
        Data type in the file: int8, uint8, int16, uint16, int32, uint32, float32 or float64
        (bool means uint8). Floats going to integers are rounded half away from zero; values
        outside the type's range are clipped to it (NaN written as 0) with one
        :class:`~grtv_nb.errors.GRTVWarning` per call giving their count.
    header : bool
        Also write a MetaImage header ``<stem>.mhd`` beside it (3D volumes only). Both files are
        written to temporaries first and renamed only when both are complete.
    spacing : (dz, dy, dx), optional
        Voxel size in mm for the header (default 1, 1, 1).
    origin : (z, y, x), optional
        Centre of the first voxel in mm for the header (default 0, 0, 0).

    Returns
    -------
    Path of the raw file.
    """
    p = _check_target(path, "path")
    dt = _raw_dtype(dtype)
    vol = np.asarray(volume)
    if vol.dtype.kind not in "biuf":
        raise ValidationError(f"volume has dtype {vol.dtype}; a numeric array is needed")
    if header and vol.ndim != 3:
        raise ValidationError(f"a MetaImage header needs a 3D volume, got shape {vol.shape}")
    paths = [p]
    text = None
    if header:
        mhd = _check_target(p.with_suffix(".mhd"), "header path")
        text = mhd_header_text(vol.shape, dt, spacing=spacing, origin=origin, raw_name=p.name)
        paths.append(mhd)
    le = dt.newbyteorder("<")
    flat = vol.reshape(-1) if vol.flags.c_contiguous else None
    clipped = 0
    with atomic_paths(paths, "raw file", create_parent=True) as tmps:
        with open(tmps[0], "wb") as f:
            if flat is not None and vol.dtype == le:
                _tofile(flat, f)
            else:
                src = flat if flat is not None else np.ascontiguousarray(vol).reshape(-1)
                step = max(1, _SLAB_BYTES // max(1, le.itemsize))
                for s in range(0, src.size, step):
                    block = src[s:s + step]
                    clipped += count_out_of_range(block, dt)
                    _tofile(_convert(block, dt).astype(le, copy=False), f)
        if text is not None:
            with open(tmps[1], "w", encoding="ascii") as f:
                f.write(text)
    if clipped:
        warn_clipped(clipped, vol.size, dt, "writeRaw")
    return p


def write_mhd(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype: np.dtype | type,
    *,
    spacing: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
    raw_name: str | None = None,
) -> Path:
    """Write a MetaImage header for a raw ``[z, y, x]`` volume of ``shape`` and ``dtype``.

    ``spacing`` is ``(dz, dy, dx)`` mm, ``origin`` the first voxel centre ``(z, y, x)`` mm;
    ``raw_name`` the raw file's name (default: this header's stem + ``.raw``), relative to the
    header's folder. Axes are the canonical frame (identity ``TransformMatrix``). Written
    atomically.
    """
    p = _check_target(path, "path")
    text = mhd_header_text(shape, dtype, spacing=spacing, origin=origin, raw_name=raw_name or (p.stem + ".raw"))
    with atomic_open(p, "w", "MetaImage header", create_parent=True, encoding="ascii") as f:
        f.write(text)
    return p


def mhd_header_text(shape: Sequence[int], dtype, *, spacing=None, origin=None, raw_name: str) -> str:
    """The text of a MetaImage header (see :func:`write_mhd`)."""
    dt = _raw_dtype(dtype)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValidationError(f"shape must have 3 dims (z, y, x), got {shape!r}")
    check_file_name(raw_name, "raw_name")
    sp = _triple(spacing, (1.0, 1.0, 1.0), "spacing", positive=True)
    org = _triple(origin, (0.0, 0.0, 0.0), "origin", positive=False)
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
        f"Offset = {org[2]:.9g} {org[1]:.9g} {org[0]:.9g}",
        "CenterOfRotation = 0 0 0",
        "AnatomicalOrientation = RAI",
        f"ElementSpacing = {sp[2]:.9g} {sp[1]:.9g} {sp[0]:.9g}",
        f"DimSize = {shape[2]} {shape[1]} {shape[0]}",
        f"ElementType = {_MET_TYPES[dt]}",
        f"ElementDataFile = {raw_name}",
    ]
    return "\n".join(lines) + "\n"


def _triple(values, default, name: str, positive: bool) -> tuple[float, float, float]:
    if values is None:
        return default
    try:
        t = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be 3 numbers (z, y, x), got {values!r}") from None
    if len(t) != 3 or not all(np.isfinite(t)) or (positive and min(t) <= 0):
        kind = "positive " if positive else ""
        raise ValidationError(f"{name} must be 3 {kind}numbers (z, y, x), got {values!r}")
    return t  # type: ignore[return-value]


def read_mhd(path: str | os.PathLike) -> dict:
    """Read a MetaImage header. Returns a dict with ``shape`` (z, y, x), ``dtype``, ``spacing``
    (dz, dy, dx), ``origin`` (z, y, x), ``data_file`` (Path) and ``fields`` (all key/values)."""
    p = Path(os.fspath(path))
    try:
        text = p.read_text(encoding="ascii", errors="replace")
    except OSError as e:
        raise ValidationError(f"cannot read MetaImage header {str(p)!r}: {e}") from None
    fields = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip()
    try:
        ndims = int(fields.get("NDims", "3"))
        dims = [int(v) for v in fields["DimSize"].split()]
        etype = fields["ElementType"]
        data_file = fields["ElementDataFile"]
    except (KeyError, ValueError) as e:
        raise ValidationError(f"MetaImage header {str(p)!r} is missing or has a bad field: {e}") from None
    if ndims != 3 or len(dims) != 3:
        raise ValidationError(f"MetaImage header {str(p)!r}: only 3D images are supported (NDims={ndims})")
    if etype not in _MET_DTYPES:
        raise ValidationError(f"MetaImage header {str(p)!r}: unsupported ElementType {etype}")
    if fields.get("CompressedData", "False").lower() == "true":
        raise ValidationError(f"MetaImage header {str(p)!r}: compressed data is not supported")
    dt = _MET_DTYPES[etype]
    if fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")).lower() == "true":
        dt = dt.newbyteorder(">")
    sp = [float(v) for v in fields.get("ElementSpacing", fields.get("ElementSize", "1 1 1")).split()]
    org = [float(v) for v in fields.get("Offset", fields.get("Origin", "0 0 0")).split()]
    return {
        "shape": (dims[2], dims[1], dims[0]),
        "dtype": dt,
        "spacing": (sp[2], sp[1], sp[0]) if len(sp) == 3 else (1.0, 1.0, 1.0),
        "origin": (org[2], org[1], org[0]) if len(org) == 3 else (0.0, 0.0, 0.0),
        "data_file": p.parent / data_file,
        "fields": fields,
    }


_DEFAULT_BY_SIZE = {1: np.dtype(np.uint8), 2: np.dtype(np.int16), 4: np.dtype(np.float32),
                    8: np.dtype(np.float64)}


def read_raw(
    path: str | os.PathLike,
    shape: Sequence[int] | None = None,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """Read a raw volume written by :func:`write_raw` (or any headerless little-endian file).

    Parameters
    ----------
    path : path
        The ``.raw`` file, or its ``.mhd`` header.
    shape : (nz, ny, nx), optional
        Default: from the ``.mhd`` header beside the raw file (same stem).
    dtype : dtype, optional
        Default: from the header; without a header, guessed from the file size and ``shape``
        (1 byte: uint8, 2: int16, 4: float32, 8: float64).

    Returns
    -------
    ndarray of ``shape`` (native byte order).
    """
    p = Path(os.fspath(path))
    info = None
    if p.suffix.lower() == ".mhd":
        info = read_mhd(p)
        p = info["data_file"]
    elif p.with_suffix(".mhd").is_file():
        info = read_mhd(p.with_suffix(".mhd"))
    if not p.is_file():
        raise ValidationError(f"raw file {str(p)!r} does not exist")
    size = p.stat().st_size
    if shape is None:
        if info is None:
            raise ValidationError(f"shape of {str(p)!r} is unknown: no .mhd header beside it, pass shape=")
        shape = info["shape"]
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValidationError(f"shape must be ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValidationError(f"shape must be non-negative ints, got {shape!r}")
    n = int(np.prod(shape))
    if dtype is not None:
        dt = _raw_dtype(dtype, "dtype")
        le = dt.newbyteorder("<")
    elif info is not None:
        le = info["dtype"]
        if le.byteorder == "=":
            le = le.newbyteorder("<")
    else:
        if n == 0 or size % n or size // n not in _DEFAULT_BY_SIZE:
            raise ValidationError(f"cannot guess the dtype of {str(p)!r} ({size} bytes for shape {shape})")
        le = _DEFAULT_BY_SIZE[size // n].newbyteorder("<")
    if size != n * le.itemsize:
        raise ValidationError(
            f"raw file {str(p)!r} has {size} bytes, expected {n * le.itemsize} for shape {shape} of {le.name}"
        )
    data = np.fromfile(p, dtype=le, count=n).reshape(shape)
    return data.astype(le.newbyteorder("="), copy=False)
