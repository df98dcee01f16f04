"""``ds.rt``: the RT operations on a plain xarray study Dataset (the model of grtv_nb).

A study's Dataset (:attr:`grtv_nb.study.Study.ds`, layout in :mod:`grtv_nb.study`) carries all it
needs in its coordinates and attributes: the voxel centres ``z, y, x`` (mm), the orientation
(``attrs["direction"]``, the 3x3 matrix whose columns are the x, y, z axes in patient space,
row-major), the frame of reference, the slice thickness, the modality, and per ROI its name
(``roi``), number, type and colour. So the same Dataset written with ``to_zarr()`` or
``to_netcdf()`` and reopened with xarray alone (``xr.open_zarr``, ``xr.open_dataset``, Dask-backed
or not) still answers ``ds.rt.grid``, ``ds.rt.mask("Heart")``, ``ds.rt.volume_cc("Heart")``,
``ds.rt.mesh("Heart")`` and ``ds.rt.dvh()`` from its masks, and ``ds.rt.add_roi(name, mask)`` gives a
new Dataset with one more ROI::

    import grtv_nb.accessor  # registers ds.rt (a study's first st.ds registers it too)
    ds = xr.open_zarr("patient.zarr")
    ds.rt.dvh(["PTV"]).stats

``da.rt.grid`` does the same for one DataArray on the study coordinates (``study.image``,
``study.dose``), from its coordinates and its ``direction`` attribute.

Writers and readers convert attribute containers (a tuple comes back as a list or an array, a
one-element list of strings from netCDF as a string); the accessor reads them whatever their
container (:attr:`RTAccessor.notes`, :attr:`RTAccessor.direction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .errors import ValidationError
from .geometry import Grid
from .validate import check_free_roi_name, check_new_roi, roi_position

__all__ = ["RTAccessor", "RTArrayAccessor", "check_free_roi_name", "check_new_roi", "grid_of", "roi_position"]

#: Dataset/DataArray attribute holding the orientation: 9 floats, the 3x3 direction row-major
DIRECTION_ATTR = "direction"


def _direction(*attr_sources: dict) -> np.ndarray:
    """The 3x3 direction from the first ``direction`` attribute found (identity when none)."""
    for attrs in attr_sources:
        value = attrs.get(DIRECTION_ATTR)
        if value is not None:
            d = np.asarray(value, dtype=np.float64).reshape(-1)
            if d.size != 9 or not np.isfinite(d).all():
                raise ValidationError(f"attribute '{DIRECTION_ATTR}' must hold 9 finite numbers, got {value!r}")
            return d.reshape(3, 3)
    return np.eye(3)


def grid_of(obj: xr.Dataset | xr.DataArray) -> Grid:
    """The :class:`~grtv_nb.geometry.Grid` of a study Dataset or of a DataArray on its coordinates.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Must have 1-D coordinates ``z``, ``y``, ``x`` (mm, strictly increasing). The orientation is
        the ``direction`` attribute of ``obj`` (then of ``obj["image"]`` for a Dataset), identity
        when absent; ``frame_of_reference_uid`` and ``slice_thickness`` come from the attributes.
    """
    missing = [a for a in ("z", "y", "x") if a not in obj.coords]
    if missing:
        raise ValidationError(f"a study Dataset needs coordinates z, y, x (mm); missing: {', '.join(missing)}")
    axes = [np.asarray(obj.coords[a].values, dtype=np.float64) for a in ("x", "y", "z")]
    for name, c in zip("xyz", axes):
        if c.ndim != 1 or c.size == 0 or not np.isfinite(c).all() or (c.size > 1 and not (np.diff(c) > 0).all()):
            raise ValidationError(f"coordinate '{name}' must be 1-D, finite and strictly increasing (mm)")
    sources = [obj.attrs]
    if isinstance(obj, xr.Dataset) and "image" in obj:
        sources.append(obj["image"].attrs)
    thickness = obj.attrs.get("slice_thickness", 0.0)
    return Grid(
        x=axes[0], y=axes[1], z=axes[2],
        direction=_direction(*sources),
        frame_of_reference_uid=str(obj.attrs.get("frame_of_reference_uid", "") or ""),
        slice_thickness=float(thickness) if thickness is not None else 0.0,
    )


class _GridAccessor:
    """The geometry part of ``.rt``, shared by Datasets and DataArrays."""

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    @property
    def grid(self) -> Grid:
        """The voxel grid (coordinates, orientation, frame of reference), see :func:`grid_of`."""
        return grid_of(self._obj)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """``(dz, dy, dx)`` in mm; dz is the median slice spacing (:attr:`Grid.spacing`)."""
        return self.grid.spacing

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the x, y, z axes in patient space (identity when axis-aligned)."""
        return self.grid.direction


