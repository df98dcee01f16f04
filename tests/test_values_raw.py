"""grtv_nb.dicom.values reads unconverted DS, IS, US, CS and UI elements, and plain-ASCII LO, SH and PN
ones, from their raw bytes (also from a pydicom-free RawHeader): the values
and the diagnostics must be exactly those of pydicom's conversion (the reference), on every real
file of ../shared/data and on damaged values."""

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from grtv_nb.dicom import values
from grtv_nb.dicom.reader import read_dataset
from grtv_nb.errors import DicomValueError


def _outcome(fn):
    try:
        r = fn()
    except DicomValueError as exc:
        return ("error", str(exc))
    if isinstance(r, np.ndarray):
        return ("array", r.dtype.str, r.tobytes())
    return ("value", r)


def _both(ds_raw, ds_ref, fn):
    """(outcome read from the raw bytes, outcome with every value converted by pydicom)."""
    got = _outcome(lambda: fn(ds_raw))
    keep = values._unconverted
    values._unconverted = lambda *a: None  # values.py then takes pydicom's values
    try:
        ref = _outcome(lambda: fn(ds_ref))
    finally:
        values._unconverted = keep
    return got, ref


def _keywords(ds) -> list[tuple[str, str]]:
    out = []
    for tag, elem in ds._dict.items():
        kw = keyword_for_tag(tag)
        if not kw:
            continue
        try:
            vr = elem.VR if elem.VR is not None else dictionary_VR(tag)
        except KeyError:
            continue
        if vr in ("DS", "IS", "US", "CS", "UI", "LO", "SH", "PN"):
            out.append((kw, vr))
    return out


def _read_value(ds, kw: str, vr: str, p: Path):
    if vr in ("DS", "IS", "US"):
        return _outcome(lambda: values.floats(ds, kw, p, required=False))
    return _outcome(lambda: values.text(ds, kw, p, default="<absent>"))


def test_raw_values_equal_pydicom_on_every_real_file(shared_data):
    files = [p for p in sorted(Path(shared_data).rglob("*")) if p.is_file() and p.suffix.lower() == ".dcm"]
    assert len(files) > 100
    from_raw = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in files:
            ref = read_dataset(p, backend="pydicom")
            for _ in ref:  # iterating converts every element: values.py then takes pydicom's values
                pass
            for _ in ref.file_meta:
                pass
            for backend in ("pydicom", "dicomsdl"):
                raw = read_dataset(p, backend=backend)
                for part, part_ref in ((raw, ref), (raw.file_meta, ref.file_meta)):
                    for kw, vr in _keywords(part):
                        from_raw += values._unconverted(part, kw) not in (None, values._MISSING)
                        assert _read_value(part, kw, vr, p) == _read_value(part_ref, kw, vr, p), (p, backend, kw)
    assert from_raw > 5000


def _ds(value: bytes, vr: str | None = "DS", tag: int = 0x00280030) -> Dataset:
    return Dataset({BaseTag(tag): RawDataElement(BaseTag(tag), vr, len(value), value, 0, vr is None, True)})


@pytest.mark.parametrize("value", [b"0.5\\0.5 ", b"0.5\\0.5\0", b" 0.5\\0.5", b"abc\\1", b"1e999\\1",
                                   b"nan\\1", b"1\\\\2", b"", b"  ", b"\0\0", b"0.5", b"1\\2\\3", b"1,5\\2",
                                   b"0.5\\0.5\\", b"\\", b"1e-5\\1e5", b"5e4\\1", b"0.5\xe9\\1"])
