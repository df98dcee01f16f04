"""Hostile and broken DICOM input: a seeded mutation campaign over real data and the phantom
(tests/fuzz_support.py; the long one is ``make fuzz``), targeted cases for every value check of
grtv_nb.dicom.values, and the transactional study changes (a failed call changes nothing)."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import fuzz_support as fz
import numpy as np
import pydicom
import pytest

from grtv_nb.errors import DicomReadError, DicomValueError, GRTVCallFailed, GRTVError, ValidationError

CAMPAIGN_CASES = 160
CAMPAIGN_SEED = 20261202


@pytest.fixture(scope="module")
def tiny_phantom(tmp_path_factory) -> Path:
    """A phantom small enough to be opened hundreds of times (8 slices of 32x40)."""
    from grtv_nb.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("fuzz") / "tiny", z_positions=np.arange(8) * 4.0 - 14,
                         nx=40, ny=32, pixel_mm=6.0, dose_grid_mm=8.0)


def _open(folder):
    from grtv_nb import open_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_study(folder)


def test_seeded_campaign_has_no_crash_hang_or_wrong_result(tiny_phantom, shared_data, tmp_path):
    bases = fz.base_folders(shared_data, tiny_phantom)
    tally = fz.campaign(bases, CAMPAIGN_CASES, CAMPAIGN_SEED, tmp_path)
    print(tally.line())
    detail = "\n".join(f"{o.cls}: {o.mutation} -> {o.message}" for o in tally.failures[:10])
    assert not tally.failures and not tally.counts["skipped"], f"{tally.line()}\n{detail}"
    # the campaign exercised every outcome a reader can have
    assert tally.counts["refused"] > 0 and tally.counts["changed"] > 0 and tally.counts["same"] > 0


def test_campaign_detects_a_reader_that_trusts_its_values(tiny_phantom, tmp_path, monkeypatch):
    """The campaign's checks can fail: with the DoseGridScaling check replaced by the old rule
    (missing means 1.0), a dose without scaling opens as a study the campaign counts as wrong."""
    import shutil

    import grtv_nb.dicom.values as values

    monkeypatch.setattr(values, "dose_grid_scaling", lambda ds, file: float(ds.get("DoseGridScaling", 1.0) or 1.0))
    monkeypatch.setattr(values, "MAX_DOSE_GY", 1e30)  # and no plausibility limit in the reader
    folder = shutil.copytree(tiny_phantom, tmp_path / "noscale")
    _set(_dose_file(folder), DoseGridScaling=None)
    st = _open(folder)
    assert "dose out of range" in fz.implausible(st)


# ------------------------------------------------------------------ targeted value checks
def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _set(path: Path, **values):
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement

    ds = pydicom.dcmread(path)
    for kw, v in values.items():
        if v is None:
            del ds[kw]
        else:
            tag = tag_for_keyword(kw)
            ds[kw] = DataElement(tag, dictionary_VR(tag), v, already_converted=True)
    ds.save_as(path)


def _dose_file(folder: Path) -> Path:
    return next(folder.glob("RD_*.dcm"))


@pytest.mark.parametrize("scaling", [None, "0", "-1e-5", "nan", "inf", "abc", "1e10"])
def test_bad_dose_grid_scaling_is_refused_naming_file_and_attribute(tiny_phantom, tmp_path, scaling):
    folder = _copy(tiny_phantom, tmp_path / "d")
    dose = _dose_file(folder)
    _set(dose, DoseGridScaling=scaling)
    with pytest.raises(DicomValueError) as err:
        _open(folder)
    assert dose.name in str(err.value) and "DoseGridScaling" in str(err.value)


def test_repeated_grid_frame_offset_is_refused(tiny_phantom, tmp_path):
    folder = _copy(tiny_phantom, tmp_path / "d")
    dose = _dose_file(folder)
    off = [float(x) for x in pydicom.dcmread(dose).GridFrameOffsetVector]
    off[2] = off[1]
    _set(dose, GridFrameOffsetVector="\\".join(f"{x:g}" for x in off))
    with pytest.raises(DicomValueError, match="GridFrameOffsetVector is not strictly monotonic"):
        _open(folder)


def test_decreasing_grid_frame_offsets_read_in_position_order(tiny_phantom, tmp_path):
    """Strictly decreasing offsets are valid: the frames are put in increasing z."""
    ref = _open(tiny_phantom)
    folder = _copy(tiny_phantom, tmp_path / "d")
    dose = _dose_file(folder)
    ds = pydicom.dcmread(dose)
    n = int(ds.NumberOfFrames)
    arr = ds.pixel_array.reshape(n, ds.Rows, ds.Columns)[::-1].copy()
    off = np.array([float(x) for x in ds.GridFrameOffsetVector])
    ipp = [float(x) for x in ds.ImagePositionPatient]
    ipp[2] += off[-1]
    ds.ImagePositionPatient = [f"{x:g}" for x in ipp]
    ds.GridFrameOffsetVector = [f"{x:g}" for x in off[::-1] - off[-1]]
    ds.PixelData = arr.tobytes()
    ds.save_as(dose)
    st = _open(folder)
    np.testing.assert_allclose(st.ds["dose"].values, ref.ds["dose"].values, atol=1e-6)


@pytest.mark.parametrize("kw,value,what", [
    ("ImagePositionPatient", "0\\nan\\0", "not finite"),
    ("ImagePositionPatient", "0\\0", "3 expected"),
    ("ImagePositionPatient", "0\\0\\1e20", "above"),
    ("ImageOrientationPatient", "1\\0\\0\\1\\0\\0", "not orthogonal"),
    ("ImageOrientationPatient", "2\\0\\0\\0\\1\\0", "above"),
    ("ImageOrientationPatient", "0\\0\\0\\0\\0\\0", "not unit"),
    ("PixelSpacing", "0\\2", "below"),
    ("PixelSpacing", "abc\\2", "not a number"),
    ("RescaleIntercept", "1e30", "above"),
    ("RescaleSlope", "0", "is 0"),
    ("Rows", None, "missing"),
])
def test_bad_image_value_is_refused_naming_file_and_attribute(tiny_phantom, tmp_path, kw, value, what):
    folder = _copy(tiny_phantom, tmp_path / "d")
    ct = sorted(folder.glob("CT_*.dcm"))[3]
    _set(ct, **{kw: value})
    with pytest.raises(DicomValueError) as err:
        _open(folder)
    assert ct.name in str(err.value) and kw in str(err.value) and what in str(err.value)


def test_declared_matrix_larger_than_pixel_data_is_refused_before_allocating(tiny_phantom, tmp_path):
    folder = _copy(tiny_phantom, tmp_path / "d")
    dose = _dose_file(folder)
    _set(dose, NumberOfFrames="60000")
    with pytest.raises(DicomValueError, match=dose.name):  # too few offsets / pixels: never MemoryError
        _open(folder)
    _set(dose, NumberOfFrames=str(pydicom.dcmread(tiny_phantom / dose.name).NumberOfFrames), Rows=65535,
         Columns=65535)
    with pytest.raises(DicomValueError, match="more than the"):
        _open(folder)


# pydicom's own warning when the test writes the bad value on purpose (the file is the input under test)
@pytest.mark.filterwarnings("ignore:Invalid value for VR DS. 'nan':UserWarning:pydicom")
def test_bad_contours_and_roi_numbers_are_dropped_with_a_warning(tiny_phantom, tmp_path):
    ref = _open(tiny_phantom)
    folder = _copy(tiny_phantom, tmp_path / "d")
    rs = next(folder.glob("RS_*.dcm"))
    ds = pydicom.dcmread(rs)
    c0 = ds.ROIContourSequence[0].ContourSequence[0]
    c0.ContourData = ["nan"] * 3 + list(c0.ContourData)[3:]
    ds.StructureSetROISequence[1].ROINumber = "2147483648"
    ds.save_as(rs)
    with pytest.warns(Warning) as rec:
        st = __import__("grtv_nb").open_study(folder)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "NaN or infinite" in msgs and "ROINumber" in msgs
    assert st.roi_names[0] == ref.roi_names[0]
    assert len(st.contours(0)) == len(ref.contours(0)) - 1
    assert st.contours(1) == []  # its contours reference the unusable number: not attached elsewhere


def test_duplicate_roi_names_are_made_unique_on_read(tiny_phantom, tmp_path):
    folder = _copy(tiny_phantom, tmp_path / "d")
    rs = next(folder.glob("RS_*.dcm"))
    ds = pydicom.dcmread(rs)
    name0 = ds.StructureSetROISequence[0].ROIName
    ds.StructureSetROISequence[1].ROIName = name0
    ds.save_as(rs)
    with pytest.warns(Warning, match="used twice"):
        st = __import__("grtv_nb").open_study(folder)
    assert st.roi_names[1] == f"{name0}_2"
    st.dvh()  # one name per ROI: the DVH table can be built


def test_large_non_dicom_file_is_rejected_from_its_first_bytes(tmp_path):
    from grtv_nb.dicom.values import looks_like_dicom

    big = tmp_path / "zeros.bin"
    with open(big, "wb") as fh:
        fh.truncate(3 * 2**30)  # sparse: 3 GiB of zeros, never read
    ok, why = looks_like_dicom(big)
    assert not ok and "not a DICOM file" in why


def test_symlink_loop_and_unlistable_folder(tiny_phantom, tmp_path):
    import os

    folder = _copy(tiny_phantom, tmp_path / "d")
    os.symlink(folder / "b", folder / "a")
    os.symlink(folder / "a", folder / "b")
    st = _open(folder)
    assert st.grid.shape == (8, 32, 40)
    os.symlink(tmp_path / "loop2", tmp_path / "loop1")
    os.symlink(tmp_path / "loop1", tmp_path / "loop2")
    with pytest.raises(DicomReadError, match="loop1"):
        _open(tmp_path / "loop1")


# ------------------------------------------------------------------ transactions
def _state(st) -> tuple:
    dose = st._dose
    return (tuple(st.roi_names), tuple(r.number for r in st.rois), len(st.store),
            tuple(st.voxel_count(i) for i in range(len(st.rois))),
            None if dose is None else (dose.dtype.str, float(dose.sum()), float(dose.max())),
            None if st._dvh is None else np.asarray(st._dvh.stats["mean"].values, float).round(6).tobytes(),
            tuple(sorted(st._meshes)), dict(st.attrs).get("dose_summation"))


def test_failed_add_roi_and_set_dose_change_nothing(tiny_phantom, monkeypatch):
    import grtv_nb.dvh as dvh

    st = _open(tiny_phantom)
    st.dvh()
    before = _state(st)
    mask = np.zeros(st.grid.shape, bool)
    mask[2:5, 10:20, 10:20] = True

    def boom(*a, **k):
        raise GRTVError("injected DVH failure")

    monkeypatch.setattr(dvh, "compute_dvh", boom)  # voxel DVHs
    monkeypatch.setattr(dvh, "compute_roi_dvh", boom)  # the exact engine (the default)
    with pytest.raises(GRTVError, match="injected"):
        st.add_roi("NEW", mask)
    assert _state(st) == before
    with pytest.raises(GRTVError, match="injected"):
        st.set_dose(np.full(st.grid.shape, 1.23, np.float32))
    assert _state(st) == before
    monkeypatch.undo()
    with pytest.raises(ValidationError):
        st.set_dose(np.full(st.grid.shape, np.nan, np.float32))
    assert _state(st) == before
    st.add_roi("NEW", mask)
    assert st.roi_names[-1] == "NEW" and st.voxel_count("NEW") == int(mask.sum())


def test_remove_and_rename_roi(tiny_phantom):
    st = _open(tiny_phantom)
    st.dvh()
    names = st.roi_names
    before = _state(st)
    with pytest.raises(ValidationError):
        st.rename_roi(0, names[1])  # taken
    with pytest.raises(ValidationError):
        st.rename_roi(0, "a\\b")
    assert _state(st) == before
    counts = [st.voxel_count(i) for i in range(len(names))]
    assert st.rename_roi(0, "Renamed") == "Renamed"
    assert st.roi_names[0] == "Renamed" and "Renamed" in list(st.dvh().stats["roi"].values)
    removed = st.remove_roi(1)
    assert removed.name == names[1]
    assert st.roi_names == ["Renamed", *names[2:]]
    assert [st.voxel_count(i) for i in range(len(st.rois))] == [counts[0], *counts[2:]]


def test_facade_failures_warn_every_time_and_leave_the_study_unchanged(tiny_phantom):
    from grtv_nb.facade import GRTV_STATUS_FALIED, GRTV_STATUS_OK, pyGRTV

    g = pyGRTV()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert g.readRTDir(str(tiny_phantom)) == GRTV_STATUS_OK
    before = _state(g.study)
    shape = g.study.grid.shape
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")  # Python's default: one warning per place, unless every call warns
        for _ in range(3):
            assert g.setDose(np.full(shape, -5.0)) == GRTV_STATUS_FALIED
    assert sum(issubclass(w.category, GRTVCallFailed) for w in rec) == 3
    assert _state(g.study) == before
    # a 0/1 mask is a mask
    m = np.zeros(shape, np.uint8)
    m[2:5, 10:20, 10:20] = 1
    assert g.setNewROI(m, "ONES", [1, 2, 3]) == GRTV_STATUS_OK
    assert g.study.voxel_count("ONES") == int(m.sum())


def test_mutations_are_seeded(tiny_phantom, tmp_path):
    """The same seed gives the same mutations (a failing case can be replayed)."""
    a, b = tmp_path / "a", tmp_path / "b"
    _copy(tiny_phantom, a)
    _copy(tiny_phantom, b)
    ma = [fz.mutate(a, random.Random(7)) for _ in range(1)][0]
    mb = [fz.mutate(b, random.Random(7)) for _ in range(1)][0]
    assert ma == mb


def test_element_with_an_invalid_vr_is_left_out_and_the_study_exports(tiny_phantom, tmp_path):
    """A corrupted VR (here PatientID's 'LO' became 'NO') makes pydicom raise on every access to the
    element; the reader leaves it out with a warning and the export writes a valid file."""
    from grtv_nb.export import export_rt

    folder = _copy(tiny_phantom, tmp_path / "d")
    ct = sorted(folder.glob("CT_*.dcm"))[0]
    data = bytearray(ct.read_bytes())
    i = data.find(b"\x10\x00\x20\x00LO")
    assert i > 0
    data[i + 4:i + 6] = b"NO"
    ct.write_bytes(bytes(data))
    with pytest.warns(Warning, match=r"invalid value representation were left out: \(0010,0020\)"):
        st = __import__("grtv_nb").open_study(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = export_rt(st, tmp_path / "out")
        st2 = _open(out)
    assert st2.grid.shape == st.grid.shape


def test_value_getters_on_plain_datasets(tmp_path):
    """The rules of grtv_nb.dicom.values, one by one, on in-memory datasets."""
    from grtv_nb.dicom import values

    ds = pydicom.Dataset()
    ds.ImageOrientationPatient = ["1.0001", "0", "0", "0", "0.9999", "0.001"]
    iop = values.image_orientation(ds, "a.dcm")  # within tolerance: re-normalised
    assert np.isclose(np.linalg.norm(iop[:3]), 1) and np.isclose(iop[:3] @ iop[3:], 0, atol=1e-12)
    ds.PatientName = "Doe^John\0\0"
    assert values.text(ds, "PatientName") == "Doe^John"
    ds.NumberOfFrames = "3"
    ds.GridFrameOffsetVector = ["0", "-2.5", "-5"]
    np.testing.assert_array_equal(values.grid_frame_offsets(ds, "d.dcm", 3), [0, -2.5, -5])
    ds.GridFrameOffsetVector = ["0", "2.5", "2.5"]
    with pytest.raises(DicomValueError, match="d.dcm: GridFrameOffsetVector is not strictly monotonic"):
        values.grid_frame_offsets(ds, "d.dcm", 3)
    ds.ROINumber = "7"
    assert values.roi_number(ds, "s.dcm") == 7
    ds.ROINumber = "-1"
    with pytest.raises(DicomValueError, match="below"):
        values.roi_number(ds, "s.dcm")
    with pytest.raises(DicomValueError, match="not a multiple of 3"):
        values.contour_points([1, 2, 3, 4], "s.dcm", "GTV")
    # a dataset without preamble (implicit VR, group 0008 first) is recognised; text is not
    implicit = tmp_path / "implicit"
    implicit.write_bytes(b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 100")  # (0008,0005), length 10
    assert values.looks_like_dicom(implicit)[0]
    (tmp_path / "t.txt").write_text("hello world, not DICOM at all" * 10)
    assert not values.looks_like_dicom(tmp_path / "t.txt")[0]
