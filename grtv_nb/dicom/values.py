"""Checked reading of the DICOM values grtv_nb uses: each attribute is read through one function
that returns a plain, validated Python/NumPy value or raises
:class:`~grtv_nb.errors.DicomValueError` naming the file, the attribute and what is wrong
(missing, wrong count, not a number, NaN/infinite, out of the plausible range).

Also the constant-time sniffing of a file's first bytes (:func:`looks_like_dicom`): a non-DICOM
file is rejected before it is read, whatever its size; and the size limits that make sure a
declared matrix, frame count or file size is refused *before* anything is allocated (a hostile
header must never end in ``MemoryError``).

Conventions: lengths in mm, positions in patient coordinates (mm); every array returned is
float64 and finite.

Speed: a DS, IS, US, CS or UI element pydicom has not converted yet is read from its raw bytes,
decoded and split exactly as pydicom does (these VRs use the default character set), then checked
by the same code; pydicom's per-value objects were most of the time of reading a CT slice header.
Anything else (converted or deferred elements, other VRs, multi-valued CS/UI, an IS that is not a
plain integer, big-endian data) is converted by pydicom.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import DicomValueError
from .rawheader import RawElement, RawHeader

# ---------------------------------------------------------------- limits (the one table)
#: largest |coordinate| (mm) accepted in positions and contours (100 m: far beyond any patient)
MAX_ABS_POSITION_MM = 1.0e5
#: pixel spacing / slice offsets accepted (mm)
MIN_SPACING_MM = 1.0e-4
MAX_SPACING_MM = 1.0e4
#: direction cosines: |u| and |v| within this of 1, |u.v| below it
ORIENTATION_TOL = 1.0e-2
#: rows/columns (US: 1..65535) and the most pixels one object may declare (rows*cols*frames):
#: 2**28 voxels = 1 GiB as uint32, refused before any allocation
MAX_MATRIX = 65535
MAX_VOXELS = 2**28
MAX_FRAMES = 65535
#: rescale slope/intercept accepted (CT HU need |intercept| of a few thousand)
MAX_ABS_RESCALE_SLOPE = 1.0e6
MAX_ABS_RESCALE_INTERCEPT = 1.0e6
#: DoseGridScaling accepted: > 0 and at most this (Gy per stored unit)
MAX_DOSE_GRID_SCALING = 1.0e3

#: implicit / explicit VR little endian: pixel data stored as plain little-endian words
NATIVE_LE_TRANSFER_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
#: the largest dose (Gy) a grid may hold (10 kGy: far beyond any treatment, still finite in float32)
MAX_DOSE_GY = 1.0e4
#: largest file read (bytes); larger files are skipped unread
MAX_FILE_BYTES = 4 * 2**30
#: ROINumber (IS) range
MAX_ROI_NUMBER = 2**31 - 1

_DICM_OFFSET = 128
_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD",
        b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI",
        b"UL", b"UN", b"UR", b"US", b"UT", b"UV"}


def _file(file) -> str:
    return Path(str(file)).name if file is not None else "?"


def _raw(ds, keyword: str, file):
    """The value of ``keyword`` or None when absent/empty; any decoding failure of pydicom
    (corrupt VR, undecodable text, bad number) becomes a DicomValueError."""
    try:
        if keyword not in ds:
            return None
        value = ds[keyword].value
    except DicomValueError:
        raise
    except Exception as exc:
        raise DicomValueError(file, keyword, f"can't be decoded ({type(exc).__name__}: {exc})") from exc
    if value is None:
        return None
    if isinstance(value, bytes | bytearray) and not bytes(value).strip(b"\0 "):
        return None
    if isinstance(value, str) and not value.strip("\0 "):
        return None
    return value


_MISSING = object()
_FAST_VRS = frozenset({"DS", "IS", "US", "CS", "UI", "DA", "TM", "LO", "SH", "PN"})
#: keyword -> (tag, the dictionary's VR) of the elements read from raw bytes while opening a series:
#: looked up here, not in pydicom's dictionary (which imports pydicom); the test suite checks the
#: table against pydicom's dictionary. Other keywords are looked up in pydicom's.
KNOWN_KEYWORDS: dict[str, tuple[int, str]] = {
    "TransferSyntaxUID": (0x00020010, "UI"), "MediaStorageSOPInstanceUID": (0x00020003, "UI"),
    "SpecificCharacterSet": (0x00080005, "CS"), "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"), "Modality": (0x00080060, "CS"),
    "SeriesDescription": (0x0008103E, "LO"), "PatientName": (0x00100010, "PN"), "PatientID": (0x00100020, "LO"),
    "SliceThickness": (0x00180050, "DS"), "ImagerPixelSpacing": (0x00181164, "DS"),
    "PatientPosition": (0x00185100, "CS"), "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"), "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"), "FrameOfReferenceUID": (0x00200052, "UI"),
    "SamplesPerPixel": (0x00280002, "US"), "NumberOfFrames": (0x00280008, "IS"), "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"), "PixelSpacing": (0x00280030, "DS"), "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"), "PixelRepresentation": (0x00280103, "US"),
    "RescaleIntercept": (0x00281052, "DS"), "RescaleSlope": (0x00281053, "DS"),
    # RT Structure Set and RT Dose (read from a complete raw header, reader.read_rt_header)
    "StructureSetDate": (0x30060008, "DA"), "StructureSetTime": (0x30060009, "TM"),
    "ReferencedFrameOfReferenceSequence": (0x30060010, "SQ"), "RTReferencedStudySequence": (0x30060012, "SQ"),
    "RTReferencedSeriesSequence": (0x30060014, "SQ"), "ContourImageSequence": (0x30060016, "SQ"),
    "StructureSetROISequence": (0x30060020, "SQ"), "ROINumber": (0x30060022, "IS"),
    "ReferencedFrameOfReferenceUID": (0x30060024, "UI"), "ROIName": (0x30060026, "LO"),
    "ROIDisplayColor": (0x3006002A, "IS"), "ROIContourSequence": (0x30060039, "SQ"),
    "ContourSequence": (0x30060040, "SQ"), "ContourGeometricType": (0x30060042, "CS"),
    "ContourData": (0x30060050, "DS"), "RTROIObservationsSequence": (0x30060080, "SQ"),
    "ReferencedROINumber": (0x30060084, "IS"), "ROIObservationLabel": (0x30060085, "SH"),
    "RTROIInterpretedType": (0x300600A4, "CS"), "ReferencedSOPInstanceUID": (0x00081155, "UI"),
    "ReferencedRTPlanSequence": (0x300C0002, "SQ"), "DoseUnits": (0x30040002, "CS"),
    "DoseType": (0x30040004, "CS"), "DoseSummationType": (0x3004000A, "CS"),
    "GridFrameOffsetVector": (0x3004000C, "DS"), "DoseGridScaling": (0x3004000E, "DS"),
}
_KEYWORD_TAGS: dict[str, tuple[int | None, str | None]] = dict(KNOWN_KEYWORDS)
#: SpecificCharacterSet values (or none) under which printable ASCII bytes of a text value decode to
#: the same characters (pydicom's decoding of these character sets); other sets: pydicom decodes
_ASCII_SAFE_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6", "ISO 2022 IR 100"})


def _unconverted(ds, keyword: str):
    """``(VR, raw bytes, little endian)`` of element ``keyword`` while pydicom has not converted it
    and its VR (explicit, or the dictionary's for implicit-VR files) is one read here from the raw
    bytes (DS, IS, US, CS, UI, and LO, SH, PN for :func:`text`: no per-value pydicom objects, which
    were the bulk of reading a CT slice header). ``_MISSING`` when absent; None when pydicom must
    convert it (already converted, deferred, another VR, ``ds`` not a pydicom dataset nor a
    :class:`~grtv_nb.dicom.rawheader.RawHeader`). Callers decode as pydicom does, hand anything
    unusual to pydicom, and apply the same checks either way."""
    d = getattr(ds, "_dict", None)
    if not isinstance(d, dict):
        return None
    entry = _KEYWORD_TAGS.get(keyword)
    if entry is None:
        from .._lazyimports import import_pydicom

        import_pydicom()
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(keyword)
        try:
            dvr = dictionary_VR(tag) if tag is not None else None
        except KeyError:
            dvr = None
        entry = _KEYWORD_TAGS[keyword] = (tag, dvr)
    tag, dvr = entry
    if tag is None or dvr == "SQ":
        return None
    if type(ds) is RawHeader and ds.only is not None and tag not in ds.only:
        return None  # a partial item header: pydicom's dataset of the item answers this one
    elem = d.get(tag)
    if elem is None:
        return _MISSING
    if type(elem) is not RawElement and type(elem) is not _raw_element_type():
        return None
    vr = elem.VR if elem.VR is not None else dvr
    value = elem.value
    if vr not in _FAST_VRS or not isinstance(value, bytes):
        return None
    return vr, value, elem.is_little_endian


def raw_signature(ds, tags: tuple[int, ...]) -> tuple | None:
    """The raw form (VR, bytes, VR implicitness, byte order) of elements ``tags`` of an image
    header and of its transfer syntax, for headers whose elements are all raw: the reading
    functions of this module are functions of those bytes alone, so two headers with equal
    signatures give the same values and pass or fail the same checks on those elements (the
    slices of a series mostly repeat them). None for anything else (a pydicom dataset, a partial
    item header, an element pydicom converted): read each one."""
    if type(ds) is not RawHeader or ds.only is not None:
        return None
    d = getattr(ds, "_dict", None)
    meta = ds.file_meta
    md = getattr(meta, "_dict", None) if meta is not None else {}
    if not isinstance(d, dict) or not isinstance(md, dict):
        return None
    out: list[tuple | None] = []
    for table, tag in ((md, 0x00020010), *((d, t) for t in tags)):  # TransferSyntaxUID first
        e = table.get(tag)
        if e is None:
            out.append(None)
        elif type(e) is RawElement:
            out.append((e[1], e[3], e[5], e[6]))
        else:
            return None
    return tuple(out)


def _fast_numbers(ds, keyword: str, raw=None):
    """The values of a raw DS/IS/US element as pydicom would give them (strings for DS, ints for
    IS and US), ``_MISSING`` when absent or empty, None when pydicom must convert it (an IS value
    that is not a plain integer, an odd US length, big endian, another VR). ``raw``: the element's
    :func:`_unconverted` when the caller has it."""
    if raw is None:
        raw = _unconverted(ds, keyword)
    if raw is None or raw is _MISSING:
        return raw
    vr, value, little = raw
    if vr == "US":
        if not value:
            return _MISSING
        if not little or len(value) % 2:
            return None
        return list(struct.unpack(f"<{len(value) // 2}H", value))
    if vr not in ("DS", "IS"):
        return None
    text = value.decode("latin-1").rstrip(" \0")  # pydicom's padding strip
    if not text.strip("\0 "):
        return _MISSING
    parts = text.split("\\")
    if vr == "IS":
        try:
            ints = [int(x) for x in parts]
        except ValueError:
            return None  # pydicom decides (a float-valued IS, an empty value...)
        if any(v != float(x) for v, x in zip(ints, parts)):
            return None  # beyond float precision: pydicom refuses it
        return ints
    return parts


def _fast_text(ds, keyword: str):
    """A raw single-valued CS/UI element's text, or a LO/SH/PN one's when it is printable ASCII
    (a PN of one component group) and the character set decodes ASCII as ASCII: pydicom's text of
    it (see :func:`_unconverted`)."""
    raw = _unconverted(ds, keyword)
    if raw is None or raw is _MISSING:
        return raw
    vr, value, _ = raw
    if b"\\" in value:
        return None
    if vr in ("CS", "UI", "DA", "TM"):  # default character set (pydicom keeps DA/TM as text by default)
        return value.decode("latin-1").rstrip(" \0")
    if vr not in ("LO", "SH", "PN"):
        return None
    value = value.rstrip(b" \0")
    if not all(0x20 <= b < 0x7F for b in value) or (vr == "PN" and b"=" in value):
        return None  # not printable ASCII, or a person name in several groups (pydicom's PersonName decides)
    charset = _fast_text(ds, "SpecificCharacterSet") if keyword != "SpecificCharacterSet" else None
    if charset is None or (charset is not _MISSING and charset.strip() not in _ASCII_SAFE_CHARSETS):
        return None
    return value.decode("ascii")


def raw_numbers(ds, keyword: str) -> list | None:
    """The values of a raw DS/IS/US element as pydicom gives them (strings for DS, ints for IS and
    US; [] when empty), None when pydicom must convert it (see :func:`_unconverted`)."""
    fast = _fast_numbers(ds, keyword)
    return [] if fast is _MISSING else fast


def sequence_items(ds, keyword: str) -> list:
    """The items of sequence ``keyword`` ([] when absent): a complete
    :class:`~grtv_nb.dicom.rawheader.RawHeader`'s raw items, else the pydicom dataset's (pydicom's
    errors are raised as pydicom raises them)."""
    if isinstance(ds, RawHeader):
        tag = KNOWN_KEYWORDS[keyword][0]
        items = ds.sequence(tag)
        if items is not None:
            return list(items)
        if ds.complete and tag not in ds:
            return []
        ds = ds.dataset()
    return list(ds.get(keyword, []))


def _raw_element_type():
    """pydicom's ``RawDataElement`` (None while pydicom is not imported: no element is one)."""
    import sys

    if "pydicom.dataelem" not in sys.modules:
        return None
    from pydicom.dataelem import RawDataElement

    return RawDataElement


def _as_list(value) -> list:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _to_float(x, file, keyword: str) -> float:
    if isinstance(x, bytes):
        x = x.decode("latin-1", errors="replace")
    if isinstance(x, str):
        x = x.strip("\0 ")
    try:
        f = float(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DicomValueError(file, keyword, f"value {str(x)[:40]!r} is not a number") from exc
    if not math.isfinite(f):
        raise DicomValueError(file, keyword, f"value {str(x)[:40]!r} is not finite")
    return f


def floats(ds, keyword: str, file, *, count: int | None = None, required: bool = True,
           lo: float | None = None, hi: float | None = None, default=None) -> np.ndarray | None:
    """The values of a numeric attribute (DS, IS, FD, FL, ...) as a finite float64 array.

    Raises DicomValueError when it is missing (``required``), has another number of values than
    ``count``, or a value that is not a finite number within ``[lo, hi]``. Returns ``default`` when
    absent and not required.
    """
    raw = _unconverted(ds, keyword)
    key = None
    if raw is not None and raw is not _MISSING:
        # the slices of a series mostly repeat their values (orientation, spacing, matrix, rescale):
        # the result of the last successful read of the same bytes with the same checks is reused
        key = (raw, count, lo, hi)
        last = _LAST_FLOATS.get(keyword)
        if last is not None and last[0] == key:
            return last[1].copy()
    fast = _fast_numbers(ds, keyword, raw)
    if fast is None:
        key = None  # pydicom converts it (and may warn): no reuse
        value = _raw(ds, keyword, file)
    else:
        value = None if fast is _MISSING else fast
    if value is None:
        if required:
            raise DicomValueError(file, keyword, "is missing or empty")
        return default
    if isinstance(value, bytes | bytearray):
        # a binary VR where a number is expected (corrupted VR): try it as text
        value = bytes(value).decode("latin-1", errors="replace").split("\\")
    vals = [_to_float(x, file, keyword) for x in _as_list(value)]
    if count is not None and len(vals) != count:
        raise DicomValueError(file, keyword, f"has {len(vals)} values, {count} expected")
    if lo is not None and vals and min(vals) < lo:
        raise DicomValueError(file, keyword, f"value {min(vals):g} is below {lo:g}")
    if hi is not None and vals and max(vals) > hi:
        raise DicomValueError(file, keyword, f"value {max(vals):g} is above {hi:g}")
    arr = np.array(vals, dtype=np.float64)
    if key is not None:
        _LAST_FLOATS[keyword] = (key, arr.copy())
    return arr


#: keyword -> ((raw element, count, lo, hi), result) of the last successful :func:`floats` read
#: from raw bytes (one entry per keyword)
_LAST_FLOATS: dict[str, tuple[tuple, np.ndarray]] = {}


def number(ds, keyword: str, file, *, required: bool = True, default: float | None = None,
           lo: float | None = None, hi: float | None = None) -> float | None:
    """One finite number (see :func:`floats`)."""
    arr = floats(ds, keyword, file, count=1, required=required, lo=lo, hi=hi)
    return default if arr is None else float(arr[0])


def integer(ds, keyword: str, file, *, required: bool = True, default: int | None = None,
            lo: int | None = None, hi: int | None = None) -> int | None:
    """One integer (US, IS, ...) within ``[lo, hi]``."""
    v = number(ds, keyword, file, required=required, lo=lo, hi=hi)
    if v is None:
        return default
    if not float(v).is_integer():
        raise DicomValueError(file, keyword, f"value {v:g} is not an integer")
    return int(v)


def us_value(ds, keyword: str, default: int) -> int:
    """``int(ds.get(keyword, default))`` for a single-valued US element (the image pixel module's
    BitsAllocated, PixelRepresentation...), read from the raw bytes when it can be; unchecked (the
    callers compare it with the few values they handle)."""
    fast = _fast_numbers(ds, keyword)
    if fast is _MISSING:
        return default
    if fast is not None and len(fast) == 1:
        return fast[0]
    return int(ds.get(keyword, default))


def text(ds, keyword: str, file=None, default: str = "") -> str:
    """A text attribute as a stripped str without NUL bytes ("" when absent); never raises
    (undecodable text is kept with replacement characters)."""
    fast = _fast_text(ds, keyword)
    if fast is _MISSING:
        return default
    if fast is not None:
        return fast.replace("\0", "").strip()
    try:
        if keyword not in ds:
            return default
        v = ds[keyword].value
    except Exception:
        return default
    if v is None:
        return default
    if isinstance(v, bytes | bytearray):
        v = bytes(v).decode("latin-1", errors="replace")
    try:
        s = str(v)
    except Exception:
        return default
    return s.replace("\0", "").strip()


# ---------------------------------------------------------------- geometry
def pixel_spacing(ds, file, keyword: str = "PixelSpacing", *, required: bool = True) -> np.ndarray | None:
    """(row spacing, column spacing) in mm, each within MIN_SPACING_MM..MAX_SPACING_MM."""
    return floats(ds, keyword, file, count=2, required=required, lo=MIN_SPACING_MM, hi=MAX_SPACING_MM)


def image_position(ds, file) -> np.ndarray:
    """ImagePositionPatient: 3 finite coordinates within +-MAX_ABS_POSITION_MM."""
    return floats(ds, "ImagePositionPatient", file, count=3, lo=-MAX_ABS_POSITION_MM, hi=MAX_ABS_POSITION_MM)


def image_orientation(ds, file) -> np.ndarray:
    """ImageOrientationPatient: row and column direction cosines, each of unit length and
    orthogonal within ORIENTATION_TOL; returned re-normalised (exactly unit, orthogonal)."""
    raw = _unconverted(ds, "ImageOrientationPatient")
    if raw is not None and raw is not _MISSING and _LAST_ORIENTATION and _LAST_ORIENTATION[0] == raw:
        return _LAST_ORIENTATION[1].copy()  # the same bytes as the last slice's: the same result
    iop = floats(ds, "ImageOrientationPatient", file, count=6, lo=-1.0 - ORIENTATION_TOL, hi=1.0 + ORIENTATION_TOL)
    u, v = iop[:3], iop[3:]
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if abs(nu - 1) > ORIENTATION_TOL or abs(nv - 1) > ORIENTATION_TOL:
        raise DicomValueError(file, "ImageOrientationPatient",
                              f"direction cosines are not unit vectors (lengths {nu:.4g}, {nv:.4g})")
    dot = float(u @ v) / (nu * nv)
    if abs(dot) > ORIENTATION_TOL:
        raise DicomValueError(file, "ImageOrientationPatient",
                              f"row and column directions are not orthogonal (cosine {dot:.4g})")
    u = u / nu
    v = v - (v @ u) * u
    v = v / np.linalg.norm(v)
    out = np.concatenate([u, v])
    if raw is not None and raw is not _MISSING and _fast_numbers(ds, "ImageOrientationPatient", raw) is not None:
        _LAST_ORIENTATION[:] = [raw, out.copy()]
    return out


_LAST_ORIENTATION: list = []  # [raw element, result] of the last image_orientation read from raw bytes


def matrix_size(ds, file, *, frames: int = 1) -> tuple[int, int]:
    """(Rows, Columns), each 1..MAX_MATRIX, with rows*cols*frames at most MAX_VOXELS."""
    rows = integer(ds, "Rows", file, lo=1, hi=MAX_MATRIX)
    cols = integer(ds, "Columns", file, lo=1, hi=MAX_MATRIX)
    if rows * cols * max(frames, 1) > MAX_VOXELS:
        raise DicomValueError(file, "Rows/Columns/NumberOfFrames",
                              f"declare {rows}x{cols}x{frames} voxels, more than the {MAX_VOXELS} grtv_nb reads")
    return rows, cols


def number_of_frames(ds, file) -> int:
    """NumberOfFrames (1 when absent), 1..MAX_FRAMES."""
    return integer(ds, "NumberOfFrames", file, required=False, default=1, lo=1, hi=MAX_FRAMES)


def bits_allocated(ds, file) -> int:
    """BitsAllocated (16 when absent): 1, 8, 16, 32 or 64."""
    bits = integer(ds, "BitsAllocated", file, required=False, default=16)
    if bits not in (1, 8, 16, 32, 64):
        raise DicomValueError(file, "BitsAllocated", f"value {bits} is not 1, 8, 16, 32 or 64")
    return bits


def samples_per_pixel(ds, file) -> int:
    """SamplesPerPixel (1 when absent): 1 or 3."""
    spp = integer(ds, "SamplesPerPixel", file, required=False, default=1)
    if spp not in (1, 3):
        raise DicomValueError(file, "SamplesPerPixel", f"value {spp} is not 1 or 3")
    return spp


def check_pixel_length(ds, file, rows: int, cols: int, frames: int = 1) -> None:
    """For uncompressed (native) pixel data held in ``ds``: refuse a PixelData shorter than the
    declared rows*cols*frames*bits (checked before anything is decoded or allocated)."""
    ts = ""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        ts = text(meta, "TransferSyntaxUID")
    if ts not in NATIVE_LE_TRANSFER_SYNTAXES and ts not in ("", "1.2.840.10008.1.2.2"):  # or big endian
        return  # encapsulated: the decoder checks its frames
    try:
        if 0x7FE00010 not in ds:
            raise DicomValueError(file, "PixelData", "is missing")
        elem = ds.get_item(0x7FE00010, keep_deferred=True)  # a deferred value is not read here
        raw = getattr(elem, "value", None)
        length = len(raw) if isinstance(raw, bytes | bytearray) else getattr(elem, "length", None)
    except DicomValueError:
        raise
    except Exception as exc:
        raise DicomValueError(file, "PixelData", f"can't be read ({type(exc).__name__}: {exc})") from exc
    if length is None or length == 0xFFFFFFFF:
        return
    bits = bits_allocated(ds, file)
    spp = samples_per_pixel(ds, file)
    need = (rows * cols * frames * spp * bits + 7) // 8
    if length < need:
        raise DicomValueError(file, "PixelData",
                              f"holds {length} bytes; Rows {rows} x Columns {cols} x {frames} frame(s) x "
                              f"{bits} bits need {need}")


def rescale(ds, file) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept), defaults 1 and 0; slope non-zero, both bounded."""
    slope = number(ds, "RescaleSlope", file, required=False, default=1.0,
                   lo=-MAX_ABS_RESCALE_SLOPE, hi=MAX_ABS_RESCALE_SLOPE)
    if slope == 0:
        raise DicomValueError(file, "RescaleSlope", "is 0 (every pixel would have the same value)")
    intercept = number(ds, "RescaleIntercept", file, required=False, default=0.0,
                       lo=-MAX_ABS_RESCALE_INTERCEPT, hi=MAX_ABS_RESCALE_INTERCEPT)
    return float(slope), float(intercept)


def slice_thickness(ds, file) -> float:
    """SliceThickness in mm (0 when absent, empty or not plausible: it is informative only)."""
    try:
        v = number(ds, "SliceThickness", file, required=False, default=0.0)
    except DicomValueError:
        return 0.0
    return float(v) if MIN_SPACING_MM <= abs(v) <= MAX_SPACING_MM else 0.0


# ---------------------------------------------------------------- RT Dose
def dose_grid_scaling(ds, file) -> float:
    """DoseGridScaling: required, finite, > 0 and at most MAX_DOSE_GRID_SCALING (a missing or zero
    scaling must never be read as 1: it would give absurd doses)."""
    s = number(ds, "DoseGridScaling", file)
    if s <= 0:
        raise DicomValueError(file, "DoseGridScaling", f"value {s:g} is not positive")
    if s > MAX_DOSE_GRID_SCALING:
        raise DicomValueError(file, "DoseGridScaling", f"value {s:g} is above {MAX_DOSE_GRID_SCALING:g} Gy per unit")
    return s


def grid_frame_offsets(ds, file, frames: int) -> np.ndarray:
    """GridFrameOffsetVector of a multi-frame dose: ``frames`` finite values, strictly monotonic
    (increasing or decreasing), steps of at least MIN_SPACING_MM. A single frame gives ``[0]``
    (its plane is at ImagePositionPatient; the vector, present or not, is not used)."""
    if frames == 1:  # one frame lies at ImagePositionPatient whatever the vector says
        return np.zeros(1)
    off = floats(ds, "GridFrameOffsetVector", file, lo=-MAX_ABS_POSITION_MM, hi=MAX_ABS_POSITION_MM)
    if off.size != frames:
        raise DicomValueError(file, "GridFrameOffsetVector", f"has {off.size} values for {frames} frame(s)")
    if frames > 1:
        d = np.diff(off)
        if not ((d >= MIN_SPACING_MM).all() or (d <= -MIN_SPACING_MM).all()):
            i = int(np.argmin(np.abs(d)) if (np.sign(d) == np.sign(d[0])).all() else
                    np.flatnonzero(np.sign(d) != np.sign(d[0]))[0])
            raise DicomValueError(file, "GridFrameOffsetVector",
                                  f"is not strictly monotonic (values {off[i]:g} and {off[i + 1]:g} at frames "
                                  f"{i} and {i + 1})")
    return off


# ---------------------------------------------------------------- RT Structure Set
def roi_number(item, file, keyword: str = "ROINumber") -> int:
    """ROINumber / ReferencedROINumber: an integer 0..2**31-1."""
    return integer(item, keyword, file, lo=0, hi=MAX_ROI_NUMBER)


def contour_points(values, file, roi: str) -> np.ndarray:
    """ContourData values as (N, 3) points: a multiple of 3 finite values within
    +-MAX_ABS_POSITION_MM. Raises DicomValueError otherwise (the caller decides whether to drop
    the contour with a warning)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size and arr.size % 3 == 0 and float(np.abs(arr).max()) <= MAX_ABS_POSITION_MM:
        return arr.reshape(-1, 3)  # all finite and in range (NaN fails the comparison): the usual case
    what = f"ContourData of ROI '{roi}'"
    if arr.size % 3:
        raise DicomValueError(file, what, f"has {arr.size} values (not a multiple of 3)")
    if not np.isfinite(arr).all():
        raise DicomValueError(file, what, f"holds {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    if arr.size and np.abs(arr).max() > MAX_ABS_POSITION_MM:
        raise DicomValueError(file, what, f"holds a coordinate of {np.abs(arr).max():g} mm "
                                          f"(beyond {MAX_ABS_POSITION_MM:g})")
    return arr.reshape(-1, 3)


# ---------------------------------------------------------------- files
def looks_like_dicom(path: str | os.PathLike) -> tuple[bool, str]:
    """Decide from the first 132 bytes (constant time, whatever the file's size) whether a file
    may be DICOM: the 'DICM' marker after the 128-byte preamble, or a plausible first element of
    a dataset without preamble (group 0x0002 or 0x0008, little endian, implicit or explicit VR).
    Returns ``(ok, reason)``; files larger than MAX_FILE_BYTES are refused too."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(_DICM_OFFSET + 4)
    except OSError as exc:
        return False, f"unreadable ({type(exc).__name__}: {exc.strerror or exc})"
    if size > MAX_FILE_BYTES:
        return False, f"{size} bytes, larger than the {MAX_FILE_BYTES} bytes grtv_nb reads"
    if len(head) >= _DICM_OFFSET + 4 and head[_DICM_OFFSET:_DICM_OFFSET + 4] == b"DICM":
        return True, ""
    if len(head) < 8:
        return False, "not a DICOM file (too short)"
    group, elem = struct.unpack("<HH", head[:4])
    if group in (0x0002, 0x0008) and elem < 0x1000:
        if head[4:6] in _VRS:  # explicit VR
            return True, ""
        (length,) = struct.unpack("<I", head[4:8])  # implicit VR: a plausible length
        if length < 1 << 16 or length == 0xFFFFFFFF:
            return True, ""
    return False, "not a DICOM file (no DICM marker and no plausible first element)"
