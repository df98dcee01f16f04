"""The DICOM reader backends (grtv_nb.dicom.reader): dicomsdl's parser gives the very datasets,
arrays, geometry and diagnostics that pydicom (the reference) gives, on the real data in
../shared/data and on damaged files."""

import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest

from grtv_nb.dicom import reader
from grtv_nb.dicom.folder import DicomFile

pytestmark = pytest.mark.skipif("dicomsdl" not in reader.available_backends(), reason="dicomsdl is not installed")


@contextmanager
def backend(name):
    prev = reader.set_backend(name)
    try:
        yield
    finally:
        reader.set_backend(prev)


def _dicom_files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() not in (".md", ".gz", ".nii", ".tsv", ".json", ".txt", ".py"):
            with open(p, "rb") as f:
                head = f.read(132)
            if head[128:132] == b"DICM":
                out.append(p)
    return out


def test_same_dataset_from_both_backends_on_every_real_file(shared_data):
    files = _dicom_files(shared_data)
    assert len(files) > 100
    fast = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value warnings: the same from both
        for p in files:
            ref = reader.read_dataset(p, backend="pydicom")
            got = reader.read_dataset(p, backend="dicomsdl")
            fast += reader._read_dicomsdl(p) is not None
            assert got == ref, p
            assert got.file_meta == ref.file_meta, p
            assert [(e.tag, e.VR) for e in got.iterall()] == [(e.tag, e.VR) for e in ref.iterall()], p
            assert (got.is_implicit_VR, got.is_little_endian, got.preamble) == (
                ref.is_implicit_VR, ref.is_little_endian, ref.preamble), p
            assert got.filename == ref.filename == str(p)
    # dicomsdl parses the large native slices (the 90 head-and-neck CT slices of 512 x 512); small
    # files, large headers (RTSTRUCT) and compressed series (JPEG 2000) go to the reference
    assert fast >= 90


def _open(folder, name, monkeypatch=None):
    """open_study with reader backend ``name``; with ``monkeypatch``, every value is converted by
    pydicom (values.py's raw-bytes reading of unconverted DS/CS/UI elements switched off)."""
    from grtv_nb import open_study
    from grtv_nb.dicom import values

    with monkeypatch.context() if monkeypatch else _nothing() as m:
        if m is not None:
            m.setattr(values, "_unconverted", lambda *a: None)
        with backend(name), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            st = open_study(folder)
    return st, sorted(str(x.message) for x in w)


@contextmanager
def _nothing():
    yield None


@pytest.mark.parametrize("case", ["pycerr-headneck-ct/head_and_neck/pt_1", "cerr-radiomics-phantom/pat_1",
                                  "cerr-radiomics-phantom/pat_2", "cerr-radiomics-phantom/pat_3",
                                  "cerr-radiomics-phantom/pat_4", "dicompyler-example/example_data",
                                  "rt-utils-testdata/tests/mock_data", "rt-utils-testdata/tests/oriented_data"])
def test_same_study_from_both_backends(shared_data, case, monkeypatch):
    # reference: pydicom reads the files and converts every value; tested: dicomsdl's parser and
    # the values read from the raw bytes (grtv_nb.dicom.values)
    folder = shared_data / case
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    ref, ref_w = _open(folder, "pydicom", monkeypatch)
    got, got_w = _open(folder, "dicomsdl")
    assert got_w == ref_w
    assert ("image" in got.ds) == ("image" in ref.ds)
    if "image" in ref.ds:
        assert got.ds["image"].dtype == ref.ds["image"].dtype
        np.testing.assert_array_equal(got.ds["image"].values, ref.ds["image"].values)
    for a in ("x", "y", "z"):
        np.testing.assert_array_equal(getattr(got.grid, a), getattr(ref.grid, a))
    np.testing.assert_array_equal(np.asarray(got.grid.direction), np.asarray(ref.grid.direction))
    assert got.grid.frame_of_reference_uid == ref.grid.frame_of_reference_uid
    assert got.attrs == ref.attrs
    assert got.has_dose == ref.has_dose
    if ref.has_dose:
        np.testing.assert_array_equal(got.ds["dose"].values, ref.ds["dose"].values)
    assert got.roi_names == ref.roi_names
    for i in range(len(ref.rois)):  # masks are rasterised when asked: the same warnings from both
        ref_mask, ref_mw = _recorded(ref.mask, i)
        got_mask, got_mw = _recorded(got.mask, i)
        assert got_mw == ref_mw
        np.testing.assert_array_equal(got_mask, ref_mask)


