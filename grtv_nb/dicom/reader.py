"""Reading one DICOM file into a pydicom dataset, through one interface with interchangeable parsers.

Backends
--------
``pydicom`` (the reference)
    ``pydicom.dcmread`` on one in-memory copy of a file up to 256 KiB (a single read call:
    pydicom's many small reads of a file cost more than the parse), on the file itself beyond
    (RT objects: a whole copy costs more than it saves).
``dicomsdl``
    dicomsdl's C++ parser finds the data elements (tag, VR, value offset and length) and the dataset
    is assembled from pydicom ``RawDataElement`` s holding the very bytes pydicom would have read.
    Every value is therefore converted, lazily, by pydicom exactly as with the reference backend
    (same types, same character sets, same handling and validation of bad values); only the walk
    over the elements runs in C++ (about 4x faster for a CT slice header, the bulk of opening a
    series). Files it does not cover (no preamble, compressed, deflated or big-endian transfer
    syntaxes, command sets, undefined-length elements other than sequences, headers over 64 KiB
    such as RTSTRUCTs and files up to 256 KiB, which pydicom reads as fast or faster, anything
    dicomsdl refuses) are handed to the reference backend, so the result never depends on the
    backend. The gain is on the usual 512 x 512 slices: header parsed in C++ from the first 64 KiB,
    pixels read once, straight into the image array.

RT objects (RTSTRUCT, RTDOSE, RTPLAN) in the usual form are read whole, raw, by
:func:`read_rt_header` (dicomsdl locates every element; sequences become raw item headers, built
on first use), so that opening a folder does not import pydicom; the file's pydicom dataset is
read for anything their raw bytes do not answer.

The backend is chosen by :func:`set_backend` or the environment variable ``GRTV_NB_DICOM_READER``
(``pydicom`` or ``dicomsdl``); by default dicomsdl when it is installed, else pydicom. Datasets from
both backends compare equal element by element (tested on the real series in ``../shared/data``).
"""

from __future__ import annotations

import io
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .._lazyimports import import_pydicom
from .rawheader import RawElement, RawHeader, to_pydicom_element
from .values import MAX_FILE_BYTES

if TYPE_CHECKING:
    from pydicom.dataset import Dataset, FileDataset



def _log():
    """This module's logger (``logging`` is imported on first use: reading the usual files never logs)."""
    import logging

    return logging.getLogger(__name__)


BACKENDS = ("pydicom", "dicomsdl")
ENV_VAR = "GRTV_NB_DICOM_READER"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_UNDEFINED = 0xFFFFFFFF
_PREAMBLE = 128
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_HEAD_BYTES = 64 * 1024  # first read of a larger file: holds a CT/MR slice header (the rest is pixels)
_FIRST_BYTES = 8 * 1024  # first read of an image header (read on to _HEAD_BYTES when the pixel tag is not in it)
_SMALL_FILE = 256 * 1024  # files up to this size go to the reference: dicomsdl's gain is in big files

#: the elements of an image slice grtv_nb reads while scanning a folder and building a series
#: (:func:`read_image_header`); everything else is read, with the full dataset, when first used
IMAGE_HEADER_TAGS = (
    0x00080016,  # SOPClassUID
    0x00080018,  # SOPInstanceUID
    0x00080060,  # Modality
    0x0020000E,  # SeriesInstanceUID
    0x00200032,  # ImagePositionPatient
    0x00200037,  # ImageOrientationPatient
    0x00200052,  # FrameOfReferenceUID
    0x00280002,  # SamplesPerPixel
    0x00280008,  # NumberOfFrames
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280030,  # PixelSpacing
    0x00280100,  # BitsAllocated
    0x00280101,  # BitsStored
    0x00280103,  # PixelRepresentation
    0x00281052,  # RescaleIntercept
    0x00281053,  # RescaleSlope
    0x00181164,  # ImagerPixelSpacing
    0x00180050,  # SliceThickness
    # the study's attributes (grtv_nb.study.open_study) read from its first slice
    0x00080005,  # SpecificCharacterSet
    0x0008103E,  # SeriesDescription
    0x00100010,  # PatientName
    0x00100020,  # PatientID
    0x0020000D,  # StudyInstanceUID
    0x00185100,  # PatientPosition
)
_META_TAGS = (0x00020003, 0x00020010)  # MediaStorageSOPInstanceUID, TransferSyntaxUID
_TS_TAG = 0x00020010
_SHORT_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL",
                        "SS", "ST", "TM", "UI", "UL", "US"})

_backend: str | None = None
_sdl_vr_names: dict | None = None


