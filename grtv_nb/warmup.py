"""Compiling grtv_nb's numba kernels ahead of use (``grtv-nb warmup``, run by ``make`` after install
and by Binder's postBuild).

The kernels of :mod:`grtv_nb._kernels` are compiled on their first call for each argument type and
cached on disk (``cache=True``; see :func:`grtv_nb._kernels.cache_dir` for where). A fresh install
would otherwise pay 5-15 s of compilation inside the user's first ``resizeImage3D`` or
``augmentImg3D``. :func:`warmup` makes those calls once on tiny volumes, for the types the public
functions use (see ``_RESIZE_PAIRS``; int16 images with uint8 and float32 companions in
augmentation), so later processes only load the cached machine code. It also writes the package's bytecode
(``__pycache__``): an editable install, or an environment with ``PYTHONDONTWRITEBYTECODE`` set (many
containers), would otherwise compile grtv_nb's modules from source in every new process (~35-45 ms
of a fresh ``readRTDir``). (A process's first resizes
and augmentation rounds run on NumPy twins and need no kernel: see :mod:`grtv_nb.transforms` and
:mod:`grtv_nb._numpy_kernels`; the kernels serve once any has run or the NumPy budget is spent.)
"""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

# (input, output) dtype pairs of resizing and resampling that the public functions use: a CT, a
# mask, a dose, a uint16 image kept as is, a CT checked for clipping in float32. Every pair is a
# separate compilation (10-20 s each), so rarer pairs compile on first use instead.
_RESIZE_PAIRS = ((np.int16, np.int16), (np.uint8, np.uint8), (np.float32, np.float32), (np.uint16, np.uint16),
                 (np.int16, np.float32))


def warmup(verbose: bool = False) -> dict[str, float]:
    """Compile (or load from the on-disk cache) every kernel for the common argument types.

    Returns
    -------
    dict
        Seconds spent per group of kernels.
    """
    from . import _kernels
    from .augment import load_kernels
    from .transforms import load_kernel

    times: dict[str, float] = {}

    def step(name, fn):
        t = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - t
        if verbose:
            print(f"  {name:<24} {times[name]:6.2f} s", flush=True)

    def resize():
        for din, dout in _RESIZE_PAIRS:
            load_kernel(din, dout)

    def augment():
        load_kernels((np.int16, np.uint8, np.float32))

    def dvh():
        from .dvh import compute_roi_dvh
        from .phantom import analytic_case

        case = analytic_case("sphere_small")
        for dtype in (np.float32, np.float64):  # RTDOSE doses are float32, resampled ones float64
            for between in ("interpolate", "extrude"):
                compute_roi_dvh(case.dose.astype(dtype), case.dose_grid, {"S": case.contours}, between=between)

    def bytecode():
        compile_bytecode()

    step("bytecode (grtv_nb, grtv)", bytecode)
    step(f"resize ({len(_RESIZE_PAIRS)} dtype pairs)", resize)
    step("augment (int16, uint8, float32)", augment)
    step("DVH engine (float32, float64)", dvh)
    log.info("grtv_nb kernels ready in %s", _kernels.cache_dir())
    return times


def compile_bytecode() -> bool:
    """Write the bytecode of the grtv_nb package and the grtv module into their ``__pycache__``.

    Python reads existing bytecode even where ``PYTHONDONTWRITEBYTECODE`` forbids writing it, and
    ignores it once the source is newer. Returns False (logged, not raised) where the install is
    not writable, as a system site-packages is (pip wrote the bytecode there at install).
    """
    import compileall
    import importlib.util
    from pathlib import Path

    here = Path(__file__).resolve().parent
    ok = bool(compileall.compile_dir(str(here), quiet=1))
    spec = importlib.util.find_spec("grtv")
    if spec is not None and spec.origin:
        ok = bool(compileall.compile_file(spec.origin, quiet=1)) and ok
    if not ok:
        log.info("grtv_nb bytecode not written (install not writable): modules compile on import")
    return ok
