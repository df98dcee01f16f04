"""Widgets (grtv_nb.widgets) without a browser: slice rendering checked against independent
formulas (window/level arithmetic, scipy.ndimage erosion for outlines, nearest-coordinate lookup for
the physical-aspect resampling), viewer behaviour (events, presets, linking), bad input (no dose,
no ROIs, no image, 2-slice and 1000-slice volumes) and the static PNG fallback."""

from __future__ import annotations

import base64
import csv
import io

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
xr = pytest.importorskip("xarray")

from grtv_nb.display import window_level  # noqa: E402
from grtv_nb.errors import ValidationError  # noqa: E402
from grtv_nb.widgets import render as R  # noqa: E402
from grtv_nb.widgets._synthetic import synthetic_dataset  # noqa: E402


@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset((24, 64, 80), (3.0, 2.0, 2.0), n_rois=6)


@pytest.fixture(scope="module")
def arrays(ds):
    return R.StudyArrays(ds)


def _png_rgb(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------------------------------------
# render.py
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", list(R.PRESETS))
def test_window_matches_linear_formula(preset):
    w, lev = R.PRESETS[preset]
    hu = np.arange(-1100, 3100, 7, dtype=np.int16).reshape(-1, 4)
    expect = np.clip(np.round((hu.astype(np.float64) - (lev - w / 2)) / w * 255), 0, 255)
    got = R.apply_window(hu, w, lev)
    assert got.dtype == np.uint8
    assert np.array_equal(got, window_level(hu, level=lev, width=w))  # the shared implementation
    assert np.abs(got.astype(int) - expect).max() <= 1
    # float images go through arithmetic, same result
    got_f = R.apply_window(hu.astype(np.float32), w, lev)
    assert np.abs(got_f.astype(int) - expect).max() <= 1


def test_outline_equals_mask_minus_erosion():
    from scipy import ndimage

    yy, xx = np.mgrid[:60, :70]
    m = ((yy - 30) ** 2 / 400 + (xx - 30) ** 2 / 300 <= 1) | ((yy > 5) & (yy < 15) & (xx > 50))
    m[0:3, 0:70] = True  # touching the image edge
    ref = m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(2, 1), border_value=0)
    assert np.array_equal(R.outline(m), ref)
    ref2 = m & ~ndimage.binary_erosion(
        m, structure=ndimage.generate_binary_structure(2, 1), iterations=2, border_value=0
    )
    assert np.array_equal(R.outline(m, thick=2), ref2)


def test_plane_geometry_true_aspect_and_nonuniform_z():
    z = np.array([0.0, 2.0, 4.0, 10.0, 16.0, 17.0, 18.0])  # gaps of 2, 6 and 1 mm
    d = synthetic_dataset((7, 20, 30), (2.0, 1.0, 1.0), n_rois=2, z=z)
    a = R.StudyArrays(d)
    g = R.plane_geometry(a, "coronal")
    # square display pixels of the in-plane spacing; physical height = z extent (boundaries half-way)
    assert g.col_mm == pytest.approx(1.0) and g.row_mm == pytest.approx(1.0, rel=0.05)
    extent = (z[-1] + 0.5) - (z[0] - 1.0)
    assert g.height * g.row_mm == pytest.approx(extent, abs=1e-6)
    # each display row shows the slice whose centre is nearest to the row's centre (superior on top)
    top = z[-1] + 0.5
    centres = top - (np.arange(g.height) + 0.5) * g.row_mm
    nearest = np.abs(centres[:, None] - z[None, :]).argmin(axis=1)
    assert np.array_equal(g.rmap, nearest)
    ax = R.plane_geometry(a, "axial")
    assert ax.identity and (ax.height, ax.width) == (20, 30)


