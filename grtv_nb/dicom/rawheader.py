"""An image slice's header as raw elements, readable without importing pydicom.

:func:`grtv_nb.dicom.reader.read_image_header` locates the elements grtv_nb reads from a slice with
dicomsdl and keeps their bytes as :class:`RawElement` s (the fields of pydicom's ``RawDataElement``)
in a :class:`RawHeader`. What grtv_nb reads while opening a series (the numbers and plain-ASCII
texts of :mod:`grtv_nb.dicom.values`, the pixel data's place in the file) is read from those bytes;
anything else (``header["PatientName"]``, ``header.get(...)``, iteration, any pydicom attribute) is
answered by the pydicom dataset of the same raw elements, built, with the pydicom import, on first
such use: the very dataset pydicom makes of them, so values, types, character sets and the
validation of bad values are pydicom's. Opening a CT series therefore does not import pydicom
(~0.3 s of a fresh process) unless something asks for a pydicom dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


class RawElement(NamedTuple):
    """One element's raw bytes, as pydicom's ``RawDataElement`` (same fields, same meaning)."""

    tag: int
    VR: str | None
    length: int
    value: bytes | None
    value_tell: int
    is_implicit_VR: bool
    is_little_endian: bool
    is_raw: bool = True
    is_buffered: bool = False


def to_pydicom_element(elem: RawElement) -> Any:
    """pydicom's ``RawDataElement`` of the same bytes (imports pydicom)."""
    from .._lazyimports import import_pydicom

    import_pydicom()
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import BaseTag

    return RawDataElement(BaseTag(elem.tag), *elem[1:])


class RawHeader:
    """Raw elements keyed by tag (``int``), with the file meta (another RawHeader) of a file.

    ``implicit``: the dataset's transfer syntax is implicit VR little endian (each element's VR is
    then None, the dictionary's). Element deletions (:meth:`__delitem__`) apply to the pydicom
    dataset too when it was built.
    """

    __slots__ = ("_dict", "_implicit", "_ds", "_file_meta", "_is_meta")

    def __init__(self, elements: dict[int, RawElement], implicit: bool, *, file_meta: RawHeader | None = None,
                 is_meta: bool = False):
        self._dict = elements
        self._implicit = implicit
        self._ds: Dataset | None = None
        self._file_meta = file_meta
        self._is_meta = is_meta

    # ------------------------------------------------------------- read without pydicom
    @property
    def file_meta(self) -> RawHeader | None:
        return self._file_meta

    def __contains__(self, key) -> bool:
        if isinstance(key, int):
            return key in self._dict
        return key in self.dataset()

    def get_item(self, key, *, keep_deferred: bool = False):
        """The raw element of tag ``key`` (None when absent), as pydicom's ``Dataset.get_item``
        gives an unconverted element; other keys go to the pydicom dataset."""
        if isinstance(key, int):
            return self._dict.get(key)
        return self.dataset().get_item(key, keep_deferred=keep_deferred)

    def __delitem__(self, key) -> None:
        if not isinstance(key, int):
            raise KeyError(key)
        del self._dict[key]
        if self._ds is not None and key in self._ds:
            del self._ds[key]

    # ------------------------------------------------------------- pydicom, on first use
    def dataset(self) -> Dataset:
        """The pydicom dataset of these raw elements (a ``FileMetaDataset`` for a file meta),
        built once, on first use."""
        if self._ds is None:
            from .._lazyimports import import_pydicom

            import_pydicom()
            from pydicom.charset import default_encoding
            from pydicom.dataset import Dataset, FileMetaDataset
            from pydicom.tag import BaseTag

            body = {BaseTag(t): to_pydicom_element(e) for t, e in self._dict.items()}
            if self._is_meta:
                ds: Dataset = FileMetaDataset(body)
            else:
                ds = Dataset(body)
                ds.set_original_encoding(self._implicit, True, default_encoding)
                if self._file_meta is not None:
                    ds.file_meta = self._file_meta.dataset()  # type: ignore[assignment]  # a FileMetaDataset
            self._ds = ds
        return self._ds

    def __getitem__(self, key):
        return self.dataset()[key]

    def get(self, key, default=None):
        return self.dataset().get(key, default)

    def keys(self):
        return self.dataset().keys()

    def __iter__(self):
        return iter(self.dataset())

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other) -> bool:
        if isinstance(other, RawHeader):
            other = other.dataset()
        return self.dataset() == other

    __hash__ = None  # type: ignore[assignment]  # mutable, as pydicom's Dataset

    def __getattr__(self, name: str):
        if name.startswith("_"):  # slots not set yet (copy, pickle) and private names: not pydicom's
            raise AttributeError(name)
        return getattr(self.dataset(), name)

    def __repr__(self) -> str:
        return f"<RawHeader {len(self._dict)} raw elements{', pydicom dataset built' if self._ds is not None else ''}>"