def available_backends() -> list[str]:
    """The backends that can run here (pydicom always)."""
    out = ["pydicom"]
    try:
        import dicomsdl  # noqa: F401

        out.append("dicomsdl")
    except ImportError:
        pass
    return out


def get_backend() -> str:
    """The backend in use (see the module docstring for how it is chosen)."""
    global _backend
    if _backend is None:
        want = os.environ.get(ENV_VAR, "").strip().lower()
        if want and want not in BACKENDS:
            _log().warning("%s=%r is not one of %s; using the default", ENV_VAR, want, BACKENDS)
            want = ""
        have = available_backends()
        if want and want not in have:
            _log().warning("%s=%r but %s is not installed; using pydicom", ENV_VAR, want, want)
        _backend = want if want in have else ("dicomsdl" if "dicomsdl" in have else "pydicom")
    return _backend


def set_backend(name: str | None) -> str:
    """Choose the backend (``None``: back to the default). Returns the previous one.

    Raises
    ------
    ValueError
        Unknown backend, or dicomsdl requested but not installed.
    """
    global _backend
    prev = get_backend()
    if name is None:
        _backend = None
        return prev
    if name not in BACKENDS:
        raise ValueError(f"DICOM reader backend must be one of {BACKENDS}, got {name!r}")
    if name not in available_backends():
        raise ValueError(f"DICOM reader backend {name!r} is not installed (pip install {name})")
    _backend = name
    return prev


def read_dataset(path: str | os.PathLike, *, backend: str | None = None) -> FileDataset:
    """Read one DICOM file (all elements; the pixel data stays raw, undecoded, possibly deferred:
    then its element holds ``value_tell`` and the value is read from the file when needed).

    Raises
    ------
    pydicom.errors.InvalidDicomError
        Not a DICOM file (same decision with every backend: the reference makes it).
    """
    path = Path(path)
    if (backend or get_backend()) == "dicomsdl":
        ds = _read_dicomsdl(path)
        if ds is not None:
            ds.filename = str(path)
            return ds
    with open(path, "rb") as fp:
        if os.fstat(fp.fileno()).st_size <= _SMALL_FILE:
            ds = _read_pydicom(io.BytesIO(fp.read()))
        else:  # a large file (an RT object): parsed from the file, no whole copy in memory
            ds = _read_pydicom(fp)
    ds.filename = str(path)
    return ds


# ----------------------------------------------------------------------------- pydicom (reference)


def _read_pydicom(fp) -> FileDataset:
    """``pydicom.dcmread`` of a binary file object (an in-memory copy for small files: pydicom's
    many small reads of a file cost more than the parse)."""
    import_pydicom()
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(fp)
    except InvalidDicomError:
        fp.seek(0)
        ds = pydicom.dcmread(fp, force=True)
        # A file without the 128-byte preamble is accepted only if it looks like a real dataset.
        if "SOPClassUID" not in ds and "Modality" not in ds:
            raise
        return ds


# ----------------------------------------------------------------------------- dicomsdl


def _vr_names() -> dict:
    global _sdl_vr_names
    if _sdl_vr_names is None:
        import dicomsdl

        dicomsdl.set_loglevel(dicomsdl.LogLevel.DISABLE)  # its refusals surface as exceptions (handled)
        _sdl_vr_names = {v: k for k, v in dicomsdl.VR.type.__members__.items()}
    return _sdl_vr_names


def _sdl_table(data: bytes) -> list[tuple[int, str | None, int, int]] | None:
    """(tag, VR name, value length, value offset) of the top-level elements before the pixel data,
    or None where dicomsdl refuses the bytes."""
    import dicomsdl

    names = _vr_names()
    try:
        # load_until stops before (7FE0,0010): dicomsdl is not handed a truncated pixel element
        df = dicomsdl.open_memory(data, copy_data=False, load_until=_PIXEL_DATA - 1)
        return [(e.tag(), names.get(e.vr()), e.length(), e.offset()) for e in df]
    except Exception as exc:
        _log().debug("dicomsdl refused the data (%s)", exc)
        return None


def _final_pixel_element(fp, data: bytes, end: int, implicit: bool, size: int, *,
                          defer: bool = False) -> RawElement | None:
    """The usual end of an image file: one native (7FE0,0010) element of defined length that ends
    exactly at the end of the file; its value is taken from ``data`` when the file was read whole,
    else recorded as deferred (read by the image reader straight into its array). None for anything
    else (trailing elements, encapsulated or truncated pixel data...), which pydicom then reads."""
    hlen = 8 if implicit else 12
    head = data[end:end + hlen]
    if len(head) < hlen:
        fp.seek(end)
        head = fp.read(hlen)
        if len(head) < hlen:
            return None
    if head[:4] != b"\xe0\x7f\x10\x00":
        return None
    if implicit:
        vr, length = None, int.from_bytes(head[4:8], "little")
    else:
        vr = head[4:6].decode("ascii", "replace")
        if vr not in ("OB", "OW") or head[6:8] != b"\x00\x00":
            return None
        length = int.from_bytes(head[8:12], "little")
    start = end + hlen
    if length == _UNDEFINED or start + length != size:
        return None
    value = data[start:start + length] if start + length <= len(data) and not defer else None
    return RawElement(_PIXEL_DATA, vr, length, value, start, implicit, True)


