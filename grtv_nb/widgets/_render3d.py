"""3D scene work that needs a VTK render window, done in a separate worker process.

A VTK render window (even an off-screen one that never renders) and TensorFlow cannot live in one
process: whichever comes second crashes it (``free(): invalid pointer`` at exit, or a segfault when
TensorFlow is imported after the window exists). The 3D view therefore never creates a render
window in the kernel: one persistent worker process (spawned on first use, restarted if it dies)
builds the pyvista scene and returns either the vtk.js HTML page or a screenshot. Scene items travel
as plain arrays: ``(points (N, 3) float32, faces (vtk cell array), rgb 0-1, opacity)``.
"""

from __future__ import annotations

import io
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


def _html_job(items, size) -> str:
    p = _plotter(items, size)
    try:
        return vtkjs_page(p)
    finally:
        p.close()


def vtkjs_page(plotter) -> str:
    """Self-contained HTML page (vtk.js viewer + scene) of a pyvista plotter.

    The scene is serialised with trame-vtk's vtk.js serializers and embedded in trame-vtk's static
    OfflineLocalView page: the same output as pyvista's ``export_html``, but without starting a
    trame server in the kernel (pyvista/trame-pyvista's export launches one, and with
    trame-vtklocal installed that server also tries to download VTK.wasm from the network)."""
    import json
    import zipfile

    from trame_vtk.modules.vtk.serializers import (
        SynchronizationContext,
        extract_array_hash,
        initialize_serializers,
        reference_id,
        serialize,
    )
    from trame_vtk.tools.vtksz2html import write_html

    initialize_serializers()
    ctx = SynchronizationContext()
    ctx.set_ignore_last_dependencies(True)
    rw = plotter.render_window
    cam = plotter.renderer.GetActiveCamera()
    rid = reference_id(rw)
    scene = serialize(None, rw, rid, ctx, 1)
    if not scene:
        raise RuntimeError("the 3D scene could not be serialised for vtk.js")
    scene["extra"] = {"vtkRefId": rid, "centerOfRotation": cam.GetFocalPoint(), "camera": reference_id(cam)}
    hashes = {}
    for entry in extract_array_hash(scene):
        h = entry["hash"]
        hashes[h] = dict(**entry, content=ctx.get_cached_data_array(h, False))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.json", json.dumps({"hashes": hashes, "scene": scene}), compress_type=zipfile.ZIP_DEFLATED)
    out = io.StringIO()
    write_html(buf.getvalue(), out)
    return out.getvalue()


def _png_job(items, size) -> np.ndarray | None:
    p = _plotter(items, size)
    try:
        img = p.screenshot(return_img=True)
    finally:
        p.close()
    return None if img is None else np.asarray(img)[..., :3]


def _pool() -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None:
        import multiprocessing as mp

        _POOL = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
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


def scene_html(items, size, timeout: float = 180.0) -> str:
    """The vtk.js page of a scene, built in the worker process."""
    return _run(_html_job, items, size, timeout) if items else ""


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
