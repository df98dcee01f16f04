"""Where numba caches grtv_nb's compiled kernels, and their state, decided and inspected without
importing numba.

:func:`choose_cache_dir` runs before :mod:`grtv_nb._kernels` imports numba. The NumPy-first
policies (:mod:`grtv_nb.transforms`, :mod:`grtv_nb._numpy_kernels`) ask :func:`kernels_warm`
whether a compiled kernel already ran in the process, and :func:`kernel_cached` whether a
kernel's machine code is on disk (a load of ~1 s) or would be compiled (10-30 s).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _writable_dir(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK | os.X_OK)


def choose_cache_dir() -> None:
    """Make sure numba has a writable on-disk cache before it is imported.

    numba caches next to the kernels' file (``__pycache__``) when it can, else in a per-user folder;
    where neither is writable (a read-only site-packages and home, as in some containers) it would
    recompile every kernel in every process. Then ``NUMBA_CACHE_DIR`` is set to a per-user folder
    under the temporary directory. An explicit ``NUMBA_CACHE_DIR`` is always respected.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    import tempfile  # here only: the read path imports this module (transforms) but never calls this

    here = _PACKAGE_DIR
    if os.access(here / "__pycache__", os.W_OK) or (not (here / "__pycache__").exists() and os.access(here, os.W_OK)):
        return  # numba's in-tree cache works
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates = [Path(xdg) / "grtv_nb" / "numba"] if xdg else []
    candidates += [Path.home() / ".cache" / "grtv_nb" / "numba",
                   Path(tempfile.gettempdir()) / f"grtv_nb-numba-{getattr(os, 'getuid', lambda: 0)()}"]
    for cand in candidates:
        if _writable_dir(cand):
            os.environ["NUMBA_CACHE_DIR"] = str(cand)
            return


def kernel_cached(module: str, name: str) -> bool:
    """Whether numba's on-disk cache holds an index for kernel ``name`` of ``grtv_nb.<module>``
    (``<module>.<name>-<line>.py<ver>.nbi``, in ``__pycache__`` or a subfolder of
    ``NUMBA_CACHE_DIR``). A heuristic: an index written by another version of the source makes
    numba compile anyway."""
    choose_cache_dir()
    pattern = f"{module}.{name}-*.nbi"
    root = os.environ.get("NUMBA_CACHE_DIR")
    try:
        if root:
            return any(Path(root).glob(f"*/{pattern}"))
        return any((_PACKAGE_DIR / "__pycache__").glob(pattern))
    except OSError:
        return False


def kernels_warm() -> bool:
    """Whether a compiled kernel of :mod:`grtv_nb._kernels` already ran in this process: numba's
    registries are then loaded and another kernel or dtype loads from the cache in tens of
    milliseconds."""
    k = sys.modules.get(__package__ + "._kernels")
    return k is not None and any(getattr(v, "overloads", None) for v in vars(k).values())
