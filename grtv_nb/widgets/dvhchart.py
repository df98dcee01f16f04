"""DVHChart: every ROI's cumulative DVH in its colour (absolute or relative volume), toggled from the
shared ROI legend, with the statistics table of :mod:`grtv_nb.dvh` and CSV/PNG export.

The DVHs come from :func:`grtv_nb.dvh.compute_dvh` (the one DVH engine); this module only draws
them (matplotlib Agg on the kernel side, shown as a PNG image updated in place).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np

from . import render as R
from ._base import RoiLegend, RoiState, StaticPNGMixin, hex_color

_STAT_LABELS = {"volume_cc": "Volume (cc)", "min": "Min (Gy)", "mean": "Mean (Gy)", "max": "Max (Gy)"}


def study_dvh(arrays: R.StudyArrays, bin_width: float = 0.01):
    """DVHs of all ROIs of a study (``None`` without dose or ROIs): ``Study.dvh()`` for a Study,
    :func:`grtv_nb.dvh.compute_dvh` for a Dataset."""
    if arrays.dose is None or not arrays.roi_names:
        return None
    study = arrays._study
    if study is not None and hasattr(study, "dvh"):
        return study.dvh()  # computed once and kept by the Study
    from ..dvh import compute_dvh

    return compute_dvh(arrays.dose, arrays.grid, arrays.full_mask, roi_names=arrays.roi_names, bin_width=bin_width)


def _atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    from ..fileio import write_bytes_atomic

    return write_bytes_atomic(path, data)


class DVHChart(StaticPNGMixin, W.VBox):
    """Cumulative DVHs of a study's ROIs.

    Parameters
    ----------
    study : Study, xarray.Dataset or StudyArrays
    roi_state : RoiState, optional
        Shared ROI selection (visible ROIs are drawn; the highlighted one is drawn thicker).
    legend : bool
        Show a ROI legend (the dashboard shows a shared one instead).
    relative : bool
        Start with volume in % of each ROI (else cc).
    """

    def __init__(
        self,
        study: Any,
        *,
        roi_state: RoiState | None = None,
        legend: bool = True,
        relative: bool = True,
        figsize: tuple[float, float] = (6.0, 3.8),
    ):
        self.arrays = study if isinstance(study, R.StudyArrays) else R.StudyArrays(study)
        a = self.arrays
        self.roi_state = roi_state or RoiState(a.roi_names, a.roi_colors)
        self.figsize = figsize
        self.result = study_dvh(a)
        self.mode = W.ToggleButtons(
            options=[("%", "relative"), ("cc", "absolute")],
            value="relative" if relative else "absolute",
            description="Volume",
            style={"button_width": "50px"},
        )
        self.image = W.Image(format="png")
        self.image.add_class("grtv-dvh-image")
        self.table = W.HTML()
        self.table.add_class("grtv-dvh-table")
        self.export = W.HTML()
        self.export_button = W.Button(
            description="Export CSV / PNG",
            icon="download",
            tooltip="make download links for the DVH table (CSV) and chart (PNG)",
        )
        self.export_button.on_click(lambda _b: self.make_export_links())
        if self.result is None:
            why = "no dose in this study" if a.dose is None else "no ROIs in this study"
            super().__init__([W.HTML(f"<i>DVH: {why}</i>")])
            self.add_class("grtv-dvh")
            return
        self.mode.observe(lambda _c: self.refresh(), "value")
        self.roi_state.observe(lambda _c: self.refresh(), ["visible", "highlight"])
        self.legend = RoiLegend(self.roi_state) if legend else None
        top = W.HBox([self.image] + ([self.legend] if self.legend is not None else []))
        super().__init__([self.mode, top, self.table, W.HBox([self.export_button, self.export])])
        self.add_class("grtv-dvh")
        self.refresh()

    # ------------------------------------------------------------------------------------------
    @property
    def relative(self) -> bool:
        return self.mode.value == "relative"

    def _visible(self) -> list[int]:
        vis = set(self.roi_state.visible)
        return [i for i, n in enumerate(self.result.roi_names) if n in vis]

    def figure(self):
        """A matplotlib Figure (Agg, not registered with pyplot) of the visible ROIs' DVHs."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        res = self.result
        fig = Figure(figsize=self.figsize, dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(111)
        cum = (res.cumulative_pct if self.relative else res.cumulative).values
        colors = dict(zip(self.arrays.roi_names, self.arrays.roi_colors))
        hl = self.roi_state.highlight
        step = max(1, len(res.dose) // 1500)
        for i in self._visible():
            name = res.roi_names[i]
            c = np.asarray(colors.get(name, (0, 0, 0))) / 255.0
            ax.plot(
                res.dose[::step],
                cum[i, ::step],
                color=c,
                label=name,
                lw=3.0 if name == hl else 1.5,
                alpha=1.0 if (not hl or name == hl) else 0.45,
            )
        ax.set_xlabel("Dose (Gy)")
        ax.set_ylabel("Volume (%)" if self.relative else "Volume (cc)")
        ax.set_xlim(0, max(float(res.dose[-1]) if len(res.dose) else 1.0, 1e-3))
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        if self._visible():
            ax.legend(fontsize="x-small", loc="upper right", ncol=1 + len(self._visible()) // 12)
        fig.tight_layout()
        return fig

    def to_png_bytes(self) -> bytes:
        """The chart as PNG bytes."""
        if self.result is None:
            return b""
        buf = io.BytesIO()
        self.figure().savefig(buf, format="png")
        return buf.getvalue()

    def csv_text(self) -> str:
        """The cumulative DVHs as CSV text (``dose_gy`` then one column per ROI, cc or %)."""
        with tempfile.TemporaryDirectory() as d:
            p = self.result.to_csv(Path(d) / "dvh.csv", kind="cumulative", relative=self.relative)
            return p.read_text()

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the cumulative DVHs (current volume mode) as CSV, atomically."""
        return self.result.to_csv(path, kind="cumulative", relative=self.relative)

    def stats_to_csv(self, path: str | os.PathLike) -> Path:
        """Write the statistics table as CSV, atomically."""
        return self.result.stats_to_csv(path)

    def save_png(self, path: str | os.PathLike) -> Path:
        """Write the chart as PNG, atomically."""
        return _atomic_write(path, self.to_png_bytes())

    def stats_html(self) -> str:
        res = self.result
        st = res.stats
        cols = [c for c in st.data_vars if c != "n_voxels"]
        head = "".join(
            f"<th>{html.escape(_STAT_LABELS.get(c, c + (' (Gy)' if c.startswith('D') else '')))}</th>" for c in cols
        )
        rows = []
        hl = self.roi_state.highlight
        for i in self._visible():
            name = res.roi_names[i]
            col = dict(zip(self.arrays.roi_names, self.arrays.roi_colors)).get(name, (0, 0, 0))
            cells = "".join(f"<td>{_fmt(float(st[c].values[i]))}</td>" for c in cols)
            style = ' style="font-weight:bold"' if name == hl else ""
            rows.append(
                f'<tr{style}><td><span style="color:{hex_color(col)}">&#9632;</span> '
                f"{html.escape(name)}</td>{cells}</tr>"
            )
        return (
            '<table class="grtv-stats" style="border-collapse:collapse;font-size:12px">'
            f"<tr><th>ROI</th>{head}</tr>{''.join(rows)}</table>"
            "<style>.grtv-stats td,.grtv-stats th{padding:1px 8px;text-align:right}"
            ".grtv-stats td:first-child{text-align:left}</style>"
        )

    def refresh(self) -> None:
        """Redraw the chart and the table (export links are made again on demand)."""
        self.image.value = self.to_png_bytes()
        self.table.value = self.stats_html()
        self.export.value = ""

    def make_export_links(self) -> None:
        """Show download links (data URIs) for the CSV and PNG of the current view."""
        png = self.image.value or self.to_png_bytes()
        csv64 = base64.b64encode(self.csv_text().encode()).decode()
        png64 = base64.b64encode(png).decode()
        self.export.value = (
            f'Export: <a download="dvh.csv" href="data:text/csv;base64,{csv64}">CSV</a> &nbsp; '
            f'<a download="dvh.png" href="data:image/png;base64,{png64}">PNG</a>'
        )


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "&ndash;"
    return f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"
