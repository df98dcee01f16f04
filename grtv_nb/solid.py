"""Dose samples of an ROI's solid: the weighted dose points the DVH engine histograms.

An ROI's solid is the union of its contour-plane slabs (:mod:`grtv_nb.planes`). This module turns
it, with a dose on a rectilinear grid, into dose samples and their volumes (cc), by one of three
conventions:

``"exact"`` (default)
    Each plane's region is sampled on a regular in-plane lattice of spacing ``s`` (sample centres,
    even-odd fill of the plane's loops, :func:`grtv_nb.raster.fill_plane`), aligned on the ROI's
    bounding box. ``s`` is the smaller of :data:`MAX_SAMPLE_FRACTION` times the dose pixel and the
    ROI's equivalent diameter (of its largest plane) over :data:`SAMPLES_ACROSS` (not below
    :data:`MIN_SAMPLE_MM`). Each slab is cut into ``ceil(thickness / SUB_SLAB_MM)`` sub-slabs; the
    dose at each sample and sub-slab centre is trilinear interpolation of the dose grid. The
    samples of a plane share its exact area (shoelace, holes subtracted,
    :func:`grtv_nb.raster.region_area`) times the slab thickness, so the volume is exactly what the
    contours enclose, whatever the sampling.
``"dicompyler"``
    dicompyler-core 0.5.6's method, to compare with it: samples at the dose pixel centres, loops of a
    plane XORed, every plane one thickness thick (the smallest gap between the ROI's planes; 0 for
    a single plane), the dose plane nearest the contour plane if within 0.5 mm else linear
    interpolation, planes outside the dose grid's z range dropped.
``"voxel"`` is not here: it is :func:`grtv_nb.dvh.compute_dvh` on rasterised masks.

Dose outside the dose grid (more than half a voxel beyond its outer centres) is taken as 0 Gy and
reported in the notes; within that half voxel the edge value is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ValidationError
from .geometry import Grid
from .planes import PlaneSlab, group_planes
from .raster import _crossings, fill_plane, region_area, summarised

#: In-plane samples across the equivalent diameter of an ROI's largest plane.
SAMPLES_ACROSS = 64
#: In-plane sample spacing at most this fraction of the dose pixel.
MAX_SAMPLE_FRACTION = 0.5
#: Smallest in-plane sample spacing (mm).
MIN_SAMPLE_MM = 0.05
#: Largest number of in-plane samples of one plane's bounding box (coarser sampling beyond).
MAX_PLANE_SAMPLES = 1 << 21
#: Sub-slab thickness (mm) at whose centres the dose is interpolated within a slab.
SUB_SLAB_MM = 0.25
#: dicompyler-core takes the nearest dose plane within this distance (mm), else interpolates.
DICOMPYLER_PLANE_TOL_MM = 0.5
#: The conventions of :func:`roi_samples`.
CONVENTIONS = ("exact", "dicompyler")


@dataclass
class RoiSamples:
    """Dose samples of one ROI: ``dose`` (Gy, float32) and ``weight`` (cc each, float64)."""

    dose: np.ndarray
    weight: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def volume_cc(self) -> float:
        return float(self.weight.sum())


def _axis_lookup(frac: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, weight of the upper neighbour and inside flag of fractional indices on an axis
    of ``n`` centres (clamped within half a voxel of the outer centres, outside beyond)."""
    inside = (frac >= -0.5 - 1e-9) & (frac <= n - 0.5 + 1e-9)
    f = np.clip(frac, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(f).astype(np.intp), max(n - 2, 0))
    return i0, (f - i0).astype(np.float32) if n > 1 else np.zeros(len(f), np.float32), inside


def _bilinear(plane: np.ndarray, y0, ty, x0, tx) -> np.ndarray:
    ny, nx = plane.shape
    y1 = np.minimum(y0 + 1, ny - 1)
    x1 = np.minimum(x0 + 1, nx - 1)
    a = plane[y0, x0] * (1 - tx) + plane[y0, x1] * tx
    b = plane[y1, x0] * (1 - tx) + plane[y1, x1] * tx
    return a * (1 - ty) + b * ty


def slabs_volume_cc(slabs: Sequence[PlaneSlab]) -> float:
    """Volume (cc) the slabs enclose: exact plane area times slab thickness, summed. Planes whose
    loops partly overlap use their area sampled at :data:`MIN_SAMPLE_MM` x 4."""
    total = 0.0
    for s in slabs:
        if s.thickness <= 0:
            continue
        a = region_area(s.loops)
        if a is None:
            a = _sampled_area(s.loops, 4 * MIN_SAMPLE_MM)
        total += a * s.thickness
    return total / 1000.0


def _sampled_area(loops: Sequence[np.ndarray], s: float) -> float:
    pts = np.concatenate(loops)
    lo = pts.min(axis=0)
    shape = (int(np.ceil(np.ptp(pts[:, 1]) / s)) + 1, int(np.ceil(np.ptp(pts[:, 0]) / s)) + 1)
    m = fill_plane([(lp - lo) / s - 0.5 for lp in loops], shape, report=lambda msg: None)
    return float(m.sum()) * s * s


