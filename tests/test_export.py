"""exportRT: round trip, conformance (dciodvfy), references, strictness rules, atomic writes."""

import shutil
import subprocess
import warnings

import numpy as np
import pydicom
import pytest

from grtv_nb import open_study
from grtv_nb.errors import GRTVWarning, ValidationError
from grtv_nb.export import export_rt
from tests_support import shared_case


def _open(p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_study(p)


def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2 * (a & b).sum() / s


@pytest.fixture(scope="module")
def exported(phantom_dir, tmp_path_factory):
    st = _open(phantom_dir)
    lungs = st.mask("Lung_L") | st.mask("Lung_R")
    st.add_roi("Lungs", lungs, (255, 255, 0))
    out = tmp_path_factory.mktemp("export") / "rt"
    export_rt(st, out)
    return st, out


def test_round_trip_masks_names_numbers_colours_dose(exported):
    st, out = exported
    st2 = _open(out)
    assert st2.roi_names == st.roi_names
    for i, r in enumerate(st.rois):
        r2 = st2.rois[i]
        assert (r2.number, r2.color) == (r.number, r.color)
        if st.volume_cc(i) > 1:
            assert dice(st.mask(i), st2.mask(i)) >= 0.99, r.name
    rd = pydicom.dcmread(next(out.glob("RD_*.dcm")))
    step = float(rd.DoseGridScaling)
    assert np.abs(st.ds["dose"].values - st2.ds["dose"].values).max() <= step + 1e-6
    assert np.array_equal(st.ds["image"].values, st2.ds["image"].values)


def test_references_and_strict_rules(exported):
    st, out = exported
    cts = [pydicom.dcmread(f) for f in sorted(out.glob("CT_*.dcm"))]
    rs = pydicom.dcmread(next(out.glob("RS_*.dcm")))
    rd = pydicom.dcmread(next(out.glob("RD_*.dcm")))
    for_uid = cts[0].FrameOfReferenceUID
    assert rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == for_uid
    assert rd.FrameOfReferenceUID == for_uid
    assert all(r.ReferencedFrameOfReferenceUID == for_uid for r in rs.StructureSetROISequence)
    se = rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert se.SeriesInstanceUID == cts[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in se.ContourImageSequence} == {c.SOPInstanceUID for c in cts}
    assert "ReferencedRTPlanSequence" not in rd  # no plan exported, so none referenced
    for ds in (rs, rd):
        assert str(ds.PatientName) and ds.PatientID and ds.StudyInstanceUID == cts[0].StudyInstanceUID
        assert ds.SOPInstanceUID not in {c.SOPInstanceUID for c in cts}
    types = {o.ReferencedROINumber: o.RTROIInterpretedType for o in rs.RTROIObservationsSequence}
    assert types[1] == "EXTERNAL" and all(types.values())
    raw = pydicom.dcmread(next(out.glob("RS_*.dcm")), defer_size=None)
    for roi in raw.ROIContourSequence:
        for c in roi.get("ContourSequence", []):
            assert int(c.NumberOfContourPoints) >= 3
            assert all(len(str(v)) <= 16 for v in c.ContourData)
    assert rd.pixel_array.dtype == np.uint32


def test_hole_encoded_as_inner_loop(exported):
    st, out = exported
    rs = pydicom.dcmread(next(out.glob("RS_*.dcm")))
    spine = next(r for r in rs.ROIContourSequence if r.ReferencedROINumber == st.rois[st.roi_index("Spine")].number)
    zs = [round(float(c.ContourData[2]), 2) for c in spine.ContourSequence]
    assert max(zs.count(z) for z in set(zs)) == 2  # outer loop + hole on each plane


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) is not installed")
def test_dciodvfy_reports_no_errors(exported):
    _, out = exported
    for f in [next(out.glob("RS_*.dcm")), next(out.glob("RD_*.dcm"))]:
        r = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True)
        errors = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, f"{f.name}: {errors}"


def test_refuses_source_folder_file_path_and_non_empty(phantom_dir, tmp_path):
    st = _open(phantom_dir)
    with pytest.raises(ValidationError, match="read from"):
        export_rt(st, phantom_dir)
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ValidationError, match="is a file"):
        export_rt(st, f)
    d = tmp_path / "full"
    d.mkdir()
    (d / "keep.txt").write_text("user data")
    with pytest.raises(ValidationError, match="not empty"):
        export_rt(st, d)
    assert (d / "keep.txt").read_text() == "user data"
    with pytest.raises(ValidationError, match="not a grtv_nb export"):
        export_rt(st, d, overwrite=True)  # overwrite replaces a previous export only, never user data
    assert sorted(p.name for p in d.iterdir()) == ["keep.txt"]
    e = tmp_path / "exp"
    export_rt(st, e)
    first = {p.name: p.read_bytes() for p in e.glob("R[SD]_*.dcm")}
    with pytest.raises(ValidationError, match="previous grtv_nb export"):
        export_rt(st, e)
    export_rt(st, e, overwrite=True)
    assert {p.name for p in e.glob("R[SD]_*.dcm")} == set(first)
    assert e.joinpath("RS_grtv_nb.dcm").read_bytes() != first["RS_grtv_nb.dcm"]  # new UIDs: replaced


def test_crash_mid_export_leaves_nothing_under_the_final_name(phantom_dir, tmp_path, monkeypatch):
    st = _open(phantom_dir)
    import grtv_nb.dicom.rtdose as rtdose

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rtdose, "build_rtdose", boom)
    with pytest.raises(RuntimeError):
        export_rt(st, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # temporary folder removed too


def test_long_roi_name_warns(phantom_dir, tmp_path):
    st = _open(phantom_dir)
    st.add_roi("A_very_long_structure_name", st.mask("PTV"), (1, 2, 3))
    with pytest.warns(GRTVWarning, match="longer than 16"):
        export_rt(st, tmp_path / "o")


def test_blank_uids_and_patient_are_filled(shared_data, tmp_path):
    st = _open(shared_case(shared_data, "totalsegmentator-example/example_ct_dicom"))
    m = np.zeros(st.grid.shape, bool)
    m[5:15, 200:300, 200:300] = True
    st.add_roi("box", m, (0, 255, 0))
    with pytest.warns(GRTVWarning, match="PatientID"):
        export_rt(st, tmp_path / "o")
    cts = [pydicom.dcmread(f) for f in (tmp_path / "o").glob("CT_*.dcm")]
    assert all(c.SOPInstanceUID and c.SeriesInstanceUID and c.StudyInstanceUID and c.PatientID for c in cts)
    st2 = _open(tmp_path / "o")
    assert dice(st2.mask("box"), m) == 1.0
