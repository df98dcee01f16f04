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

Third table, peak memory of the dashboard on a 512 x 512 x 177 CT with 10 ROIs and a dose (the
phantom patient written as DICOM at that size, opened with ``open_study`` as a user does), measured in
a fresh process (Linux ``/proc``: ``VmHWM``, the peak resident set, reset after the study is opened):
the kernel while opening the study, the kernel while the dashboard is built and shown (slices, DVHs,
3D meshes, and the static picture with its 3D screenshot), and the 3D render worker process; beside
the study's own arrays (image int16 + dose float32), the floor any viewer holding them starts from.
``--memory-trace`` also lists the largest allocation sites of the dashboard (tracemalloc).

Goal: ``grtv total`` under 50 ms; dashboard first picture under 5 s; kernel + 3D worker under 1.5 GB
(a Binder pod has 2 GB).
Run: ``.venv/bin/python benchmarks/bench_render.py`` (``--memory`` for the memory table only).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grtv_nb.widgets import render as R  # noqa: E402
from grtv_nb.widgets._synthetic import synthetic_dataset  # noqa: E402

GOAL_MS = 50.0
GOAL_FIRST_S = 5.0
BIG_SHAPE = (177, 512, 512)
GOAL_MEMORY_GB = 1.5  # kernel + 3D render worker, peak resident memory
MEM_PIXEL_MM = 0.75  # 512 x 0.75 mm = 384 mm field of view: the whole phantom
MEM_SLICE_MM = 2.0
TRACE_TOP = 8  # allocation sites listed by --memory-trace


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


def _proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS / VmHWM (bytes) of a process, from /proc."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM", "PPid"):
                num = int(val.split()[0])
                out[key] = num * 1024 if key != "PPid" else num
    return out


def _children_peak() -> int:
    """Sum of the peak resident memory (bytes) of this process's children (the 3D render worker and
    multiprocessing's resource tracker)."""
    total = 0
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = _proc_status(entry)
            except OSError:
                continue
            if st.get("PPid") == me:
                total += st.get("VmHWM", 0)
    return total


def memory_child(folder: str, trace: bool) -> None:
    """Run in a fresh process: open the study, build and show the dashboard, print the numbers as JSON."""
    import warnings

    warnings.simplefilter("ignore")
    from grtv_nb import open_study
    from grtv_nb.widgets import Dashboard

    res: dict[str, float | list] = {"imports": _proc_status()["VmRSS"]}
    st = open_study(folder)
    after = _proc_status()
    res.update(open_peak=after["VmHWM"], after_open=after["VmRSS"],
               arrays=st.image.nbytes + (st.dose.nbytes if st.has_dose else 0), n_rois=len(st.rois),
               shape=list(st.grid.shape))
    try:  # reset the peak so the next one is the dashboard's own (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        res["reset"] = True
    except OSError:
        res["reset"] = False
    if trace:
        import tracemalloc

        tracemalloc.start(6)
        snap0 = tracemalloc.take_snapshot()
    d = Dashboard(st)
    d.wait(900)
    d.static_bundle()  # the picture a notebook shows (and the 3D screenshot in the worker)
    res["dash_peak"] = _proc_status()["VmHWM"]
    res["worker_peak"] = _children_peak()
    if trace:
        stats = tracemalloc.take_snapshot().compare_to(snap0, "traceback")[:TRACE_TOP]
        res["trace"] = [[s.size_diff, [f"{fr.filename.rsplit('/', 1)[-1]}:{fr.lineno}" for fr in s.traceback][-3:]]
                        for s in stats]
        res["traced_peak"] = tracemalloc.get_traced_memory()[1]
    print("MEMORY " + json.dumps(res))


def dashboard_memory(trace: bool = False) -> None:
    """Peak memory of the dashboard (kernel and 3D worker) on a 512 x 512 x 177 CT with 10 ROIs and a dose."""
    from grtv_nb.phantom import default_slices, write_phantom

    if not os.path.exists("/proc/self/status"):
        print("\nmemory: needs Linux /proc, skipped")
        return
    nz, ny, nx = BIG_SHAPE
    with tempfile.TemporaryDirectory(prefix="grtv_mem_") as tmp:
        t0 = time.perf_counter()
        folder = write_phantom(Path(tmp) / "ct512", nx=nx, ny=ny, pixel_mm=MEM_PIXEL_MM,
                               z_positions=default_slices(nz, MEM_SLICE_MM))
        t_write = time.perf_counter() - t0
        cmd = [sys.executable, __file__, "--memory-child", str(folder)] + (["--memory-trace"] if trace else [])
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("MEMORY ")]
    if run.returncode or not lines:
        print(f"\nmemory: the measuring process failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
        return
    r = json.loads(lines[-1][len("MEMORY "):])
    gb = 1e9
    total = r["dash_peak"] + r["worker_peak"]
    z, y, x = r["shape"]
    print(f"\nscene: {x}x{y}x{z} CT, {r['n_rois']} ROIs + dose (phantom as DICOM, written in {t_write:.1f} s)")
    print(f"{'peak resident memory':52s} {'GB':>9s} {'vs arrays':>10s}")
    print("-" * 72)
    since = "" if r["reset"] else " (peak since start: no /proc reset)"
    rows = [
        ("study arrays (image int16 + dose float32)", r["arrays"]),
        ("kernel after imports", r["imports"]),
        ("kernel peak while opening the study", r["open_peak"]),
        ("kernel after opening the study", r["after_open"]),
        ("kernel peak with the dashboard shown" + since, r["dash_peak"]),
        ("3D render worker peak (+ resource tracker)", r["worker_peak"]),
        ("kernel + worker", total),
    ]
    for name, b in rows:
        print(f"{name:52s} {b / gb:9.2f} {b / r['arrays']:9.1f}x")
    print("-" * 72)
    verdict = "OK" if total < GOAL_MEMORY_GB * gb else "ABOVE GOAL"
    print(f"goal: dashboard kernel + 3D worker < {GOAL_MEMORY_GB:.1f} GB -> {total / gb:.2f} GB ({verdict})")
    if trace and r.get("trace"):
        print(f"largest allocations of the dashboard (tracemalloc, traced peak {r['traced_peak'] / 1e6:.0f} MB):")
        for size, tb in r["trace"]:
            print(f"  {size / 1e6:7.1f} MB  " + " <- ".join(reversed(tb)))


if __name__ == "__main__":
    if "--memory-child" in sys.argv:
        memory_child(sys.argv[sys.argv.index("--memory-child") + 1], "--memory-trace" in sys.argv)
    elif "--memory" in sys.argv or "--memory-trace" in sys.argv:
        dashboard_memory(trace="--memory-trace" in sys.argv)
    else:
        main()
        big_study()
        dashboard_memory()
