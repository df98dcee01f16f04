"""View3D: ROI surface meshes in their colours with per-ROI opacity and an optional dose
isosurface, rendered client-side by vtk.js.

The scene is built with pyvista and exported as one self-contained HTML page (trame-vtk's vtk.js
serializers and static OfflineLocalView page, the output of pyvista's ``export_html``: vtk.js and
the geometry inlined), shown in an ``<iframe srcdoc>`` inside an ``ipywidgets.HTML``. The kernel
renders nothing and no trame server or port is opened, so it works offline, in JupyterLab 4 and on
Binder without a display server. (pyvista's ``client``/``server`` trame backends serve the scene
from a trame server in the kernel, which needs a reachable port or jupyter-server-proxy, and
pyvista 0.49's ``export_html`` goes through trame-pyvista, which starts such a server too.)
Changing opacity or visibility rebuilds the page (serialisation ~25 ms; the page is ~1 MB of
vtk.js plus the meshes).

The static fallback picture is an off-screen pyvista screenshot, or, where VTK cannot render
off-screen, a numpy projection of the ROI masks.

itkwidgets is left out: its last release on PyPI (0.32.6, 2023) ships only a classic-notebook
extension (no JupyterLab 4 prebuilt extension) and pins ``ipywidgets<8``, ``traitlets<5.7`` and
``notebook<6.5``; ``pip install itkwidgets==0.32.6 "ipywidgets>=8.1" "jupyterlab>=4.2"`` fails with
"ResolutionImpossible: Cannot install ipywidgets>=8.1 and itkwidgets==0.32.6 because these package
versions have conflicting dependencies".
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as W
import numpy as np

from ..errors import warn
from . import render as R
from ._base import RoiState, StaticPNGMixin


def _to_mm(arrays: R.StudyArrays, verts_zyx: np.ndarray) -> np.ndarray:
    """Fractional voxel indices (z, y, x) -> points (x, y, z) in mm (as :mod:`grtv_nb.mesh` maps them)."""
    from ..mesh import _index_to_coord

    out = np.empty((len(verts_zyx), 3), np.float64)
    for k, ax in enumerate((2, 1, 0)):
        c = arrays.coords(ax)
        f = verts_zyx[:, ax]
        out[:, k] = _index_to_coord(c, f) if len(c) > 1 else c[0] + f * arrays.spacing(ax)
    return out


def _marching(vol: np.ndarray, level: float, max_voxels: float = 1.5e6) -> tuple[np.ndarray, np.ndarray] | None:
    """skimage marching cubes on a zero-padded volume, coarsened so at most ~max_voxels are visited.
    Returns (verts as (z, y, x) indices of ``vol``, faces) or None when empty."""
    from skimage.measure import marching_cubes

    step = max(1, math.ceil((vol.size / max_voxels) ** (1 / 3)))
    pad = np.pad(vol.astype(np.float32), 1)
    if not (pad.max() > level > pad.min()):
        return None
    verts, faces, _n, _v = marching_cubes(pad, level=level, step_size=step, allow_degenerate=False)
    return verts - 1.0, faces.astype(np.int64)


def roi_mesh(arrays: R.StudyArrays, roi: int | str, max_faces: int = 150_000):
    """Surface mesh of a ROI as a ``pyvista.PolyData`` (mm), or None when the ROI is empty.

    The mesh comes from ``Study.mesh`` or :func:`grtv_nb.mesh.mask_to_mesh` (the project's mesh
    extractor) and is decimated to about ``max_faces`` triangles so the browser scene stays light."""
    from ..mesh import mask_to_mesh

    i = arrays.roi_index(roi)
    crop = arrays.crop(i)
    if crop.empty or not crop.mask.any():
        return None
    study = arrays._study
    if study is not None and hasattr(study, "mesh"):
        m = study.mesh(arrays.roi_names[i])  # computed once and kept by the Study
    else:
        m = mask_to_mesh(arrays.full_mask(i), arrays.grid, name=f"ROI {arrays.roi_names[i]!r}")
    if m.is_empty:
        return None
    pd = m.to_pyvista()
    if m.n_faces > max_faces:
        pd = pd.decimate(1.0 - max_faces / m.n_faces)
    return pd


def dose_isosurface(arrays: R.StudyArrays, level_gy: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Isosurface of the dose at ``level_gy`` as (points mm, triangles), or None (marching cubes
    of the continuous dose; :mod:`grtv_nb.mesh` meshes binary masks)."""
    if arrays.dose is None or not 0 < level_gy < arrays.dose_max:
        return None
    r = _marching(arrays.dose, float(level_gy), max_voxels=1e6)
    if r is None:
        return None
    return _to_mm(arrays, r[0]), r[1]