def _read_dicomsdl(path: Path) -> FileDataset | None:
    """The dataset assembled from dicomsdl's element table, or None when the reference must read
    the file (see the module docstring).

    The first ``_HEAD_BYTES`` of the file are parsed (a CT slice header fits; its pixels are then
    read once, by the image reader, straight into the array); a file whose header dicomsdl cannot
    parse from them (an RTSTRUCT) is left to the reference. Whatever dicomsdl did not cover (the
    pixel data, trailing elements, a header that goes on past the first bytes, where dicomsdl stops
    at the last whole element) is read by pydicom from the file, from where
    dicomsdl stopped, exactly as the reference reads it (except the common case of native pixel
    data closing the file, see :func:`_final_pixel_element`).
    """
    import_pydicom()
    from pydicom import filereader as pydicom_filereader
    from pydicom.charset import convert_encodings, default_encoding
    from pydicom.dataelem import RawDataElement, convert_raw_data_element
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.tag import BaseTag

    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        if size <= _SMALL_FILE:
            return None  # read whole in one call, pydicom is as fast (measured on 80 kB CT slices)
        data = fp.read(_HEAD_BYTES)
        if len(data) < _PREAMBLE + 4 or data[_PREAMBLE:_PREAMBLE + 4] != b"DICM":
            return None
        if data.find(b"\xe0\x7f\x10\x00", _PREAMBLE + 4) < 0:
            # no pixel data after a header within the first bytes (an RT object, a huge header):
            # the reference reads it, dicomsdl's parse of the first bytes would be wasted
            return None
        table = _sdl_table(data)
        if not table or (table[-1][0] >> 16) == 2:
            # header larger than the first bytes (an RTSTRUCT, an RTDOSE with DVHs...): pydicom reads
            # such files faster, as it converts their sequences only when used, dicomsdl all at once
            return None
        meta: dict = {}
        body: dict = {}
        implicit = None
        head_len = len(data)
        end = _PREAMBLE + 4
        for tag, vr, length, off in table:
            if vr is None or vr in ("NONE", "UNKNOWN", "OFFSET", "PIXSEQ") or off < 8 or off + length > head_len:
                return None
            end = off + length
            btag = BaseTag(tag)
            if tag >> 16 == 2:
                meta[btag] = RawDataElement(btag, vr, length, data[off:end], off, False, True)
                continue
            if tag >> 16 == 0:
                return None  # command set: the reference's business
            if implicit is None:
                raw_ts = meta.get(BaseTag(0x00020010))
                ts = raw_ts.value.rstrip(b"\x00 ").decode("ascii", "replace") if raw_ts is not None else ""
                if ts not in (_IMPLICIT_LE, _EXPLICIT_LE):
                    return None
                implicit = ts == _IMPLICIT_LE
            field_len = length
            if implicit or vr in _LONG_VRS:
                # the 4-byte length field just before the value (implicit VR, or explicit VR long form)
                field_len = int.from_bytes(data[off - 4:off], "little")
                if field_len == _UNDEFINED and vr != "SQ":
                    return None  # undefined-length non-sequence (e.g. private UN): the reference decides
            if field_len != _UNDEFINED and field_len != length:
                return None
            body[btag] = RawDataElement(btag, None if implicit and field_len != _UNDEFINED else vr,
                                        field_len, data[off:end], off, implicit, True)
        if implicit is None:  # nothing but the file meta: the reference reads it
            return None
        encoding = default_encoding
        if 0x00080005 in body:
            encoding = convert_encodings(convert_raw_data_element(body[BaseTag(0x00080005)]).value)
        pixels = _final_pixel_element(fp, data, end, implicit, size)
        if pixels is not None:
            body[BaseTag(pixels.tag)] = to_pydicom_element(pixels)
        else:
            fp.seek(end)
            tail = pydicom_filereader.read_dataset(fp, implicit, True, parent_encoding=encoding)
            body.update(tail._dict)
    file_meta = FileMetaDataset(Dataset(meta))
    file_meta.set_original_encoding(False, True, default_encoding)
    dataset = Dataset(body)
    dataset.set_original_encoding(implicit, True, encoding)
    ds = FileDataset(str(path), dataset, data[:_PREAMBLE], file_meta, implicit, True)  # deferred reads reopen it
    ds.set_original_encoding(implicit, True, dataset._character_set)
    return ds