def test_render_roi_outline_dose_and_toggle(arrays):
    a = arrays
    g = R.plane_geometry(a, "axial")
    iz = a.shape[0] // 2
    ptv = a.roi_names.index("PTV")
    color = np.array(a.roi_colors[ptv])
    mask2d = a.full_mask("PTV")[iz]
    assert mask2d.any()
    opts = R.RenderOptions(rois=[ptv], show_dose=False)
    rgb = R.render_slice(a, g, iz, opts)
    is_col = (rgb == color).all(axis=2)
    assert np.array_equal(is_col & mask2d, R.outline(mask2d))
    # toggled off: the grey image only
    off = R.render_slice(a, g, iz, R.RenderOptions(rois=[], show_dose=False))
    grey = R.apply_window(a.image[iz], 400, 40)
    assert np.array_equal(off, np.repeat(grey[:, :, None], 3, axis=2))
    # dose wash only where dose >= threshold
    thr = 0.3 * a.dose_max
    wash = R.render_slice(a, g, iz, R.RenderOptions(rois=[], dose_threshold=thr, dose_opacity=0.5))
    tinted = (wash != off).any(axis=2)
    assert np.array_equal(tinted & (a.dose[iz] < thr), np.zeros_like(tinted))
    assert tinted[a.dose[iz] >= thr].mean() > 0.9
    # filled: inside pixels blended at the opacity
    fill = R.render_slice(a, g, iz, R.RenderOptions(rois=[ptv], roi_mode="filled", roi_opacity=0.5, show_dose=False))
    inner = mask2d & ~R.outline(mask2d)
    expect = (grey[inner][:, None] * 0.5 + color * 0.5).astype(np.uint8)
    assert np.abs(fill[inner].astype(int) - expect).max() <= 1


def test_roi_on_resampled_planes_matches_mask(arrays):
    a = arrays
    for plane, idx in (("coronal", 30), ("sagittal", 40)):
        g = R.plane_geometry(a, plane)
        ptv = a.roi_names.index("PTV")
        full = a.full_mask("PTV")
        native = R.native_plane(full, plane, idx)
        disp = native[g.rmap[:, None], g.cmap[None, :]]
        rgb = R.render_slice(
            a, g, idx, R.RenderOptions(rois=[ptv], roi_mode="filled", roi_opacity=1.0, show_dose=False)
        )
        is_col = (rgb == np.array(a.roi_colors[ptv])).all(axis=2)
        assert disp.any() and np.array_equal(is_col & disp, disp)


def test_probe_reports_position_hu_dose_rois(arrays):
    a = arrays
    ijk = (12, 30, 45)
    p = a.probe(ijk)
    assert p["xyz_mm"] == (a.x[45], a.y[30], a.z[12])
    assert p["hu"] == a.image[ijk] and p["dose"] == pytest.approx(float(a.dose[ijk]))
    expect = [n for i, n in enumerate(a.roi_names) if a.full_mask(i)[ijk]]
    assert p["rois"] == expect
    g = R.plane_geometry(a, "coronal")
    row = g.display_row(12)
    assert a.voxel_at("coronal", 30, row, 45, g) == (12, 30, 45)


def test_png_roundtrip_both_encoders():
    rgb = np.random.default_rng(1).integers(0, 255, (17, 23, 3), dtype=np.uint8)
    assert np.array_equal(_png_rgb(R.encode_png(rgb)), rgb)
    assert np.array_equal(_png_rgb(R._png_zlib(rgb, 6)), rgb)


def test_bad_input_errors(arrays):
    with pytest.raises(ValidationError, match="Study or an xarray Dataset"):
        R.StudyArrays(np.zeros((2, 2, 2)))
    with pytest.raises(ValidationError, match="plane"):
        R.plane_geometry(arrays, "oblique")
    with pytest.raises(ValidationError, match="out of range"):
        R.render_slice(arrays, R.plane_geometry(arrays, "axial"), 999)
    with pytest.raises(ValidationError, match="not in study"):
        arrays.roi_index("nope")


