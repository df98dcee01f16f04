"""3D scene work that needs a VTK render window, done in a separate worker process.

A VTK render window (even an off-screen one that never renders) and TensorFlow cannot live in one
process: whichever comes second crashes it (``free(): invalid pointer`` at exit, or a segfault when
TensorFlow is imported after the window exists). The 3D view therefore never creates a render
window in the kernel: one persistent worker process (spawned on first use, restarted if it dies)
builds the pyvista scene and returns a screenshot (the static picture of the 3D view). The worker's
stderr goes to /dev/null: VTK's X/GL complaints would otherwise show as red boxes in notebooks. Scene items travel
as plain arrays: ``(points (N, 3) float32, faces (vtk cell array), rgb 0-1, opacity)``.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None


def _plotter(items, size):
    import pyvista as pv

    p = pv.Plotter(off_screen=True, window_size=list(size))
    p.set_background("white")
    for k, (pts, faces, rgb, op) in enumerate(items):
        p.add_mesh(pv.PolyData(pts, faces), color=tuple(rgb), opacity=float(op), smooth_shading=True,
                   name=f"item_{k}")
    if items:
        p.view_vector((0, -1, 0), viewup=(0, 0, 1))  # anterior view (canonical y is posterior)
        p.reset_camera()
    return p


def _png_job(items, size) -> np.ndarray | None:
    p = _plotter(items, size)
    try:
        img = p.screenshot(return_img=True)
    finally:
        p.close()
    return None if img is None else np.asarray(img)[..., :3]


def _quiet() -> None:
    """Worker start: stderr (fd 2, where VTK and Mesa write) to /dev/null."""
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 2)
    os.close(fd)


def _pool() -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None:
        import multiprocessing as mp

        _POOL = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=_quiet)
    return _POOL


def _run(job, items, size, timeout: float):
    global _POOL
    with _LOCK:
        for attempt in range(2):
            try:
                return _pool().submit(job, items, size).result(timeout=timeout)
            except BrokenProcessPool:
                _POOL = None  # the worker died (e.g. a GL crash): start a fresh one once
                if attempt:
                    raise
    return None


def screenshot(items, size, timeout: float = 180.0) -> np.ndarray | None:
    """An off-screen screenshot (RGB uint8) of a scene, taken in the worker process."""
    return _run(_png_job, items, size, timeout) if items else None


def shutdown() -> None:
    """Stop the worker process (it is restarted on the next call)."""
    global _POOL
    with _LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
