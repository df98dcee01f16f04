"""View3D: ROI surface meshes in their colours with per-ROI opacity and an optional dose
isosurface, drawn with WebGL in the browser by :mod:`grtv_nb.widgets._webgl` (offline: no CDN,
no server, no port).

The meshes are sent once; visibility, colour, opacity and highlight changes (from the shared ROI
legend or the opacity slider) send only a small style dict, so the browser keeps its camera and
redraws at once. Large ROIs (a 512x512 BODY) are meshed from a mask subsampled to at most
``MAX_MESH_VOXELS`` voxels instead of decimating a million-triangle mesh. With
``background=True`` the meshes are built in a thread with a progress bar, so the slices of a
dashboard show first.

The static picture (saved notebooks, nbconvert) is an off-screen pyvista screenshot taken in a
worker process (:mod:`._render3d`), or, where VTK cannot render off-screen, a numpy projection of
the ROI masks.

itkwidgets is not used here: 0.32.6 pins ``ipywidgets<8`` and the 1.0 alphas load their viewer from
the internet; :func:`grtv_nb.widgets.itk.show_in_itkwidgets` is the optional adapter where it can load.
"""

from __future__ import annotations

import html
import logging
import math
import threading
import time
from typing import Any

import ipywidgets as W
import numpy as np

from ..errors import warn
from . import render as R
from ._base import BackgroundWork, RoiState, StaticPNGMixin

log = logging.getLogger(__name__)

MAX_MESH_VOXELS = 2_000_000  # a ROI's bounding box above this is meshed from a subsampled mask
BODY_OPACITY = 0.1  # starting opacity of EXTERNAL (BODY) ROIs, so the organs show through
HIGHLIGHT_FADE = 0.25  # other ROIs' opacity factor while one ROI is highlighted
DOSE_OPACITY = 0.35


def _to_mm(arrays: R.StudyArrays, verts_zyx: np.ndarray) -> np.ndarray:
    """Fractional voxel indices (z, y, x) -> points (x, y, z) in mm (as :mod:`grtv_nb.mesh` maps them)."""
    from ..mesh import index_to_coord

    out = np.empty((len(verts_zyx), 3), np.float64)
    for k, ax in enumerate((2, 1, 0)):
        c = arrays.coords(ax)
        f = verts_zyx[:, ax]
        out[:, k] = index_to_coord(c, f) if len(c) > 1 else c[0] + f * arrays.spacing(ax)
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


def roi_mesh(arrays: R.StudyArrays, roi: int | str) -> tuple[np.ndarray, np.ndarray] | None:
    """Surface mesh of a ROI as (points (N, 3) mm, triangles (M, 3)), or None when it is empty.

    From ``Study.mesh`` (computed once and kept by the Study) or :func:`grtv_nb.mesh.mask_to_mesh`
    (the project's mesh extractor); a ROI whose bounding box holds more than ``MAX_MESH_VOXELS``
    voxels is meshed from its mask subsampled by the smallest integer step that brings it under
    (on the matching sub-grid), which is what keeps a 512x512 BODY at a few seconds."""
    from ..geometry import Grid
    from ..mesh import mask_to_mesh

    i = arrays.roi_index(roi)
    crop = arrays.crop(i)
    if crop.empty or not crop.mask.any():
        return None
    name = arrays.roi_names[i]
    step = max(1, math.ceil((crop.mask.size / MAX_MESH_VOXELS) ** (1 / 3)))
    study = arrays.study
    if step == 1 and study is not None and hasattr(study, "mesh"):
        m = study.mesh(name)
    elif step == 1:
        m = mask_to_mesh(arrays.full_mask(i), arrays.grid, name=f"ROI {name!r}")
    else:
        (z0, y0, x0), (z1, y1, x1) = crop.lo, crop.hi
        g = arrays.grid
        sub = Grid(
            x=np.asarray(g.x)[x0:x1:step],
            y=np.asarray(g.y)[y0:y1:step],
            z=np.asarray(g.z)[z0:z1:step],
            direction=g.direction,
            slice_thickness=float(g.slice_thickness or 0.0) * step,
        )
        mask = np.ascontiguousarray(crop.mask[::step, ::step, ::step])
        log.info("ROI %r: meshing a %dx subsampled mask (%d voxels)", name, step, mask.size)
        m = mask_to_mesh(mask, sub, name=f"ROI {name!r}")
    if m.is_empty:
        return None
    return np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int64)