def read_image_header(path: str | os.PathLike) -> RawHeader | None:
    """The header of an image slice as grtv_nb first needs it, fast (dicomsdl backend), without
    importing pydicom: a :class:`~grtv_nb.dicom.rawheader.RawHeader` holding only the
    :data:`IMAGE_HEADER_TAGS` present, raw (read by :mod:`grtv_nb.dicom.values` from the very bytes
    a full read gives, or by pydicom on first use of anything else), a ``file_meta`` with the
    transfer syntax and media SOP instance UID, and a deferred (7FE0,0010) recording where the
    pixels lie in the file. None for anything but the usual slice (DICM preamble, native
    little-endian transfer syntax, a header dicomsdl parses element by element up to the native
    pixel data that closes the file, the wanted elements of defined length and short VR): the
    caller then reads the full dataset (:func:`read_dataset`). The file meta holds the media SOP
    instance UID only where the dataset lacks SOPInstanceUID (see :func:`_file_meta`).

    The header is parsed from the first ``_HEAD_BYTES`` of the file only, up to the first
    (7FE0,0010) tag: dicomsdl is never handed pixel data (truncated or not), and a tag that is in
    fact part of a value makes dicomsdl's parse fail (an element crossing the end), so the file
    goes to the full read. dicomsdl locates the elements (offset and length of the value); their
    VR is the one written before the length (explicit VR) or the dictionary's (implicit VR, as
    pydicom).
    """
    import dicomsdl

    _vr_names()  # dicomsdl's logging off
    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        if size > MAX_FILE_BYTES:
            return None
        data = fp.read(_FIRST_BYTES)  # a slice header usually fits: reading 64 KiB costs 4x more
        if len(data) < _PREAMBLE + 4 or data[_PREAMBLE:_PREAMBLE + 4] != b"DICM":
            return None
        end = data.find(b"\xe0\x7f\x10\x00", _PREAMBLE + 4)
        if end < 0 and len(data) == _FIRST_BYTES:  # the same first tag as in the first _HEAD_BYTES
            data += fp.read(_HEAD_BYTES - _FIRST_BYTES)
            end = data.find(b"\xe0\x7f\x10\x00", _FIRST_BYTES - 3)
        if end < 0:
            return None
        head = data[:end]
        try:
            df = dicomsdl.open_memory(head, copy_data=False)
            found = []
            for tag in _META_TAGS + IMAGE_HEADER_TAGS:
                e = df.getDataElement(tag)
                off = e.offset()
                if off:  # 0: absent
                    found.append((tag, e.length(), off))
        except Exception as exc:
            _log().debug("dicomsdl refused the header of %s (%s)", path, exc)
            return None
        meta: dict[int, RawElement] = {}
        body: dict[int, RawElement] = {}
        implicit = None
        for tag, length, off in found:
            if length == _UNDEFINED or off < _PREAMBLE + 12 or off + length > end:
                return None
            if tag >> 16 == 2:
                vr = data[off - 4:off - 2].decode("latin-1")
                if vr not in _SHORT_VRS or int.from_bytes(data[off - 2:off], "little") != length:
                    return None
                meta[tag] = RawElement(tag, vr, length, data[off:off + length], off, False, True)
                continue
            if implicit is None:
                raw_ts = meta.get(_TS_TAG)
                ts = raw_ts.value.rstrip(b"\x00 ").decode("ascii", "replace") if raw_ts and raw_ts.value else ""
                if ts not in (_IMPLICIT_LE, _EXPLICIT_LE):
                    return None
                implicit = ts == _IMPLICIT_LE
            vr_name: str | None
            if implicit:
                if int.from_bytes(data[off - 4:off], "little") != length:
                    return None  # the 4-byte length field just before the value
                vr_name = None
            else:
                vr_name = data[off - 4:off - 2].decode("latin-1")
                if vr_name not in _SHORT_VRS or int.from_bytes(data[off - 2:off], "little") != length:
                    return None  # a long VR (or not what dicomsdl read): the full read decides
            body[tag] = RawElement(tag, vr_name, length, data[off:off + length], off, implicit, True)
        if implicit is None:
            return None
        pixels = _final_pixel_element(fp, data, end, implicit, size, defer=True)
    if pixels is None:
        return None
    body[pixels.tag] = pixels
    return RawHeader(body, implicit, file_meta=_file_meta(meta, with_instance_uid=0x00080018 not in body))


