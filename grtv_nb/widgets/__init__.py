"""Inline Jupyter widgets for a study: slice viewer with ROI and dose overlays, DVH chart, 3D mesh
view and a dashboard linking them. Pixels are rendered on the kernel side (numpy, see
:mod:`grtv_nb.widgets.render`); the browser only shows images and a vtk.js scene, so the widgets
work offline and on Binder. Each widget also carries a static PNG for headless execution.

Needs the ``widgets`` extra (ipywidgets, anywidget, matplotlib, pyvista, trame-vtk, trame-pyvista);
``import grtv_nb`` does not import this package.
"""

from __future__ import annotations

from ._base import RoiLegend, RoiState
from .dashboard import Dashboard, dashboard
from .dvhchart import DVHChart
from .slices import SliceViewer
from .view3d import View3D

__all__ = ["SliceViewer", "DVHChart", "View3D", "Dashboard", "dashboard", "RoiState", "RoiLegend"]