@xr.register_dataset_accessor("rt")
class RTAccessor(_GridAccessor):
    """RT operations on a study Dataset: ``ds.rt`` (see the module docstring).

    Masks are DataArrays on the study coordinates, volumes are in cc weighted by each slice's own
    thickness (non-uniform z), DVHs come from :func:`grtv_nb.dvh.compute_dvh` (the one DVH engine).
    """

    def __init__(self, ds: xr.Dataset):
        super().__init__(ds)
        self._ds = ds

    @property
    def modality(self) -> str:
        """The image modality (``"CT"``, ``"MR"``; ``""`` without an image)."""
        return str(self._ds.attrs.get("modality", "") or "")

    @property
    def notes(self) -> list[str]:
        """The study's notes as a list of strings, whatever container a file format gave back."""
        value = self._ds.attrs.get("notes", [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in np.asarray(value, dtype=object).reshape(-1)]

    # -------------------------------------------------------------- variables
    @property
    def image(self) -> xr.DataArray | None:
        """The image (z, y, x), or None without one."""
        return self._ds["image"] if "image" in self._ds else None

    @property
    def dose(self) -> xr.DataArray | None:
        """The dose (z, y, x) in Gy, or None without one."""
        return self._ds["dose"] if "dose" in self._ds else None

    # -------------------------------------------------------------- ROIs
    @property
    def roi_names(self) -> list[str]:
        """ROI names in the order of the ``roi`` dimension."""
        if "roi" not in self._ds.coords:
            return []
        return [str(v) for v in self._ds.coords["roi"].values]

    def roi_index(self, roi: int | str) -> int:
        """Position of an ROI given its index or name (exact, then case-insensitive)."""
        return roi_position(self.roi_names, roi)

    @property
    def masks(self) -> xr.DataArray:
        """All ROI masks, bool (roi, z, y, x) (lazy where the Dataset is)."""
        if "masks" not in self._ds:
            raise ValidationError("the Dataset has no 'masks' variable (roi, z, y, x)")
        return self._ds["masks"]

    def mask(self, roi: int | str) -> xr.DataArray:
        """Boolean mask (z, y, x) of one ROI on the study coordinates, with its name, number, type
        and colour as scalar coordinates."""
        return self.masks.isel(roi=self.roi_index(roi)).astype(bool)

    def volume_cc(self, roi: int | str) -> float:
        """Volume in cc of the ROI's mask: voxel count per slice weighted by each slice's thickness
        (the Dataset holds masks, not contours: for an ROI read from contours this is the rasterised
        volume, close to but not the exact enclosed volume a :class:`~grtv_nb.study.Study` may give)."""
        per_slice = np.asarray(self.mask(roi).sum(dim=("y", "x")).values, dtype=np.float64)
        return float((per_slice * self.grid.voxel_volumes_cc()).sum())

    def mesh(self, roi: int | str) -> Any:
        """Closed surface mesh (patient mm) of an ROI's mask (:func:`grtv_nb.mesh.mask_to_mesh`)."""
        from .mesh import mask_to_mesh

        i = self.roi_index(roi)
        return mask_to_mesh(np.asarray(self.mask(i).values), self.grid, name=f"ROI '{self.roi_names[i]}'")

    def add_roi(self, name: str, mask: Any, color: Any = None, *, roi_type: str | None = None) -> xr.Dataset:
        """A new Dataset with one more ROI (the Dataset itself is not changed, as in xarray).

        Parameters
        ----------
        name : str
            ROI name: non-empty, not taken, writable to an RTSTRUCT (:func:`grtv_nb.validate.check_roi_name`).
        mask : bool array or DataArray (z, y, x) on the Dataset's grid
        color : (r, g, b), optional
            0..255; default the next of :func:`grtv_nb.display.default_color`.
        roi_type : str, optional
            RTROIInterpretedType; default EXTERNAL for a body outline's usual names, else ORGAN.

        Notes
        -----
        The masks are concatenated in memory (lazy masks are read): for a study held by a
        :class:`~grtv_nb.study.Study`, ``Study.add_roi`` is the way (it also keeps contours and meshes).
        """
        from .dicom.rtstruct import interpreted_type
        from .display import default_color
        from .validate import as_bool_mask

        names = self.roi_names
        name, color = check_new_roi(names, name, color)
        grid = self.grid
        m = as_bool_mask(mask.values if isinstance(mask, xr.DataArray) else mask, grid.shape, name=f"mask of '{name}'")
        ds = self._ds
        n = len(names)

        def column(coord: str, value: Any, dtype: Any) -> np.ndarray:
            old = np.asarray(ds[coord].values, dtype=dtype) if coord in ds.coords else None
            if old is None or old.shape[0] != n:
                old = np.array([default_color(i) for i in range(n)] if coord == "roi_color" else
                               ([i + 1 for i in range(n)] if coord == "roi_number" else [""] * n), dtype=dtype)
            return np.concatenate([old.reshape(n, *np.shape(value)), np.array([value], dtype=dtype)])

        numbers = column("roi_number", 0, np.int32)
        numbers[-1] = int(numbers[:-1].max(initial=0)) + 1
        old_masks = np.asarray(ds["masks"].values, dtype=bool) if n else np.zeros((0, *grid.shape), bool)
        attrs = dict(ds["masks"].attrs) if "masks" in ds else {}
        out = ds.drop_dims("roi") if "roi" in ds.dims else ds
        out = out.assign_coords(
            roi=("roi", np.array([*names, name], dtype=object)),
            roi_number=("roi", numbers),
            roi_type=("roi", column("roi_type", interpreted_type(name, roi_type or ""), object)),
            roi_color=(("roi", "rgb"), column("roi_color", color, np.uint8)),
        )
        return out.assign(masks=(("roi", "z", "y", "x"), np.concatenate([old_masks, m[None]]), attrs))

    def to_zarr(self, store: Any, **kwargs: Any) -> Any:
        """Write the Dataset with ``Dataset.to_zarr`` computing one ROI's mask at a time (with Dask
        installed: the masks are chunked per ROI, one zarr chunk each), so a study's masks never
        sit in memory all at once. ``kwargs`` go to :meth:`xarray.Dataset.to_zarr`."""
        ds = self._ds
        if "masks" in ds:
            try:
                ds = ds.assign(masks=ds["masks"].chunk({"roi": 1}))
            except ImportError:  # no Dask: xarray writes the masks in one piece
                pass
        return ds.to_zarr(store, **kwargs)

    def dvh(self, rois: Sequence[int | str] | None = None, **kwargs: Any) -> Any:
        """DVHs of ROIs (default: every ROI with a non-empty mask) from the Dataset's dose and masks
        (voxel-centre inclusion on the study grid, :func:`grtv_nb.dvh.compute_dvh`).

        Parameters
        ----------
        rois : sequence of names or indices, optional
        **kwargs
            Passed to :func:`grtv_nb.dvh.compute_dvh` (``bin_width``, ``supersample``, statistics...).

        Returns
        -------
        grtv_nb.dvh.DVHResult
        """
        from .dvh import compute_dvh

        if "dose" not in self._ds:
            raise ValidationError("the Dataset has no 'dose' variable: no DVH can be computed")
        if rois is None:
            idx = [i for i in range(len(self.roi_names)) if bool(self.masks.isel(roi=i).any())]
        else:
            idx = [self.roi_index(r) for r in rois]
        names = [self.roi_names[i] for i in idx]
        masks, position = self.masks, dict(zip(names, idx))
        return compute_dvh(np.asarray(self._ds["dose"].values), self.grid,
                           lambda n: np.asarray(masks.isel(roi=position[n]).values), roi_names=names, **kwargs)


@xr.register_dataarray_accessor("rt")
class RTArrayAccessor(_GridAccessor):
    """``da.rt`` on one volume (z, y, x) on the study coordinates (``study.image``, ``study.dose``):
    its ``grid``, ``spacing`` and ``direction`` from its coordinates and ``direction`` attribute."""
