"""Benchmark: server-side slice rendering of the slice viewer (grtv_nb.widgets.render) beside
matplotlib, the usual way to draw a CT slice with ROI contours and a dose wash in a notebook.

Scene: a synthetic 512 x 512 x 60 CT (1 mm pixels, 3 mm slices) with 20 ROIs and a dose, one
axial slice through the middle drawn with 20 ROI outlines, a dose colour wash (threshold 10 % of
max) and 3 isodose lines, encoded as PNG (what the browser receives).

Rows:
- ``grtv render`` / ``grtv png`` / ``grtv total``: :func:`render_slice` (numpy), PNG encoding, sum;
  also for the coronal plane (resampled to square pixels) and for ROIs drawn filled.
- ``mpl redraw``: matplotlib Agg figure with imshow (CT), imshow (dose, masked, alpha), 20
  ``contour`` calls and 3 isodose contours, saved as PNG (a fresh figure per slice).
- ``mpl set_data``: the same figure kept, CT and dose updated in place with ``set_data``, contours
  removed and redrawn, canvas redrawn and saved as PNG (the ipympl-style in-place update).

Goal: ``grtv total`` under 50 ms. Run: ``.venv/bin/python benchmarks/bench_render.py``.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grtv_nb.widgets import render as R  # noqa: E402
from grtv_nb.widgets._synthetic import synthetic_dataset  # noqa: E402

GOAL_MS = 50.0


def timed(fn, repeat: int = 15, warmup: int = 2) -> float:
    """Median wall time (ms) of ``fn()``."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main() -> None:
    t0 = time.perf_counter()
    ds = synthetic_dataset((60, 512, 512), (3.0, 1.0, 1.0), n_rois=20)
    a = R.StudyArrays(ds)
    for i in range(len(a.roi_names)):
        a.crop(i)  # masks rasterised/cached once, as the viewer does
    print(
        f"scene: {a.shape[2]}x{a.shape[1]}x{a.shape[0]} voxels, {len(a.roi_names)} ROIs, "
        f"built in {time.perf_counter() - t0:.1f} s"
    )
    iz = a.shape[0] // 2
    dmax = a.dose_max
    levels = (0.5 * dmax, 0.8 * dmax, 0.95 * dmax)
    opts = R.RenderOptions(dose_threshold=0.1 * dmax, isodose_levels=levels, crosshair=(256, 256))
    opts_fill = R.RenderOptions(dose_threshold=0.1 * dmax, isodose_levels=levels, roi_mode="filled")
    g_ax = R.plane_geometry(a, "axial")
    g_co = R.plane_geometry(a, "coronal")

    rows: list[tuple[str, float]] = []
    t_render = timed(lambda: R.render_slice(a, g_ax, iz, opts))
    rgb = R.render_slice(a, g_ax, iz, opts)
    t_png = timed(lambda: R.encode_png(rgb))
    rows += [
        ("grtv render (axial, outlines)", t_render),
        ("grtv png", t_png),
        ("grtv total (axial, outlines)", t_render + t_png),
    ]
    t_fill = timed(lambda: R.encode_png(R.render_slice(a, g_ax, iz, opts_fill)))
    rows.append(("grtv total (axial, filled)", t_fill))
    t_cor = timed(lambda: R.encode_png(R.render_slice(a, g_co, 256, opts)))
    rows.append((f"grtv total (coronal {g_co.width}x{g_co.height})", t_cor))
    grtv_total = t_render + t_png

    mpl_redraw = mpl_inplace = float("nan")
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        img = a.image[iz]
        dose = a.dose[iz]
        masks = [np.asarray(ds["masks"].values[i, iz]) for i in range(len(a.roi_names))]
        colors = [np.asarray(c) / 255 for c in a.roi_colors]

        def draw(fig, ax, img2d, dose2d):
            ax.imshow(img2d, cmap="gray", vmin=40 - 200, vmax=40 + 200, interpolation="nearest")
            ax.imshow(
                np.ma.masked_less(dose2d, 0.1 * dmax),
                cmap="jet",
                alpha=0.35,
                vmin=0,
                vmax=dmax,
                interpolation="nearest",
            )
            for m, c in zip(masks, colors):
                if m.any():
                    ax.contour(m, levels=[0.5], colors=[c], linewidths=1)
            ax.contour(dose2d, levels=list(levels), linewidths=1, cmap="jet")

        def redraw():
            fig = Figure(figsize=(5.12, 5.12), dpi=100)
            FigureCanvasAgg(fig)
            ax = fig.add_axes((0, 0, 1, 1))
            ax.set_axis_off()
            draw(fig, ax, img, dose)
            buf = io.BytesIO()
            fig.savefig(buf, format="png")

        mpl_redraw = timed(redraw, repeat=5, warmup=1)

        fig = Figure(figsize=(5.12, 5.12), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        im = ax.imshow(img, cmap="gray", vmin=-160, vmax=240, interpolation="nearest")
        dm = ax.imshow(
            np.ma.masked_less(dose, 0.1 * dmax), cmap="jet", alpha=0.35, vmin=0, vmax=dmax, interpolation="nearest"
        )

        def inplace():
            im.set_data(img)
            dm.set_data(np.ma.masked_less(dose, 0.1 * dmax))
            for c in list(ax.collections):
                c.remove()
            for m, c in zip(masks, colors):
                if m.any():
                    ax.contour(m, levels=[0.5], colors=[c], linewidths=1)
            ax.contour(dose, levels=list(levels), linewidths=1, cmap="jet")
            buf = io.BytesIO()
            fig.savefig(buf, format="png")

        mpl_inplace = timed(inplace, repeat=5, warmup=1)
    except ImportError:
        pass
    rows += [("mpl redraw (new figure)", mpl_redraw), ("mpl set_data + contours", mpl_inplace)]

    print()
    print(f"{'per-slice time, 512x512, 20 ROIs + dose wash':46s} {'ms':>9s} {'vs grtv total':>14s}")
    print("-" * 72)
    for name, ms in rows:
        ratio = ms / grtv_total if np.isfinite(ms) else float("nan")
        print(f"{name:46s} {ms:9.1f} {ratio:13.2f}x")
    print("-" * 72)
    verdict = "OK" if grtv_total < GOAL_MS else "ABOVE GOAL"
    print(
        f"goal: grtv total < {GOAL_MS:.0f} ms -> {grtv_total:.1f} ms ({verdict}); "
        f"matplotlib redraw / grtv = {mpl_redraw / grtv_total:.1f}x, "
        f"set_data / grtv = {mpl_inplace / grtv_total:.1f}x"
    )


if __name__ == "__main__":
    main()
