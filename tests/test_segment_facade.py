"""predNewROI and closeGRTVTFSession through the facade: an auto-contour becomes an ordinary ROI
(volume, contours, mesh, DVH, export), and every bad input of issue 5 (MR image, 1-slice volume,
unknown organ name, organ not in the CT, name taken, bad colour) gives FALIED with a warning that
says what is wrong, leaving the study unchanged."""

from __future__ import annotations

import os

import numpy as np
import pytest

from grtv import GRTV_STATUS_FALIED, GRTV_STATUS_OK, pyGRTV
from grtv_nb.errors import GRTVWarning
from tests_support import shared_case


@pytest.fixture(autouse=True)
def _no_models(tmp_path, monkeypatch):
    # an empty model folder: the classical methods run, whatever the user's cache holds
    monkeypatch.setenv("GRTV_NB_MODEL_DIR", str(tmp_path / "no-models"))


def _open(folder) -> pyGRTV:
    g = pyGRTV()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert g.readRTDir(str(folder)) == GRTV_STATUS_OK
    return g


def _state(g):
    st = g.study
    return list(st.roi_names), [st.volume_cc(i) for i in range(len(st.rois))]


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_prednewroi_adds_an_ordinary_roi(phantom_dir, tmp_path):
    g = _open(phantom_dir)
    n = len(g.study.rois)
    assert g.predNewROI("llung", (0, 0, 255)) == GRTV_STATUS_OK
    assert g.predNewROI("rlung", (0, 255, 0)) == GRTV_STATUS_OK
    st = g.study
    assert len(st.rois) == n + 2
    i = st.roi_index("llung")
    assert _dice(st.mask(i), st.mask("Lung_L")) >= 0.95
    assert st.volume_cc(i) == pytest.approx(st.volume_cc("Lung_L"), rel=0.05)
    assert st.contours(i)  # contours for the RTSTRUCT
    assert not st.mesh(i).is_empty
    roi_list = []
    assert g.getROIList(roi_list) == GRTV_STATUS_OK
    assert {"llung", "rlung"} <= {r["roi_name"] for r in roi_list}
    assert g.exportROIMesh(i, str(tmp_path / "llung.stl")) == GRTV_STATUS_OK
    assert g.exportRT(str(tmp_path / "export")) == GRTV_STATUS_OK
    g2 = _open(tmp_path / "export")
    j = g2.study.roi_index("llung")
    assert _dice(g2.study.mask(j), st.mask(i)) >= 0.99
    assert g.closeGRTVTFSession() == GRTV_STATUS_OK
    assert g.closeGRTVTFSession() == GRTV_STATUS_OK  # safe twice


def test_prednewroi_bad_names_and_colours_leave_the_study_unchanged(phantom_dir):
    g = _open(phantom_dir)
    before = _state(g)
    with pytest.warns(GRTVWarning, match="pancreas.*(body|llung)"):
        assert g.predNewROI("pancreas", (1, 2, 3)) == GRTV_STATUS_FALIED
    with pytest.warns(GRTVWarning, match="roiColor|colou?r"):
        assert g.predNewROI("llung", (300, 0, 0)) == GRTV_STATUS_FALIED
    with pytest.warns(GRTVWarning, match="64 characters"):
        assert g.predNewROI("llung" + "x" * 70, (0, 0, 255)) == GRTV_STATUS_FALIED
    assert g.predNewROI("llung", (0, 0, 255)) == GRTV_STATUS_OK
    after_one = _state(g)
    with pytest.warns(GRTVWarning, match="already used"):
        assert g.predNewROI("llung", (0, 0, 255)) == GRTV_STATUS_FALIED
    assert _state(g) == after_one
    assert after_one[0][: len(before[0])] == before[0]


def test_prednewroi_organ_not_in_the_ct(shared_data):
    g = _open(shared_case(shared_data, "pycerr-headneck-ct/head_and_neck/pt_1"))
    before = _state(g)
    for organ in ("liver", "stomach", "lkidney"):
        with pytest.warns(GRTVWarning, match=f"could not find the {organ[1:] if organ == 'lkidney' else organ}"):
            assert g.predNewROI(organ, (255, 0, 0)) == GRTV_STATUS_FALIED
    assert _state(g) == before
    assert "could not find" in g.lastError


def test_prednewroi_mr_volume(shared_data, tmp_path):
    """A 3D MR series (TotalSegmentator's example MR, 20 slices, written as DICOM MR with
    pydicom): refused because it is not CT, not because of its size."""
    pytest.importorskip("nibabel")
    from nifti_ref import TS, load_nifti_lps, write_image_series

    if not (TS / "example_mr_sm.nii.gz").exists():
        pytest.skip("totalsegmentator-example/example_mr_sm.nii.gz not found")
    mr = load_nifti_lps(TS / "example_mr_sm.nii.gz", dtype=np.int16)
    g = _open(write_image_series(mr, tmp_path / "mr", modality="MR"))
    assert g.study.image.shape[0] == mr.shape[0] > 1
    before = _state(g)
    with pytest.warns(GRTVWarning, match="modality is 'MR'"):
        assert g.predNewROI("body", (255, 0, 0)) == GRTV_STATUS_FALIED
    assert _state(g) == before


def test_prednewroi_one_slice(shared_data, tmp_path):
    src = shared_case(shared_data, "pydicom-rt-testfiles/CT_small.dcm")
    folder = tmp_path / "case"
    folder.mkdir()
    os.symlink(src, folder / src.name)
    g = _open(folder)
    before = _state(g)
    with pytest.warns(GRTVWarning, match="1 slice"):
        assert g.predNewROI("body", (255, 0, 0)) == GRTV_STATUS_FALIED
    assert _state(g) == before
