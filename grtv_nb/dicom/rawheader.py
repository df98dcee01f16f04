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

from collections.abc import Callable
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

    A *complete* header holds every element of a file (an RT object read by
    :func:`grtv_nb.dicom.reader.read_rt_header`): its sequences as lists of item headers
    (``seqs``: tag -> items, see :meth:`sequence`), and its pydicom dataset is the file's own, read
    on first use (``resolve``: the root's full read; an item's is the same item of its parent's
    pydicom dataset, ``parent``: (parent header, sequence tag, item index)).
    """

    __slots__ = ("_dict", "_implicit", "_ds", "_file_meta", "_is_meta", "_seqs", "_resolve", "_parent", "_only")

    def __init__(self, elements: dict[int, RawElement], implicit: bool, *, file_meta: RawHeader | None = None,
                 is_meta: bool = False, seqs: dict[int, Any] | None = None,
                 resolve: Callable[[], Dataset] | None = None, parent: tuple[RawHeader, int, int] | None = None,
                 only: frozenset[int] | None = None):
        self._only = only
        self._dict = elements
        self._implicit = implicit
        self._ds: Dataset | None = None
        self._file_meta = file_meta
        self._is_meta = is_meta
        self._seqs = seqs
        self._resolve = resolve
        self._parent = parent

    def bind(self, *, implicit: bool | None = None, parent: tuple[RawHeader, int, int] | None = None,
             file_meta: RawHeader | None = None, resolve: Callable[[], Dataset] | None = None,
             element: RawElement | None = None) -> None:
        """Complete a header as it is assembled (:func:`grtv_nb.dicom.reader.read_rt_header`): its
        transfer syntax, origin (``parent``: an item's; ``resolve``: a file's full read), file meta
        and one more ``element`` (the pixel data, located apart)."""
        if implicit is not None:
            self._implicit = implicit
        if parent is not None:
            self._parent = parent
        if file_meta is not None:
            self._file_meta = file_meta
        if resolve is not None:
            self._resolve = resolve
        if element is not None:
            self._dict[element.tag] = element

    @property
    def only(self) -> frozenset[int] | None:
        """For a *partial* item header (the many ContourSequence items of an RTSTRUCT, read by
        :func:`grtv_nb.dicom.reader.read_rt_header` for the few elements grtv_nb reads from them):
        the tags it answers from raw bytes, present or absent; any other tag (and iteration, length,
        sequences) is answered by the item's pydicom dataset. None: every element is here."""
        return self._only

    @property
    def complete(self) -> bool:
        """Every element of the file (or sequence item) is here (raw, or as a raw sequence)."""
        return self._resolve is not None or self._parent is not None

    def sequence(self, tag: int) -> list[RawHeader] | None:
        """The items of sequence ``tag`` as raw headers (read on first use); None when it is not a
        raw sequence here, or when its raw read was refused (its pydicom items are then read)."""
        if self._seqs is None:
            return None
        items = self._seqs.get(tag)
        if callable(items):
            try:
                items = items()
            except Exception:  # an item not of the usual form: the pydicom dataset's items
                items = None
            self._seqs[tag] = items
        return items

    # ------------------------------------------------------------- read without pydicom
    @property
    def file_meta(self) -> RawHeader | None:
        return self._file_meta

    def __contains__(self, key) -> bool:
        if isinstance(key, int) and (self._only is None or key in self._only):
            return key in self._dict or (self._seqs is not None and key in self._seqs)
        return key in self.dataset()

    def get_item(self, key, *, keep_deferred: bool = False):
        """The raw element of tag ``key`` (None when absent), as pydicom's ``Dataset.get_item``
        gives an unconverted element; other keys go to the pydicom dataset."""
        if isinstance(key, int) and (self._only is None or key in self._only):
            return self._dict.get(key)
        return self.dataset().get_item(key, keep_deferred=keep_deferred)

    def __delitem__(self, key) -> None:
        if not isinstance(key, int):
            raise KeyError(key)
        if self._seqs is not None and key in self._seqs:
            del self._seqs[key]
        elif self._only is None or key in self._dict:
            del self._dict[key]
        elif key not in self.dataset():  # an element of a partial header's dataset (deleted below)
            raise KeyError(key)
        if self._ds is not None and key in self._ds:
            del self._ds[key]

    # ------------------------------------------------------------- pydicom, on first use
    def dataset(self) -> Dataset:
        """The pydicom dataset of these raw elements (a ``FileMetaDataset`` for a file meta),
        built once, on first use."""
        if self._ds is None and self._parent is not None:
            parent, tag, index = self._parent
            self._ds = parent.dataset()[tag].value[index]
        elif self._ds is None and self._resolve is not None:
            self._ds = self._resolve()
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
        if self._only is not None:
            return len(self.dataset())
        return len(self._dict) + (len(self._seqs) if self._seqs is not None else 0)

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
