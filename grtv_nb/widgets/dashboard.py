"""Dashboard: the slice viewer, DVH chart and 3D view of one study laid out together, with one ROI
legend whose selection (visibility and highlight) is shared by all three views."""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np

from . import render as R
from ._base import RoiLegend, RoiState, StaticPNGMixin


class Dashboard(StaticPNGMixin, W.VBox):
    """Slice viewer + DVH chart + 3D view + shared ROI legend for a study.

    Parameters
    ----------
    study : Study or xarray.Dataset
    show_3d, show_dvh : bool
        Leave out the 3D view / DVH chart (the 3D view is also left out when the study has no
        ROIs and no dose; the DVH chart then says there is no dose or no ROIs).
    slice_size : int
        Display size (px) of the largest plane extent.
    """

    def __init__(self, study: Any, *, show_3d: bool = True, show_dvh: bool = True, slice_size: int = 300):
        from .dvhchart import DVHChart
        from .slices import SliceViewer
        from .view3d import View3D

        self.arrays = R.StudyArrays(study)
        a = self.arrays
        self.roi_state = RoiState(a.roi_names, a.roi_colors)
        self.legend = RoiLegend(self.roi_state, layout=W.Layout(min_width="200px")) if a.roi_names else None
        self.slices = SliceViewer(a, roi_state=self.roi_state, legend=False, size=slice_size)
        has_dvh = show_dvh  # without dose or ROIs the chart is a panel saying so
        has_3d = show_3d and (bool(a.roi_names) or a.dose is not None)
        self.dvh = DVHChart(a, roi_state=self.roi_state, legend=False, background=True) if has_dvh else None
        # the 3D meshes are built in the background: slices show first, the 3D view fills in
        self.view3d = View3D(a, roi_state=self.roi_state, background=True) if has_3d else None
        top = [self.slices] + ([self.legend] if self.legend is not None else [])
        bottom = [w for w in (self.dvh, self.view3d) if w is not None]
        title = W.HTML(f"<b>{_title(study)}</b> &nbsp; <small>{_describe(a)}</small>")
        wrap = W.Layout(flex_flow="row wrap", align_items="flex-start")  # adapts to the cell width
        super().__init__([title, W.HBox(top, layout=wrap), W.HBox(bottom, layout=wrap)])
        self.add_class("grtv-dashboard")
        # DVHs and 3D meshes are computed in the background; the static picture is redrawn as
        # each one arrives
        for w in (self.dvh, self.view3d):
            if w is not None:
                w.on_ready(self.update_static)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the background DVHs and 3D meshes are done; True when they are."""
        return all(w is None or w.wait(timeout) for w in (self.dvh, self.view3d))

    def to_png_bytes(self) -> bytes:
        """Slices on top, DVH and 3D pictures below, as one PNG."""
        rows = [self.slices.composite()]
        pics = []
        for w in (self.dvh, self.view3d):
            if w is not None:
                png = w.to_png_bytes()
                if png:
                    pics.append(R.decode_png(png))
        if pics:
            rows.append(_hstack(pics))
        return R.encode_png(_vstack(rows), compress_level=6)


def dashboard(study: Any, **kwargs: Any) -> Dashboard:
    """Slice viewer, DVH chart and 3D view of ``study`` with one linked ROI legend.

    See :class:`Dashboard` for the keyword arguments."""
    return Dashboard(study, **kwargs)


def _title(study: Any) -> str:
    import html

    ds = getattr(study, "ds", study)
    attrs = getattr(ds, "attrs", {}) or {}
    for k in ("patient_id", "PatientID", "patient_name", "PatientName"):
        if attrs.get(k):
            return html.escape(str(attrs[k]))
    return "Study"


def _describe(a: R.StudyArrays) -> str:
    nz, ny, nx = a.shape
    parts = [f"{nx}x{ny}x{nz} voxels", f"{len(a.roi_names)} ROIs"]
    if a.dose is not None:
        parts.append(f"dose max {a.dose_max:.1f} Gy")
    if a.image is None:
        parts.append("no image")
    return ", ".join(parts)


def _hstack(imgs: list[np.ndarray]) -> np.ndarray:
    h = max(i.shape[0] for i in imgs)
    out = []
    for i in imgs:
        pad = np.full((h, i.shape[1], 3), 255, np.uint8)
        pad[: i.shape[0]] = i[..., :3]
        out += [pad, np.full((h, 8, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=1)


def _vstack(imgs: list[np.ndarray]) -> np.ndarray:
    w = max(i.shape[1] for i in imgs)
    out = []
    for i in imgs:
        pad = np.full((i.shape[0], w, 3), 255, np.uint8)
        pad[:, : i.shape[1]] = i[..., :3]
        out += [pad, np.full((8, w, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=0)