def _file_meta(meta: dict[int, RawElement], *, with_instance_uid: bool) -> RawHeader:
    """The file meta of an image header: the transfer syntax, and the media SOP instance UID where
    the dataset has no SOPInstanceUID (the one use grtv_nb has for it). Headers with the same
    transfer syntax bytes share one (read-only) file meta: building one costs more than parsing
    the header."""
    if with_instance_uid:
        return RawHeader(meta, False, is_meta=True)
    ts = meta.get(_TS_TAG)
    key = (ts.VR, ts.value) if ts is not None else None
    fm = _SHARED_META.get(key)
    if fm is None:
        fm = _SHARED_META[key] = RawHeader({_TS_TAG: ts} if ts is not None else {}, False, is_meta=True)
    return fm


_SHARED_META: dict = {}


# ----------------------------------------------------------------------------- RTSTRUCT contours

_ROI_CONTOUR_SEQUENCE = 0x30060039
_CONTOUR_SEQUENCE = 0x30060040
_ROI_ITEM_TAGS = (0x30060084, 0x3006002A)  # ReferencedROINumber, ROIDisplayColor
_CONTOUR_ITEM_TAGS = (0x30060042, 0x30060050)  # ContourGeometricType, ContourData
_CONTOUR_ITEM_SET = frozenset(_CONTOUR_ITEM_TAGS)
_CONTOUR_IMAGE_SEQUENCE = 0x30060016
_IMAGE_REF_TAGS = (0x00081150, 0x00081155)  # ReferencedSOPClassUID, ReferencedSOPInstanceUID
#: the sequences whose items :func:`read_rt_header` holds as partial headers: tag -> the item
#: elements read raw (the ones grtv_nb reads from them), and their set
_PARTIAL_ITEMS = {
    _CONTOUR_SEQUENCE: (_CONTOUR_ITEM_TAGS, _CONTOUR_ITEM_SET),
    _CONTOUR_IMAGE_SEQUENCE: (_IMAGE_REF_TAGS, frozenset(_IMAGE_REF_TAGS)),
}


class RawItem:
    """A sequence item as some of its raw elements (``elements``: tag -> pydicom
    ``RawDataElement``, the bytes pydicom reads), for :mod:`grtv_nb.dicom.values`' raw-bytes
    readers; anything else (``in``, ``[]``, attributes) is answered by the pydicom dataset of those
    elements, built on first such use. ``contours``: the ContourSequence items of an
    ROIContourSequence item (None where the item has no ContourSequence)."""

    __slots__ = ("_dict", "_implicit", "_ds", "contours")

    def __init__(self, elements: dict, implicit: bool, contours: list[RawItem] | None = None):
        self._dict = elements
        self._implicit = implicit
        self._ds: Dataset | None = None
        self.contours = contours

    @property
    def elements(self) -> dict:
        return self._dict

    def dataset(self) -> Dataset:
        if self._ds is None:
            import_pydicom()
            from pydicom.charset import default_encoding
            from pydicom.dataset import Dataset

            ds = Dataset(dict(self._dict))
            ds.set_original_encoding(self._implicit, True, default_encoding)
            self._ds = ds
        return self._ds

    def __contains__(self, key) -> bool:
        return key in self.dataset()

    def __getitem__(self, key):
        return self.dataset()[key]

    def get(self, key, default=None):
        return self.dataset().get(key, default)

    def __getattr__(self, name: str):
        return getattr(self.dataset(), name)


def _raw_elements(item, data: bytes, tags: tuple, implicit: bool) -> dict | None:
    """tag -> RawDataElement of the ``tags`` present in a dicomsdl item (short VRs of defined
    length whose length field matches dicomsdl's), None for anything else."""
    import_pydicom()
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import BaseTag

    out = {}
    for tag in tags:
        e = item.getDataElement(tag)
        off = e.offset()
        if not off:
            continue
        length = e.length()
        if length == _UNDEFINED or off < _PREAMBLE + 12 or off + length > len(data):
            return None
        if implicit:
            if int.from_bytes(data[off - 4:off], "little") != length:
                return None
            vr = None
        else:
            vr = data[off - 4:off - 2].decode("latin-1")
            if vr not in _SHORT_VRS or int.from_bytes(data[off - 2:off], "little") != length:
                return None
        btag = BaseTag(tag)
        out[btag] = RawDataElement(btag, vr, length, data[off:off + length], off, implicit, True)
    return out