def roi_samples(
    dose: np.ndarray,
    grid: Grid,
    contours: Sequence[np.ndarray],
    *,
    convention: str = "exact",
    end_cap: str = "auto",
    sample_mm: float | None = None,
    sub_slab_mm: float = SUB_SLAB_MM,
    single_thickness: float | None = None,
    ref_z: np.ndarray | None = None,
    label: str = "ROI",
    report=None,
) -> RoiSamples:
    """Dose samples and their volumes for one ROI (see the module docstring).

    Parameters
    ----------
    dose : ndarray (z, y, x), Gy, on ``grid``
    grid : Grid
        The dose grid (any rectilinear grid; the contours need not lie on its planes).
    contours : sequence of (N, 3) arrays
        The ROI's closed planar loops in patient mm.
    convention : {"exact", "dicompyler"}
    end_cap : {"auto", "half", "none"}
        How far the end planes reach (:mod:`grtv_nb.planes`).
    sample_mm : float, optional
        In-plane sample spacing (mm); default chosen per ROI as described above.
    sub_slab_mm : float
        Sub-slab thickness (mm) along the slice normal.
    single_thickness : float, optional
        Slab thickness (mm) of a single-plane ROI; default the grid's slice thickness.
    ref_z : array, optional
        Slice positions of the reference grid (:func:`grtv_nb.planes.group_planes`).
    label : str
        Names the ROI in notes and warnings.
    report : callable(str), optional
        Receives the summary of overlapping loops (default :func:`grtv_nb.errors.warn`).
    """
    if convention not in CONVENTIONS:
        raise ValidationError(f"convention must be one of {', '.join(CONVENTIONS)} or 'voxel', got {convention!r}")
    if sample_mm is not None and not (float(sample_mm) > 0):
        raise ValidationError(f"sample_mm must be > 0 mm, got {sample_mm!r}")
    if not (float(sub_slab_mm) > 0):
        raise ValidationError(f"sub_slab_mm must be > 0 mm, got {sub_slab_mm!r}")
    if single_thickness is None:
        single_thickness = float(grid.slice_thickness or 0.0)
    groups = group_planes(contours, grid.direction, end_cap=end_cap, single_thickness=single_thickness,
                          ref_z=ref_z)
    notes: list[str] = []
    if groups.n_short:
        notes.append(f"{label}: {groups.n_short} contour(s) with fewer than 3 points ignored")
    if groups.n_skew:
        notes.append(f"{label}: {groups.n_skew} contour(s) not parallel to the dose planes ignored")
    slabs = groups.slabs
    if len(slabs) == 1 and convention == "exact":
        t = slabs[0].thickness
        notes.append(
            f"{label}: a single contour plane; its slab is the slice thickness ({t:g} mm)"
            if t > 0 else f"{label}: a single contour plane and no slice thickness: no volume")
    empty = RoiSamples(np.zeros(0, np.float32), np.zeros(0), notes)
    if not slabs:
        return empty
    d = dose
    nz, ny, nx = d.shape
    pts = np.concatenate([lp for s in slabs for lp in s.loops])
    xmin, ymin = pts.min(axis=0)
    xmax, ymax = pts.max(axis=0)
    if convention == "dicompyler":
        return _dicompyler_samples(d, grid, slabs, (xmin, xmax, ymin, ymax), notes, label)

    areas = [region_area(s.loops) for s in slabs]
    if sample_mm is None:
        amax = max((a for a in areas if a is not None), default=(xmax - xmin) * (ymax - ymin))
        deq = 2.0 * np.sqrt(max(amax, 0.0) / np.pi)
        s = min(MAX_SAMPLE_FRACTION * min(grid.dx, grid.dy), max(deq / SAMPLES_ACROSS, MIN_SAMPLE_MM))
    else:
        s = float(sample_mm)
    nxf = int(np.ceil((xmax - xmin) / s)) + 1
    nyf = int(np.ceil((ymax - ymin) / s)) + 1
    if nxf * nyf > MAX_PLANE_SAMPLES:
        s *= np.sqrt(nxf * nyf / MAX_PLANE_SAMPLES)
        nxf = int(np.ceil((xmax - xmin) / s)) + 1
        nyf = int(np.ceil((ymax - ymin) / s)) + 1
    # sample centres: xs[i] = x0 + i * s, the lattice centred on the ROI's box
    x0 = 0.5 * (xmin + xmax) - 0.5 * (nxf - 1) * s
    y0 = 0.5 * (ymin + ymax) - 0.5 * (nyf - 1) * s
    xs = x0 + np.arange(nxf) * s
    ys = y0 + np.arange(nyf) * s
    cx0, ctx, cin = _axis_lookup(grid.continuous_index("x", xs), nx)
    ry0, rty, rin = _axis_lookup(grid.continuous_index("y", ys), ny)
    collect, flush = summarised(report, label)
    doses: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    outside_cc = 0.0
    for slab, area in zip(slabs, areas):
        if slab.thickness <= 0:
            continue
        idx_loops = [np.stack([(lp[:, 0] - x0) / s, (lp[:, 1] - y0) / s], axis=1) for lp in slab.loops]
        m = fill_plane(idx_loops, (nyf, nxf), label=f"{label} at z={slab.z:.2f} mm",
                       report=lambda msg, z=slab.z: collect(z, msg))
        rows, cols = np.nonzero(m)
        if area is None:
            area = float(len(rows)) * s * s
        if area <= 0:
            continue
        if len(rows) == 0:  # a loop smaller than the sample spacing: one sample at its centre
            c = np.concatenate(slab.loops).mean(axis=0)
            cols = np.array([int(np.clip(round((c[0] - x0) / s), 0, nxf - 1))])
            rows = np.array([int(np.clip(round((c[1] - y0) / s), 0, nyf - 1))])
        nsub = max(1, int(np.ceil(slab.thickness / sub_slab_mm - 1e-9)))
        zsub = slab.z0 + (np.arange(nsub) + 0.5) * (slab.thickness / nsub)
        kz0, tz, zin = _axis_lookup(grid.continuous_index("z", zsub), nz)
        inplane = cin[cols] & rin[rows]
        yy0, ty, xx0, tx = ry0[rows], rty[rows], cx0[cols], ctx[cols]
        need = sorted(set(kz0[zin].tolist()) | {min(k + 1, nz - 1) for k in kz0[zin].tolist()})
        vals = {k: _bilinear(d[k], yy0, ty, xx0, tx) for k in need}
        w = area * slab.thickness / (len(rows) * nsub) / 1000.0
        for j in range(nsub):
            if not zin[j]:
                doses.append(np.zeros(len(rows), np.float32))
                outside_cc += w * len(rows)
            else:
                k = int(kz0[j])
                v = vals[k] if tz[j] == 0 else vals[k] * (1 - tz[j]) + vals[min(k + 1, nz - 1)] * tz[j]
                if not inplane.all():
                    v = np.where(inplane, v, 0).astype(np.float32)
                    outside_cc += w * int((~inplane).sum())
                doses.append(np.asarray(v, np.float32))
            weights.append(np.full(len(rows), w))
    flush()
    if not doses:
        return empty
    out = RoiSamples(np.concatenate(doses), np.concatenate(weights), notes)
    if outside_cc > 0:
        notes.append(
            f"{label}: {outside_cc:.3g} cc ({100 * outside_cc / out.volume_cc:.1f} %) of the ROI lies outside "
            "the dose grid; its dose is taken as 0 Gy")
    return out


