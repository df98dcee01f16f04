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

Second table, a 512 x 512 x 177 study (the size of a head CT) with 6 ROIs and a dose:

- ``time to first picture``: building the slice viewer (``SliceViewer``: masks cropped, three
  planes rendered and encoded) until its first PNGs exist, and the dashboard with the 3D meshes
  built in the background (``Dashboard``: slices and DVH ready; the 3D view fills in after), beside
  ``mpl first imshow``: a matplotlib figure, one ``imshow`` of the same axial slice, saved as PNG.
- ``per-slice update``: one ``set_index`` step of the viewer (render, encode, crosshair moves on the
  other planes) beside ``mpl imshow set_data``: the same figure with ``set_data`` and a PNG save.

Goal: ``grtv total`` under 50 ms; dashboard first picture under 5 s.
Run: ``.venv/bin/python benchmarks/bench_render.py``.
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
GOAL_FIRST_S = 5.0
BIG_SHAPE = (177, 512, 512)


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


def big_study() -> None:
    """Time to first picture and per-slice update on a 512 x 512 x 177 study, against matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from grtv_nb.widgets import Dashboard, SliceViewer

    t0 = time.perf_counter()
    ds = synthetic_dataset(BIG_SHAPE, (2.0, 1.0, 1.0), n_rois=6)
    print(f"\nscene: {BIG_SHAPE[2]}x{BIG_SHAPE[1]}x{BIG_SHAPE[0]} voxels, 6 ROIs + dose, "
          f"built in {time.perf_counter() - t0:.1f} s")
    rows: list[tuple[str, float]] = []

    t0 = time.perf_counter()
    v = SliceViewer(ds)
    t_viewer = time.perf_counter() - t0
    rows.append(("grtv SliceViewer first picture (3 planes)", t_viewer * 1e3))
    t0 = time.perf_counter()
    d = Dashboard(ds)
    t_dash = time.perf_counter() - t0
    rows.append(("grtv Dashboard first picture (DVH, 3D in background)", t_dash * 1e3))
    t0 = time.perf_counter()
    d.wait(600)
    rows.append(("  ... then DVHs and 3D meshes ready after", (time.perf_counter() - t0) * 1e3))

    iz = v.index["axial"]
    img = np.asarray(ds["image"].values[iz])

    def mpl_first():
        fig = Figure(figsize=(5.12, 5.12), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.imshow(img, cmap="gray", vmin=-125, vmax=225, interpolation="nearest")
        fig.savefig(io.BytesIO(), format="png")

    t_mpl_first = timed(mpl_first, repeat=5, warmup=1)
    rows.append(("mpl first imshow (1 plane, no overlays)", t_mpl_first))

    n = v.arrays.shape[0]
    state = {"k": 0}

    def step():
        state["k"] += 1
        v.set_index("axial", (iz + state["k"]) % n)

    t_step = timed(step, repeat=20, warmup=2)
    rows.append(("grtv per-slice update (set_index, overlays)", t_step))
    fig = Figure(figsize=(5.12, 5.12), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    im = ax.imshow(img, cmap="gray", vmin=-125, vmax=225, interpolation="nearest")
    vol = ds["image"].values

    def mpl_step():
        state["k"] += 1
        im.set_data(vol[(iz + state["k"]) % n])
        fig.savefig(io.BytesIO(), format="png")

    t_mpl_step = timed(mpl_step, repeat=10, warmup=1)
    rows.append(("mpl imshow set_data + PNG (no overlays)", t_mpl_step))

    print(f"{'512x512x177 study':52s} {'ms':>9s} {'vs mpl':>9s}")
    print("-" * 72)
    ref = {0: t_mpl_first, 1: t_mpl_first, 2: float("nan"), 3: t_mpl_first, 4: t_mpl_step, 5: t_mpl_step}
    for k, (name, ms) in enumerate(rows):
        ratio = f"{ms / ref[k]:8.1f}x" if np.isfinite(ref[k]) else f"{'-':>9s}"
        print(f"{name:52s} {ms:9.1f} {ratio}")
    print("-" * 72)
    verdict = "OK" if t_dash < GOAL_FIRST_S else "ABOVE GOAL"
    print(f"goal: dashboard first picture < {GOAL_FIRST_S:.0f} s -> {t_dash:.2f} s ({verdict}); "
          f"per-slice update {t_step:.1f} ms vs matplotlib set_data {t_mpl_step:.1f} ms")


if __name__ == "__main__":
    main()
    big_study()
