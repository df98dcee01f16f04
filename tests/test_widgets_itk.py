"""The optional itkwidgets adapter (grtv_nb.widgets.itk), offline: itkwidgets is not installed in the
tested environment (its 1.0 alphas would downgrade zarr and numcodecs), so ``itkwidgets.view`` and
``itkwasm.Image`` are fakes that record what they are handed. The geometry handed over is checked
against the DICOM tags read here with pydicom (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing, rescale): every sampled stored pixel, placed in LPS space from its own slice's tags,
must land on the voxel of the handed array that holds its value. ROI labels are checked against the
study's masks and the RTSTRUCT contour points. The refusal paths (not installed, 0.x, front end
missing) are run for real (a broken itkwidgets package on sys.path)."""

from __future__ import annotations

import importlib.machinery
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pydicom = pytest.importorskip("pydicom")

from grtv_nb import open_study  # noqa: E402
from grtv_nb.errors import ViewerUnavailableError  # noqa: E402
from grtv_nb.widgets import itk as itk_adapter  # noqa: E402


def _open(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_study(folder)


# ------------------------------------------------------------------ fakes of itkwidgets and itkwasm
@dataclass
class FakeImageType:
    dimension: int = 2
    componentType: str = "uint8"
    pixelType: str = "Scalar"
    components: int = 1


@dataclass
class FakeImage:
    imageType: FakeImageType = field(default_factory=FakeImageType)
    name: str = "Image"
    origin: list = field(default_factory=list)
    spacing: list = field(default_factory=list)
    direction: np.ndarray = field(default_factory=lambda: np.eye(2))
    size: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    data: np.ndarray | None = None


@pytest.fixture
def fake_itkwidgets(monkeypatch):
    calls: list[dict] = []
    viewer = object()

    def view(**kwargs):
        calls.append(kwargs)
        return viewer

    iw = types.ModuleType("itkwidgets")
    iw.__spec__ = importlib.machinery.ModuleSpec("itkwidgets", None)
    iw.view = view
    wasm = types.ModuleType("itkwasm")
    wasm.__spec__ = importlib.machinery.ModuleSpec("itkwasm", None)
    wasm.Image, wasm.ImageType = FakeImage, FakeImageType
    monkeypatch.setitem(sys.modules, "itkwidgets", iw)
    monkeypatch.setitem(sys.modules, "itkwasm", wasm)
    return calls, viewer


# ------------------------------------------------------------------ independent geometry from DICOM tags
def _ct_slices(folder: Path, series_uid: str):
    out = []
    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(f)
        except Exception:
            continue
        if ds.get("SeriesInstanceUID") == series_uid and "PixelData" in ds:
            out.append(ds)
    return out


def _check_geometry(study, image: FakeImage, folder: Path, rng, per_slice: int = 300):
    """Every sampled stored pixel, placed in LPS by its own slice's DICOM tags, is found at the voxel of
    the handed image that the handed origin/spacing/direction give for that point."""
    origin = np.asarray(image.origin, float)
    spacing = np.asarray(image.spacing, float)
    direction = np.asarray(image.direction, float)
    data = image.data
    assert list(image.size) == list(data.shape[::-1]) and image.imageType.dimension == 3
    assert image.imageType.componentType == data.dtype.name
    assert np.allclose(direction.T @ direction, np.eye(3), atol=1e-6)  # orthonormal columns
    uid = study.image_headers[0].SeriesInstanceUID
    slices = _ct_slices(folder, uid)
    assert len(slices) == data.shape[0]
    for ds in slices[:: max(1, len(slices) // 6)]:
        ipp = np.asarray(ds.ImagePositionPatient, float)
        iop = np.asarray(ds.ImageOrientationPatient, float)
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)  # between rows, between columns
        px = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1)) + float(
            getattr(ds, "RescaleIntercept", 0))
        r = rng.integers(0, ds.Rows, per_slice)
        c = rng.integers(0, ds.Columns, per_slice)
        points = ipp + np.outer(c * col_mm, iop[:3]) + np.outer(r * row_mm, iop[3:])  # DICOM C.7.6.2.1.1
        ijk = ((points - origin) @ direction) / spacing  # ITK: p = origin + D @ (spacing * ijk)
        assert np.allclose(ijk, np.round(ijk), atol=1e-3), "DICOM pixel centres are not on the handed grid"
        i, j, k = np.round(ijk).astype(int).T
        assert np.all((i >= 0) & (i < data.shape[2]) & (j >= 0) & (j < data.shape[1]) & (k >= 0) & (k < data.shape[0]))
        assert np.abs(data[k, j, i] - px[r, c]).max() <= 0.5 + 1e-6  # stored as integers
        assert np.ptp(px[r, c]) > 10  # the sample has contrast (20x the tolerance): misplaced voxels would not match


def _contour_points(folder: Path, roi_name: str) -> np.ndarray:
    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            continue
        if ds.get("Modality") != "RTSTRUCT":
            continue
        number = {s.ROINumber: s.ROIName for s in ds.StructureSetROISequence}
        for rc in ds.ROIContourSequence:
            if number.get(rc.ReferencedROINumber) == roi_name:
                return [np.asarray(c.ContourData, float).reshape(-1, 3) for c in rc.ContourSequence]
    raise AssertionError(f"{roi_name} not in an RTSTRUCT of {folder}")