def _recorded(func, *args):
    """``func(*args)`` and the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = func(*args)
    return out, [str(x.message) for x in w]


@pytest.mark.parametrize("damage", ["truncated", "bad value"])
def test_damaged_files_get_the_same_diagnostics(shared_data, tmp_path, damage):
    """Truncated slices (pixel data or header cut short) and a non-DICOM file, or a value that is
    not a number: both backends keep, skip or refuse the same files with the same messages."""
    src = shared_data / "pycerr-headneck-ct" / "head_and_neck" / "pt_1"  # 512 x 512: the dicomsdl path
    if not src.is_dir():
        pytest.skip(f"{src} is absent")
    folder = tmp_path / "damaged"
    folder.mkdir()
    slices = sorted(p for p in src.iterdir() if p.is_file())[:10]
    assert reader._read_dicomsdl(slices[0]) is not None
    for p in slices:
        shutil.copy(p, folder / p.name)
    if damage == "truncated":
        data = slices[3].read_bytes()
        (folder / slices[3].name).write_bytes(data[: len(data) - 5000])  # pixel data cut short
        data = slices[5].read_bytes()
        (folder / slices[5].name).write_bytes(data[:700])  # header cut short
        (folder / "notes.dcm").write_text("not a DICOM file")
    else:
        ds = pydicom.dcmread(slices[7])
        tag = pydicom.tag.Tag("RescaleIntercept")  # not a number (written raw: pydicom refuses to set it)
        ds._dict[tag] = pydicom.dataelem.RawDataElement(tag, "DS", 4, b"abc ", 0, ds.is_implicit_VR, True)
        ds.save_as(folder / slices[7].name)
    outcomes = {}
    for name in ("pydicom", "dicomsdl"):
        try:
            st, w = _open(folder, name)
            outcomes[name] = ("ok", w, st.ds["image"].values.copy())
        except Exception as exc:  # the same refusal from both is what is checked
            outcomes[name] = (type(exc).__name__, str(exc), None)
    ref, got = outcomes["pydicom"], outcomes["dicomsdl"]
    assert got[:2] == ref[:2]
    if damage == "truncated":
        assert ref[0] == "ok" and any("notes.dcm" in m for m in ref[1]), ref[:2]
        np.testing.assert_array_equal(got[2], ref[2])


def test_backend_choice(monkeypatch):
    with pytest.raises(ValueError, match="must be one of"):
        reader.set_backend("gdcm")
    prev = reader.set_backend("pydicom")
    try:
        assert reader.get_backend() == "pydicom"
    finally:
        reader.set_backend(prev)
    monkeypatch.setenv(reader.ENV_VAR, "pydicom")
    prev = reader.set_backend(None)
    try:
        assert reader.get_backend() == "pydicom"
    finally:
        monkeypatch.delenv(reader.ENV_VAR)
        reader.set_backend(None)
    assert reader.get_backend() == "dicomsdl"  # the default where it is installed


def test_image_header_holds_the_reference_values_on_every_real_file(shared_data):
    """read_image_header (dicomsdl) against pydicom's full read of the same file: every wanted
    element present in the reference is there with the very same value, nothing else is, and the
    deferred pixel data points at the reference's pixel bytes."""
    files = _dicom_files(shared_data)
    used = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in files:
            hdr = reader.read_image_header(p)
            if hdr is None:
                continue
            used += 1
            ref = pydicom.dcmread(p)
            want = {t for t in reader.IMAGE_HEADER_TAGS if t in ref}
            assert {int(t) for t in hdr.keys()} == want | {0x7FE00010}, p
            for t in want:
                assert hdr[t].value == ref[t].value, (p, hex(t))
                assert hdr[t].VR == ref[t].VR, (p, hex(t))
            assert hdr.file_meta.TransferSyntaxUID == ref.file_meta.TransferSyntaxUID
            if "SOPInstanceUID" not in ref:  # the file meta's UID is then the instance's
                assert hdr.file_meta.MediaStorageSOPInstanceUID == ref.file_meta.MediaStorageSOPInstanceUID
            assert (DicomFile(p, None, "IMAGE", hdr=hdr).sop_instance_uid
                    == DicomFile(p, ref, "IMAGE").sop_instance_uid), p
            elem = hdr.get_item(0x7FE00010, keep_deferred=True)
            assert elem.value is None and elem.length == len(ref.PixelData)
            with open(p, "rb") as f:
                f.seek(elem.value_tell)
                assert f.read() == ref.PixelData, p
    # the 90 head-and-neck slices (512 x 512) and the CERR phantoms' small slices
    assert used >= 90 + 4 * 40