def read_roi_contours(path: str | os.PathLike) -> list[RawItem] | None:
    """The ROIContourSequence of an RTSTRUCT file as :class:`RawItem` s (ReferencedROINumber,
    ROIDisplayColor, and ContourGeometricType + ContourData of each ContourSequence item), located
    by dicomsdl's C++ parser in one read of the file: the elements grtv_nb reads from it, without
    building a pydicom dataset per contour. None where dicomsdl is not installed or refuses the
    file, for a transfer syntax other than native little endian, a missing sequence or any element
    that is not of the usual form: the caller then reads the pydicom dataset's sequence."""
    if "dicomsdl" not in available_backends():
        return None
    import dicomsdl

    _vr_names()
    with open(path, "rb") as fp:
        data = fp.read()
    if len(data) < _PREAMBLE + 4 or data[_PREAMBLE:_PREAMBLE + 4] != b"DICM":
        return None
    try:
        df = dicomsdl.open_memory(data, copy_data=False)
        e = df.getDataElement(0x00020010)
        off = e.offset()
        ts = data[off:off + e.length()].rstrip(b"\x00 ").decode("ascii", "replace") if off else ""
        if ts not in (_IMPLICIT_LE, _EXPLICIT_LE):
            return None
        implicit = ts == _IMPLICIT_LE
        e = df.getDataElement(_ROI_CONTOUR_SEQUENCE)
        if not e.offset():
            return None
        out = []
        for roi_item in e.toSequence():
            elems = _raw_elements(roi_item, data, _ROI_ITEM_TAGS, implicit)
            if elems is None:
                return None
            cs = roi_item.getDataElement(_CONTOUR_SEQUENCE)
            contours = None
            if cs.offset():
                contours = []
                for c in cs.toSequence():
                    celems = _raw_elements(c, data, _CONTOUR_ITEM_TAGS, implicit)
                    if celems is None:
                        return None
                    contours.append(RawItem(celems, implicit))
            out.append(RawItem(elems, implicit, contours))
    except Exception as exc:
        _log().debug("dicomsdl refused the contours of %s (%s)", path, exc)
        return None
    return out


# ----------------------------------------------------------------------------- RT objects, whole

_ALL_VRS = _SHORT_VRS | _LONG_VRS


class _Refused(Exception):
    """An element :func:`read_rt_header` does not take raw: the reference reads the file."""


def _raw_field(data: bytes, tag: int, vr: str | None, length: int, off: int, implicit: bool) -> str | None:
    """The VR pydicom's ``RawDataElement`` holds for an element dicomsdl located (None for implicit
    VR), after checking that the length field (and the VR, explicit) just before the value are
    the ones dicomsdl read; raises :class:`_Refused` otherwise."""
    if vr not in _ALL_VRS or length == _UNDEFINED or off < _PREAMBLE + 12 or off + length > len(data):
        raise _Refused(f"element ({tag:08X})")
    if implicit:
        if int.from_bytes(data[off - 4:off], "little") != length:
            raise _Refused(f"element ({tag:08X})")
        return None
    if vr in _LONG_VRS:
        file_vr = data[off - 8:off - 6].decode("latin-1")
        if file_vr != vr or data[off - 6:off - 4] != b"\x00\x00" \
                or int.from_bytes(data[off - 4:off], "little") != length:
            raise _Refused(f"element ({tag:08X})")
        return file_vr
    file_vr = data[off - 4:off - 2].decode("latin-1")
    if file_vr != vr or int.from_bytes(data[off - 2:off], "little") != length:
        raise _Refused(f"element ({tag:08X})")
    return file_vr


def _rt_items(keep, sdl_elem, data: bytes, implicit: bool, names: dict, parent: RawHeader, tag: int) -> list:
    """The items of a sequence element as raw headers (see :func:`_rt_node`). ``keep``: the
    dicomsdl file the element belongs to, held while the element is. The items of a
    ContourSequence (thousands in a clinical RTSTRUCT) and of a ContourImageSequence (one per
    referenced slice) are partial headers holding the elements grtv_nb reads from them
    (:data:`_PARTIAL_ITEMS`), located by tag: a few dicomsdl calls an item instead of several per
    element (half the time of a whole item); their other elements are read from the pydicom
    dataset."""
    items = []
    partial = _PARTIAL_ITEMS.get(tag)
    for i, item in enumerate(sdl_elem.toSequence()):
        if partial is not None:
            child = RawHeader(_rt_elements(item, data, implicit, names, partial[0]), implicit, only=partial[1])
        else:
            child = _rt_node(item, data, implicit, names, None, keep)
        child.bind(parent=(parent, tag, i))
        items.append(child)
    return items


