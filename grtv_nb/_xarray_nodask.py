"""Keep xarray from importing dask when no dask array exists.

xarray asks of every array it wraps "is this a dask array?" and answers by importing dask (0.5-1 s in
a fresh process) whenever dask is installed, even for plain NumPy data. An object can only be a dask
array or collection once dask itself has been imported, so until then the answer is "no" without the
import. :func:`install` (called by :mod:`grtv_nb.study`) teaches xarray that, in its two lookup
points; as soon as anything imports dask, xarray's own checks take over unchanged.
"""

from __future__ import annotations

import sys

_installed = False


class _DaskUntilImported:
    """Stands in xarray's cache of duck-array modules for ``dask`` until dask is imported."""

    def _real(self):
        from xarray.namedarray import pycompat

        real = pycompat.DuckArrayModule("dask")
        pycompat._cached_duck_array_modules["dask"] = real
        return real

    @property
    def type(self):
        if "dask.array" not in sys.modules:
            return ()
        return self._real().type

    def __getattr__(self, name):  # module, version, available: asked only by dask-specific code
        return getattr(self._real(), name)


def install() -> None:
    """Make xarray's dask checks free while dask is not imported (idempotent; no-op if xarray's
    internals differ from the versions this was written for)."""
    global _installed
    if _installed:
        return
    _installed = True
    try:
        from xarray.core import utils as core_utils
        from xarray.namedarray import pycompat
        from xarray.namedarray import utils as nutils
    except ImportError:  # pragma: no cover - other xarray layout: keep its behaviour
        return
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if isinstance(cache, dict) and "dask" not in cache and "dask" not in sys.modules:
        cache["dask"] = _DaskUntilImported()
    original = getattr(nutils, "is_dask_collection", None)
    if original is None:  # pragma: no cover
        return

    def is_dask_collection(x) -> bool:
        return "dask" in sys.modules and original(x)

    nutils.is_dask_collection = is_dask_collection
    if getattr(core_utils, "is_dask_collection", None) is original:
        core_utils.is_dask_collection = is_dask_collection
