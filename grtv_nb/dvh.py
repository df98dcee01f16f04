"""Dose-volume histograms: the one DVH engine of grtv_nb (cumulative and differential DVHs and the
statistics physicists read, for one or many ROIs).

Design: a structure is what its contours enclose
------------------------------------------------
The default, :func:`compute_roi_dvh` with ``convention="exact"`` (what :meth:`grtv_nb.Study.dvh`,
:meth:`grtv_nb.Study.volume_cc`, the facade and the summaries use), works from the contours, not from
a mask on some reference grid:

* **Slabs.** Loops are grouped into contour planes; each plane stands for its own slab, half-way to
  its neighbours, the end planes capped by half their spacing (``end_cap="half"``, the default
  ``"auto"``) or not at all (``"none"``); see :mod:`grtv_nb.planes`. Loops of one plane combine
  even-odd (holes); loops of different planes are never joined or XORed. Contour planes finer than
  the dose grid, or no image series at all, change nothing: the reference planes are the
  structure's own contour planes.
* **Volume** = sum over planes of the exact polygon area (shoelace, holes subtracted) times the slab
  thickness: exactly what the contours enclose, whatever the grids (extruded ROIs; an interpolated
  ROI has its solid's own volume, below).
* **Dose.** Each plane is sampled on an in-plane lattice (spacing at most the dose pixel, and fine
  enough for 64 samples across the ROI). Along z the trilinear dose at a sample is linear between
  dose planes, so each piece of a sample's z extent between dose planes is a dose *segment*
  histogrammed exactly (its volume spread uniformly between the doses at its ends): no sampling
  error along z, and the SI tails of the DVH are right for any slab thickness. Dose beyond half a
  voxel outside the dose grid is 0 Gy, with a note. See :mod:`grtv_nb.solid`.
* **Shape between planes** (``between``). ``"extrude"``: each plane's region is extruded over its
  slab (its samples share the plane's exact area). ``"interpolate"``: the solid between two
  neighbouring planes is the zero level set of their regions' signed distances (on the lattice)
  interpolated linearly in z, so at each lattice cell the solid is one exact z interval. End caps
  extrapolate the surface beyond the end planes: a shrinking end follows the planes' inradii
  (``radius**2`` quadratic through three planes: exact for spheres, ellipsoids, cone apexes and
  lying cylinders; with a fourth plane, the radius model only where it predicts the end plane's area
  from the next three better than the areas' own model and within 25 %) and ends where it vanishes,
  if within one plane spacing, else at half a spacing; a growing end (a flat face between planes)
  extends half a spacing, its area extrapolated at most linearly; a run of two planes keeps the
  slab's caps. The interpolated ROI's **volume is the solid's own**: between planes the integral of
  the cubic through the nearest planes' areas (exact where areas are quadratic in z, as for spheres
  and cones), plus the caps; the slab volume above over-counts a sphere's middle and under-counts
  its poles (-3 %..+3 % on a 4 mm sphere with 2 mm planes). On real exports it stays within a few %
  of the slab volume (:meth:`grtv_nb.Study.volume_cc` gives the same volume as the DVH). ``"auto"`` (default)
  interpolates ROIs whose equivalent diameter spans fewer than 16 plane spacings (small ROIs, coarse
  planes: where extrusion misplaces the ends' volume; spheres on 3 mm planes: D99/D1 within 0.1 Gy
  in 1 Gy/mm instead of 0.8 Gy off) and extrudes the others (where both agree; the interpolation
  costs about 3x the time).
* Not modelled: where the contours say nothing. A flat end face (cylinder, cone base) gives the
  same contours wherever it lies between the last plane inside and the first outside (a range of
  its area x the spacing, 12 % of a 24 mm cone's volume on 1 mm planes): the half-spacing cap is
  exact when the face lies half a spacing beyond the end plane (on a slab boundary), and off by
  face area x offset otherwise. Two planes give no curvature to
  extrapolate from (a 4 mm sphere with two 3 mm planes: -3.6 %).

Other conventions, for comparison: ``"dicompyler"`` reproduces dicompyler-core 0.5.6 (dose pixel
centres, XOR of a plane's loops, every plane as thick as the smallest plane gap, nearest dose plane
within 0.5 mm else interpolated); ``"voxel"`` is voxel-centre inclusion on a mask (below).

Voxel method (:func:`compute_dvh`, masks; :func:`compute_dvh_on_dose_grid`, contours on dose planes)
---------------------------------------------------------------------------------------------------
* **Voxel-centre inclusion.** A voxel belongs to an ROI when its mask is True (masks are rasterised
  at voxel centres); there are no partial volumes. Each voxel counts with its own volume,
  ``grid.voxel_volumes_cc()[z]``, so non-uniform slice spacing is handled. ROIs defined by a mask
  (``add_roi``, segmentation) use it in the default study DVH too.
* **Dose.** A voxel's dose is the dose value stored at its centre (no interpolation), on whatever
  grid the dose and masks share.
* **Supersampling** (optional, ``supersample=s``, in-plane only): each voxel is split into ``s x s``
  sub-voxels of ``1/s**2`` its volume, the dose bilinear in-plane at their centres
  (:func:`grtv_nb.transforms.sample_separable`); their mask is the parent voxel's
  (:func:`compute_dvh`) or the contours rasterised on the fine grid (:func:`compute_dvh_on_dose_grid`).

Common to all
-------------
* **Bins.** Width ``bin_width`` Gy (default 0.01 Gy = 1 cGy), lower edges ``0, w, 2w, ...`` (the
  ``dose`` coordinate). A sample of dose ``d`` falls in bin ``floor(d / w)``. ``cumulative[k]`` is
  the volume receiving at least ``k*w`` (exact at the edges); ``differential[k]`` the volume with
  ``k*w <= d < (k+1)*w``. All ROIs share one dose axis, from 0 to one bin past the highest dose.
* **min / mean / max** come from the samples (the mean is volume-weighted), not from the histogram.
* **D(x %), D(x cc)**: the dose received by at least that volume, by linear interpolation of the
  cumulative DVH between bin edges (error below one bin). **V(x Gy)** and **V(x % of the
  prescription)**: the cumulative DVH linearly interpolated at that dose, in cc and in %.

Results are :class:`DVHResult` objects holding xarray DataArrays with dims ``(roi, dose)``
(``result.cumulative.plot.line(x="dose")`` draws them all) and a statistics Dataset (dim ``roi``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GRTVError, ValidationError
from .geometry import Grid
from .solid import roi_volume as roi_volume_cc  # noqa: F401  (the dose-free volume of the default DVH)

DEFAULT_DOSE_PCT = (98.0, 95.0, 50.0, 2.0)

#: A result's statistics as arrays: name -> (dims, values, attrs).
_StatsArrays = dict[str, tuple[tuple[str], np.ndarray, dict]]

MaskSource = Any  # Mapping[str, ndarray] | ndarray | xarray.DataArray | Callable | Iterable[(name, mask)]


# ----------------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------------
class DVHResult:
    """DVHs of several ROIs on a common dose axis.

    Immutable. The engine builds it from NumPy arrays; the xarray objects below are created on
    first access (and kept), so computing a DVH does not pay for xarray until it is used.

    Attributes
    ----------
    differential : xarray.DataArray, dims (roi, dose)
        Volume (cc) in each dose bin ``[dose, dose + bin_width)``.
    stats : xarray.Dataset, dim roi
        ``volume_cc``, ``n_voxels``, ``min``, ``mean``, ``max`` (Gy), ``D<x>`` (Gy, x % of the volume),
        ``D<x>cc`` (Gy), ``V<x>Gy_cc``/``V<x>Gy_pct``, ``V<x>%Rx_cc``/``V<x>%Rx_pct``.
        Empty ROIs have volume 0 and NaN dose statistics.
    bin_width : float
        Bin width (Gy).
    prescription_gy : float or None
        Prescription dose used for relative-dose statistics.
    """

    __slots__ = ("_xr", "_arrays", "bin_width", "prescription_gy")
    _xr: tuple[Any, Any] | None  # (differential, stats) once built
    _arrays: tuple[list[str], np.ndarray, np.ndarray, _StatsArrays] | None  # what they are built from, if lazy
    bin_width: float
    prescription_gy: float | None

    def __init__(self, differential: Any, stats: Any, bin_width: float, prescription_gy: float | None = None):
        for k, v in (("_xr", (differential, stats)), ("_arrays", None), ("bin_width", bin_width),
                     ("prescription_gy", prescription_gy)):
            object.__setattr__(self, k, v)

    @classmethod
    def _from_arrays(cls, names: list[str], edges: np.ndarray, diff: np.ndarray,
                     stats: _StatsArrays, bin_width: float,
                     prescription_gy: float | None) -> DVHResult:
        """A result whose xarray objects are built from these arrays on first access
        (:func:`_as_xarray`)."""
        out = cls(None, None, bin_width, prescription_gy)
        object.__setattr__(out, "_xr", None)
        object.__setattr__(out, "_arrays", (names, edges, diff, stats))
        return out

    def _built(self) -> tuple[Any, Any]:
        built = self._xr
        if built is None:  # one assignment: a concurrent reader sees both objects or builds its own
            assert self._arrays is not None  # kept: the objects wrap these arrays (no copies)
            built = _as_xarray(*self._arrays, self.bin_width, self.prescription_gy)
            object.__setattr__(self, "_xr", built)
        return built

    @property
    def differential(self) -> Any:
        """Volume (cc) in each dose bin, xarray.DataArray dims (roi, dose)."""
        return self._built()[0]

    @property
    def stats(self) -> Any:
        """Statistics of each ROI, xarray.Dataset dim roi (see the class docstring)."""
        return self._built()[1]

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple:
        return (DVHResult, (self.differential, self.stats, self.bin_width, self.prescription_gy))

    # -- curves ----------------------------------------------------------------------------------
    @property
    def roi_names(self) -> list[str]:
        return [str(r) for r in self.differential.coords["roi"].values]

    @property
    def dose(self) -> np.ndarray:
        """Lower bin edges (Gy)."""
        return np.asarray(self.differential.coords["dose"].values)

    @property
    def volume_cc(self) -> Any:
        return self.stats["volume_cc"]

    @property
    def cumulative(self) -> Any:
        """Cumulative DVH (cc receiving at least ``dose``), dims (roi, dose)."""
        d = self.differential
        cum = np.cumsum(d.values[:, ::-1], axis=1)[:, ::-1]
        out = d.copy(data=cum)
        out.name = "cumulative_dvh"
        out.attrs = {"units": "cc", "long_name": "volume receiving at least dose", "bin_width_gy": self.bin_width}
        return out

    def _relative(self, da: Any) -> Any:
        vol = self.stats["volume_cc"].values
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(vol[:, None] > 0, da.values * 100.0 / vol[:, None], 0.0)
        out = da.copy(data=rel)
        out.attrs = {**da.attrs, "units": "%"}
        return out

    @property
    def cumulative_pct(self) -> Any:
        """Cumulative DVH in % of each ROI's volume."""
        return self._relative(self.cumulative)

    @property
    def differential_pct(self) -> Any:
        """Differential DVH in % of each ROI's volume per bin."""
        return self._relative(self.differential)

    def to_dataset(self) -> Any:
        """All curves and statistics in one xarray Dataset."""
        import xarray as xr

        ds = xr.Dataset(
            {
                "cumulative_cc": self.cumulative,
                "cumulative_pct": self.cumulative_pct,
                "differential_cc": self.differential,
            }
        )
        return ds.merge(self.stats)

    def __getitem__(self, roi: str | int) -> DVHResult:
        """The DVH of one ROI (by name or position) as a 1-ROI result."""
        key = {"roi": [roi]} if isinstance(roi, str) else {"roi": [self.roi_names[roi]]}
        try:
            return DVHResult(self.differential.sel(key), self.stats.sel(key), self.bin_width, self.prescription_gy)
        except KeyError:
            raise GRTVError(f"no ROI {roi!r} in this DVH result (ROIs: {self.roi_names})") from None

    # -- statistics on demand -----------------------------------------------------------------------
    def dose_at_volume(self, volume: float, *, relative: bool = True) -> Any:
        """Dose (Gy) received by at least ``volume`` (% of each ROI, or cc when ``relative=False``)."""
        cum = self.cumulative.values
        vol = self.stats["volume_cc"].values
        target = vol * volume / 100.0 if relative else np.full(len(vol), float(volume))
        vals = np.array([_dose_at(cum[i], self.dose, target[i], vol[i]) for i in range(len(vol))])
        return self.stats["volume_cc"].copy(data=vals).rename("D")

    def volume_at_dose(self, dose_gy: float, *, relative: bool = False) -> Any:
        """Volume (cc, or % when ``relative``) receiving at least ``dose_gy``."""
        cum = self.cumulative.values
        vol = self.stats["volume_cc"].values
        vals = np.array([_volume_at(cum[i], self.dose, float(dose_gy)) for i in range(len(vol))])
        if relative:
            with np.errstate(invalid="ignore", divide="ignore"):
                vals = np.where(vol > 0, vals * 100.0 / vol, np.nan)
        return self.stats["volume_cc"].copy(data=vals).rename("V")

    # -- output -------------------------------------------------------------------------------------
    def plot(self, ax: Any = None, *, relative: bool = True, cumulative: bool = True, **kwargs: Any) -> Any:
        """Draw every ROI's DVH on one axes (matplotlib, imported lazily); returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        if cumulative:
            da = self.cumulative_pct if relative else self.cumulative
        else:
            da = self.differential_pct if relative else self.differential
        x = self.dose if cumulative else self.dose + self.bin_width / 2
        for i, name in enumerate(self.roi_names):
            ax.plot(x, da.values[i], label=name, **kwargs)
        ax.set_xlabel("dose (Gy)")
        ax.set_ylabel(("volume (%)" if relative else "volume (cc)") + ("" if cumulative else " per bin"))
        if self.roi_names:
            ax.legend(fontsize="small")
        return ax

    def to_csv(self, path: str | os.PathLike, *, kind: str = "cumulative", relative: bool = False) -> Path:
        """Write the DVHs as CSV: a ``dose_gy`` column (lower bin edges) and one column per ROI.

        ``kind`` is ``"cumulative"`` or ``"differential"``; volumes in cc, or % when ``relative``.
        The file is written atomically (temporary file in the same folder, then renamed).
        """
        if kind not in ("cumulative", "differential"):
            raise ValidationError(f"kind must be 'cumulative' or 'differential', got {kind!r}")
        da = {
            ("cumulative", False): lambda: self.cumulative,
            ("cumulative", True): lambda: self.cumulative_pct,
            ("differential", False): lambda: self.differential,
            ("differential", True): lambda: self.differential_pct,
        }[(kind, bool(relative))]()
        rows = np.column_stack([self.dose, da.values.T])
        header = ["dose_gy"] + [f"{n} ({'%' if relative else 'cc'})" for n in self.roi_names]
        return _atomic_csv(path, header, rows)

    def stats_to_csv(self, path: str | os.PathLike) -> Path:
        """Write the statistics table (one row per ROI) as CSV, atomically."""
        names = list(self.stats.data_vars)
        rows = [[r] + [float(self.stats[n].values[i]) for n in names] for i, r in enumerate(self.roi_names)]
        return _atomic_csv(path, ["roi"] + names, rows)

    def __repr__(self) -> str:
        return (
            f"<DVHResult {len(self.roi_names)} ROIs, {len(self.dose)} bins of {self.bin_width:g} Gy"
            f" up to {self.dose[-1] if len(self.dose) else 0:g} Gy>"
        )


def _atomic_csv(path: str | os.PathLike, header: list[str], rows: Any) -> Path:
    from .fileio import atomic_open

    with atomic_open(path, "w", "CSV path", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow([f"{v:.6g}" if isinstance(v, float | np.floating) else v for v in row])
    return Path(path)


# ----------------------------------------------------------------------------------------------
# interpolation on the cumulative curve
# ----------------------------------------------------------------------------------------------
def _dose_at(cum: np.ndarray, edges: np.ndarray, v: float, total: float) -> float:
    """Largest dose d with cum(d) >= v, cum linear between bin edges (:func:`_doses_at`)."""
    return float(_doses_at(cum, edges, v, total)[0])


def _doses_at(cum: np.ndarray, edges: np.ndarray, v: Any, total: float) -> np.ndarray:
    """Largest dose d with cum(d) >= v, cum linear between bin edges, for each volume of ``v``
    (NaN where ``v`` is negative, not finite or above ``total``)."""
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    out = np.full(len(v), np.nan)
    ok = np.isfinite(v) & (v >= 0) & ~(v > total * (1 + 1e-9))
    if not total > 0 or not ok.any():
        return out
    v = v[ok]
    # cum is non-increasing; k = last index with cum[k] >= v
    k = np.maximum(np.searchsorted(-cum, -v, side="right") - 1, 0)
    top = k >= len(cum) - 1
    k1 = np.minimum(k + 1, len(cum) - 1)
    c0, c1 = cum[k], cum[k1]
    e0, e1 = edges[k], edges[k1]
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = e0 + (e1 - e0) * (c0 - v) / (c0 - c1)
    out[ok] = np.where(top, edges[-1], np.where(c0 <= c1, e0, lin))
    return out


def _volume_at(cum: np.ndarray, edges: np.ndarray, d: float) -> float:
    if len(edges) == 0:
        return 0.0
    return float(np.interp(d, edges, cum, left=cum[0], right=0.0))


# ----------------------------------------------------------------------------------------------
# mask sources
# ----------------------------------------------------------------------------------------------
def _iter_masks(masks: MaskSource, roi_names: Sequence[str] | None) -> Iterable[tuple[str, Any]]:
    """Yield (name, mask) pairs from the accepted mask containers (masks fetched lazily)."""
    if isinstance(masks, Mapping):
        names = list(roi_names) if roi_names is not None else list(masks)
        for n in names:
            if n not in masks:
                raise ValidationError(f"roi_names: no mask named {n!r} in masks")
            yield str(n), masks[n]
        return
    if callable(masks):
        if roi_names is None:
            raise ValidationError("roi_names is required when masks is a callable name -> mask")
        for n in roi_names:
            yield str(n), masks(n)
        return
    if hasattr(masks, "dims") and hasattr(masks, "isel"):  # xarray DataArray (roi, z, y, x)
        if masks.ndim == 3:
            yield (str(roi_names[0]) if roi_names else "roi"), masks.values
            return
        if "roi" not in masks.dims:
            raise ValidationError(f"masks DataArray must have a 'roi' dim, has {masks.dims}")
        labels = [str(v) for v in masks.coords["roi"].values] if "roi" in masks.coords else None
        if roi_names is not None:
            for n in roi_names:
                yield str(n), masks.sel(roi=n).values
            return
        for i in range(masks.sizes["roi"]):
            yield (labels[i] if labels else f"roi{i}"), masks.isel(roi=i).values
        return
    if isinstance(masks, np.ndarray):
        if masks.ndim == 3:
            yield (str(roi_names[0]) if roi_names else "roi"), masks
            return
        if masks.ndim == 4:
            if roi_names is not None and len(roi_names) != masks.shape[0]:
                raise ValidationError(f"roi_names has {len(roi_names)} names but masks has {masks.shape[0]} ROIs")
            for i in range(masks.shape[0]):
                yield (str(roi_names[i]) if roi_names else f"roi{i}"), masks[i]
            return
        raise ValidationError(f"masks must be 3D (z, y, x) or 4D (roi, z, y, x), got shape {masks.shape}")
    # iterable of (name, mask) pairs or of masks
    items = list(masks)
    for i, it in enumerate(items):
        if isinstance(it, tuple) and len(it) == 2 and isinstance(it[0], str):
            yield it[0], it[1]
        else:
            yield (str(roi_names[i]) if roi_names else f"roi{i}"), it


def _as_bool_mask(mask: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    from .validate import as_bool_mask

    return as_bool_mask(mask, shape, f"mask of ROI {name!r}", "the dose")


def _check_dose(dose: Any, grid: Grid) -> np.ndarray:
    return _checked_dose(dose, grid)[0]


def _checked_dose(dose: Any, grid: Grid) -> tuple[np.ndarray, float]:
    """The dose as a float array, validated against ``grid``, and its maximum (Gy; 0 if empty)."""
    d = np.asarray(dose)
    if d.ndim != 3:
        raise ValidationError(f"dose must be a 3D array (z, y, x) in Gy, got shape {d.shape}")
    if d.shape != grid.shape:
        raise ValidationError(f"dose has shape {d.shape} but the grid has shape {grid.shape}")
    if not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)):
        raise ValidationError(f"dose must be numeric (Gy), got dtype {d.dtype}")
    if d.dtype not in (np.float32, np.float64):
        d = d.astype(np.float32)
    dmin = float(d.min()) if d.size else 0.0
    dmax = float(d.max()) if d.size else 0.0
    if np.isnan(dmin) or np.isnan(dmax):
        raise ValidationError("dose contains NaN values")
    if dmin < 0:
        raise ValidationError(f"dose has negative values (min {dmin:g} Gy)")
    return d, dmax


# ----------------------------------------------------------------------------------------------
# per-ROI voxel extraction
# ----------------------------------------------------------------------------------------------
@dataclass
class _Voxels:
    dose: np.ndarray  # doses of the ROI's voxels (Gy)
    weight: np.ndarray | float  # volume (cc) of each voxel, or one value for all
    hist: np.ndarray | None = None  # differential histogram already accumulated (bins of w from 0)
    summary: tuple | None = None  # with hist: (volume cc, mean, min, max)


def _roi_voxels(dose: np.ndarray, mask: np.ndarray, vv: np.ndarray, uniform: bool, ss: int) -> _Voxels:
    """Doses and volumes of the ROI's voxels (work restricted to the ROI's bounding box)."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if len(zs) == 0:
        return _Voxels(np.zeros(0, np.float32), 0.0)
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    m = mask[z0:z1]
    proj = np.any(m, axis=0)
    ys, xs = np.flatnonzero(proj.any(axis=1)), np.flatnonzero(proj.any(axis=0))
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    m = m[:, y0:y1, x0:x1]
    if ss > 1:
        m = np.repeat(np.repeat(m, ss, axis=1), ss, axis=2)
        d = _supersample_dose(dose, ss, z0, z1, y0, y1, x0, x1)[m]
        w_slices = vv[z0:z1] / (ss * ss)
    else:
        d = dose[z0:z1, y0:y1, x0:x1][m]
        w_slices = vv[z0:z1]
    if uniform:
        return _Voxels(d, float(w_slices[0]))
    counts = m.reshape(m.shape[0], -1).sum(axis=1)
    return _Voxels(d, np.repeat(w_slices, counts))


