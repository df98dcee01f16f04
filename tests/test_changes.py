"""setNewROI, setDose, exportROIMesh through the facade: validation, and a study unchanged after any
failed call."""

import numpy as np
import pytest

from grtv import GRTV_STATUS_FALIED, GRTV_STATUS_OK, pyGRTV
from grtv_nb.errors import GRTVWarning


@pytest.fixture()
def g(phantom_dir):
    g = pyGRTV()
    with _nowarn():
        assert g.readRTDir(str(phantom_dir)) == GRTV_STATUS_OK
    return g


class _nowarn:
    def __enter__(self):
        import warnings

        self._c = warnings.catch_warnings()
        self._c.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *a):
        self._c.__exit__(*a)


def snapshot(g):
    st = g.study
    return (list(st.roi_names), None if not st.has_dose else float(st.ds["dose"].sum()))


def test_setnewroi_adds_volume_contours_mesh_dvh(g):
    st = g.study
    ret, body = g.readGRTVRaw(g.GRTV_DATA_TYPE_ROI, dataID=0)
    assert g.setNewROI(body, "Body copy", [10, 20, 30]) == GRTV_STATUS_OK
    i = st.roi_index("Body copy")
    # the copy is BODY's voxel mask; BODY's own volume is what its contours enclose (exact slabs)
    assert st.volume_cc(i) == pytest.approx(st.volume_cc(0), rel=0.005)
    assert len(st.contours(i)) == len(st.contours(0))
    assert st.mesh(i).volume_cc() == pytest.approx(st.volume_cc(i), rel=0.03)
    d = st.dvh()
    assert "Body copy" in d.roi_names
    # BODY: exact engine on the RTDOSE grid; the copy (a mask ROI): voxels of the resampled dose
    body_mean = float(d.stats["mean"].sel(roi="BODY"))
    assert float(d.stats["mean"].sel(roi="Body copy")) == pytest.approx(body_mean, rel=0.01)


@pytest.mark.parametrize(
    "raw,name,color,msg",
    [
        (np.zeros((3, 4, 5), np.uint8), "x", (1, 2, 3), "shape"),
        ("full", "BODY", (1, 2, 3), "already used"),
        ("full", "ok", (1, 2), "roiColor"),
        ("full", "ok", (1, 2, 300), "roiColor"),
        ("neg", "ok", (1, 2, 3), "0..255"),
        ("nan", "ok", (1, 2, 3), "NaN"),
        ("obj", "ok", (1, 2, 3), "numeric"),
    ],
)
def test_setnewroi_refusals_leave_the_study_unchanged(g, raw, name, color, msg):
    shape = g.study.grid.shape
    if isinstance(raw, str):
        raw = {"full": np.full(shape, 255, np.uint8), "neg": np.full(shape, -1, np.int16),
               "nan": np.full(shape, np.nan), "obj": np.empty(shape, object)}[raw]
    before = snapshot(g)
    with pytest.warns(GRTVWarning, match=msg):
        assert g.setNewROI(raw, name, color) == GRTV_STATUS_FALIED
    assert snapshot(g) == before
    assert msg.split()[0] in g.lastError or msg in g.lastError


def test_all_zero_roi_allowed_with_warning(g):
    with pytest.warns(GRTVWarning, match="empty"):
        assert g.setNewROI(np.zeros(g.study.grid.shape, np.uint8), "Nothing", (1, 2, 3)) == GRTV_STATUS_OK
    assert g.study.volume_cc("Nothing") == 0.0


def test_setdose_recomputes_dvhs_and_validates(g):
    st = g.study
    shape = st.grid.shape
    old = st.dvh()
    assert g.setDose(np.full(shape, 200, np.uint16)) == GRTV_STATUS_OK  # 2 Gy everywhere
    new = st.dvh()
    assert new is not old
    assert float(new.stats["mean"].sel(roi="Liver")) == pytest.approx(2.0)
    ret, d = g.readGRTVRaw(g.GRTV_DATA_TYPE_DOSE)
    assert d.dtype == np.uint16 and int(d.max()) == 200
    before = snapshot(g)
    for bad, msg in [(np.full(shape, -5.0), "0..65535"), (np.full(shape, np.nan), "NaN"),
                     (np.zeros((2, 2, 2)), "shape"), (np.full(shape, 70000.0), "0..65535")]:
        with pytest.warns(GRTVWarning, match=msg):
            assert g.setDose(bad) == GRTV_STATUS_FALIED
        assert snapshot(g) == before


def test_export_roi_mesh_stl_and_ply(g, tmp_path):
    assert g.exportROIMesh(dataID=9, meshPath=str(tmp_path / "ptv.stl")) == GRTV_STATUS_OK
    assert g.exportROIMesh(9, str(tmp_path / "ptv.ply"), g.GRTV_MESH_TYPE_PLY) == GRTV_STATUS_OK
    import trimesh

    a = trimesh.load(tmp_path / "ptv.stl")
    b = trimesh.load(tmp_path / "ptv.ply")
    assert a.is_watertight and len(b.faces) == len(a.faces)
    assert a.volume / 1000 == pytest.approx(g.study.volume_cc(9), rel=0.03)
    with pytest.warns(GRTVWarning, match="ROI index 99"):
        assert g.exportROIMesh(99, str(tmp_path / "x.stl")) == GRTV_STATUS_FALIED
    with pytest.warns(GRTVWarning, match="meshType"):
        assert g.exportROIMesh(9, str(tmp_path / "x.stl"), 7) == GRTV_STATUS_FALIED


def test_export_rt_via_facade_refuses_source(g, phantom_dir):
    with pytest.warns(GRTVWarning, match="read from"):
        assert g.exportRT(str(phantom_dir)) == GRTV_STATUS_FALIED


def test_calls_before_reading_fail_clearly():
    g = pyGRTV()
    with pytest.warns(GRTVWarning, match="readRTDir"):
        ret, vol = g.readGRTVRaw(g.GRTV_DATA_TYPE_IMAGE)
    assert ret == GRTV_STATUS_FALIED and vol is None
    lst = []
    with pytest.warns(GRTVWarning):
        assert g.getROIList(lst) == GRTV_STATUS_FALIED
    assert g.closeGRTVTFSession() == GRTV_STATUS_OK
    assert g.GRTV_STATUS_FAILED == g.GRTV_STATUS_FALIED


def test_augment_through_facade_is_reproducible_with_seed(g, tmp_path):
    ret, ct = g.readGRTVRaw(g.GRTV_DATA_TYPE_IMAGE)
    ret, lung = g.readGRTVRaw(g.GRTV_DATA_TYPE_ROI, dataID=5)
    for d in ("a", "b"):
        assert g.augmentImg3D([ct, lung], str(tmp_path / d), augmentTimes=2, fileNameList=["ct", "lung"],
                              deform=True, deformRate=0.05, seed=7) == GRTV_STATUS_OK
    for name in ("ct.0001.raw", "ct.0002.raw", "lung.0002.raw"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with pytest.warns(GRTVWarning, match="augmentTimes|times"):
        assert g.augmentImg3D([ct], str(tmp_path / "c"), augmentTimes=-1) == GRTV_STATUS_FALIED
