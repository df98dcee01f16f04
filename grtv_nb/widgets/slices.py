"""SliceViewer: axial, coronal and sagittal planes of a study with window/level presets, ROI
overlays, dose wash and isodose lines, a position/HU/dose readout and linked crosshairs.

Slices are rendered on the kernel side by :mod:`grtv_nb.widgets.render` and sent as PNG bytes to
a canvas updated in place (no figure redraw); the canvas sends clicks, hover, wheel and arrow-key
steps back.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np

from ..errors import ValidationError
from . import render as R
from ._base import (
    RoiLegend,
    RoiState,
    StaticPNGMixin,
    draws_crosshair,
    make_canvas,
    on_canvas_event,
    set_canvas,
)

_SLICE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
_AXIS_LABEL = {"axial": "z", "coronal": "y", "sagittal": "x"}
_STYLE = {"description_width": "80px"}
WL_PER_PX = 1 / 150  # window/level drag: change per screen pixel, as a fraction of the window
ENLARGE = 2.0  # display scale of a plane shown alone (enlarge button)


class SliceViewer(StaticPNGMixin, W.VBox):
    """Three orthogonal planes of a study with overlays and linked crosshairs.

    Parameters
    ----------
    study : Study or xarray.Dataset
        See :class:`grtv_nb.widgets.render.StudyArrays`.
    roi_state : RoiState, optional
        Shared ROI selection (pass the same one to other views to link them).
    size : int
        Display size (px) of the largest physical extent among the three planes; all planes
        share one mm-per-pixel scale.
    preset : str
        Initial window/level preset (see :data:`grtv_nb.widgets.render.PRESETS`).
    legend : bool
        Show the ROI legend next to the planes (the dashboard shows its own).
    planes : sequence of str
        Planes to show.
    """

    def __init__(
        self,
        study: Any,
        *,
        roi_state: RoiState | None = None,
        size: int = 320,
        preset: str = "soft tissue",
        legend: bool = True,
        planes: tuple[str, ...] = R.PLANES,
    ):
        self.arrays = study if isinstance(study, R.StudyArrays) else R.StudyArrays(study)
        a = self.arrays
        for p in planes:
            if p not in R.PLANES:
                raise ValidationError(f"planes: unknown plane {p!r} (use {R.PLANES})")
        self.planes = tuple(planes)
        self.roi_state = roi_state or RoiState(a.roi_names, a.roi_colors)
        self.geoms = {p: R.plane_geometry(a, p) for p in R.PLANES}
        ext = max(max(g.size_mm) for g in self.geoms.values())
        self._scale = size / ext  # px per mm on screen
        self.index = {p: a.shape[_SLICE_AXIS[p]] // 2 for p in R.PLANES}
        if a.dose is not None:  # start at the dose maximum
            hot = np.unravel_index(int(np.argmax(a.dose)), a.shape)
            self.index = {p: int(hot[ax]) for p, ax in _SLICE_AXIS.items()}
        self._updating = False
        self._hover: tuple[str, int, int] | None = None  # last pointer position (plane, row, col)
        self._wl0: tuple[float, float] | None = None
        self.enlarged: str | None = None
        self.labels = {p: R.orientation_labels(a.direction, p) for p in R.PLANES}

        # --- controls --------------------------------------------------------------------
        ct_like = a.image is not None and a.image_range[0] < -500
        self._ct_like = ct_like
        if preset not in R.PRESETS:
            raise ValidationError(f"preset must be one of {list(R.PRESETS)}, got {preset!r}")
        if ct_like or a.image is None:
            win, lev = R.PRESETS[preset]
        else:  # MR or other: window from the data range
            lo, hi = np.percentile(a.image[:: max(1, a.shape[0] // 16)], [1, 99])
            win, lev, preset = float(max(hi - lo, 1)), float((hi + lo) / 2), "custom"
        lo_r, hi_r = (-1100.0, 3000.0) if ct_like or a.image is None else a.image_range
        self.preset = W.Dropdown(options=list(R.PRESETS) + ["custom"], value=preset, description="Preset", style=_STYLE)
        self.window = W.FloatSlider(
            value=win,
            min=1,
            max=max(4000.0, hi_r - lo_r),
            step=1,
            description="Window",
            style=_STYLE,
            continuous_update=True,
        )
        self.level = W.FloatSlider(
            value=lev,
            min=min(-1000.0, lo_r),
            max=max(2000.0, hi_r),
            step=1,
            description="Level",
            continuous_update=True,
            style=_STYLE,
        )
        self.roi_mode = W.ToggleButtons(
            options=["outline", "filled"], value="outline", description="Draw", style={"button_width": "70px"}
        )
        self.roi_opacity = W.FloatSlider(value=0.35, min=0, max=1, step=0.05, description="Fill opacity", style=_STYLE)
        has_dose = a.dose is not None
        dmax = a.dose_max if has_dose else 1.0
        self.show_dose = W.Checkbox(value=has_dose, description="Dose wash", indent=False, disabled=not has_dose)
        self.dose_threshold = W.FloatSlider(
            value=round(0.1 * dmax, 2),
            min=0,
            max=round(dmax, 2),
            step=round(dmax / 200, 3) or 0.01,
            description="Min Gy",
            style=_STYLE,
        )
        self.dose_opacity = W.FloatSlider(value=0.35, min=0, max=1, step=0.05, description="Opacity", style=_STYLE)
        default_levels = ", ".join(f"{dmax * f:.1f}" for f in (0.5, 0.8, 0.95)) if has_dose else ""
        self.isodose = W.Text(value=default_levels, description="Isodoses Gy", continuous_update=False, style=_STYLE)
        self.crosshair = W.Checkbox(value=True, description="Crosshairs", indent=False)
        self.readout = W.HTML(value="<i>click a slice for position, HU and dose</i>")
        self.readout.add_class("grtv-readout")

        self.canvases: dict[str, W.DOMWidget] = {}
        self.sliders: dict[str, W.IntSlider] = {}
        self.positions: dict[str, W.HTML] = {}
        self.columns: dict[str, W.VBox] = {}
        cols = []
        for p in self.planes:
            n = a.shape[_SLICE_AXIS[p]]
            cv = make_canvas(p)
            if hasattr(cv, "labels"):
                cv.labels = list(self.labels[p])
            sl = W.IntSlider(
                value=self.index[p],
                min=0,
                max=max(n - 1, 0),
                description=p,
                readout=False,
                continuous_update=True,
                disabled=n <= 1,
                style={"description_width": "60px"},
                layout=W.Layout(width=f"{max(self._disp(p)[0] - 90, 140)}px"),
            )
            sl.add_class(f"grtv-slider-{p}")
            pos = W.HTML(self._position_text(p), layout=W.Layout(width="90px"))
            pos.add_class(f"grtv-pos-{p}")
            sl.observe(lambda ch, p=p: self._on_slider(p, ch["new"]), "value")
            on_canvas_event(cv, lambda msg, p=p: self._on_canvas(p, msg))
            self.canvases[p], self.sliders[p], self.positions[p] = cv, sl, pos
            col = W.VBox([cv, W.HBox([sl, pos])], layout=W.Layout(align_items="center", margin="0 6px 0 0"))
            self.columns[p] = col
            cols.append(col)

        for w in (self.window, self.level):
            w.observe(self._on_wl, "value")
        self.preset.observe(self._on_preset, "value")
        for w in (
            self.roi_mode,
            self.roi_opacity,
            self.show_dose,
            self.dose_threshold,
            self.dose_opacity,
            self.isodose,
        ):
            w.observe(lambda _c: self.refresh(), "value")
        self.crosshair.observe(lambda _c: self.refresh((), cross_only=self.planes), "value")
        self.roi_state.observe(lambda _c: self.refresh(), ["visible", "highlight"])

        col = W.Layout(width="auto", margin="0 12px 0 0")
        groups = [
            W.VBox([W.HTML("<b>Window / level</b>"), self.preset, self.window, self.level, self.crosshair], layout=col)
        ]
        if a.roi_names:
            groups.append(W.VBox([W.HTML("<b>ROIs</b>"), self.roi_mode, self.roi_opacity], layout=col))
        if has_dose:
            groups.append(
                W.VBox(
                    [
                        W.HTML("<b>Dose</b>"),
                        self.show_dose,
                        self.dose_threshold,
                        self.dose_opacity,
                        self.isodose,
                        W.HTML(_colorbar(a.dose_max)),
                    ],
                    layout=col,
                )
            )
        controls = W.HBox(groups, layout=W.Layout(flex_flow="row wrap"))
        self.legend = RoiLegend(self.roi_state) if legend and a.roi_names else None
        # planes wrap onto the next line in a narrow cell instead of overlapping
        wrap = W.Layout(flex_flow="row wrap", align_items="flex-start")
        top = [W.HBox(cols, layout=wrap)] + ([self.legend] if self.legend is not None else [])
        super().__init__([W.HBox(top, layout=wrap), controls, self.readout])
        self.add_class("grtv-slice-viewer")
        self.refresh()

    # ------------------------------------------------------------------------------------------
    def _disp(self, p: str) -> tuple[int, int]:
        h_mm, w_mm = self.geoms[p].size_mm
        s = self._scale * (ENLARGE if self.enlarged == p else 1.0)
        return max(2, int(round(w_mm * s))), max(2, int(round(h_mm * s)))

    def position_mm(self, plane: str) -> float:
        """Position (mm) of ``plane``'s current slice along its normal (z, y or x coordinate)."""
        return float(self.arrays.coords(_SLICE_AXIS[plane])[self.index[plane]])

    def _position_text(self, plane: str) -> str:
        n = self.arrays.shape[_SLICE_AXIS[plane]]
        return (
            f'<span title="slice {self.index[plane] + 1} of {n}">'
            f"{_AXIS_LABEL[plane]} {self.position_mm(plane):.1f} mm</span>"
        )

    def enlarge(self, plane: str | None) -> None:
        """Show ``plane`` alone at :data:`ENLARGE` times its size (None: all planes again)."""
        if plane is not None and plane not in self.planes:
            raise ValidationError(f"enlarge: plane {plane!r} is not shown (planes: {self.planes})")
        self.enlarged = None if plane == self.enlarged else plane
        for p, col in self.columns.items():
            col.layout.display = "none" if self.enlarged not in (None, p) else None
            cv = self.canvases[p]
            if hasattr(cv, "enlarged"):
                cv.enlarged = self.enlarged == p
            self.sliders[p].layout.width = f"{max(self._disp(p)[0] - 90, 140)}px"
        self.refresh()

    def crosshair_at(self, plane: str) -> tuple[int, int] | None:
        """Display (row, col) of the crosshair lines on ``plane`` (the other planes' positions),
        or None when crosshairs are off."""
        if not self.crosshair.value:
            return None
        g = self.geoms[plane]
        ra, ca, _ = R.PLANE_AXES[plane]
        axis_plane = {0: "axial", 1: "coronal", 2: "sagittal"}
        return (g.display_row(self.index[axis_plane[ra]]), g.display_col(self.index[axis_plane[ca]]))

    def options(self, plane: str, crosshair_in_image: bool = True) -> R.RenderOptions:
        """The render options the controls currently describe, for ``plane`` (crosshair lines
        drawn into the image unless ``crosshair_in_image`` is False)."""
        a = self.arrays
        visible = set(self.roi_state.visible)
        rois = [i for i, n in enumerate(a.roi_names) if n in visible]
        hl = a.roi_names.index(self.roi_state.highlight) if self.roi_state.highlight in a.roi_names else None
        cross = self.crosshair_at(plane) if crosshair_in_image else None
        return R.RenderOptions(
            window=self.window.value,
            level=self.level.value,
            rois=rois,
            roi_mode=self.roi_mode.value,
            roi_opacity=self.roi_opacity.value,
            highlight=hl,
            show_dose=self.show_dose.value,
            dose_threshold=self.dose_threshold.value,
            dose_opacity=self.dose_opacity.value,
            isodose_levels=self._levels(),
            crosshair=cross,
        )

    def _levels(self) -> tuple[float, ...]:
        out = []
        for tok in self.isodose.value.replace(";", ",").split(","):
            tok = tok.strip()
            if not tok:
                continue
            try:
                out.append(float(tok))
            except ValueError:
                continue  # half-typed text: ignore the token
        return tuple(out)

    def render(self, plane: str) -> np.ndarray:
        """RGB image (uint8) of ``plane`` at its current index with the current options."""
        return R.render_slice(self.arrays, self.geoms[plane], self.index[plane], self.options(plane))

    def refresh(self, planes: tuple[str, ...] | None = None, *, cross_only: tuple[str, ...] = ()) -> None:
        """Re-render ``planes`` (default all shown) and push them to the browser; for the planes in
        ``cross_only`` only the crosshair lines move (drawn by the browser: no new picture)."""
        planes = self.planes if planes is None else tuple(p for p in planes if p in self.planes)
        for p in planes:
            cv = self.canvases[p]
            client = draws_crosshair(cv)
            rgb = R.render_slice(self.arrays, self.geoms[p], self.index[p], self.options(p, not client))
            w, h = self._disp(p)
            set_canvas(cv, R.encode_png(rgb), w, h, self.index[p], rgb.shape[:2], self.crosshair_at(p))
        for p in cross_only:
            if p in self.planes and p not in planes:
                cv = self.canvases[p]
                if draws_crosshair(cv):
                    w, h = self._disp(p)
                    set_canvas(cv, None, w, h, self.index[p], None, self.crosshair_at(p))
                else:
                    self.refresh((p,))

    def set_index(self, plane: str, index: int) -> None:
        """Show slice ``index`` of ``plane`` (clipped to the volume)."""
        n = self.arrays.shape[_SLICE_AXIS[plane]]
        index = int(np.clip(index, 0, n - 1))
        if index == self.index[plane]:
            return
        self.index[plane] = index
        if plane in self.sliders and self.sliders[plane].value != index:
            self._updating = True
            try:
                self.sliders[plane].value = index
            finally:
                self._updating = False
        self.positions[plane].value = self._position_text(plane) if plane in self.positions else ""
        self.refresh((plane,), cross_only=self.planes)
        if self._hover is not None and self._hover[0] == plane:
            self._probe_display(*self._hover)  # the readout follows the slice under the pointer

    # -- events ----------------------------------------------------------------------------
    def _on_slider(self, plane: str, value: int) -> None:
        if not self._updating:
            self.set_index(plane, value)

    def _on_wl(self, _change=None) -> None:
        if self._updating:
            return  # a preset is being applied; _on_preset refreshes once
        cur = R.PRESETS.get(self.preset.value)
        # the browser's slider sends values back with float drift (350 -> 350.00000000000006)
        if cur is None or abs(cur[0] - self.window.value) > 0.5 or abs(cur[1] - self.level.value) > 0.5:
            self._updating = True
            self.preset.value = "custom"
            self._updating = False
        self.refresh()

    def _on_preset(self, change) -> None:
        if self._updating or change["new"] not in R.PRESETS:
            return
        win, lev = R.PRESETS[change["new"]]
        self._updating = True
        try:
            with self.window.hold_trait_notifications(), self.level.hold_trait_notifications():
                self.window.value, self.level.value = win, lev
        finally:
            self._updating = False
        self.refresh()

    def _on_canvas(self, plane: str, msg: dict) -> None:
        ev = msg.get("event")
        if ev == "step":
            self.set_index(plane, self.index[plane] + int(msg.get("delta", 0)))
        elif ev in ("click", "hover"):
            row, col = int(msg["row"]), int(msg["col"])
            self._hover = (plane, row, col)
            ijk = self._probe_display(plane, row, col)
            if ev == "click":
                self.goto(ijk)
        elif ev == "wl_start":
            self._wl0 = (float(self.window.value), float(self.level.value))
        elif ev == "wl":
            self.drag_window_level(float(msg.get("dx", 0)), float(msg.get("dy", 0)))
        elif ev == "enlarge":
            self.enlarge(plane)

    def drag_window_level(self, dx: float, dy: float) -> None:
        """Window/level after a mouse drag of (dx, dy) screen px from where it began: right widens
        the window, down raises the level (by ``WL_PER_PX`` of the starting window per px)."""
        w0, l0 = self._wl0 or (float(self.window.value), float(self.level.value))
        k = max(w0, 1.0) * WL_PER_PX
        win = float(np.clip(w0 + dx * k, self.window.min, self.window.max))
        lev = float(np.clip(l0 + dy * k, self.level.min, self.level.max))
        self._updating = True  # one refresh for both values
        try:
            self.window.value, self.level.value = win, lev
        finally:
            self._updating = False
        self._on_wl()

    def _probe_display(self, plane: str, row: int, col: int) -> tuple[int, int, int]:
        ijk = self.arrays.voxel_at(plane, self.index[plane], row, col, self.geoms[plane])
        self.show_probe(ijk, plane)
        return ijk

    def goto(self, ijk: tuple[int, int, int]) -> None:
        """Move all planes (and crosshairs) to voxel ``ijk`` = (iz, iy, ix)."""
        moved = tuple(p for p, ax in _SLICE_AXIS.items() if self.index[p] != int(ijk[ax]))
        for p, ax in _SLICE_AXIS.items():
            self.index[p] = int(ijk[ax])
            if p in self.sliders:
                self._updating = True
                try:
                    self.sliders[p].value = int(ijk[ax])
                finally:
                    self._updating = False
        self.refresh(moved, cross_only=self.planes)

    def probe(self, ijk: tuple[int, int, int]) -> dict[str, Any]:
        """Position (mm), HU, dose and ROIs at voxel ``ijk``."""
        return self.arrays.probe(ijk)

    def show_probe(self, ijk: tuple[int, int, int], plane: str | None = None) -> None:
        """Show position (mm), value (HU or image units) and dose (Gy) at ``ijk`` in the readout
        line and, for ``plane``, in the corner of its canvas."""
        info = self.probe(ijk)
        x, y, z = info["xyz_mm"]
        parts = [f"x {x:.1f}, y {y:.1f}, z {z:.1f} mm"]
        corner = [f"{x:.1f}, {y:.1f}, {z:.1f} mm"]
        if info["hu"] is not None:
            unit = "HU" if self._ct_like else "value"
            parts.append(f"{unit} {info['hu']:.0f}")
            corner.append(f"{info['hu']:.0f} {unit if unit == 'HU' else ''}".rstrip())
        if info["dose"] is not None:
            parts.append(f"dose {info['dose']:.2f} Gy")
            corner.append(f"{info['dose']:.2f} Gy")
        if info["rois"]:
            parts.append("in " + ", ".join(html.escape(r) for r in info["rois"]))
        self.readout.value = " &nbsp;|&nbsp; ".join(parts)
        if plane is not None and hasattr(self.canvases.get(plane), "info"):
            for p, cv in self.canvases.items():
                cv.info = "\n".join(corner) if p == plane else ""

    # -- static picture --------------------------------------------------------------------
    def to_png_bytes(self) -> bytes:
        """The shown planes side by side at their display scale, as PNG bytes."""
        return R.encode_png(self.composite(), compress_level=6)

    def composite(self) -> np.ndarray:
        """The shown planes side by side (RGB uint8), each resized to its on-screen size."""
        tiles = []
        for p in self.planes:
            rgb = self.render(p)
            w, h = self._disp(p)
            ri = (np.arange(h) * rgb.shape[0] // h).clip(0, rgb.shape[0] - 1)
            ci = (np.arange(w) * rgb.shape[1] // w).clip(0, rgb.shape[1] - 1)
            tiles.append(R.draw_labels(rgb[ri[:, None], ci[None, :]], self.labels[p]))
        hmax = max(t.shape[0] for t in tiles)
        gap = np.full((hmax, 6, 3), 255, np.uint8)
        padded = []
        for t in tiles:
            pad = np.full((hmax, t.shape[1], 3), 255, np.uint8)
            pad[: t.shape[0]] = t
            padded += [pad, gap]
        return np.concatenate(padded[:-1], axis=1)


def _colorbar(dose_max: float) -> str:
    """HTML colour bar of the dose wash colour map, 0 to ``dose_max`` Gy."""
    stops = ", ".join(
        "rgb({},{},{}) {:.0f}%".format(*(int(v) for v in R.DOSE_LUT[i]), i / 255 * 100) for i in range(0, 256, 32)
    )
    stops += ", rgb({},{},{}) 100%".format(*(int(v) for v in R.DOSE_LUT[255]))
    return (
        '<div style="display:flex;align-items:center;gap:6px;font-size:11px;margin-left:88px">0'
        f'<div style="width:150px;height:10px;background:linear-gradient(to right, {stops})"></div>'
        f"{dose_max:.1f} Gy</div>"
    )