def _fine_offsets(n: int, ss: int, i0: int) -> np.ndarray:
    """Fractional indices of the sub-voxel centres of voxels i0..i0+n-1 split into ss parts."""
    return i0 - 0.5 + (np.arange(n * ss) + 0.5) / ss


def _supersample_dose(dose: np.ndarray, ss: int, z0: int, z1: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    from .transforms import sample_separable

    iz = np.arange(z0, z1, dtype=np.float64)
    iy = _fine_offsets(y1 - y0, ss, y0)
    ix = _fine_offsets(x1 - x0, ss, x0)
    return sample_separable(dose, iz, iy, ix, fill=None, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def compute_dvh(
    dose: np.ndarray,
    grid: Grid,
    masks: MaskSource,
    *,
    roi_names: Sequence[str] | None = None,
    bin_width: float = 0.01,
    supersample: int = 1,
    prescription_gy: float | None = None,
    dose_pct: Sequence[float] = DEFAULT_DOSE_PCT,
    dose_cc: Sequence[float] = (),
    volume_gy: Sequence[float] = (),
    volume_pct_rx: Sequence[float] = (),
) -> DVHResult:
    """DVHs of one or many ROIs from a dose and masks on the same grid (see the module docstring).

    Parameters
    ----------
    dose : ndarray (z, y, x), float, Gy
        Dose at the voxel centres of ``grid``; must be finite and non-negative.
    grid : Grid
        The grid of ``dose`` and of the masks; gives the per-slice voxel volumes.
    masks : mapping name -> bool (z, y, x) | bool (z, y, x) | bool (roi, z, y, x) | xarray.DataArray
        (roi, z, y, x) | callable name -> mask (with ``roi_names``) | iterable of (name, mask) pairs.
        Integer masks count nonzero voxels as inside. Masks are fetched one at a time.
    roi_names : sequence of str, optional
        Names (and order) of the ROIs; required with a callable.
    bin_width : float
        Histogram bin width in Gy (default 0.01 = 1 cGy; at most 0.01).
    supersample : int
        In-plane supersampling factor (1 = none).
    prescription_gy : float, optional
        Prescription dose for ``volume_pct_rx`` statistics.
    dose_pct, dose_cc, volume_gy, volume_pct_rx : sequences of float
        Statistics to compute: D(x %) and D(x cc) in Gy, V(x Gy) and V(x % of prescription) in cc and %.

    Returns
    -------
    DVHResult
    """
    opts = _stat_options(bin_width, prescription_gy, dose_pct, dose_cc, volume_gy, volume_pct_rx)
    ss = int(supersample)
    if ss < 1 or ss != supersample:
        raise ValidationError(f"supersample must be a positive integer, got {supersample!r}")
    d = _check_dose(dose, grid)
    vv = np.asarray(grid.voxel_volumes_cc(), dtype=np.float64)
    uniform = bool(np.all(np.abs(vv - vv[0]) <= 1e-9 * vv[0]))
    names: list[str] = []
    vox: list[_Voxels] = []
    for name, m in _iter_masks(masks, roi_names):
        if name in names:
            raise ValidationError(f"ROI name {name!r} appears twice")
        names.append(name)
        vox.append(_roi_voxels(d, _as_bool_mask(m, name, d.shape), vv, uniform, ss))
    return _histograms(names, vox, **opts)


def _histograms(
    names: list[str],
    vox: list[_Voxels],
    w: float,
    rx: float | None,
    dose_pct: Sequence[float],
    dose_cc: Sequence[float],
    volume_gy: Sequence[float],
    volume_pct_rx: Sequence[float],
) -> DVHResult:
    inv = 1.0 / w
    n = len(names)
    dmin = np.full(n, np.nan)
    dmax = np.full(n, np.nan)
    dmean = np.full(n, np.nan)
    vol = np.zeros(n)
    nvox = np.zeros(n, dtype=np.int64)
    bins_list: list[np.ndarray | None] = []
    for i, v in enumerate(vox):
        nvox[i] = v.dose.size
        if v.dose.size == 0 and v.hist is None:
            bins_list.append(None)
            continue
        dd = v.dose
        if v.hist is not None:  # accumulated by the exact engine
            assert v.summary is not None  # set with hist
            vol[i], dmean[i], dmin[i], dmax[i] = v.summary
            nz_ = np.flatnonzero(v.hist > 0)
            bins_list.append(np.array([nz_[-1] if len(nz_) else 0]))
            continue
        dmin[i], dmax[i] = float(dd.min()), float(dd.max())
        if isinstance(v.weight, float):
            vol[i] = v.weight * dd.size
            dmean[i] = float(np.mean(dd, dtype=np.float64))
        else:
            vol[i] = float(v.weight.sum())
            dmean[i] = float(np.dot(v.weight, dd.astype(np.float64)) / vol[i])
        bins_list.append((dd * np.float32(inv) if dd.dtype == np.float32 else dd * inv).astype(np.intp))
    top = max((int(b.max()) for b in bins_list if b is not None), default=0)
    nb = top + 2  # one empty bin past the highest dose, so the cumulative ends at 0
    diff = np.zeros((n, nb))
    for i, (b, v) in enumerate(zip(bins_list, vox)):
        if b is None:
            continue
        if v.hist is not None:
            k = min(len(v.hist), nb)
            diff[i, :k] = v.hist[:k]
        elif isinstance(v.weight, float):
            diff[i] = np.bincount(b, minlength=nb)[:nb] * v.weight
        else:
            diff[i] = np.bincount(b, weights=v.weight, minlength=nb)[:nb]
    edges = np.arange(nb) * w
    cum = np.cumsum(diff[:, ::-1], axis=1)[:, ::-1]

    stats: _StatsArrays = {
        "volume_cc": (("roi",), vol, {"units": "cc"}),
        "n_voxels": (("roi",), nvox, {}),
        "min": (("roi",), dmin, {"units": "Gy"}),
        "mean": (("roi",), dmean, {"units": "Gy"}),
        "max": (("roi",), dmax, {"units": "Gy"}),
    }
    # each ROI's doses to all asked volumes (% of its volume, then cc) at once
    pct, cc = np.array(dose_pct, dtype=np.float64), np.array(dose_cc, dtype=np.float64)
    dv = np.array([_doses_at(cum[i], edges, np.concatenate([vol[i] * pct / 100.0, cc]), vol[i])
                   for i in range(n)]).reshape(n, len(pct) + len(cc))
    for j, x in enumerate(dose_pct):
        stats[f"D{x:g}"] = (("roi",), dv[:, j], {"units": "Gy", "long_name": f"dose to {x:g}% of volume"})
    for j, x in enumerate(dose_cc):
        stats[f"D{x:g}cc"] = (("roi",), dv[:, len(pct) + j], {"units": "Gy", "long_name": f"dose to {x:g} cc"})
    rel = np.where(vol > 0, 100.0 / np.where(vol > 0, vol, 1.0), np.nan)
    for x in volume_gy:
        vals = np.array([_volume_at(cum[i], edges, float(x)) for i in range(n)])
        stats[f"V{x:g}Gy_cc"] = (("roi",), vals, {"units": "cc"})
        stats[f"V{x:g}Gy_pct"] = (("roi",), vals * rel, {"units": "%"})
    for x in volume_pct_rx:
        dx = float(rx) * x / 100.0  # type: ignore[arg-type]
        vals = np.array([_volume_at(cum[i], edges, dx) for i in range(n)])
        stats[f"V{x:g}%Rx_cc"] = (("roi",), vals, {"units": "cc", "dose_gy": dx})
        stats[f"V{x:g}%Rx_pct"] = (("roi",), vals * rel, {"units": "%", "dose_gy": dx})
    return DVHResult._from_arrays(names, edges, diff, stats, w, float(rx) if rx else None)


def _as_xarray(names: list[str], edges: np.ndarray, diff: np.ndarray, stats: _StatsArrays,
               w: float, rx: float | None) -> tuple[Any, Any]:
    """The differential DataArray and the statistics Dataset of a :class:`DVHResult`."""
    import xarray as xr

    # coordinates and their indexes built once, shared by the curves and the statistics (no copies)
    coords = xr.Coordinates(
        {
            "roi": xr.Variable(("roi",), np.array(names, dtype=str)),
            "dose": xr.Variable(("dose",), edges, {"units": "Gy"}),
        }
    )
    differential = xr.DataArray(
        diff,
        dims=("roi", "dose"),
        coords=coords,
        name="differential_dvh",
        attrs={"units": "cc", "long_name": "volume per dose bin", "bin_width_gy": w},
    )
    roi_coords = xr.Coordinates({"roi": coords.variables["roi"]}, indexes={"roi": coords.xindexes["roi"]})
    ds = xr.Dataset({k: xr.Variable(*v) for k, v in stats.items()}, coords=roi_coords)
    if rx:
        ds.attrs["prescription_gy"] = float(rx)
    return differential, ds




def compute_dvh_on_dose_grid(
    dose: np.ndarray,
    dose_grid: Grid,
    contours: Mapping[str, Sequence[np.ndarray]],
    *,
    rasterize: Callable[[Sequence[np.ndarray], Grid], np.ndarray] | None = None,
    supersample: int = 1,
    **kwargs: Any,
) -> DVHResult:
    """DVHs with the ROI contours rasterised on the dose grid's planes (as dicompyler-core and
    plastimatch compute them).

    Parameters
    ----------
    dose : ndarray (z, y, x), Gy, on ``dose_grid``
    dose_grid : Grid
    contours : mapping ROI name -> list of (N, 3) arrays
        Closed planar contours in patient coordinates (mm).
    rasterize : callable (contours, grid) -> bool (z, y, x), optional
        The rasteriser; default :func:`grtv_nb.raster.rasterize_roi` (even-odd fill, voxel centres).
    supersample : int
        In-plane factor: contours are rasterised on a grid ``supersample`` times finer in x and y
        (cropped to each ROI's bounding box) and the dose is bilinearly interpolated onto it.
    **kwargs
        Passed to :func:`compute_dvh` (``bin_width``, ``prescription_gy``, statistics...).
    """
    if rasterize is None:
        try:
            from .raster import rasterize_roi as rasterize
        except ImportError as exc:  # pragma: no cover - depends on the tree
            raise GRTVError("compute_dvh_on_dose_grid needs grtv_nb.raster.rasterize_roi or a rasterize=") from exc
    assert rasterize is not None
    ss = int(supersample)
    if ss < 1 or ss != supersample:
        raise ValidationError(f"supersample must be a positive integer, got {supersample!r}")
    if not isinstance(contours, Mapping):
        raise ValidationError("contours must be a mapping ROI name -> list of (N, 3) arrays")
    roi_names = kwargs.pop("roi_names", None)
    if roi_names is not None:
        missing = [n for n in roi_names if n not in contours]
        if missing:
            raise ValidationError(f"roi_names: no contours for {missing}")
        contours = {n: contours[n] for n in roi_names}
    d = _check_dose(dose, dose_grid)
    if ss == 1:

        def masks(name: str) -> np.ndarray:
            return np.asarray(rasterize(list(contours[name]), dose_grid), dtype=bool)

        return compute_dvh(d, dose_grid, masks, roi_names=list(contours), **kwargs)

    # supersampled: per ROI, a fine in-plane sub-grid over the contour bounding box
    opts = _stat_options(**kwargs)
    vv = np.asarray(dose_grid.voxel_volumes_cc(), dtype=np.float64)
    names: list[str] = []
    vox: list[_Voxels] = []
    for name, cs in contours.items():
        names.append(str(name))
        vox.append(_fine_roi_voxels(d, dose_grid, list(cs), rasterize, ss, vv))
    return _histograms(names, vox, **opts)


def _stat_options(
    bin_width: float = 0.01,
    prescription_gy: float | None = None,
    dose_pct: Sequence[float] = DEFAULT_DOSE_PCT,
    dose_cc: Sequence[float] = (),
    volume_gy: Sequence[float] = (),
    volume_pct_rx: Sequence[float] = (),
) -> dict[str, Any]:
    bin_width = float(bin_width)
    if not (0 < bin_width <= 0.01 + 1e-12):
        raise ValidationError(f"bin_width must be > 0 and at most 0.01 Gy (1 cGy), got {bin_width}")
    if volume_pct_rx and not (prescription_gy and prescription_gy > 0):
        raise ValidationError("volume_pct_rx needs a positive prescription_gy")
    return dict(
        w=bin_width,
        rx=prescription_gy,
        dose_pct=dose_pct,
        dose_cc=dose_cc,
        volume_gy=volume_gy,
        volume_pct_rx=volume_pct_rx,
    )


def _fine_roi_voxels(
    dose: np.ndarray, grid: Grid, cs: list[np.ndarray], rasterize: Callable, ss: int, vv: np.ndarray
) -> _Voxels:
    pts = [np.asarray(c, dtype=np.float64).reshape(-1, 3) for c in cs if len(c)]
    if not pts:
        return _Voxels(np.zeros(0, np.float32), 0.0)
    xyz = grid.to_canonical_points(np.concatenate(pts))
    ix = grid.continuous_index("x", xyz[:, 0])
    iy = grid.continuous_index("y", xyz[:, 1])
    nz, ny, nx = grid.shape
    x0, x1 = max(int(np.floor(ix.min())) - 1, 0), min(int(np.ceil(ix.max())) + 2, nx)
    y0, y1 = max(int(np.floor(iy.min())) - 1, 0), min(int(np.ceil(iy.max())) + 2, ny)
    if x0 >= x1 or y0 >= y1:
        return _Voxels(np.zeros(0, np.float32), 0.0)
    fx = grid.x[0] + _fine_offsets(x1 - x0, ss, x0) * grid.dx
    fy = grid.y[0] + _fine_offsets(y1 - y0, ss, y0) * grid.dy
    fine = Grid(
        x=fx,
        y=fy,
        z=grid.z,
        direction=grid.direction,
        frame_of_reference_uid=grid.frame_of_reference_uid,
        slice_thickness=grid.slice_thickness,
    )
    m = np.asarray(rasterize(pts, fine), dtype=bool)
    if m.shape != fine.shape:
        raise GRTVError(f"rasterize returned shape {m.shape}, expected {fine.shape}")
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    if len(zs) == 0:
        return _Voxels(np.zeros(0, np.float32), 0.0)
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    m = m[z0:z1]
    d_f = _supersample_dose(dose, ss, z0, z1, y0, y1, x0, x1)
    counts = m.reshape(m.shape[0], -1).sum(axis=1)
    return _Voxels(d_f[m], np.repeat(vv[z0:z1] / (ss * ss), counts))


# ----------------------------------------------------------------------------------------------
# contour-based DVHs (the default engine)
# ----------------------------------------------------------------------------------------------
#: The DVH conventions of :func:`compute_roi_dvh`.
CONVENTIONS = ("exact", "dicompyler", "voxel")


def compute_roi_dvh(
    dose: np.ndarray,
    dose_grid: Grid,
    contours: Mapping[str, Sequence[np.ndarray]],
    *,
    convention: str = "exact",
    end_cap: str = "auto",
    between: str = "auto",
    sample_mm: float | None = None,
    single_thickness: float | None = None,
    ref_z: np.ndarray | None = None,
    roi_names: Sequence[str] | None = None,
    notes: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> DVHResult:
    """DVHs of ROIs from their contours and a dose on any rectilinear grid: the default engine.

    Each contour plane stands for its own slab (:mod:`grtv_nb.planes`); the contours need not lie
    on the dose planes, and no image series is needed.

    Parameters
    ----------
    dose : ndarray (z, y, x), Gy, on ``dose_grid``
    dose_grid : Grid
    contours : mapping ROI name -> list of (N, 3) arrays
        Closed planar loops in patient mm (RTSTRUCT ContourData).
    convention : {"exact", "dicompyler", "voxel"}
        ``"exact"`` (default): volume exactly what the contours enclose, dose trilinear at in-plane
        and sub-slab sample points (:mod:`grtv_nb.solid`). ``"dicompyler"``: dicompyler-core
        0.5.6's numbers. ``"voxel"``: contours rasterised on the dose planes, voxel-centre
        inclusion, dose as stored (:func:`compute_dvh_on_dose_grid`).
    end_cap : {"auto", "half", "none"}
        How far the first and last contour planes reach (exact convention).
    between : {"auto", "interpolate", "extrude"}
        The shape between contour planes (exact convention): interpolated, or each plane's region
        extruded over its slab; ``"auto"`` (default) interpolates ROIs that span few planes (see
        the module docstring).
    sample_mm : float, optional
        In-plane sample spacing (mm); default chosen per ROI (:mod:`grtv_nb.solid`).
    single_thickness : float, optional
        Slab thickness of a single-plane ROI (default: the dose grid's slice thickness).
    ref_z : array, optional
        Slice positions of the reference (image) grid, to tell skipped slices from wide spacing
        (:func:`grtv_nb.planes.group_planes`).
    roi_names : sequence of str, optional
        Which ROIs, in which order (default: all of ``contours``).
    notes : list, optional
        Receives notes (ROI partly outside the dose, single planes, dropped loops).
    extra : mapping name -> (dose, weight), optional
        Further ROIs given directly as dose samples (Gy) and volumes (cc), e.g. from masks.
    **kwargs
        Statistics options of :func:`compute_dvh` (``bin_width``, ``prescription_gy``, ``dose_pct``...).
    """
    if convention not in CONVENTIONS:
        raise ValidationError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    if not isinstance(contours, Mapping):
        raise ValidationError("contours must be a mapping ROI name -> list of (N, 3) arrays")
    names = list(contours) if roi_names is None else [str(n) for n in roi_names]
    missing = [n for n in names if n not in contours]
    if missing:
        raise ValidationError(f"roi_names: no contours for {missing}")
    if convention == "voxel":
        return compute_dvh_on_dose_grid(dose, dose_grid, {n: contours[n] for n in names}, **kwargs)
    from .planes import check_end_cap
    from .solid import roi_samples

    check_end_cap(end_cap)
    opts = _stat_options(**kwargs)
    d, dmax = _checked_dose(dose, dose_grid)
    out_names: list[str] = []
    vox: list[_Voxels] = []
    for n in names:
        smp = roi_samples(
            d, dose_grid, list(contours[n]), convention=convention, end_cap=end_cap, between=between,
            sample_mm=sample_mm, single_thickness=single_thickness, ref_z=ref_z, bin_width=opts["w"],
            label=f"ROI '{n}'", dose_max=dmax,
        )
        if notes is not None:
            notes.extend(smp.notes)
        out_names.append(n)
        vox.append(_Voxels(smp.dose, smp.weight, smp.hist, smp.summary))
    for n, (dd, ww) in (extra or {}).items():
        if n in out_names:
            raise ValidationError(f"ROI name {n!r} appears twice")
        out_names.append(str(n))
        vox.append(_Voxels(np.asarray(dd), ww if isinstance(ww, float) else np.asarray(ww, np.float64)))
    return _histograms(out_names, vox, **opts)


def mask_samples(dose: np.ndarray, grid: Grid, mask: Any, name: str = "roi") -> tuple[np.ndarray, Any]:
    """Dose samples and volumes (cc) of a mask ROI on the dose's grid (voxel-centre inclusion), for
    :func:`compute_roi_dvh`'s ``extra``."""
    d = _check_dose(dose, grid)
    vv = np.asarray(grid.voxel_volumes_cc(), dtype=np.float64)
    v = _roi_voxels(d, _as_bool_mask(mask, name, d.shape), vv, False, 1)
    return v.dose, v.weight