# ---------------------------------------------------------------------------------------------
# SliceViewer
# ---------------------------------------------------------------------------------------------
def test_slice_viewer_events_presets_and_readout(ds):
    from grtv_nb.widgets import SliceViewer

    v = SliceViewer(ds)
    hot = np.unravel_index(int(np.argmax(v.arrays.dose)), v.arrays.shape)
    assert v.index["axial"] == hot[0]  # opens at the dose maximum
    v._on_canvas("axial", {"event": "step", "delta": -3})
    assert v.index["axial"] == hot[0] - 3 and v.sliders["axial"].value == hot[0] - 3
    v._on_canvas("axial", {"event": "step", "delta": 10_000})
    assert v.index["axial"] == v.arrays.shape[0] - 1  # clipped
    v.sliders["coronal"].value = 5
    assert v.index["coronal"] == 5
    g = v.geoms["axial"]
    v._on_canvas("axial", {"event": "click", "row": g.display_row(20), "col": g.display_col(33)})
    assert (v.index["coronal"], v.index["sagittal"]) == (20, 33)  # crosshairs follow
    assert "HU" in v.readout.value and "Gy" in v.readout.value and "mm" in v.readout.value
    # stepping one plane re-renders only that plane; the others just move their crosshair line
    cor_png, cor_row = v.canvases["coronal"].png, v.canvases["coronal"].cross_row
    ax_png = v.canvases["axial"].png
    v._on_canvas("axial", {"event": "step", "delta": -2})
    assert v.canvases["axial"].png != ax_png and v.canvases["coronal"].png == cor_png
    assert v.canvases["coronal"].cross_row == v.geoms["coronal"].display_row(v.index["axial"]) != cor_row
    v.crosshair.value = False
    assert v.canvases["coronal"].cross_row == -1 and v.canvases["coronal"].png == cor_png
    v.crosshair.value = True
    v.preset.value = "lung"
    assert (v.window.value, v.level.value) == R.PRESETS["lung"]
    v.window.value = 1234
    assert v.preset.value == "custom"
    png = v.canvases["axial"].png
    v.roi_state.set_visible("BODY", False)
    assert v.canvases["axial"].png != png
    bundle = v._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
    img = _png_rgb(base64.b64decode(bundle["image/png"]))
    assert img.shape[1] > 2 * img.shape[0] * 0.5


def test_viewer_without_dose_rois_or_image(ds):
    from grtv_nb.widgets import Dashboard, DVHChart, SliceViewer, View3D

    bare = ds.drop_vars(["dose", "masks", "roi", "roi_color", "roi_number", "roi_type"])
    v = SliceViewer(bare)
    assert v.legend is None and v.show_dose.disabled
    assert _png_rgb(v.to_png_bytes()).size
    d = Dashboard(bare)
    assert d.dvh.result is None and d.view3d is None and d.legend is None
    assert _png_rgb(d.to_png_bytes()).size
    no_dose = ds.drop_vars("dose")
    d2 = Dashboard(no_dose, show_3d=False)
    assert d2.dvh.result is None and d2.legend is not None
    # a clear panel, not a silently missing chart; the static picture says it too
    assert "grtv-dvh-empty" in d2.dvh.children[0].value and "no dose" in d2.dvh.children[0].value
    assert "no dose" in DVHChart(no_dose, background=True).children[0].value  # nothing to wait for
    assert len(np.unique(_png_rgb(d2.dvh.to_png_bytes()))) > 1
    assert Dashboard(no_dose, show_3d=False, show_dvh=False).dvh is None
    no_image = ds.drop_vars("image")
    v3 = SliceViewer(no_image)
    assert v3.render("axial").any()  # dose and ROIs on black
    empty3d = View3D(bare)
    assert "no ROIs or dose" in empty3d.status.value