def _check_labels(study, calls, folder: Path):
    kw = calls[-1]
    lab = kw["label_image"]
    names = dict(kw["label_names"])
    assert sorted(names.values()) == sorted(study.roi_names)
    assert set(np.unique(lab.data)) <= {0, *names}
    union = np.zeros(study.grid.shape, bool)
    for value, name in names.items():
        m = study.mask(name)
        union |= m
        assert not np.any((lab.data == value) & ~m), f"{name}: labelled outside its mask"
    assert np.array_equal(lab.data > 0, union)
    # the smallest ROI keeps all its voxels; its contours' centroids (LPS, from the RTSTRUCT) carry its label
    smallest = min(names, key=lambda v: study.voxel_count(names[v]))
    assert np.array_equal(lab.data == smallest, study.mask(names[smallest]))
    origin, spacing, direction = (np.asarray(getattr(lab, a), float) for a in ("origin", "spacing", "direction"))
    polys = [p for p in _contour_points(folder, names[smallest]) if len(p) >= 8]
    hits = []
    for p in polys:
        i, j, k = np.round(((p.mean(axis=0) - origin) @ direction) / spacing).astype(int)
        hits.append(lab.data[k, j, i] == smallest)
    assert polys and np.mean(hits) >= 0.9


# ------------------------------------------------------------------ tests
def test_phantom_hfs_and_hfp(fake_itkwidgets, phantom_dir, phantom_study, tmp_path):
    from grtv_nb.phantom import write_phantom

    calls, viewer = fake_itkwidgets
    rng = np.random.default_rng(0)
    hfp = write_phantom(tmp_path / "HFP", "HFP", nx=96, ny=72, pixel_mm=4.0)
    for folder, st in ((phantom_dir, phantom_study), (hfp, _open(hfp))):
        assert itk_adapter.show_in_itkwidgets(st, ui_collapsed=True) is viewer
        kw = calls[-1]
        assert kw["ui_collapsed"] is True
        assert kw["image"].data.dtype == st.image.dtype
        _check_geometry(st, kw["image"], folder, rng)
        _check_labels(st, calls, folder)
        assert kw["label_image"].origin == kw["image"].origin and kw["label_image"].spacing == kw["image"].spacing
        assert kw["label_image"].data.dtype == np.uint8


def test_real_lung_ct_with_gtv(fake_itkwidgets, shared_data):
    folder = shared_data / "cerr-radiomics-phantom" / "pat_1"
    if not folder.is_dir():
        pytest.skip("cerr-radiomics-phantom/pat_1 not found")
    calls, _ = fake_itkwidgets
    st = _open(folder)
    itk_adapter.show_in_itkwidgets(st)
    _check_geometry(st, calls[-1]["image"], folder, np.random.default_rng(1))
    _check_labels(st, calls, folder)


def test_oblique_series(fake_itkwidgets, shared_data):
    folder = shared_data / "rt-utils-testdata" / "tests" / "oriented_data"
    if not folder.is_dir():
        pytest.skip("rt-utils-testdata oriented_data not found")
    calls, _ = fake_itkwidgets
    st = _open(folder)
    assert not st.grid.axis_aligned
    itk_adapter.show_in_itkwidgets(st)
    kw = calls[-1]
    assert not np.allclose(kw["image"].direction, np.eye(3), atol=0.1)
    assert "label_image" not in kw  # no ROIs: no label map
    _check_geometry(st, kw["image"], folder, np.random.default_rng(2), per_slice=1000)


def test_roi_subset_and_label_values(phantom_study):
    names = phantom_study.roi_names
    sub = [names[-1], names[0]]
    inp = itk_adapter.itk_inputs(phantom_study, rois=sub)
    assert inp.label_names == [(len(names), names[-1]), (1, names[0])]
    assert set(np.unique(inp.label_image)) <= {0, 1, len(names)}
    # asked smallest first: still painted largest first, so every ROI inside another stays visible
    by_size = sorted(names, key=phantom_study.voxel_count)
    inp = itk_adapter.itk_inputs(phantom_study, rois=by_size)
    smallest = phantom_study.roi_index(by_size[0]) + 1
    assert np.array_equal(inp.label_image == smallest, phantom_study.mask(by_size[0]))
    assert all(np.any(inp.label_image == phantom_study.roi_index(n) + 1) for n in names)


def test_refused_when_not_installed(monkeypatch, phantom_study):
    monkeypatch.setitem(sys.modules, "itkwidgets", None)  # import machinery: "not installed"
    with pytest.raises(ViewerUnavailableError, match="not installed.*dashboard"):
        itk_adapter.show_in_itkwidgets(phantom_study)


def test_refused_when_front_end_cannot_load(monkeypatch, tmp_path, phantom_study):
    pkg = tmp_path / "itkwidgets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "raise RuntimeError('imjoy-jupyterlab-extension is required. "
        "`pip install itkwidgets[lab]` and refresh page.')\n")
    monkeypatch.delitem(sys.modules, "itkwidgets", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ViewerUnavailableError, match="front end cannot load.*imjoy-jupyterlab-extension.*dashboard"):
        itk_adapter.show_in_itkwidgets(phantom_study)


def test_refused_for_itkwidgets_0x(monkeypatch, fake_itkwidgets, phantom_study):
    calls, _ = fake_itkwidgets
    monkeypatch.setattr(itk_adapter.importlib.metadata, "version", lambda name: "0.32.6")
    with pytest.raises(ViewerUnavailableError, match=r"0\.32\.6.*ipywidgets < 8.*dashboard"):
        itk_adapter.show_in_itkwidgets(phantom_study)
    assert not calls
