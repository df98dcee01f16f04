"""DVHChart: every ROI's cumulative DVH in its colour (absolute or relative volume), toggled from the
shared ROI legend, with a cursor readout (each ROI's volume at the dose under the pointer), a dose
range zoom, a Dx/Vx query table, the statistics table of :mod:`grtv_nb.dvh` and CSV/PNG export. A
study without dose (or without ROIs) gets a panel saying so.

Query syntax (comma separated): ``D95`` dose (Gy) to 95 % of the ROI, ``D2cc`` dose to 2 cc,
``V20`` or ``V20Gy`` volume (%) receiving at least 20 Gy, ``V20Gy_cc`` the same in cc, ``V95%``
volume (%) receiving 95 % of the prescription (of the maximum dose when the DVH has no prescription).

The DVHs come from :func:`grtv_nb.dvh.compute_dvh` (the one DVH engine); this module only draws
them (matplotlib Agg on the kernel side, shown as a PNG image updated in place).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np

from ..errors import warn
from . import render as R
from ._base import BackgroundWork, RoiLegend, RoiState, StaticPNGMixin, hex_color, make_chart_canvas, on_canvas_event

_STAT_LABELS = {"volume_cc": "Volume (cc)", "min": "Min (Gy)", "mean": "Mean (Gy)", "max": "Max (Gy)"}
DEFAULT_QUERY = "D2cc, V20Gy, V20Gy_cc, V95%"  # D98, D95, D50, D2 are in the statistics table
_QUERY = re.compile(r"^(D)(\d+(?:\.\d+)?)(cc)?$|^(V)(\d+(?:\.\d+)?)(Gy|%)?(_cc)?$", re.IGNORECASE)


def parse_query(text: str) -> tuple[list[tuple[str, str, float, str]], list[str]]:
    """Parse a Dx/Vx query: returns ([(label, kind, value, unit)], [unreadable tokens]).

    ``kind`` is ``"D%"`` (dose to value % volume), ``"Dcc"`` (dose to value cc), ``"V%"`` /
    ``"Vcc"`` (volume receiving value Gy, or value % of the maximum dose for ``V95%``), with
    ``unit`` ``"Gy"`` or ``"%max"`` for V queries."""
    out, bad = [], []
    for tok in text.replace(";", ",").split(","):
        t = tok.strip().replace(" ", "")
        if not t:
            continue
        m = _QUERY.match(t)
        if m is None:
            bad.append(t)
        elif m.group(1):
            out.append((t, "Dcc" if m.group(3) else "D%", float(m.group(2)), "Gy"))
        else:
            unit = "%max" if m.group(6) == "%" else "Gy"
            out.append((t, "Vcc" if m.group(7) else "V%", float(m.group(5)), unit))
    return out, bad


def study_dvh(arrays: R.StudyArrays, bin_width: float = 0.01):
    """DVHs of all ROIs of a study (``None`` without dose or ROIs): ``Study.dvh()`` for a Study,
    :func:`grtv_nb.dvh.compute_dvh` for a Dataset."""
    if arrays.dose is None or not arrays.roi_names:
        return None
    study = arrays.study
    if study is not None and hasattr(study, "dvh"):
        return study.dvh()  # computed once and kept by the Study
    from ..dvh import compute_dvh

    return compute_dvh(arrays.dose, arrays.grid, arrays.full_mask, roi_names=arrays.roi_names, bin_width=bin_width)


def _atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    from ..fileio import write_bytes_atomic

    return write_bytes_atomic(path, data)


class DVHChart(BackgroundWork, StaticPNGMixin, W.VBox):
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
        background: bool = False,
    ):
        self.arrays = study if isinstance(study, R.StudyArrays) else R.StudyArrays(study)
        a = self.arrays
        self.roi_state = roi_state or RoiState(a.roi_names, a.roi_colors)
        self.figsize = figsize
        self.result = None
        self.empty_reason = ""
        self._init_background()
        self.mode = W.ToggleButtons(
            options=[("%", "relative"), ("cc", "absolute")],
            value="relative" if relative else "absolute",
            description="Volume",
            style={"button_width": "50px"},
        )
        self.image = make_chart_canvas()
        self.cursor = W.HTML("<i>move the pointer over the chart for each ROI's volume at that dose</i>")
        self.cursor.add_class("grtv-dvh-cursor-readout")
        self.query = W.Text(value=DEFAULT_QUERY, description="Dx / Vx", continuous_update=False,
                            layout=W.Layout(width="420px"))
        self.query_table = W.HTML()
        self.query_table.add_class("grtv-dvh-query")
        self._axes = None  # (axes box in picture fractions, xlim, ylim) of the last drawn chart
        self.table = W.HTML()
        self.table.add_class("grtv-dvh-table")
        self.export = W.HTML()
        self.export_button = W.Button(
            description="Export CSV / PNG",
            icon="download",
            tooltip="make download links for the DVH table (CSV) and chart (PNG)",
        )
        self.export_button.on_click(lambda _b: self.make_export_links())
        super().__init__([])
        self.add_class("grtv-dvh")
        if background and a.dose is not None and a.roi_names:
            w, h = int(figsize[0] * 100), int(figsize[1] * 100)
            busy = W.IntProgress(value=1, min=0, max=1, bar_style="info", layout=W.Layout(width="200px"))
            self.children = [
                W.HTML(
                    f'<div class="grtv-dvh-busy" style="width:{w}px;height:{h - 30}px;display:flex;'
                    'align-items:center;justify-content:center;border:1px dashed #999;color:#555">'
                    f"computing the DVHs of {len(a.roi_names)} ROIs&hellip;</div>"
                ),
                busy,
            ]
            threading.Thread(target=self._compute, args=(legend,), name="grtv-dvh", daemon=True).start()
        else:
            self._compute(legend)

    def _compute(self, legend: bool) -> None:
        try:
            self.result = study_dvh(self.arrays)
            self._build_ui(legend)
        except Exception as exc:  # say why in the panel; the rest of the dashboard stays alive
            self.result = None
            self.empty_reason = f"failed ({exc})"
            self.children = [W.HTML(f"<i>DVH failed: {html.escape(str(exc))}</i>")]
            warn(f"DVH chart: {exc}")
        finally:
            self._finish_background()

    def _build_ui(self, legend: bool) -> None:
        a = self.arrays
        figsize = self.figsize
        if self.result is None:
            why = "no dose in this study" if a.dose is None else "no ROIs in this study"
            hint = (
                "load an RTDOSE with the study (or add a dose) to see dose-volume histograms"
                if a.dose is None
                else "add or import contours to see dose-volume histograms"
            )
            w, h = int(figsize[0] * 100), int(figsize[1] * 100)
            panel = W.HTML(
                f'<div class="grtv-dvh-empty" style="width:{w}px;height:{h}px;display:flex;flex-direction:column;'
                'align-items:center;justify-content:center;border:1px dashed #999;color:#555;background:#fafafa">'
                f"<b>DVH: {why}</b><small>{hint}</small></div>"
            )
            self.empty_reason = why
            self.children = [panel]
            return
        dmax = float(self.result.dose[-1]) if len(self.result.dose) else 1.0
        self.dose_range = W.FloatRangeSlider(
            value=(0.0, dmax), min=0.0, max=dmax, step=round(dmax / 200, 3) or 0.01,
            description="Dose Gy", continuous_update=False, layout=W.Layout(width="420px"),
        )
        self.mode.observe(lambda _c: self.refresh(), "value")
        self.dose_range.observe(lambda _c: self.refresh(), "value")
        self.query.observe(lambda _c: self._show_query(), "value")
        self.roi_state.observe(lambda _c: self.refresh(), ["visible", "highlight"])
        on_canvas_event(self.image, self._on_chart)
        self.legend = RoiLegend(self.roi_state) if legend else None
        top = W.HBox([self.image] + ([self.legend] if self.legend is not None else []))
        self.refresh()
        self.children = (
            [
                W.HBox([self.mode, self.dose_range], layout=W.Layout(flex_flow="row wrap")),
                top,
                self.cursor,
                self.query,
                self.query_table,
                self.table,
                W.HBox([self.export_button, self.export]),
            ]
        )

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
        d0, d1 = self.dose_range.value if hasattr(self, "dose_range") else (0.0, float(res.dose[-1]))
        ax.set_xlim(d0, max(d1, d0 + 1e-3))
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        if self._visible():
            ax.legend(fontsize="x-small", loc="upper right", ncol=1 + len(self._visible()) // 12)
        fig.tight_layout()
        x0, y0, x1, y1 = ax.get_position().extents  # figure fractions, origin bottom left
        self._axes = ((x0, 1 - y1, x1, 1 - y0), ax.get_xlim(), ax.get_ylim())
        return fig

    # -- cursor and queries ------------------------------------------------------------------------
    def at_cursor(self, fx: float, fy: float) -> tuple[float, float] | None:
        """(dose Gy, volume % or cc) under the pointer at picture fractions (fx, fy), or None outside
        the axes."""
        if self._axes is None:
            return None
        (x0, y0, x1, y1), (d0, d1), (v0, v1) = self._axes
        if not (x0 <= fx <= x1 and y0 <= fy <= y1):
            return None
        return d0 + (fx - x0) / (x1 - x0) * (d1 - d0), v1 - (fy - y0) / (y1 - y0) * (v1 - v0)

    def _on_chart(self, msg: dict) -> None:
        if msg.get("event") in ("hover", "click"):
            p = self.at_cursor(float(msg.get("fx", -1)), float(msg.get("fy", -1)))
            if p is not None:
                self.show_cursor(p[0])

    def show_cursor(self, dose_gy: float) -> None:
        """Readout of each visible ROI's volume receiving at least ``dose_gy``."""
        res = self.result
        vol = res.volume_at_dose(dose_gy, relative=self.relative).values
        unit = "%" if self.relative else "cc"
        cols = dict(zip(self.arrays.roi_names, self.arrays.roi_colors))
        parts = [
            f'<span style="color:{hex_color(cols.get(res.roi_names[i], (0, 0, 0)))}">&#9632;</span> '
            f"{html.escape(res.roi_names[i])} {_fmt(float(vol[i]))} {unit}"
            for i in self._visible()
        ]
        self.cursor.value = f"<b>{dose_gy:.2f} Gy</b>: " + " &nbsp; ".join(parts)

    def query_values(self, text: str | None = None) -> dict[str, dict[str, float]]:
        """Dx/Vx values ``{query: {roi: value}}`` for all ROIs (see the module docstring for the
        syntax): D in Gy, V in % of the ROI or cc. Unreadable tokens are left out."""
        res = self.result
        qs, _bad = parse_query(self.query.value if text is None else text)
        ref = float(res.prescription_gy or self.arrays.dose_max)  # V95%: 95 % of the prescription (else max)
        out: dict[str, dict[str, float]] = {}
        for label, kind, v, unit in qs:
            if kind == "D%":
                vals = res.dose_at_volume(v, relative=True).values
            elif kind == "Dcc":
                vals = res.dose_at_volume(v, relative=False).values
            else:
                gy = v * ref / 100.0 if unit == "%max" else v
                vals = res.volume_at_dose(gy, relative=kind == "V%").values
            out[label] = {n: float(x) for n, x in zip(res.roi_names, vals)}
        return out

    def _show_query(self) -> None:
        qs, bad = parse_query(self.query.value)
        vals = self.query_values()
        res = self.result
        cols = dict(zip(self.arrays.roi_names, self.arrays.roi_colors))
        unit = {"D%": "Gy", "Dcc": "Gy", "V%": "%", "Vcc": "cc"}
        head = "".join(f"<th>{html.escape(label)} ({unit[kind]})</th>" for label, kind, _v, _u in qs)
        rows = []
        for i in self._visible():
            n = res.roi_names[i]
            cells = "".join(f"<td>{_fmt(vals[label][n])}</td>" for label, *_ in qs)
            rows.append(
                f'<tr><td><span style="color:{hex_color(cols.get(n, (0, 0, 0)))}">&#9632;</span> '
                f"{html.escape(n)}</td>{cells}</tr>"
            )
        msg = (
            f'<div style="color:#b00">cannot read {", ".join(repr(b) for b in bad)}: use e.g. D95, D2cc, V20Gy, '
            "V20Gy_cc, V95%</div>"
            if bad
            else ""
        )
        self.query_table.value = (
            msg + '<table class="grtv-stats" style="border-collapse:collapse;font-size:12px">'
            f"<tr><th>ROI</th>{head}</tr>{''.join(rows)}</table>"
        )

    def to_png_bytes(self) -> bytes:
        """The chart as PNG bytes."""
        buf = io.BytesIO()
        if self.result is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=self.figsize, dpi=100)
            FigureCanvasAgg(fig)
            why = self.empty_reason or "computing..."
            fig.text(0.5, 0.5, f"DVH: {why}", ha="center", va="center", color="#555", fontsize=14)
            fig.savefig(buf, format="png")
            return buf.getvalue()
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
        if self._axes is not None and hasattr(self.image, "axes_box"):
            self.image.axes_box = [float(v) for v in self._axes[0]]
        self.table.value = self.stats_html()
        self._show_query()
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