@pytest.mark.parametrize("nz", [2, 1000])
def test_two_and_thousand_slice_volumes(nz):
    from grtv_nb.widgets import SliceViewer

    d = synthetic_dataset((nz, 24, 32), (1.0 if nz > 2 else 3.0, 2.0, 2.0), n_rois=3)
    v = SliceViewer(d)
    for p in R.PLANES:
        rgb = v.render(p)
        assert rgb.ndim == 3 and rgb.shape[0] >= 1
    g = v.geoms["coronal"]
    assert g.height * g.row_mm == pytest.approx(nz * (1.0 if nz > 2 else 3.0), rel=0.01)
    v._on_canvas("axial", {"event": "step", "delta": 5})
    assert v.index["axial"] == min(v.arrays.shape[0] - 1, int(np.argmax(v.arrays.dose)) // (24 * 32) + 5)


# ---------------------------------------------------------------------------------------------
# DVH chart, 3D view, dashboard
# ---------------------------------------------------------------------------------------------
def test_dvh_chart_legend_and_exports(ds, tmp_path):
    pytest.importorskip("matplotlib")
    from grtv_nb.dvh import compute_dvh
    from grtv_nb.widgets import DVHChart

    c = DVHChart(ds)
    a = c.arrays
    ref = compute_dvh(a.dose, a.grid, a.full_mask, roi_names=a.roi_names)
    assert np.allclose(c.result.cumulative.values, ref.cumulative.values)
    lines = c.figure().axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == a.roi_names
    c.roi_state.set_visible("PTV", False)
    assert "PTV" not in [ln.get_label() for ln in c.figure().axes[0].get_lines()]
    assert ">PTV<" not in c.table.value.replace("</span> ", ">")
    c.mode.value = "absolute"
    p = c.to_csv(tmp_path / "dvh.csv")
    rows = list(csv.reader(p.open()))
    assert rows[0][0] == "dose_gy" and len(rows) == len(c.result.dose) + 1
    body_col = rows[0].index("BODY (cc)")
    assert float(rows[1][body_col]) == pytest.approx(float(c.result.stats["volume_cc"].sel(roi="BODY")), rel=1e-3)
    png = c.save_png(tmp_path / "dvh.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    c.make_export_links()
    assert 'download="dvh.csv"' in c.export.value and 'download="dvh.png"' in c.export.value


def test_view3d_scene_styles_without_resending_meshes(ds):
    """Meshes go to the browser once; toggles, opacity and highlight change only the styles (so the
    browser keeps its camera); the mesh of each ROI encloses its mask's volume."""
    pytest.importorskip("anywidget")
    from grtv_nb.widgets import View3D

    v = View3D(ds, size=(200, 160))
    a = v.arrays
    names = [m["id"] for m in v.scene.meshes]
    assert names == a.roi_names
    sent = []
    v.scene.observe(lambda ch: sent.append(ch["name"]), ["meshes", "dose_mesh", "styles"])
    ptv = next(m for m in v.scene.meshes if m["id"] == "PTV")
    pts = np.frombuffer(ptv["pos"], np.float32).reshape(-1, 3)
    tri = np.frombuffer(ptv["idx"], np.uint32).reshape(-1, 3).astype(np.int64)
    p0, p1, p2 = (pts[tri[:, k]].astype(np.float64) for k in range(3))
    vol_cc = abs(np.einsum("ij,ij->i", p0, np.cross(p1, p2)).sum()) / 6 / 1000  # divergence theorem
    mask_cc = a.full_mask("PTV").sum() * np.prod([a.spacing(k) for k in range(3)]) / 1000
    assert vol_cc == pytest.approx(mask_cc, rel=0.1)
    # the canonical frame: PTV points lie within the PTV mask's bounding box in mm
    (z0, _, x0), (z1, _, x1) = a.crop("PTV").lo, a.crop("PTV").hi
    assert a.x[x0] - 2 <= pts[:, 0].min() and pts[:, 0].max() <= a.x[x1 - 1] + 2
    assert a.z[z0] - 3 <= pts[:, 2].min() and pts[:, 2].max() <= a.z[z1 - 1] + 3
    v.roi_state.set_visible("PTV", False)
    assert v.scene.styles["PTV"]["visible"] is False and v.scene.styles["BODY"]["visible"] is True
    v.roi_state.highlight = "Lung_L"
    assert v.scene.styles["Spine"]["opacity"] == pytest.approx(0.6 * 0.25)
    v.set_opacity("Spine", 0.3)
    v.roi_state.highlight = ""
    assert v.scene.styles["Spine"]["opacity"] == pytest.approx(0.3)
    assert set(sent) == {"styles"}  # no geometry sent again
    v.show_dose.value = True
    assert sent[-2:] == ["dose_mesh", "styles"] and v.scene.styles["__dose__"]["visible"]
    assert len(v.scene.dose_mesh["pos"]) > 0
    img = _png_rgb(v.to_png_bytes())
    assert len(np.unique(img.reshape(-1, 3) // 16, axis=0)) > 5
    proj = v.projection()
    assert proj.shape[:2] == (v.arrays.shape[0] * 3 // 2, v.arrays.shape[2])


def test_view3d_background_build_and_large_roi_subsampled():
    pytest.importorskip("anywidget")
    from grtv_nb.widgets import View3D
    from grtv_nb.widgets import view3d as V

    d = synthetic_dataset((60, 160, 200), (2.0, 1.0, 1.0), n_rois=3)
    a = R.StudyArrays(d)
    assert a.crop("BODY").mask.size > 1_000_000
    old = V.MAX_MESH_VOXELS
    V.MAX_MESH_VOXELS = 200_000  # BODY meshed from a 3x subsampled mask
    try:
        v = View3D(a, background=True)
        assert v.wait(120) and v.progress.value == 3 and v.progress.layout.display == "none"
    finally:
        V.MAX_MESH_VOXELS = old
    body = next(m for m in v.scene.meshes if m["id"] == "BODY")
    pts = np.frombuffer(body["pos"], np.float32).reshape(-1, 3)
    # the subsampled surface still spans the body: extent within 3 voxels of the mask's
    (_, _, x0), (_, _, x1) = a.crop("BODY").lo, a.crop("BODY").hi
    assert pts[:, 0].min() == pytest.approx(a.x[x0], abs=3.5)
    assert pts[:, 0].max() == pytest.approx(a.x[x1 - 1], abs=3.5)
    assert len(body["idx"]) // 12 < 60_000


def test_view3d_beside_tensorflow_in_one_process():
    """VTK render windows crash a process that also holds TensorFlow: the 3D view must keep them in
    its worker process, so a kernel can run both (checked in a fresh interpreter)."""
    import subprocess
    import sys

    pytest.importorskip("pyvista")
    pytest.importorskip("tensorflow")
    code = (
        "import tensorflow as tf; tf.constant(1.0) + 1\n"
        "from grtv_nb.widgets._synthetic import synthetic_dataset\n"
        "from grtv_nb.widgets import View3D\n"
        "v = View3D(synthetic_dataset(shape=(12, 40, 48)), size=(120, 100))\n"
        "assert len(v.scene.meshes) > 0\n"
        "assert len(v.to_png_bytes()) > 100\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_dashboard_links_views(ds):
    pytest.importorskip("pyvista")
    from grtv_nb.widgets import dashboard

    d = dashboard(ds)
    assert d.wait(120)
    assert d.slices.roi_state is d.roi_state is d.dvh.roi_state is d.view3d.roi_state
    d.legend.checkboxes["Lung_L"].value = False
    assert "Lung_L" not in d.roi_state.visible
    assert d.slices.roi_state.is_visible("Lung_L") is False
    assert "Lung_L" not in [ln.get_label() for ln in d.dvh.figure().axes[0].get_lines()]
    assert d.view3d.scene.styles["Lung_L"]["visible"] is False
    d.legend.highlight.value = "PTV"
    assert d.slices.options("axial").highlight == d.arrays.roi_names.index("PTV")
    bundle = d._repr_mimebundle_()
    assert "image/png" in bundle


def test_widgets_on_a_real_study(tmp_path):
    """The phantom written as DICOM and read back by open_study (a Study, lazily rasterised masks)."""
    pytest.importorskip("pyvista")
    import grtv_nb
    from grtv_nb.phantom import write_phantom
    from grtv_nb.widgets import dashboard

    study = grtv_nb.open_study(write_phantom(tmp_path / "phantom"))
    d = dashboard(study)
    assert d.wait(120)
    a = d.arrays
    assert a.roi_names == study.roi_names
    assert a.roi_colors == [tuple(int(v) for v in c) for c in study.ds["roi_color"].values]
    for name in ("PTV", "Spine"):
        c = a.crop(name)
        full = np.zeros(a.shape, bool)
        (z0, y0, x0), (z1, y1, x1) = c.lo, c.hi
        full[z0:z1, y0:y1, x0:x1] = c.mask
        assert np.array_equal(full, study.mask(name))
    ijk = tuple(int(i) for i in np.argwhere(study.mask("PTV"))[0])
    p = a.probe(ijk)
    assert p["hu"] == float(study.ds["image"].values[ijk]) and "PTV" in p["rois"]
    assert p["xyz_mm"] == (study.grid.x[ijk[2]], study.grid.y[ijk[1]], study.grid.z[ijk[0]])
    img = _png_rgb(d.to_png_bytes())
    assert (np.abs(img.astype(int) - (255, 0, 0)).max(axis=2) == 0).sum() > 20  # PTV outline in red


def test_mr_like_image_gets_a_data_window():
    from grtv_nb.widgets import SliceViewer

    d = synthetic_dataset((6, 20, 24), (3.0, 2.0, 2.0), n_rois=2, dose=False)
    d["image"] = (d["image"].astype(np.float32) + 1000.0) * 0.5  # positive, MR-like values
    v = SliceViewer(d)
    lo, hi = np.percentile(d["image"].values, [1, 99])
    assert v.preset.value == "custom"
    assert v.level.value == pytest.approx((lo + hi) / 2, abs=1) and v.window.value == pytest.approx(hi - lo, abs=1)
    assert len(np.unique(v.render("axial"))) > 2


# ---------------------------------------------------------------------------------------------
# Orientation, positions in mm, readout, mouse window/level, enlarge
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP", "FFP"])
def test_orientation_letters_match_anatomy(tmp_path, position):
    """The phantom written in each patient position: the letters on each plane name the side where
    its anatomy is drawn (liver on the patient's right, spine posterior, lungs superior)."""
    import grtv_nb
    from grtv_nb.phantom import ELLIPSOIDS, write_phantom
    from grtv_nb.widgets import SliceViewer

    study = grtv_nb.open_study(write_phantom(tmp_path / position, position, z_positions=np.arange(-90.0, 91.0, 6.0)))
    v = SliceViewer(study)
    assert v.labels == {
        "axial": ("A", "P", "R", "L"),
        "coronal": ("H", "F", "R", "L"),
        "sagittal": ("H", "F", "A", "P"),
    }
    a = v.arrays
    names = a.roi_names

    def centroid(plane, idx, roi):
        g = v.geoms[plane]
        opts = R.RenderOptions(rois=[names.index(roi)], roi_mode="filled", roi_opacity=1.0, show_dose=False)
        rgb = R.render_slice(a, g, idx, opts)
        rr, cc = np.nonzero((rgb == np.array(a.roi_colors[names.index(roi)])).all(axis=2))
        assert rr.size, (plane, roi)
        return rr.mean() / g.height, cc.mean() / g.width

    iz = int(np.argmin(np.abs(a.z - ELLIPSOIDS["Liver"][0][2])))
    r, c = centroid("axial", iz, "Liver")
    assert c < 0.5  # liver on the patient's right = the "R" side (left of the picture)
    r, c = centroid("axial", iz, "Spine")
    assert r > 0.5  # spine posterior = the "P" side (bottom)
    iy = int(np.argmin(np.abs(a.y - 0.0)))
    r, _ = centroid("coronal", iy, "Lung_R")
    r_liver, _ = centroid("coronal", iy, "Liver")
    assert r < r_liver  # lungs above the liver = "H" at the top
    ix = int(np.argmin(np.abs(a.x - 0.0)))
    _, c = centroid("sagittal", ix, "Spine")
    assert c > 0.5  # spine on the "P" side (right of the sagittal picture)
    # the static picture carries the letters too (yellow text)
    img = _png_rgb(v.to_png_bytes())
    assert (np.abs(img.astype(int) - (255, 215, 94)).max(axis=2) < 30).sum() > 30


def test_orientation_letters_oblique():
    t = np.deg2rad(30.0)
    d = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])  # x axis towards L and P
    top, bottom, left, right = R.orientation_labels(d, "axial")
    assert (right, left) == ("LP", "RA") and (bottom, top) == ("PR", "AL")
    assert R.orientation_labels(np.eye(3), "sagittal") == ("H", "F", "A", "P")
    with pytest.raises(ValidationError, match="plane"):
        R.orientation_labels(np.eye(3), "oblique")


def test_positions_in_mm_readout_follows_slice_and_mouse_window_level(ds):
    from grtv_nb.widgets import SliceViewer

    v = SliceViewer(ds)
    a = v.arrays
    v.sliders["axial"].value = 3
    assert v.position_mm("axial") == a.z[3]
    assert f"z {a.z[3]:.1f} mm" in v.positions["axial"].value
    v.sliders["sagittal"].value = 50
    assert f"x {a.x[50]:.1f} mm" in v.positions["sagittal"].value
    # hover: readout and the canvas corner show the voxel under the pointer
    g = v.geoms["axial"]
    v._on_canvas("axial", {"event": "hover", "row": g.display_row(30), "col": g.display_col(40)})
    assert f"z {a.z[3]:.1f} mm" in v.readout.value and f"HU {a.image[3, 30, 40]:.0f}" in v.readout.value
    assert f"{float(a.dose[3, 30, 40]):.2f} Gy" in v.canvases["axial"].info
    # a slice step under a still pointer: the readout follows to the new slice
    v._on_canvas("axial", {"event": "step", "delta": 10})
    assert f"z {a.z[13]:.1f} mm" in v.readout.value
    assert f"{float(a.dose[13, 30, 40]):.2f} Gy" in v.canvases["axial"].info
    # mouse window/level: 150 px right doubles the window (WL_PER_PX), 75 px down raises the level
    from grtv_nb.widgets.slices import WL_PER_PX

    w0, l0 = v.window.value, v.level.value
    png = v.canvases["axial"].png
    v._on_canvas("axial", {"event": "wl_start"})
    v._on_canvas("axial", {"event": "wl", "dx": 40, "dy": 0})
    v._on_canvas("axial", {"event": "wl", "dx": 150, "dy": 75})
    assert v.window.value == pytest.approx(w0 * (1 + 150 * WL_PER_PX))
    assert v.level.value == pytest.approx(l0 + 75 * w0 * WL_PER_PX)
    assert v.preset.value == "custom" and v.canvases["axial"].png != png
    o = v.options("axial")
    assert (o.window, o.level) == (v.window.value, v.level.value)  # what the canvas now shows
    v.preset.value = "lung"
    assert (v.window.value, v.level.value) == R.PRESETS["lung"]


def test_enlarge_one_plane(ds):
    from grtv_nb.widgets import SliceViewer
    from grtv_nb.widgets.slices import ENLARGE

    v = SliceViewer(ds)
    w0 = v.canvases["coronal"].display_width
    v._on_canvas("coronal", {"event": "enlarge"})
    assert v.canvases["coronal"].display_width == pytest.approx(w0 * ENLARGE, abs=1)
    assert v.canvases["coronal"].enlarged
    assert v.columns["axial"].layout.display == "none" and v.columns["coronal"].layout.display is None
    v._on_canvas("coronal", {"event": "enlarge"})  # again: all planes back
    assert v.canvases["coronal"].display_width == w0
    assert all(c.layout.display is None for c in v.columns.values())
    with pytest.raises(ValidationError, match="not shown"):
        SliceViewer(ds, planes=("axial",)).enlarge("coronal")


def test_dvh_cursor_query_and_zoom(ds):
    """Dx/Vx queries against the voxel doses of the ROI (uniform voxels: D95 is the 5th percentile,
    V20Gy the fraction of voxels >= 20 Gy); the cursor maps the picture to (dose, volume)."""
    pytest.importorskip("matplotlib")
    from grtv_nb.widgets import DVHChart
    from grtv_nb.widgets.dvhchart import parse_query

    c = DVHChart(ds)
    a = c.arrays
    d = np.sort(a.dose[a.full_mask("PTV")])[::-1]  # voxel doses, high to low
    vox_cc = float(np.prod([a.spacing(k) for k in range(3)])) / 1000.0
    q = c.query_values("D95, D2cc, V20Gy, V20Gy_cc, V95%")
    assert q["D95"]["PTV"] == pytest.approx(np.percentile(d, 5), abs=0.02 * a.dose_max)
    assert q["D2cc"]["PTV"] == pytest.approx(d[int(round(2.0 / vox_cc)) - 1], abs=0.02 * a.dose_max)
    assert q["V20Gy"]["PTV"] == pytest.approx((d >= 20).mean() * 100, abs=1.0)
    assert q["V20Gy_cc"]["BODY"] == pytest.approx((a.dose[a.full_mask("BODY")] >= 20).sum() * vox_cc, rel=0.02)
    assert q["V95%"]["PTV"] == pytest.approx((d >= 0.95 * a.dose_max).mean() * 100, abs=1.0)
    assert parse_query("D95, foo, V3x")[1] == ["foo", "V3x"]
    c.query.value = "D95, foo"
    assert "cannot read 'foo'" in c.query_table.value and ">PTV<" in c.query_table.value.replace("</span> ", ">")
    # cursor: the picture fraction of 20 Gy on the dose axis reads back 20 Gy and PTV's V20
    (x0, y0, x1, y1), (d0, d1), _ = c._axes
    fx = x0 + (20.0 - d0) / (d1 - d0) * (x1 - x0)
    dose, _vol = c.at_cursor(fx, (y0 + y1) / 2)
    assert dose == pytest.approx(20.0)
    c._on_chart({"event": "hover", "fx": fx, "fy": (y0 + y1) / 2})
    assert "<b>20.00 Gy</b>" in c.cursor.value and f"PTV {q['V20Gy']['PTV']:.2f} %" in c.cursor.value
    assert c.at_cursor(x0 / 2, y0) is None  # outside the axes
    assert c.image.axes_box == pytest.approx([x0, y0, x1, y1])
    # zoom on a dose range
    c.dose_range.value = (10.0, 30.0)
    assert c.figure().axes[0].get_xlim() == pytest.approx((10.0, 30.0))


def test_static_picture_is_its_own_output_and_follows_the_3d_view(ds, monkeypatch):
    """Displayed in a kernel: first the static picture (image/png + marked HTML with the CSS that
    swaps it for the live widget), then the widget; the picture is updated once the background 3D
    view is built."""
    pytest.importorskip("anywidget")
    import IPython.display as ipd
    from IPython.display import DisplayHandle

    from grtv_nb.widgets import Dashboard
    from grtv_nb.widgets._base import STATIC_CSS

    shown, updates = [], []

    def fake_display(obj, raw=False, display_id=None):
        shown.append(obj)
        return DisplayHandle("h") if display_id else None

    monkeypatch.setattr(ipd, "display", fake_display)
    monkeypatch.setattr(DisplayHandle, "update", lambda self, obj, raw=False: updates.append(obj))
    gate = __import__("threading").Event()
    from grtv_nb.widgets import view3d as V

    real = V.roi_mesh
    monkeypatch.setattr(V, "roi_mesh", lambda *a, **k: (gate.wait(60), real(*a, **k))[1])
    d = Dashboard(ds)
    d._ipython_display_()
    assert not d.view3d.ready.is_set()  # the picture came before the 3D meshes
    static, live = shown
    assert "grtv-static" in static["text/html"] and STATIC_CSS in static["text/html"]
    assert static["text/html"].count(static["image/png"]) == 1
    assert "application/vnd.jupyter.widget-view+json" in live and "image/png" not in live
    assert "grtv-live" in d._dom_classes
    gate.set()
    assert d.wait(120)
    assert updates and updates[-1]["image/png"] != static["image/png"]  # now with the 3D screenshot


def test_dvh_chart_in_background(ds):
    """The dashboard's DVH chart: a 'computing' panel first, the chart once the DVHs are in."""
    pytest.importorskip("matplotlib")
    from grtv_nb.widgets import DVHChart

    gate = __import__("threading").Event()
    from grtv_nb.widgets import dvhchart as D

    real = D.study_dvh
    D.study_dvh = lambda a: (gate.wait(60), real(a))[1]
    try:
        c = DVHChart(ds, background=True)
        assert "computing the DVHs of 6 ROIs" in c.children[0].value and c.result is None
        assert len(np.unique(_png_rgb(c.to_png_bytes()))) > 1  # a picture saying so
        done = []
        c.on_ready(lambda: done.append(True))
        gate.set()
        assert c.wait(60) and done == [True]
    finally:
        D.study_dvh = real
    assert c.result is not None and c.image in c.children[1].children
    assert [ln.get_label() for ln in c.figure().axes[0].get_lines()] == c.arrays.roi_names