def test_image_header_of_cut_or_altered_files_is_refused_or_right(shared_data, tmp_path):
    """Files cut anywhere (header or pixel data) or with a pixel-data tag inside a value: never a
    crash (dicomsdl is never handed pixel data), and either no header (the full read decides) or
    the reference's values."""
    srcs = [shared_data / "pycerr-headneck-ct" / "head_and_neck" / "pt_1" / "IMG_00000.dcm",
            shared_data / "cerr-radiomics-phantom" / "pat_1" / "DCM_IMG_00000.dcm"]
    srcs = [s for s in srcs if s.is_file()]
    if not srcs:
        pytest.skip("real data absent")
    for src in srcs:
        data = src.read_bytes()
        ref = pydicom.dcmread(src)
        p = tmp_path / src.name
        for cut in list(range(0, 1400, 37)) + [len(data) - 2, len(data) - 5000, len(data) // 2]:
            p.write_bytes(data[:cut])
            assert reader.read_image_header(p) is None, (src.name, cut)
        # a pixel-data tag inside a header value (SeriesInstanceUID): the header is refused
        i = data.find(b"\x20\x00\x0e\x00")  # SeriesInstanceUID; its value follows 8 bytes on (either VR form)
        assert i > 0
        off = i + 8
        p.write_bytes(data[:off] + b"\xe0\x7f\x10\x00" + data[off + 4:])
        hdr = reader.read_image_header(p)
        assert hdr is None, src.name
        # the file whole: the reference's values
        p.write_bytes(data)
        hdr = reader.read_image_header(p)
        assert hdr is not None and hdr.ImagePositionPatient == ref.ImagePositionPatient


def test_study_headers_are_the_full_datasets(shared_data):
    """With the dicomsdl backend the image headers are read when first used: the same datasets
    (pixel data left out) as pydicom's full read, in slice order."""
    from grtv_nb import open_study

    folder = shared_data / "cerr-radiomics-phantom" / "pat_2"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    with backend("dicomsdl"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = open_study(folder)
        heads = list(st.image_headers)
    assert len(heads) == st.grid.shape[0] > 1
    for h, path in zip(heads, st.source["image_files"]):
        ref = pydicom.dcmread(path)
        del ref[0x7FE00010]
        assert h == ref, path


def _rois_and_reports(path, contours):
    from grtv_nb.dicom.folder import read_header
    from grtv_nb.dicom.rtstruct import read_rois

    reports: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rois = read_rois(read_header(path), source_name=path.name, report=reports.append,
                         roi_contours=reader.read_roi_contours(path) if contours else None)
    return rois, reports


def _same_rois(got, ref):
    assert [(r.name, r.number, r.color, r.roi_type, r.geometric_type) for r in got] == \
        [(r.name, r.number, r.color, r.roi_type, r.geometric_type) for r in ref]
    for a, b in zip(got, ref):
        assert len(a.contours) == len(b.contours) and len(a.other_data) == len(b.other_data)
        for x, y in zip(a.contours + a.other_data, b.contours + b.other_data):
            np.testing.assert_array_equal(x, y)


def test_roi_contours_read_by_dicomsdl_give_the_reference_rois(shared_data, tmp_path):
    """read_roi_contours (dicomsdl locates the contour elements) against pydicom's sequences, on
    every real RTSTRUCT and on one with damaged values (not a number, NaN, a count that is not a
    multiple of 3, an unusable ReferencedROINumber): the same ROIs, contours and reports."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    files = [p for p in _dicom_files(shared_data)
             if pydicom.dcmread(p, stop_before_pixels=True).get("Modality") == "RTSTRUCT"]
    used = 0
    for p in files:
        used += reader.read_roi_contours(p) is not None
        ref, ref_r = _rois_and_reports(p, False)
        got, got_r = _rois_and_reports(p, True)
        _same_rois(got, ref)
        assert got_r == ref_r, p
    assert used >= 5
    src = shared_data / "cerr-radiomics-phantom" / "pat_1" / "DCM_RS_00060.dcm"
    ds = pydicom.dcmread(src)
    roi = ds.ROIContourSequence[0]
    cs = roi.ContourSequence
    for c, raw in zip(cs, [b"1\\abc\\3 ", b"1\\2\\nan ", b"1\\2\\3\\4 "]):
        c._dict[Tag("ContourData")] = RawDataElement(Tag("ContourData"), "DS", len(raw), raw, 0, False, True)
    bad = Tag("ReferencedROINumber")
    ds.ROIContourSequence.append(pydicom.Dataset())
    ds.ROIContourSequence[-1]._dict[bad] = RawDataElement(bad, "IS", 2, b"x ", 0, False, True)
    path = tmp_path / "RS_damaged.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's note on the invalid IS written on purpose
        ds.save_as(path)
    assert reader.read_roi_contours(path) is not None
    ref, ref_r = _rois_and_reports(path, False)
    got, got_r = _rois_and_reports(path, True)
    _same_rois(got, ref)
    assert got_r == ref_r and len(ref_r) >= 2, ref_r


@pytest.mark.parametrize("dtype, rescales, ct, shift", [
    (np.uint16, [(1.0, -1024.0)], True, 0), (np.int16, [(1.0, -1024.0)], True, 0),
    (np.uint16, [(1.0, -40000.0)], True, 0),  # HU below int16: clipped
    (np.uint16, [(1.0, 30000.0)], False, 0),  # not CT, beyond int16: float32
    (np.uint16, [(1.0, -40000.0)], True, 40000),  # stored values and intercept beyond int16, HU within
    (np.uint16, [(1.0, -1024.0), (1.0, -2000.0)], True, 20000),
    (np.int16, [(1.0, 0.0), (1.0, 7.0)], False, 0), (np.uint8, [(1.0, -100.0)], False, 0),
    (np.uint16, [(0.5, -1024.0)], True, 0), (np.int32, [(2.5, 0.25)], False, 0),
])
def test_stack_rescaled_at_once_as_slice_by_slice(dtype, rescales, ct, shift):
    """The direct path's whole-stack rescaling (image._rescale_array) gives the values and type of
    the reference path's slice-by-slice one (image._rescale_stack, the pydicom backend's)."""
    from grtv_nb.dicom import image

    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    raw = (rng.integers(max(info.min, -5000), min(info.max, 6000), size=(6, 9, 11)) + shift).astype(dtype)
    resc = [rescales[k % len(rescales)] for k in range(len(raw))]
    ref = image._rescale_stack(list(raw), resc, ct)
    got = image._rescale_array(raw.copy(), resc, ct)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


def test_bulk_contour_parse_gives_pydicoms_values_on_every_real_rtstruct(shared_data):
    """The one-pass ContourData parse (rtstruct._all_contour_data, NumPy's text parser) against
    pydicom's own DS conversion of each contour, from a second independent read, on every real
    RTSTRUCT; and a value ``float()`` reads but the bulk parser refuses sends the items to the
    one-by-one parse (the result is pydicom's then too)."""
    from grtv_nb.dicom import rtstruct

    files = [p for p in _dicom_files(shared_data)
             if pydicom.dcmread(p, stop_before_pixels=True).get("Modality") == "RTSTRUCT"]
    bulk = 0
    for p in files:
        ds, ref = pydicom.dcmread(p), pydicom.dcmread(p)
        parsed = rtstruct._all_contour_data(ds)
        items = [c for r in ds.get("ROIContourSequence", []) for c in r.get("ContourSequence", [])]
        refs = [c for r in ref.get("ROIContourSequence", []) for c in r.get("ContourSequence", [])]
        if len(items) >= 8:
            assert len(parsed) == len(items), p
            bulk += 1
        for c, r in zip(items, refs):
            if id(c) in parsed:
                np.testing.assert_array_equal(parsed[id(c)], np.array([float(v) for v in r.ContourData]))
    assert bulk >= 3
    src = shared_data / "cerr-radiomics-phantom" / "pat_1" / "DCM_RS_00060.dcm"
    ds = pydicom.dcmread(src)
    c = ds.ROIContourSequence[0].ContourSequence[0]
    raw = c.get_item("ContourData").value.replace(b"\\", b"\\ 1_0 \\", 1)  # float("1_0") == 10.0
    tag = c.get_item("ContourData").tag
    c._dict[tag] = pydicom.dataelem.RawDataElement(tag, "DS", len(raw), raw, 0, False, True)
    assert rtstruct._all_contour_data(ds) == {}
    got = rtstruct._contour_data(c)
    assert got is not None and got[1] == 10.0 and got.size == len(raw.split(b"\\"))


# ----------------------------------------------------------------------------- RT objects read raw


def _rt_files(shared_data, *modalities):
    return [p for p in _dicom_files(shared_data)
            if pydicom.dcmread(p, stop_before_pixels=True).get("Modality") in modalities]


def _walk_equal(node, ds, where) -> int:
    """Every element of pydicom's dataset ``ds`` is in the raw header ``node`` with pydicom's raw
    bytes, VR and length (sequences item by item); returns the number of elements compared."""
    from pydicom.dataelem import RawDataElement

    n = 0
    assert len(node) == len(ds), where
    for elem in ds:
        tag = int(elem.tag)
        if node.only is not None and tag not in node.only:  # a partial item: pydicom's dataset answers it
            assert tag in node and node[tag] == elem, (where, hex(tag))
            continue
        if elem.VR == "SQ":
            items = node.sequence(tag)
            assert items is not None and len(items) == len(elem.value), (where, hex(tag))
            for a, b in zip(items, elem.value):
                n += _walk_equal(a, b, where)
            continue
        got, ref = node.get_item(tag), ds.get_item(tag)
        assert got is not None, (where, hex(tag))
        if tag == 0x7FE00010 and got.value is None:  # pixel data left in the file: the same bytes there
            with open(where, "rb") as fh:
                fh.seek(got.value_tell)
                assert fh.read(got.length + 1) == ref.value and got.length == len(ref.value), where  # +1: no more
        if isinstance(ref, RawDataElement):  # (SpecificCharacterSet is converted by pydicom's read)
            assert (got.VR, got.length) == (ref.VR, ref.length), (where, hex(tag))
            assert got.value == ref.value or tag == 0x7FE00010 and got.value is None, (where, hex(tag))
        n += 1
    return n


def test_rt_raw_header_holds_pydicoms_elements_on_every_real_rt_file(shared_data):
    """read_rt_header (dicomsdl locates every element) against pydicom's read of the same file, on
    every real RTSTRUCT, RTDOSE and RTPLAN: the same elements, bytes, VRs and lengths, sequence by
    sequence; the pydicom dataset a raw header falls back to is the file's (item for item)."""
    files = _rt_files(shared_data, "RTSTRUCT", "RTDOSE", "RTPLAN")
    assert len(files) >= 10
    for p in files:
        hdr = reader.read_rt_header(p, lambda p=p: pydicom.dcmread(p))
        assert hdr is not None and hdr.complete, p
        assert _walk_equal(hdr, pydicom.dcmread(p), p) > 40
        assert str(hdr.SOPInstanceUID) == pydicom.dcmread(p).SOPInstanceUID  # through the fallback dataset
        seq = next((t for t in (0x30060020, 0x300A00B0, 0x300C0002, 0x30060010) if hdr.sequence(t)), None)
        if seq is not None:  # an item's pydicom dataset is the same item of the file's dataset
            assert hdr.sequence(seq)[0].dataset() == pydicom.dcmread(p)[seq].value[0]


def test_rt_raw_header_refuses_what_is_not_the_usual_form(shared_data, tmp_path):
    """Files read_rt_header leaves to pydicom: truncated (dicomsdl must never see a cut element),
    trailing bytes, a deflated/big-endian/compressed transfer syntax, a CT slice, an RTDOSE whose
    pixel data does not close the file."""
    src = shared_data / "cerr-radiomics-phantom" / "pat_1" / "DCM_RS_00060.dcm"
    dose = shared_data / "pydicom-rt-testfiles" / "rtdose.dcm"
    data, ddata = src.read_bytes(), dose.read_bytes()
    cases = {
        "cut_mid.dcm": data[: len(data) // 2],
        "cut_end.dcm": data[:-3],
        "trailing.dcm": data + b"\x00\x00",
        "dose_cut.dcm": ddata[:-100],
        "dose_trailing.dcm": ddata + b"\x08\x00\x10\x00\x00\x00\x00\x00",
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        assert reader.read_rt_header(tmp_path / name, None) is None, name
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    pydicom.dcmwrite(tmp_path / "big.dcm", ds, implicit_vr=False, little_endian=False, enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "big.dcm").ROIContourSequence[0].ContourSequence[0].ContourData
    assert reader.read_rt_header(tmp_path / "big.dcm", None) is None
    ct = next(p for p in sorted((shared_data / "cerr-radiomics-phantom" / "pat_1").iterdir()) if p != src)
    assert reader.read_rt_header(ct, None) is None


def _rois_reports_of(ds):
    from grtv_nb.dicom import rtstruct

    reports: list[str] = []
    rois = rtstruct.read_rois(ds, source_name="RS", report=reports.append)
    return rois, reports


def _assert_same_rois(got, ref, where):
    rois, reports = got
    ref_rois, ref_reports = ref
    assert reports == ref_reports, where
    assert len(rois) == len(ref_rois) > 0, where
    for a, b in zip(rois, ref_rois):
        assert (a.name, a.number, a.color, a.roi_type, a.geometric_type, a.frame_of_reference_uid,
                a.observation_label) == (b.name, b.number, b.color, b.roi_type, b.geometric_type,
                                         b.frame_of_reference_uid, b.observation_label), where
        assert len(a.contours) == len(b.contours) and len(a.other_data) == len(b.other_data), where
        for x, y in zip(a.contours + a.other_data, b.contours + b.other_data):
            np.testing.assert_array_equal(x, y)


def test_read_rois_from_the_raw_header_gives_pydicoms_rois_on_every_real_rtstruct(shared_data):
    """read_rois on the raw header against read_rois on pydicom's dataset (the reference, read
    independently) for every real RTSTRUCT: names, numbers, colours, types, contour points, frames
    of reference, warnings; and the referenced series/image UIDs."""
    from grtv_nb.dicom import folder

    files = _rt_files(shared_data, "RTSTRUCT")
    assert len(files) >= 8
    for p in files:
        fallbacks: list = []  # the file's pydicom dataset, counted: every value must be read raw
        hdr = reader.read_rt_header(p, lambda p=p, fb=fallbacks: fb.append(p) or pydicom.dcmread(p))
        assert hdr is not None and hdr.complete, p
        _assert_same_rois(_rois_reports_of(hdr), _rois_reports_of(pydicom.dcmread(p)), p)
        ref = pydicom.dcmread(p)
        assert folder.referenced_series_uids(hdr) == folder.referenced_series_uids(ref)
        assert folder.referenced_image_uids(hdr) == folder.referenced_image_uids(ref)
        assert folder.referenced_image_uids(hdr) or "empty" in str(p) or "rt-utils" in str(p)
        assert not fallbacks, p


@pytest.mark.parametrize("damage", ["roi_number", "color", "contour_nan", "contour_count", "name_latin1",
                                    "duplicate_number", "ref_number"])
def test_read_rois_raw_gives_pydicoms_diagnostics_on_bad_values(shared_data, tmp_path, damage):
    """Bad values written raw into a real RTSTRUCT: the raw header's read (falling back to pydicom
    for what it does not read raw) gives pydicom's ROIs and the same warnings."""
    from pydicom.dataelem import RawDataElement

    src = shared_data / "dicompyler-example" / "example_data" / "rtss.dcm"
    ds = pydicom.dcmread(src)
    ss, rc = ds.StructureSetROISequence, ds.ROIContourSequence
    assert len(ss) > 2

    def put(item, keyword, vr, value: bytes):
        tag = pydicom.tag.Tag(keyword)
        item._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, ds.is_implicit_VR, True)

    if damage == "roi_number":
        put(ss[0], "ROINumber", "IS", b"abc ")
    elif damage == "color":
        put(rc[0], "ROIDisplayColor", "IS", b"1.5\\x\\3 ")
    elif damage == "contour_nan":
        put(rc[0].ContourSequence[0], "ContourData", "DS", b"1\\2\\nan\\4\\5\\6 ")
    elif damage == "contour_count":
        put(rc[0].ContourSequence[0], "ContourData", "DS", b"1\\2\\3\\4 ")
    elif damage == "name_latin1":
        ds.SpecificCharacterSet = "ISO_IR 100"
        put(ss[0], "ROIName", "LO", "Lèvre".encode("latin-1") + b" ")
    elif damage == "duplicate_number":
        put(ss[-1], "ROINumber", "IS", str(ss[0].ROINumber).encode() + b" ")
    elif damage == "ref_number":
        put(rc[0], "ReferencedROINumber", "IS", b"99999")
    out = tmp_path / "RS.dcm"
    ds.save_as(out)
    hdr = reader.read_rt_header(out, lambda: pydicom.dcmread(out))
    assert hdr is not None
    got = _rois_reports_of(hdr)
    ref = _rois_reports_of(pydicom.dcmread(out))
    _assert_same_rois(got, ref, damage)
    if damage == "color":  # an unusable colour: the default one, silently
        from grtv_nb.display import default_color

        assert got[0][0].color == default_color(0)
    elif damage == "name_latin1":
        assert got[0][0].name == "Lèvre"
    else:
        assert ref[1], damage  # the damage is diagnosed


def test_read_dose_from_the_raw_header_gives_pydicoms_dose_on_every_real_rtdose(shared_data):
    """read_dose on the raw header (pixels decoded from its bytes) against read_dose on pydicom's
    dataset (pixel_array) for every real RTDOSE: the same array, grid, units, types."""
    from grtv_nb.dicom import rtdose

    files = _rt_files(shared_data, "RTDOSE")
    assert len(files) >= 3
    for p in files:
        fallbacks: list = []  # the file's pydicom dataset, counted: every value must be read raw
        hdr = reader.read_rt_header(p, lambda p=p, fb=fallbacks: fb.append(p) or pydicom.dcmread(p))
        assert hdr is not None
        assert rtdose._native_pixels(hdr, 1, 1, 1) is None  # not the declared size: pydicom decodes it
        f = DicomFile(p, None, "RTDOSE", hdr=hdr)
        assert f.raw_header is hdr
        got = rtdose.read_dose(f)
        assert not fallbacks, p
        ref = rtdose.read_dose(DicomFile(p, None, "RTDOSE"))
        np.testing.assert_array_equal(got.array, ref.array)
        assert got.array.dtype == ref.array.dtype
        assert got.grid.same_as(ref.grid) and got.grid.frame_of_reference_uid == ref.grid.frame_of_reference_uid
        np.testing.assert_array_equal(got.grid.z, ref.grid.z)
        assert (got.units, got.dose_type, got.summation_type) == (ref.units, ref.dose_type, ref.summation_type)
        ds = pydicom.dcmread(p)
        n = int(ds.get("NumberOfFrames", 1))
        np.testing.assert_array_equal(rtdose._native_pixels(hdr, ds.Rows, ds.Columns, n, p).reshape(n, ds.Rows, -1),
                                      ds.pixel_array.reshape(n, ds.Rows, ds.Columns))
        assert hdr.get_item(0x7FE00010).value is None  # the pixels were read from the file, not kept in the header


@pytest.mark.parametrize("damage", ["scaling_zero", "scaling_text", "scaling_huge", "offsets", "short_pixels",
                                    "bits12"])
def test_read_dose_raw_gives_pydicoms_errors_on_bad_values(shared_data, tmp_path, damage):
    """Bad values in a real RTDOSE: the raw header's read raises pydicom's error (or gives its dose)."""
    from pydicom.dataelem import RawDataElement

    from grtv_nb.dicom import rtdose

    ds = pydicom.dcmread(shared_data / "pydicom-rt-testfiles" / "rtdose.dcm")

    def put(keyword, vr, value: bytes):
        tag = pydicom.tag.Tag(keyword)
        ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, ds.is_implicit_VR, True)

    if damage == "scaling_zero":
        put("DoseGridScaling", "DS", b"0 ")
    elif damage == "scaling_text":
        put("DoseGridScaling", "DS", b"abc ")
    elif damage == "scaling_huge":  # a plausible scaling giving doses beyond MAX_DOSE_GY
        put("DoseGridScaling", "DS", b"900 ")
    elif damage == "offsets":
        put("GridFrameOffsetVector", "DS", b"0\\0\\5\\" + b"\\".join(b"%d" % i for i in range(3, ds.NumberOfFrames)))
    elif damage == "short_pixels":
        ds.PixelData = ds.PixelData[:-4]
    elif damage == "bits12":
        ds.BitsStored = 12
    out = tmp_path / "RD.dcm"
    ds.save_as(out)
    hdr = reader.read_rt_header(out, lambda: pydicom.dcmread(out))
    assert hdr is not None

    def outcome(f):
        try:
            d = rtdose.read_dose(f)
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return "ok", d.array.tobytes()

    f = DicomFile(out, None, "RTDOSE", hdr=hdr)
    assert f.raw_header is hdr
    got = outcome(f)
    assert got == outcome(DicomFile(out, None, "RTDOSE"))
    assert got[0] != "ok" or damage == "bits12"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 60])
def test_median_is_numpys(n):
    """geometry.median (which spares the read path numpy.ma's import) gives np.median's number."""
    from grtv_nb.geometry import median

    rng = np.random.default_rng(n)
    for vals in (rng.normal(3.0, 1.0, n), np.round(rng.uniform(-5, 5, n), 1), np.full(n, 2.5)):
        assert median(vals) == float(np.median(vals))


def test_slice_cut_after_its_header_was_read_is_left_out_and_named(shared_data, tmp_path):
    """A slice whose file loses its last bytes between the folder scan and the pixel read (the
    pixels read straight into the stack): left out with a warning naming it, the rest read as pydicom
    reads them."""
    from grtv_nb.dicom.folder import scan_folder
    from grtv_nb.dicom.image import read_series

    src = shared_data / "cerr-radiomics-phantom" / "pat_2"
    for p in sorted(src.glob("DCM_IMG_*.dcm"))[:4]:
        shutil.copy(p, tmp_path / p.name)
    if "dicomsdl" not in reader.available_backends():
        pytest.skip("dicomsdl is not installed")
    with backend("dicomsdl"):
        scan = scan_folder(tmp_path)
    victim = scan.series[0].files[2].path
    victim.write_bytes(victim.read_bytes()[:-10])
    reports: list[str] = []
    vol = read_series(scan.series[0], report=reports.append)
    assert len(reports) == 1 and victim.name in reports[0] and "truncated" in reports[0]
    assert vol.array.shape[0] == 3
    kept = sorted((pydicom.dcmread(f.path) for f in vol.files), key=lambda d: float(d.ImagePositionPatient[2]))
    ref = np.stack([d.pixel_array.astype(np.int32) * int(d.RescaleSlope) + int(d.RescaleIntercept) for d in kept])
    assert np.array_equal(np.sort(vol.array.ravel()), np.sort(ref.ravel()))


def test_contour_items_are_partial_headers_answering_the_rest_through_pydicom(shared_data):
    """The ContourSequence items of a raw RTSTRUCT hold ContourGeometricType and ContourData raw
    (pydicom's bytes); every other element (NumberOfContourPoints, ContourImageSequence...) is
    pydicom's, through the item's dataset, never reported missing."""
    from grtv_nb.dicom import values

    n = 0
    for p in _rt_files(shared_data, "RTSTRUCT"):
        hdr = reader.read_rt_header(p, lambda p=p: pydicom.dcmread(p))
        ref = pydicom.dcmread(p)
        roi_items = hdr.sequence(0x30060039)
        if not roi_items or not any(r.sequence(0x30060040) for r in roi_items):
            continue
        r, ref_r = next((r, f) for r, f in zip(roi_items, ref.ROIContourSequence) if r.sequence(0x30060040))
        c, ref_c = r.sequence(0x30060040)[0], ref_r.ContourSequence[0]
        assert c.only == {0x30060042, 0x30060050} and c._ds is None  # nothing read through pydicom yet
        assert c.get_item(0x30060050).value == ref_c.get_item(0x30060050).value
        assert values.text(c, "ContourGeometricType") == str(ref_c.ContourGeometricType)
        assert c._ds is None
        if "NumberOfContourPoints" in ref_c:
            assert values.integer(c, "NumberOfContourPoints", p) == int(ref_c.NumberOfContourPoints)
        if "ContourImageSequence" in ref_c:
            got = [values.text(i, "ReferencedSOPInstanceUID") for i in values.sequence_items(c, "ContourImageSequence")]
            assert got == [str(i.ReferencedSOPInstanceUID) for i in ref_c.ContourImageSequence]
        assert len(c) == len(ref_c)
        assert (0x30060046 in c) == ("NumberOfContourPoints" in ref_c)
        n += 1
    assert n >= 5


def test_contour_image_items_are_partial_headers_giving_pydicoms_references(shared_data):
    """The ContourImageSequence items of a raw RTSTRUCT's referenced series (one per referenced
    slice) hold ReferencedSOPClassUID and ReferencedSOPInstanceUID raw: pydicom's text of them, and
    pydicom's answer (through the item's dataset) for anything else."""
    from grtv_nb.dicom import values

    n = 0
    for p in _rt_files(shared_data, "RTSTRUCT"):
        hdr = reader.read_rt_header(p, lambda p=p: pydicom.dcmread(p))
        ref = pydicom.dcmread(p)
        for fr, ref_fr in zip(values.sequence_items(hdr, "ReferencedFrameOfReferenceSequence"),
                              ref.get("ReferencedFrameOfReferenceSequence", [])):
            for st, ref_st in zip(values.sequence_items(fr, "RTReferencedStudySequence"),
                                  ref_fr.get("RTReferencedStudySequence", [])):
                for se, ref_se in zip(values.sequence_items(st, "RTReferencedSeriesSequence"),
                                      ref_st.get("RTReferencedSeriesSequence", [])):
                    items = values.sequence_items(se, "ContourImageSequence")
                    ref_items = list(ref_se.get("ContourImageSequence", []))
                    assert len(items) == len(ref_items), p
                    for it, ref_it in zip(items, ref_items):
                        assert it.only == {0x00081150, 0x00081155}
                        for kw in ("ReferencedSOPClassUID", "ReferencedSOPInstanceUID"):
                            assert values.text(it, kw) == str(ref_it.get(kw, "")), (p, kw)
                        n += 1
                    if items:  # anything else: pydicom's item
                        assert len(items[0]) == len(ref_items[0])
                        assert ("ReferencedFrameNumber" in items[0]) == ("ReferencedFrameNumber" in ref_items[0])
    assert n >= 100