def dose_isosurface(arrays: R.StudyArrays, level_gy: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Isosurface of the dose at ``level_gy`` as (points mm, triangles), or None (marching cubes
    of the continuous dose; :mod:`grtv_nb.mesh` meshes binary masks)."""
    if arrays.dose is None or not 0 < level_gy < arrays.dose_max:
        return None
    r = _marching(arrays.dose, float(level_gy), max_voxels=1e6)
    if r is None:
        return None
    return _to_mm(arrays, r[0]), r[1]


def _vtk_faces(tri: np.ndarray) -> np.ndarray:
    return np.hstack([np.full((len(tri), 1), 3, np.int64), np.asarray(tri, np.int64)]).ravel()


class View3D(BackgroundWork, StaticPNGMixin, W.VBox):
    """ROI meshes (and optionally a dose isosurface) drawn with WebGL in the browser.

    Parameters
    ----------
    study : Study, xarray.Dataset or StudyArrays
    roi_state : RoiState, optional
        Shared ROI selection: hidden ROIs are left out, a highlighted ROI stays opaque while the
        others fade.
    size : (int, int)
        Width and height of the view in px.
    opacity : float
        Initial opacity of every ROI (EXTERNAL ROIs start at ``BODY_OPACITY``).
    background : bool
        Build the meshes in a thread, with a progress bar (``wait()`` joins it).
    """

    def __init__(
        self,
        study: Any,
        *,
        roi_state: RoiState | None = None,
        size: tuple[int, int] = (480, 400),
        opacity: float = 0.6,
        background: bool = False,
    ):
        from ._webgl import mesh_scene

        self.arrays = study if isinstance(study, R.StudyArrays) else R.StudyArrays(study)
        a = self.arrays
        self.roi_state = roi_state or RoiState(a.roi_names, a.roi_colors)
        self.size = size
        self._meshes: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self._dose_mesh: dict[float, Any] = {}
        self.opacities = {n: float(opacity) for n in a.roi_names}
        if "roi_type" in a.ds.coords:
            for n, t in zip(a.roi_names, [str(v) for v in a.ds.coords["roi_type"].values]):
                if t.upper() == "EXTERNAL":
                    self.opacities[n] = BODY_OPACITY
        self.scene = mesh_scene(*size)
        self.status = W.HTML()
        self.status.add_class("grtv-3d-status")
        self.progress = W.IntProgress(value=0, min=0, max=max(1, len(a.roi_names)), description="3D meshes",
                                      layout=W.Layout(width=f"{size[0]}px", display="none"))
        self.progress.add_class("grtv-3d-progress")
        self.roi_pick = W.Dropdown(options=a.roi_names, description="ROI", layout=W.Layout(width="220px"))
        self.opacity = W.FloatSlider(
            value=self.opacities[a.roi_names[0]] if a.roi_names else opacity,
            min=0,
            max=1,
            step=0.05,
            description="Opacity",
            continuous_update=True,
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
        self.show_dose.observe(lambda _c: self._update_dose(), "value")
        self.dose_level.observe(lambda _c: self.show_dose.value and self._update_dose(), "value")
        self.roi_state.observe(lambda _c: self.update_styles(), ["visible", "highlight"])
        controls = [self.roi_pick, self.opacity] if a.roi_names else []
        if has_dose:
            controls += [self.show_dose, self.dose_level]
        self._init_background()
        self.build_seconds = float("nan")
        super().__init__([self.scene, self.progress, W.HBox(controls[:2]), W.HBox(controls[2:]), self.status])
        self.add_class("grtv-view3d")
        if not a.roi_names and a.dose is None:
            self.status.value = '<div class="grtv-3d-empty"><i>3D: no ROIs or dose to show</i></div>'
            self._built = True
            self.ready.set()
            return
        if background:
            self.progress.layout.display = None
            self._thread = threading.Thread(target=self._build, name="grtv-3d-meshes", daemon=True)
            self._thread.start()
        else:
            self._build()

    # -- building --------------------------------------------------------------------------
    def _build(self) -> None:
        t0 = time.perf_counter()
        a = self.arrays
        try:
            payload = []
            for i, name in enumerate(a.roi_names):
                self.progress.description = f"3D {i + 1}/{len(a.roi_names)}"
                m = self.mesh(i)
                if m is not None:
                    from ._webgl import mesh_payload

                    payload.append(mesh_payload(name, *m))
                self.progress.value = i + 1
            with self.scene.hold_sync():
                self.scene.meshes = payload
                self.scene.styles = self.styles()
            if not payload and a.dose is None:
                self.status.value = "<i>3D: every ROI is empty</i>"
        except Exception as exc:  # keep the rest of the dashboard alive, and say why
            self.status.value = f"<i>3D view unavailable: {html.escape(str(exc))}</i>"
            warn(f"3D view unavailable: {exc}")
        finally:
            self.build_seconds = time.perf_counter() - t0
            self.progress.layout.display = "none"
            self._finish_background()

    def mesh(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(points mm, triangles) of ROI ``i`` (cached), or None when the ROI is empty."""
        if i not in self._meshes:
            self._meshes[i] = roi_mesh(self.arrays, i)
        return self._meshes[i]

    def dose_mesh(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The dose isosurface at the current level (cached per level), or None."""
        lvl = float(self.dose_level.value)
        if lvl not in self._dose_mesh:
            self._dose_mesh[lvl] = dose_isosurface(self.arrays, lvl)
        return self._dose_mesh[lvl]

    # -- styles (what changes without sending geometry) ------------------------------------
    def opacity_of(self, name: str) -> float:
        """Opacity ROI ``name`` is drawn with (its own, faded or raised by the highlight)."""
        hl = self.roi_state.highlight
        op = self.opacities.get(name, 0.6)
        if hl and name != hl:
            op *= HIGHLIGHT_FADE
        elif hl == name:
            op = max(op, 0.9)
        return float(op)

    def styles(self) -> dict[str, dict[str, Any]]:
        """Per-mesh style sent to the browser: name, colour, opacity, visibility."""
        a = self.arrays
        out = {
            n: {"name": n, "color": [int(v) for v in a.roi_colors[i]], "opacity": self.opacity_of(n),
                "visible": self.roi_state.is_visible(n)}
            for i, n in enumerate(a.roi_names)
        }
        if a.dose is not None:
            lvl = float(self.dose_level.value)
            out["__dose__"] = {"name": f"dose {lvl:g} Gy", "color": list(R.dose_color(lvl, a.dose_max)),
                               "opacity": DOSE_OPACITY, "visible": bool(self.show_dose.value)}
        return out

    def update_styles(self) -> None:
        """Send the current styles (no geometry): the browser redraws with its camera kept."""
        self.scene.styles = self.styles()

    def _update_dose(self) -> None:
        if self.show_dose.value:
            d = self.dose_mesh()
            from ._webgl import mesh_payload

            self.scene.dose_mesh = mesh_payload("__dose__", *d) if d is not None else {}
        self.update_styles()

    def _on_pick(self, change) -> None:
        if change["new"] in self.opacities:
            self.opacity.value = self.opacities[change["new"]]

    def _on_opacity(self, change) -> None:
        name = self.roi_pick.value
        if name in self.opacities and self.opacities[name] != change["new"]:
            self.opacities[name] = float(change["new"])
            self.update_styles()

    def set_opacity(self, roi: str, opacity: float) -> None:
        """Set one ROI's opacity (0-1)."""
        self.arrays.roi_index(roi)
        self.opacities[roi] = float(np.clip(opacity, 0, 1))
        if self.roi_pick.value == roi:
            self.opacity.value = self.opacities[roi]
        self.update_styles()

    def scene_arrays(self) -> list[tuple]:
        """The visible scene as (points float32, vtk faces, rgb 0-1, opacity) for the render worker."""
        a = self.arrays
        items = []
        st = self.styles()
        for i, name in enumerate(a.roi_names):
            s = st[name]
            if not s["visible"] or s["opacity"] <= 0:
                continue
            m = self.mesh(i)
            if m is not None:
                items.append((m[0], _vtk_faces(m[1]), tuple(c / 255 for c in s["color"]), s["opacity"]))
        if self.show_dose.value and a.dose is not None:
            d = self.dose_mesh()
            if d is not None:
                s = st["__dose__"]
                items.append((np.asarray(d[0], np.float32), _vtk_faces(d[1]), tuple(c / 255 for c in s["color"]),
                              s["opacity"]))
        return items

    # -- static picture --------------------------------------------------------------------
    def to_png_bytes(self) -> bytes:
        """Off-screen screenshot of the scene (or a mask projection where VTK cannot render, or
        while the meshes are still being built in the background).

        The screenshot is taken by the render worker process (see :mod:`._render3d`): off-screen
        OpenGL can crash a process, and VTK render windows crash beside TensorFlow.
        """
        if self._built:
            try:
                from . import _render3d

                img = _render3d.screenshot(self.scene_arrays(), self.size)
                if img is not None and np.ptp(img) > 0:
                    return R.encode_png(img, compress_level=6)
            except Exception as exc:
                log.info("3D screenshot failed (%s): using the mask projection", exc)
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
