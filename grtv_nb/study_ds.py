"""The xarray side of a study: the Dataset :attr:`grtv_nb.study.Study.ds` returns (layout in
:mod:`grtv_nb.study`), built on its first use.

Opening a study and the pyGRTV facade's reads, resizes and augmentations work on NumPy arrays and
a :class:`~grtv_nb.geometry.Grid`; xarray (with pandas, ~0.6 s of a fresh process) is imported
here, when a Dataset is first asked for. Importing this module also registers ``ds.rt``
(:mod:`grtv_nb.accessor`) and keeps xarray from importing dask (:mod:`grtv_nb._xarray_nodask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from . import _xarray_nodask
from .accessor import DIRECTION_ATTR  # also registers ds.rt
from .geometry import Grid

if TYPE_CHECKING:
    from .dicom.rtstruct import ROI

_xarray_nodask.install()  # building st.ds must not import dask (see grtv_nb._xarray_nodask)


class MaskStore(Protocol):
    """What the masks variable reads: :class:`grtv_nb.study.MaskStore` (its grid and each ROI's
    packed mask, rasterised on first use)."""

    grid: Grid

    def packed(self, i: int) -> Any:
        """ROI ``i``'s mask as a :class:`grtv_nb.study.PackedMask`."""
        ...


class LazyMasks(BackendArray):
    """xarray backend array (roi, z, y, x) over a :class:`grtv_nb.study.MaskStore`."""

    def __init__(self, store: MaskStore, n: int):
        self.store = store
        self.shape = (n, *store.grid.shape)
        self.dtype = np.dtype(bool)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._get)

    def _get(self, key: tuple):
        key = tuple(key) + (slice(None),) * (4 - len(key))
        rk, *rest = key
        squeeze = [isinstance(k, int | np.integer) for k in rest]
        sl = [slice(int(k), int(k) + 1) if s else k for k, s in zip(rest, squeeze)]
        rois = [int(rk)] if isinstance(rk, int | np.integer) else range(*rk.indices(self.shape[0]))
        parts = []
        for i in rois:
            r = self.store.packed(i).region(*sl)
            st = [k.step for k in sl]
            if any(s not in (None, 1) for s in st):
                r = r[tuple(slice(None, None, s) for s in st)]
            parts.append(r)
        arr = np.stack(parts) if parts else np.zeros((0, 1, 1, 1), bool)
        first = 0 if isinstance(rk, int | np.integer) else slice(None)
        idx = tuple([first] + [0 if s else slice(None) for s in squeeze])
        return arr[idx]


def build_dataset(
    grid: Grid,
    *,
    image: np.ndarray | None,
    dose: np.ndarray | None,
    rois: Sequence[ROI],
    store: MaskStore,
    attrs: dict,
    notes: Sequence[str],
) -> xr.Dataset:
    """The study Dataset (layout in :mod:`grtv_nb.study`) over a study's arrays, ROIs and masks.

    Parameters
    ----------
    grid : Grid
        The study grid (coordinates ``z, y, x`` in mm, orientation, slice thickness).
    image, dose : numpy.ndarray or None
        The image and the dose (Gy) on ``grid`` (z, y, x); ``None`` when absent. Not copied.
    rois : sequence of ROI
        The ROIs, in order (names, numbers, types and colours become coordinates).
    store : MaskStore
        Their masks: the ``masks`` variable reads it lazily (an ROI is rasterised when first read).
    attrs : dict
        The study's attributes (``modality`` gives the image's units); ``notes``, ``spacing`` and
        ``direction`` are set from ``notes`` and ``grid``.
    notes : sequence of str
        The study's notes.
    """
    g = grid
    coords = {
        "z": ("z", g.z, {"units": "mm", "long_name": "slice position"}),
        "y": ("y", g.y, {"units": "mm"}),
        "x": ("x", g.x, {"units": "mm"}),
        "roi": ("roi", np.array([r.name for r in rois], dtype=object)),
        "roi_number": ("roi", np.array([r.number for r in rois], dtype=np.int32)),
        "roi_type": ("roi", np.array([r.roi_type for r in rois], dtype=object)),
        "roi_color": (("roi", "rgb"), np.array([r.color for r in rois], dtype=np.uint8).reshape(-1, 3)),
    }
    data = {}
    direction = tuple(float(v) for v in np.asarray(g.direction).ravel())
    # oblique: x, y, z run along the image axes (columns of direction); the arrays carry it (da.rt.grid)
    oriented = {} if g.axis_aligned else {DIRECTION_ATTR: direction}
    if image is not None:
        modality = str(attrs.get("modality", "") or "")
        units = "HU" if modality == "CT" else ""
        # the modality travels with the image (study.image alone says whether it is CT)
        iattrs = {"units": units, "modality": modality, **oriented}
        data["image"] = xr.Variable(("z", "y", "x"), image, iattrs)
    if dose is not None:
        data["dose"] = xr.Variable(("z", "y", "x"), dose, {"units": "Gy", **oriented})
    lazy = indexing.LazilyIndexedArray(LazyMasks(store, len(rois)))
    data["masks"] = xr.Variable(("roi", "z", "y", "x"), lazy, {"description": "ROI masks (lazy)"})
    out_attrs = dict(attrs)
    out_attrs["notes"] = list(notes)
    out_attrs["spacing"] = tuple(float(s) for s in g.spacing)
    out_attrs[DIRECTION_ATTR] = direction  # read by ds.rt
    return xr.Dataset(data, coords=coords, attrs=out_attrs)