def _rt_elements(sdl_ds, data: bytes, implicit: bool, names: dict, tags: tuple) -> dict[int, RawElement]:
    """The elements ``tags`` of a dicomsdl dataset that are present, as :func:`_rt_node` holds them
    (checked by :func:`_raw_field`, which raises :class:`_Refused` for anything but the usual form)."""
    out: dict[int, RawElement] = {}
    for tag in tags:
        e = sdl_ds.getDataElement(tag)
        off = e.offset()
        if not off:
            continue
        vr = names.get(int(e.vr()))
        if vr == "SQ":
            raise _Refused(f"element ({tag:08X}) is a sequence")
        length = e.length()
        out[tag] = RawElement(tag, _raw_field(data, tag, vr, length, off, implicit), length, data[off:off + length],
                              off, implicit, True)
    return out


def _rt_node(sdl_ds, data: bytes, implicit: bool | None, names: dict, meta: dict | None, keep=None) -> RawHeader:
    """The raw header of one dicomsdl dataset (a file's top level, or a sequence item): every
    element as pydicom's ``RawDataElement`` would hold it, sequences as item headers built on
    first use (:meth:`~grtv_nb.dicom.rawheader.RawHeader.sequence`); raises :class:`_Refused`
    for anything but the usual form (see :func:`read_rt_header`). ``keep``: the dicomsdl file
    (default ``sdl_ds``), held by the sequences for their later reads."""
    keep = sdl_ds if keep is None else keep
    elements: dict[int, RawElement] = {}
    seqs: dict[int, list[RawHeader]] = {}
    node = RawHeader(elements, bool(implicit), seqs=seqs)
    for e in sdl_ds:
        tag = e.tag()
        vr = names.get(int(e.vr()))
        if tag >> 16 == 2 and meta is not None:
            length, off = e.length(), e.offset()
            file_vr = _raw_field(data, tag, vr, length, off, False)
            meta[tag] = RawElement(tag, file_vr, length, data[off:off + length], off, False, True)
            continue
        if implicit is None:
            raw_ts = meta.get(_TS_TAG) if meta is not None else None
            ts = raw_ts.value.rstrip(b"\x00 ").decode("ascii", "replace") if raw_ts and raw_ts.value else ""
            if ts not in (_IMPLICIT_LE, _EXPLICIT_LE):
                raise _Refused(f"transfer syntax {ts!r}")
            implicit = ts == _IMPLICIT_LE
            node.bind(implicit=implicit)
        if tag >> 16 == 0:
            raise _Refused("command set")
        if vr == "SQ":  # its items are read when first used (most are never: ContourImageSequence...)
            seqs[tag] = partial(_rt_items, keep, e, data, implicit, names, node, tag)
            continue
        length, off = e.length(), e.offset()
        file_vr = _raw_field(data, tag, vr, length, off, bool(implicit))
        elements[tag] = RawElement(tag, file_vr, length, data[off:off + length], off, bool(implicit), True)
    return node


#: the SOP classes (file meta MediaStorageSOPClassUID) :func:`read_rt_header` reads
RT_RAW_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.481.2",
                                "1.2.840.10008.5.1.4.1.1.481.5"})
_MEDIA_SOP_CLASS = 0x00020002
_RTDOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _meta_within(data: bytes) -> bool:
    """The bytes hold the whole file meta, by its group length ((0002,0000) UL, explicit VR, right
    after the DICM marker): dicomsdl's parse of the meta alone never reaches their end."""
    head = data[_PREAMBLE + 4:_PREAMBLE + 16]
    if len(head) < 12 or head[:6] != b"\x02\x00\x00\x00UL" or head[6:8] != b"\x04\x00":
        return False
    return _PREAMBLE + 16 + int.from_bytes(head[8:12], "little") + 16 <= len(data)  # + the next element's header


def _rt_meta(data: bytes, names: dict) -> dict[int, RawElement] | None:
    """The file meta's MediaStorageSOPClassUID and TransferSyntaxUID, parsed alone by dicomsdl
    (None when absent or refused)."""
    import dicomsdl

    meta: dict[int, RawElement] = {}
    try:
        mdf = dicomsdl.open_memory(data, copy_data=False, load_until=0x0002FFFF)
        for tag in (_MEDIA_SOP_CLASS, _TS_TAG):
            e = mdf.getDataElement(tag)
            length, off = e.length(), e.offset()
            if not off:
                return None
            meta[tag] = RawElement(tag, _raw_field(data, tag, names.get(int(e.vr())), length, off, False), length,
                                   data[off:off + length], off, False, True)
    except Exception as exc:
        _log().debug("file meta refused (%s)", exc)
        return None
    return meta