def _polydata(points: np.ndarray, faces: np.ndarray):
    import pyvista as pv

    f = np.hstack([np.full((len(faces), 1), 3, np.int64), faces]).ravel()
    return pv.PolyData(np.ascontiguousarray(points, dtype=np.float32), f)


class View3D(StaticPNGMixin, W.VBox):
    """ROI meshes (and optionally a dose isosurface) in a client-side vtk.js view.

    Parameters
    ----------
    study : Study, xarray.Dataset or StudyArrays
    roi_state : RoiState, optional
        Shared ROI selection: hidden ROIs are left out, a highlighted ROI stays opaque while the
        others fade.
    size : (int, int)
        Width and height of the view in px.
    opacity : float
        Initial opacity of every ROI.
    """

    def __init__(
        self, study: Any, *, roi_state: RoiState | None = None, size: tuple[int, int] = (480, 400), opacity: float = 0.6
    ):
        self.arrays = study if isinstance(study, R.StudyArrays) else R.StudyArrays(study)
        a = self.arrays
        self.roi_state = roi_state or RoiState(a.roi_names, a.roi_colors)
        self.size = size
        self._meshes: dict[int, Any] = {}
        self._dose_mesh: dict[float, Any] = {}
        self.opacities = {n: float(opacity) for n in a.roi_names}
        # ROIs of type EXTERNAL (BODY) start see-through so the organs show
        if "roi_type" in a.ds.coords:
            for n, t in zip(a.roi_names, [str(v) for v in a.ds.coords["roi_type"].values]):
                if t.upper() == "EXTERNAL":
                    self.opacities[n] = 0.1
        self.frame = W.HTML()
        self.frame.add_class("grtv-3d")
        self.status = W.HTML()
        self.roi_pick = W.Dropdown(options=a.roi_names, description="ROI", layout=W.Layout(width="220px"))
        self.opacity = W.FloatSlider(
            value=self.opacities[a.roi_names[0]] if a.roi_names else opacity,
            min=0,
            max=1,
            step=0.05,
            description="Opacity",
            continuous_update=False,
        )
        self.roi_pick.observe(self._on_pick, "value")
        self.opacity.observe(self._on_opacity, "value")
        has_dose = a.dose is not None
        self.show_dose = W.Checkbox(value=False, description="Dose isosurface", indent=False, disabled=not has_dose)
        dmax = a.dose_max if has_dose else 1.0
        self.dose_level = W.FloatSlider(
            value=round(0.5 * dmax, 1),
            min=round(0.05 * dmax, 2),
            max=round(0.99 * dmax, 2),
            step=round(dmax / 100, 2) or 0.01,
            description="Level Gy",
            continuous_update=False,
            disabled=not has_dose,
        )
        self.show_dose.observe(lambda _c: self.refresh(), "value")
        self.dose_level.observe(lambda _c: self.show_dose.value and self.refresh(), "value")
        self.roi_state.observe(lambda _c: self.refresh(), ["visible", "highlight"])
        controls = [self.roi_pick, self.opacity] if a.roi_names else []
        if has_dose:
            controls += [self.show_dose, self.dose_level]
        super().__init__([self.frame, W.HBox(controls[:2]), W.HBox(controls[2:]), self.status])
        self.add_class("grtv-view3d")
        self.refresh()

    # ------------------------------------------------------------------------------------------
    def _on_pick(self, change) -> None:
        if change["new"] in self.opacities:
            self.opacity.value = self.opacities[change["new"]]

    def _on_opacity(self, change) -> None:
        name = self.roi_pick.value
        if name in self.opacities and self.opacities[name] != change["new"]:
            self.opacities[name] = float(change["new"])
            self.refresh()

    def set_opacity(self, roi: str, opacity: float) -> None:
        """Set one ROI's opacity (0-1) and redraw."""
        self.arrays.roi_index(roi)
        self.opacities[roi] = float(np.clip(opacity, 0, 1))
        if self.roi_pick.value == roi:
            self.opacity.value = self.opacities[roi]
        self.refresh()

    def mesh(self, i: int):
        """pyvista PolyData of ROI ``i`` (cached), or None when the ROI is empty."""
        if i not in self._meshes:
            self._meshes[i] = roi_mesh(self.arrays, i)
        return self._meshes[i]

    def scene_items(self) -> list[tuple]:
        """The visible scene as (pyvista PolyData, rgb 0-1, opacity) items."""
        a = self.arrays
        hl = self.roi_state.highlight
        items = []
        for i, name in enumerate(a.roi_names):
            if not self.roi_state.is_visible(name):
                continue
            m = self.mesh(i)
            if m is None:
                continue
            op = self.opacities.get(name, 0.6)
            if hl and name != hl:
                op *= 0.25
            elif hl == name:
                op = max(op, 0.9)
            if op <= 0:
                continue
            items.append((m, tuple(c / 255 for c in a.roi_colors[i]), op))
        if self.show_dose.value and a.dose is not None:
            lvl = float(self.dose_level.value)
            if lvl not in self._dose_mesh:
                d = dose_isosurface(a, lvl)
                self._dose_mesh[lvl] = _polydata(*d) if d is not None else None
            dm = self._dose_mesh[lvl]
            if dm is not None:
                items.append((dm, tuple(c / 255 for c in R.dose_color(lvl, a.dose_max)), 0.35))
        return items

    def scene_arrays(self) -> list[tuple]:
        """The scene items as plain arrays (points, faces, rgb, opacity) for the render worker."""
        return [(np.asarray(m.points, dtype=np.float32), np.asarray(m.faces), rgb, op)
                for m, rgb, op in self.scene_items()]

    def refresh(self) -> None:
        """Rebuild the scene and send it to the browser."""
        w, h = self.size
        if not self.arrays.roi_names and self.arrays.dose is None:
            self.frame.value = '<div class="grtv-3d-empty"><i>3D: no ROIs or dose to show</i></div>'
            return
        try:
            from . import _render3d

            page = _render3d.scene_html(self.scene_arrays(), self.size)
        except Exception as exc:  # pyvista/trame missing or broken: say so, keep the rest alive
            self.frame.value = f"<i>3D view unavailable: {html.escape(str(exc))}</i>"
            warn(f"3D view unavailable: {exc}")
            return
        if not page:
            self.frame.value = "<i>3D: nothing visible</i>"
            return
        self.frame.value = (
            f'<iframe class="grtv-3d-frame" title="3D view" style="width:{w}px;height:{h}px;border:1px solid #ccc"'
            f' srcdoc="{html.escape(page, quote=True)}"></iframe>'
        )

    # -- static picture --------------------------------------------------------------------
    def to_png_bytes(self) -> bytes:
        """Off-screen screenshot of the scene (or a mask projection where VTK cannot render).

        The screenshot is taken by the render worker process (see :mod:`._render3d`): off-screen
        OpenGL can crash a process, and VTK render windows crash beside TensorFlow.
        """
        try:
            from . import _render3d

            img = _render3d.screenshot(self.scene_arrays(), self.size)
            if img is not None and np.ptp(img) > 0:
                return R.encode_png(img, compress_level=6)
        except Exception:
            pass
        return R.encode_png(self.projection(), compress_level=6)

    def projection(self) -> np.ndarray:
        """Anterior projection of the visible ROI masks in their colours (RGB uint8), rows = z
        (superior at the top), columns = x."""
        a = self.arrays
        geom = R.plane_geometry(a, "coronal")
        rgb = np.full((geom.height, geom.width, 3), 255.0, np.float32)
        for i, name in enumerate(a.roi_names):
            if not self.roi_state.is_visible(name):
                continue
            c = a.crop(i)
            if c.empty:
                continue
            proj = np.zeros((a.shape[0], a.shape[2]), bool)
            (z0, _, x0), (z1, _, x1) = c.lo, c.hi
            proj[z0:z1, x0:x1] = c.mask.any(axis=1)
            m = proj[geom.rmap[:, None], geom.cmap[None, :]]
            op = self.opacities.get(name, 0.6)
            rgb[m] = rgb[m] * (1 - op) + np.asarray(a.roi_colors[i], np.float32) * op
        return rgb.astype(np.uint8)