@pytest.mark.parametrize("vr", ["DS", None])
def test_raw_numbers_give_pydicom_values_and_diagnostics(value, vr):
    def fn(d):
        return values.pixel_spacing(d, "f.dcm", required=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, ref = _both(_ds(value, vr), _ds(value, vr), fn)
    assert got[0] == ref[0]  # same value, or an error in both
    if got[0] == "array":
        assert got == ref


@pytest.mark.parametrize("value", [b"12", b"12 ", b" 12", b"1\\2", b"1.0", b"1.5", b"", b"  ", b"1e3", b"abc",
                                   b"1\\\\2", b"99999999999999999999", b"-3", b"+4", b"1_0", b"7\0"])
@pytest.mark.parametrize("vr", ["IS", None])
def test_raw_integer_strings_give_pydicom_values_and_diagnostics(value, vr):
    def fn(d):
        return values.floats(d, "ROINumber", "f.dcm", required=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, ref = _both(_ds(value, vr, 0x30060022), _ds(value, vr, 0x30060022), fn)
    assert got[0] == ref[0]
    if got[0] == "array":
        assert got == ref


@pytest.mark.parametrize("value", [b"\x00\x02", b"\x00\x02\x01\x00", b"\x00", b"", b"\xff\xff"])
def test_raw_unsigned_shorts_give_pydicom_values(value):
    def fn(d):
        return values.floats(d, "Rows", "f.dcm", required=False)

    got, ref = _both(_ds(value, "US", 0x00280010), _ds(value, "US", 0x00280010), fn)
    assert got[0] == ref[0]
    if got[0] == "array":
        assert got == ref


@pytest.mark.parametrize("value", [b"CT", b"CT ", b"CT\0", b" CT", b"", b"RT\\CT", b"1.2.840.10008.5.1.4.1.1.2\0",
                                   b"\xe9A"])
@pytest.mark.parametrize("vr", ["CS", None])
def test_raw_text_gives_pydicom_text(value, vr):
    def fn(d):
        return values.text(d, "Modality", default="<absent>")

    got, ref = _both(_ds(value, vr, 0x00080060), _ds(value, vr, 0x00080060), fn)
    assert got == ref


def test_absent_and_converted_elements():
    ds = pydicom.Dataset()
    assert values.text(ds, "Modality", default="x") == "x"
    assert values.floats(ds, "PixelSpacing", "f", required=False) is None
    ds.PixelSpacing = [0.5, 0.25]  # a converted element: pydicom's value is used
    assert values.floats(ds, "PixelSpacing", "f").tolist() == [0.5, 0.25]
    with pytest.raises(DicomValueError, match="missing"):
        values.floats(_ds(b"  "), "PixelSpacing", "f")


def _raw_ds(**elems) -> Dataset:
    ds = Dataset()
    for kw, (vr, raw) in elems.items():
        tag = BaseTag(pydicom.datadict.tag_for_keyword(kw))
        ds._dict[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)
    return ds


def test_repeated_values_reused_only_for_the_same_bytes_and_checks():
    """Values the slices of a series repeat are converted once: the result must still be what a
    fresh reading gives (the same numbers, a copy the caller may change), and every check and
    error still applies to the file at hand."""
    a = _raw_ds(PixelSpacing=("DS", b"0.5\\0.75"), ImageOrientationPatient=("DS", b"1\\0\\0\\0\\1\\0 "))
    first = values.pixel_spacing(a, "a.dcm")
    first[0] = 99.0  # the caller's copy
    again = values.pixel_spacing(_raw_ds(PixelSpacing=("DS", b"0.5\\0.75")), "b.dcm")
    np.testing.assert_array_equal(again, [0.5, 0.75])
    # the same bytes with other checks: the checks apply
    with pytest.raises(DicomValueError, match=r"c\.dcm: PixelSpacing has 2 values, 3 expected"):
        values.floats(_raw_ds(PixelSpacing=("DS", b"0.5\\0.75")), "PixelSpacing", "c.dcm", count=3)
    with pytest.raises(DicomValueError, match=r"d\.dcm: PixelSpacing value 0\.5 is below 0\.6"):
        values.floats(_raw_ds(PixelSpacing=("DS", b"0.5\\0.75")), "PixelSpacing", "d.dcm", lo=0.6)
    # other bytes: read afresh, errors name their file
    with pytest.raises(DicomValueError, match=r"e\.dcm: PixelSpacing value 'abc' is not a number"):
        values.pixel_spacing(_raw_ds(PixelSpacing=("DS", b"abc\\0.75")), "e.dcm")
    iop = values.image_orientation(a, "a.dcm")
    iop[:] = 0
    np.testing.assert_array_equal(values.image_orientation(a, "a.dcm"), [1, 0, 0, 0, 1, 0])
    with pytest.raises(DicomValueError, match=r"f\.dcm: ImageOrientationPatient row and column directions"):
        values.image_orientation(_raw_ds(ImageOrientationPatient=("DS", b"1\\0\\0\\1\\0\\0 ")), "f.dcm")


def test_known_keywords_are_pydicoms_dictionary():
    """The keywords values.py looks up without pydicom: pydicom's tags and VRs."""
    assert len(values.KNOWN_KEYWORDS) >= 25
    for kw, (tag, vr) in values.KNOWN_KEYWORDS.items():
        assert pydicom.datadict.tag_for_keyword(kw) == tag, kw
        assert dictionary_VR(tag) == vr, kw


_CHARSETS = [None, b"ISO_IR 100", b"ISO_IR 192", b"ISO_IR 13", b"ISO 2022 IR 6\\ISO 2022 IR 87", b"GB18030",
             b"ISO_IR 144", b"", b"ISO_IR 6 "]
_TEXTS = [b"Doe^John", b"Doe^John ", b"Doe^John==", b"=Yamada", b"Doe^John^^^", b" pad \0", b"caf\xc3\xa9",
          b"caf\xe9", b"A\\B", b"x\x00y", b"~\x7f", b"tab\there", b"Yen\x5c", b"\x1b$B", b"", b"   ", b"A=B"]


@pytest.mark.parametrize("charset", _CHARSETS)
@pytest.mark.parametrize("vr, kw", [("PN", "PatientName"), ("LO", "PatientID"), ("SH", "StationName"),
                                    (None, "SeriesDescription")])
def test_raw_text_with_character_sets_gives_pydicom_text(charset, vr, kw):
    """LO/SH/PN text read from the raw bytes (printable ASCII under a character set that decodes
    it as ASCII), from a pydicom dataset and from a RawHeader: pydicom's decoded text every time."""
    from grtv_nb.dicom.rawheader import RawElement, RawHeader

    tag = pydicom.datadict.tag_for_keyword(kw)
    implicit = vr is None
    for value in _TEXTS:
        def make(value=value):
            ds = _ds(value, vr, tag)
            if charset is not None:
                ds._dict[BaseTag(0x00080005)] = RawDataElement(BaseTag(0x00080005), None if implicit else "CS",
                                                               len(charset), charset, 0, implicit, True)
            ds.set_original_encoding(implicit, True, "iso8859")
            return ds

        def fn(d):
            return values.text(d, kw, default="<absent>")

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's notes on unknown or invalid character sets
            got, ref = _both(make(), make(), fn)
            assert got == ref, (value, charset)
            elems = {int(t): RawElement(int(t), *e[1:]) for t, e in make()._dict.items()}
            assert _outcome(lambda elems=elems: fn(RawHeader(elems, implicit))) == ref, (value, charset)
    fast = values._fast_text(_ds(b"Doe^John", vr, tag), kw)
    assert fast == "Doe^John"  # read from the bytes, not by pydicom


def test_raw_header_answers_pydicom_reads_through_pydicoms_dataset():
    """A RawHeader reads its raw elements without pydicom and hands anything else to the pydicom
    dataset of the same elements (built once; deletions reach it)."""
    from grtv_nb.dicom.rawheader import RawElement, RawHeader

    elems = {0x00280010: RawElement(0x00280010, "US", 2, b"\x00\x02", 0, False, True),
             0x00100010: RawElement(0x00100010, "PN", 8, b"Doe^John", 0, False, True),
             0x7FE00010: RawElement(0x7FE00010, "OW", 8, None, 1234, False, True)}
    hdr = RawHeader(dict(elems), False)
    assert values.integer(hdr, "Rows", "f") == 512 and values.text(hdr, "PatientName") == "Doe^John"
    assert 0x00280010 in hdr and 0x00280011 not in hdr and len(hdr) == 3
    assert hdr.get_item(0x7FE00010).value_tell == 1234
    ref = Dataset({BaseTag(t): RawDataElement(BaseTag(t), *e[1:]) for t, e in elems.items()})
    ref.set_original_encoding(False, True, "iso8859")
    assert hdr.Rows == ref.Rows == 512 and hdr["PatientName"].value == ref["PatientName"].value
    assert "PatientName" in hdr and hdr.get("Columns", 7) == 7
    del hdr[0x7FE00010]
    assert 0x7FE00010 not in hdr and 0x7FE00010 not in hdr.dataset() and len(hdr) == 2