def _closing_pixels(fp, data: bytes, implicit: bool, size: int) -> tuple[bytes, int, RawElement | None] | None:
    """(the bytes read, where the dataset before the pixel data ends, the pixel element, deferred:
    its value is read from the file when used) for a file whose one native (7FE0,0010) element
    closes it; (the whole file, its size, None) for a file without that tag; None otherwise (the
    tag where :func:`_final_pixel_element` finds no closing element, or a file that changed size).

    ``data``: the first bytes of the file (``fp``). More are read, doubling, only until the closing
    element is found: the pixels of an RTDOSE are neither read here nor copied out of the bytes."""
    start = _PREAMBLE + 4
    seen = False
    while True:
        at = data.find(b"\xe0\x7f\x10\x00", start)
        while at >= 0:
            seen = True
            pixels = _final_pixel_element(fp, data, at, implicit, size, defer=True)
            if pixels is not None:
                return data, at, pixels
            at = data.find(b"\xe0\x7f\x10\x00", at + 1)
        if len(data) >= size:
            return None if seen or len(data) != size else (data, len(data), None)
        start = max(len(data) - 3, start)  # a tag across the end of the bytes read is found next
        fp.seek(len(data))
        more = fp.read(len(data))
        if not more:
            return None  # the file shrank while read
        data += more


def _ends_at(df, head: bytes, names: dict, end: int) -> bool:
    """The last top-level element dicomsdl read ends the bytes parsed (nothing cut or left over)."""
    last = None
    for e in df:
        last = e
    if last is None:
        return False
    if names.get(int(last.vr())) == "SQ" and last.length() == _UNDEFINED:
        return head[-8:] == _SEQ_DELIMITER
    return last.offset() + last.length() == end


def read_rt_header(path: str | os.PathLike, resolve) -> RawHeader | None:
    """Every element of an RTSTRUCT, RTDOSE or RTPLAN file as a complete
    :class:`~grtv_nb.dicom.rawheader.RawHeader`, located by dicomsdl in one read of the file,
    without importing pydicom: sequences as item headers, each element's raw bytes as pydicom's
    ``RawDataElement`` holds them, read by :mod:`grtv_nb.dicom.values` as pydicom reads them.
    ``resolve``: a function reading the file's pydicom dataset, called on the first use of anything
    the raw elements do not answer (items: the same item of that dataset).

    None (the caller reads the file with pydicom, the reference) where dicomsdl is not installed or
    refuses the file, and for anything but the usual form: no DICM preamble, a file meta SOP class
    other than RT Structure Set / Dose / Plan, a transfer syntax other than native little endian, a
    command set, an element of undefined length other than a sequence, a VR that is not a DICOM VR,
    a length/VR field that is not the one dicomsdl read, pixel data other than one native element
    closing the file, or a last element that does not end the file (truncated or trailing bytes).

    dicomsdl is never handed pixel data nor a file cut inside an element's header it could misread
    (it crashes on truncated pixel data): the file meta is parsed first, alone; the pixel data is
    located by :func:`_final_pixel_element` and the bytes before it are parsed.
    """
    if "dicomsdl" not in available_backends():
        return None
    names = {int(k): v for k, v in _vr_names().items()}  # (int keys: a dicomsdl VR hashes slowly)
    import dicomsdl

    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        if size > MAX_FILE_BYTES:
            return None
        data = fp.read(_HEAD_BYTES)
        if len(data) < _PREAMBLE + 4 or data[_PREAMBLE:_PREAMBLE + 4] != b"DICM":
            return None
        if not _meta_within(data):
            data += fp.read()  # a file meta beyond the first bytes (or none): dicomsdl parses whole bytes
        meta = _rt_meta(data, names)
        if meta is None:
            return None
        sop, ts = (bytes(meta[t].value or b"").rstrip(b"\x00 ").decode("ascii", "replace")
                   for t in (_MEDIA_SOP_CLASS, _TS_TAG))
        if sop not in RT_RAW_SOP_CLASSES or ts not in (_IMPLICIT_LE, _EXPLICIT_LE):
            return None
        if sop != _RTDOSE_SOP_CLASS:
            data += fp.read()  # no pixel data expected: the whole file at once
        located = _closing_pixels(fp, data, ts == _IMPLICIT_LE, size)
        if located is None:
            return None
        data, end, pixels = located
    head = data[:end] if end < len(data) else data
    meta = {}
    try:
        df = dicomsdl.open_memory(head, copy_data=False)
        root = _rt_node(df, head, None, names, meta)
        if not _ends_at(df, head, names, end):
            return None
    except Exception as exc:  # _Refused, or dicomsdl's refusal
        _log().debug("%s is read by pydicom (%s)", path, exc)
        return None
    if _TS_TAG not in meta or not len(root):
        return None
    root.bind(file_meta=RawHeader(meta, False, is_meta=True), resolve=resolve, element=pixels)
    return root
