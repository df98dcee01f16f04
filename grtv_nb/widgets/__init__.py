"""Inline Jupyter widgets for a study: slice viewer with ROI and dose overlays, DVH chart, 3D mesh
view and a dashboard linking them. Slice pixels are rendered on the kernel side (numpy, see
:mod:`grtv_nb.widgets.render`); the browser shows them with zoom/pan, orientation letters and a
readout, and draws the 3D meshes with its own WebGL (:mod:`grtv_nb.widgets._webgl`), so the widgets
work offline and on Binder. Each widget is displayed after its static PNG (its own output), so
papermill, nbconvert and reopened notebooks keep a picture.

Needs the ``widgets`` extra (ipywidgets, anywidget, matplotlib; pyvista for the static 3D
picture); ``import grtv_nb`` does not import this package.
"""

from __future__ import annotations

from ._base import RoiLegend, RoiState
from .dashboard import Dashboard, dashboard
from .dvhchart import DVHChart
from .slices import SliceViewer
from .view3d import View3D

__all__ = ["SliceViewer", "DVHChart", "View3D", "Dashboard", "dashboard", "RoiState", "RoiLegend"]
