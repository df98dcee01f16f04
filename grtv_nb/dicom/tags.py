"""DICOM datasets as plain Python dicts (keyword -> value), for getImageDcmTags and display."""

from __future__ import annotations

from .._lazyimports import import_pydicom

import_pydicom()  # pydicom without its eager import of requests (see grtv_nb._lazyimports)

import pydicom  # noqa: E402
from pydicom.multival import MultiValue  # noqa: E402
from pydicom.valuerep import PersonName  # noqa: E402

_BULK_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


def _plain(value):
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, MultiValue | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, pydicom.Dataset):
        return dataset_to_dict(value)
    if isinstance(value, bytes):
        return value.decode("latin-1", errors="replace")
    if isinstance(value, float | int | str):
        return type(value).__mro__[-2](value) if type(value).__module__.startswith("pydicom") else value
    return str(value)


def dataset_to_dict(ds: pydicom.Dataset, *, include_sequences: bool = True) -> dict:
    """Keyword -> Python value for every element with a keyword (pixel data and other bulk
    binary elements left out; sequences as lists of dicts; private tags as ``(gggg,eeee)``)."""
    out: dict = {}
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:  # an element pydicom can't decode (corrupt VR...): left out
            continue
        if elem.VR in _BULK_VRS or elem.tag == 0x7FE00010:
            continue
        if elem.VR == "SQ":
            if include_sequences:
                try:
                    out[elem.keyword or str(elem.tag)] = [dataset_to_dict(it) for it in elem.value]
                except Exception:  # not a sequence after all (corrupt file)
                    pass
            continue
        key = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
        try:
            out[key] = _plain(elem.value)
        except Exception:  # undecodable value: keep its text form
            out[key] = str(elem.value)
    return out