def _dicompyler_samples(d, grid: Grid, slabs, box, notes: list[str], label: str) -> RoiSamples:
    nz, ny, nx = d.shape
    xmin, xmax, ymin, ymax = box
    pz = np.array([s.z for s in slabs])
    thick = float(np.diff(pz).min()) if len(pz) > 1 else 0.0
    if thick <= 0:
        notes.append(f"{label}: a single contour plane: no volume (dicompyler-core convention)")
        return RoiSamples(np.zeros(0, np.float32), np.zeros(0), notes)
    w = grid.dx * grid.dy * thick / 1000.0
    i0, i1 = max(int(np.floor(grid.continuous_index("x", np.array([xmin]))[0])), 0), nx
    j0, j1 = max(int(np.floor(grid.continuous_index("y", np.array([ymin]))[0])), 0), ny
    i1 = min(int(np.ceil(grid.continuous_index("x", np.array([xmax]))[0])) + 1, nx)
    j1 = min(int(np.ceil(grid.continuous_index("y", np.array([ymax]))[0])) + 1, ny)
    doses = []
    dropped = 0
    for slab in slabs:
        if i1 <= i0 or j1 <= j0 or slab.z < grid.z[0] - 1e-9 or slab.z > grid.z[-1] + 1e-9:
            dropped += 1
            continue
        loops = [np.stack([grid.continuous_index("x", lp[:, 0]), grid.continuous_index("y", lp[:, 1])], axis=1)
                 for lp in slab.loops]
        m = _crossings(loops, (j0, j1), (i0, i1))
        dz = np.abs(grid.z - slab.z)
        k = int(np.argmin(dz))
        if dz[k] < DICOMPYLER_PLANE_TOL_MM:
            plane = d[k, j0:j1, i0:i1]
        else:
            ub = k
            lb = int(np.argmin(np.where(np.arange(nz) == ub, np.inf, dz)))
            fz = (slab.z - grid.z[lb]) / (grid.z[ub] - grid.z[lb])
            plane = fz * d[ub, j0:j1, i0:i1] + (1 - fz) * d[lb, j0:j1, i0:i1]
        doses.append(np.asarray(plane[m], np.float32))
    if dropped:
        notes.append(f"{label}: {dropped} contour plane(s) outside the dose grid dropped (dicompyler-core convention)")
    dd = np.concatenate(doses) if doses else np.zeros(0, np.float32)
    return RoiSamples(dd, np.full(len(dd), w), notes)
