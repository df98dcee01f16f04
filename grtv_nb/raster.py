"""Rasterisation of planar contours (RTSTRUCT CLOSED_PLANAR loops) onto a voxel grid.

This is the one polygon rasteriser of grtv_nb.

Rules
-----
- **Voxel-centre inclusion, half-open edges.** A voxel belongs to a loop when its centre is inside
  the polygon by the crossing-number test with the half-open convention: a horizontal scan line at
  row ``j`` crosses an edge when ``min(y0, y1) <= j < max(y0, y1)``, and a voxel at column ``i`` is
  right of a crossing at ``xc`` when ``i >= xc``. Two contours sharing an edge therefore never both
  claim a voxel whose centre lies exactly on it.
- **Holes by nesting.** Loops on one plane are combined by their nesting depth: a loop inside
  an odd number of other loops cuts a hole, inside an even number it adds an island (even-odd /
  XOR, as clinical systems do). Loops that partly overlap (neither contains the other) are joined
  as a union, and exact duplicates are counted once; both cases are reported with a warning,
  because plain XOR would wrongly cut their common part.
- **Plane matching by position.** Each loop's plane (its mean coordinate along the grid's z axis)
  is matched to the nearest slice if it lies within half the local slice spacing (half the slice
  thickness on a 1-slice grid); loops beyond that are dropped with a warning. Referenced image
  UIDs are not used (they are often stale after anonymisation).
- Loops with fewer than 3 points, or not parallel to the grid's slices, are dropped with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import warn
from .geometry import Grid

_PLANAR_TOL_MM = 0.05


def _edge_hits(loops: Sequence[np.ndarray], rows: tuple[int, int], cols: tuple[int, int]):
    """Scan-line crossings of the loops' edges: (row, first column at or right of the crossing)."""
    r0, r1 = rows
    c0, c1 = cols
    pts = np.concatenate(loops)
    nxt = np.concatenate([np.roll(lp, -1, axis=0) for lp in loops])
    xa, ya, xb, yb = pts[:, 0], pts[:, 1], nxt[:, 0], nxt[:, 1]
    ymin = np.minimum(ya, yb)
    ymax = np.maximum(ya, yb)
    jstart = np.maximum(np.ceil(ymin), r0).astype(np.int64)
    jstop = np.minimum(np.ceil(ymax), r1).astype(np.int64)  # exclusive: j < ymax
    counts = np.maximum(jstop - jstart, 0)
    keep = counts > 0
    if not keep.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    xa, ya, xb, yb, jstart, counts = xa[keep], ya[keep], xb[keep], yb[keep], jstart[keep], counts[keep]
    edge = np.repeat(np.arange(len(counts)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    j = jstart[edge] + offs
    slope = (xb - xa) / (yb - ya)
    xc = xa[edge] + (j - ya[edge]) * slope[edge]
    start = np.clip(np.ceil(xc), c0, c1).astype(np.int64) - c0
    return j - r0, start


def _crossings(loops: Sequence[np.ndarray], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Parity fill of loops (each (N, 2) array of fractional (col, row) indices) in a window.

    Returns a bool array of shape (rows[1]-rows[0], cols[1]-cols[0]): even-odd over all loops.
    """
    h, w = rows[1] - rows[0], cols[1] - cols[0]
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), dtype=bool)
    j, start = _edge_hits(loops, rows, cols)
    toggles = np.bincount(j * (w + 1) + start, minlength=h * (w + 1)).reshape(h, w + 1)
    return (np.cumsum(toggles[:, :w], axis=1, dtype=np.int32) & 1).astype(bool)


def _fill_simple_planes(
    mask: np.ndarray, planes: list[tuple[int, list[np.ndarray]]], *, max_cells: int = 1 << 22
) -> None:
    """Even-odd fill of many planes at once (planes whose loops' boxes don't overlap), in chunks of
    planes whose toggle arrays hold at most ``max_cells`` cells."""
    ny, nx = mask.shape[1:]
    allpts = np.concatenate([np.concatenate(lps) for _, lps in planes])
    r0 = max(int(np.floor(allpts[:, 1].min())), 0)
    r1 = min(int(np.ceil(allpts[:, 1].max())) + 1, ny)
    c0 = max(int(np.floor(allpts[:, 0].min())), 0)
    c1 = min(int(np.ceil(allpts[:, 0].max())) + 1, nx)
    h, w = r1 - r0, c1 - c0
    if h <= 0 or w <= 0:
        return
    per = max(1, max_cells // (h * (w + 1)))
    for a in range(0, len(planes), per):
        chunk = planes[a:a + per]
        flat = []
        for p, (_, loops) in enumerate(chunk):
            j, start = _edge_hits(loops, (r0, r1), (c0, c1))
            flat.append((p * h + j) * (w + 1) + start)
        toggles = np.bincount(np.concatenate(flat), minlength=len(chunk) * h * (w + 1))
        toggles = toggles.reshape(len(chunk), h, w + 1)[:, :, :w]
        inside = (np.cumsum(toggles, axis=2, dtype=np.uint8) & 1).view(bool)  # uint8 wraps, parity stays
        ks = [k for k, _ in chunk]
        mask[ks, r0:r1, c0:c1] = inside


def _boxes_overlap(loops: Sequence[np.ndarray]) -> bool:
    if len(loops) < 2:
        return False
    b = np.array([[lp[:, 0].min(), lp[:, 0].max(), lp[:, 1].min(), lp[:, 1].max()] for lp in loops])
    ox = (b[:, None, 0] <= b[None, :, 1]) & (b[None, :, 0] <= b[:, None, 1])
    oy = (b[:, None, 2] <= b[None, :, 3]) & (b[None, :, 2] <= b[:, None, 3])
    o = ox & oy
    np.fill_diagonal(o, False)
    return bool(o.any())


def _points_in_loop(pts: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Even-odd test of points (M, 2) against one loop (N, 2), same half-open rule as the fill."""
    xa, ya = loop[:, 0], loop[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    px = pts[:, 0:1]
    py = pts[:, 1:2]
    cond = (np.minimum(ya, yb) <= py) & (py < np.maximum(ya, yb))
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = xa + (py - ya) * (xb - xa) / (yb - ya)
    hits = cond & (px >= xc)
    return (hits.sum(axis=1) & 1).astype(bool)


def _same_loop(a: np.ndarray, b: np.ndarray, tol: float = 1e-3) -> bool:
    if a.shape != b.shape:
        return False
    sa = a[np.lexsort(a.T[::-1])]
    sb = b[np.lexsort(b.T[::-1])]
    return bool(np.allclose(sa, sb, atol=tol))


def fill_plane(
    loops: Sequence[np.ndarray], shape: tuple[int, int], *, label: str = "", report=None
) -> np.ndarray:
    """Fill the loops of one plane into a (ny, nx) bool mask.

    Parameters
    ----------
    loops : sequence of (N, 2) arrays
        Loop vertices as fractional (column, row) indices of the plane.
    shape : (ny, nx)
    label : str
        Used in warnings ("ROI 'X' at z=...").
    report : callable(str) or None
        Receives warning messages (default: :func:`grtv_nb.errors.warn`).
    """
    ny, nx = shape
    report = report or warn
    mask = np.zeros(shape, dtype=bool)
    loops = [np.asarray(lp, dtype=np.float64) for lp in loops if len(lp) >= 3]
    if not loops:
        return mask
    boxes = np.array([[lp[:, 0].min(), lp[:, 0].max(), lp[:, 1].min(), lp[:, 1].max()] for lp in loops])
    overlap = _boxes_overlap(loops)
    r0 = max(int(np.floor(boxes[:, 2].min())), 0)
    r1 = min(int(np.ceil(boxes[:, 3].max())) + 1, ny)
    c0 = max(int(np.floor(boxes[:, 0].min())), 0)
    c1 = min(int(np.ceil(boxes[:, 1].max())) + 1, nx)
    if r1 <= r0 or c1 <= c0:
        return mask
    if not overlap:
        mask[r0:r1, c0:c1] = _crossings(loops, (r0, r1), (c0, c1))
        return mask
    # Nested / overlapping loops: classify by geometry.
    n = len(loops)
    dup = np.zeros(n, dtype=bool)
    for a in range(n):
        for b in range(a + 1, n):
            if not dup[b] and _same_loop(loops[a], loops[b]):
                dup[b] = True
    if dup.any():
        report(f"{label}: {int(dup.sum())} duplicated contour loop(s) counted once")
    keep = [i for i in range(n) if not dup[i]]
    contains = np.zeros((n, n), dtype=bool)  # contains[a, b]: loop b lies inside loop a
    for a in keep:
        for b in keep:
            ba, bb = boxes[a], boxes[b]
            if a != b and bb[0] >= ba[0] and bb[1] <= ba[1] and bb[2] >= ba[2] and bb[3] <= ba[3]:
                contains[a, b] = bool(_points_in_loop(loops[b], loops[a]).all())
    partial = []
    for ia, a in enumerate(keep):
        for b in keep[ia + 1 :]:
            ba, bb = boxes[a], boxes[b]
            disjoint = ba[1] < bb[0] or bb[1] < ba[0] or ba[3] < bb[2] or bb[3] < ba[2]
            if disjoint or contains[a, b] or contains[b, a]:
                continue
            if _points_in_loop(loops[b], loops[a]).any() or _points_in_loop(loops[a], loops[b]).any():
                partial.append((a, b))
    if partial:
        report(
            f"{label}: {len(partial)} pair(s) of partly overlapping contour loops; "
            "they were joined (union) instead of cut by XOR"
        )
    depth = contains.sum(axis=0)
    levels: dict[int, list[np.ndarray]] = {}
    for i in keep:
        levels.setdefault(int(depth[i]), []).append(loops[i])
    acc = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for _, lvl in sorted(levels.items()):
        union = np.zeros_like(acc)
        for lp in lvl:
            union |= _crossings([lp], (r0, r1), (c0, c1))
        acc ^= union
    mask[r0:r1, c0:c1] = acc
    return mask


def match_planes(plane_z: np.ndarray, grid: Grid) -> np.ndarray:
    """Index of the slice each plane position belongs to, or -1 when it is farther than half the
    local slice spacing (half the slice thickness for a 1-slice grid) from every slice."""
    z = grid.z
    plane_z = np.asarray(plane_z, dtype=np.float64)
    if len(z) == 1:
        half = 0.5 * (grid.slice_thickness or grid.dz)
        return np.where(np.abs(plane_z - z[0]) <= half + 1e-3, 0, -1)
    k = np.clip(np.searchsorted(z, plane_z), 1, len(z) - 1)
    left = z[k - 1]
    right = z[k]
    nearest = np.where(plane_z - left <= right - plane_z, k - 1, k)
    d = np.diff(z)
    lo_gap = np.concatenate([[d[0]], d])  # gap below slice k
    hi_gap = np.concatenate([d, [d[-1]]])  # gap above slice k
    off = plane_z - z[nearest]
    tol = np.where(off >= 0, 0.5 * hi_gap[nearest], 0.5 * lo_gap[nearest]) + 1e-3
    return np.where(np.abs(off) <= tol, nearest, -1)


def contours_to_planes(
    contours: Sequence[np.ndarray], grid: Grid, *, label: str = "", report=None
) -> dict[int, list[np.ndarray]]:
    """Group contour loops (each (N, 3) patient mm) by the slice they belong to, converted to
    fractional (column, row) indices of that slice."""
    report = report or warn
    planes: dict[int, list[np.ndarray]] = {}
    few, skew, outside = 0, 0, []
    zs, loops2d = [], []
    for c in contours:
        pts = np.asarray(c, dtype=np.float64).reshape(-1, 3)
        if len(pts) < 3:
            few += 1
            continue
        q = grid.to_canonical_points(pts)
        if np.ptp(q[:, 2]) > _PLANAR_TOL_MM:
            skew += 1
            continue
        zs.append(float(q[:, 2].mean()))
        fi = grid.continuous_index("x", q[:, 0])
        fj = grid.continuous_index("y", q[:, 1])
        loops2d.append(np.stack([fi, fj], axis=1))
    if few:
        report(f"{label}: {few} contour(s) with fewer than 3 points ignored")
    if skew:
        report(f"{label}: {skew} contour(s) not parallel to the image slices ignored")
    if not zs:
        return planes
    ks = match_planes(np.array(zs), grid)
    for k, zc, lp in zip(ks, zs, loops2d):
        if k < 0:
            outside.append(zc)
            continue
        planes.setdefault(int(k), []).append(lp)
    if outside:
        report(
            f"{label}: {len(outside)} contour(s) lie outside the image slices "
            f"(z = {min(outside):.2f}..{max(outside):.2f} mm) and were dropped"
        )
    return planes


def rasterize_roi(
    contours: Sequence[np.ndarray], grid: Grid, *, label: str = "", report=None
) -> np.ndarray:
    """Rasterise an ROI's closed planar contours onto ``grid``.

    Parameters
    ----------
    contours : sequence of (N, 3) arrays
        Loops in patient coordinates (mm), as in RTSTRUCT ContourData.
    grid : Grid
        Target grid; the result is indexed ``[z, y, x]``.
    label : str
        Name used in warnings.
    report : callable(str) or None
        Receives warning messages (default: emit :class:`~grtv_nb.errors.GRTVWarning`).

    Returns
    -------
    ndarray of bool, shape ``grid.shape``
    """
    mask = np.zeros(grid.shape, dtype=bool)
    planes = contours_to_planes(contours, grid, label=label, report=report)
    ny, nx = grid.shape[1:]
    simple, nested = [], []
    for k, loops in sorted(planes.items()):
        loops = [lp for lp in loops if len(lp) >= 3]
        if loops:
            (nested if _boxes_overlap(loops) else simple).append((k, loops))
    if simple:
        _fill_simple_planes(mask, simple)
    for k, loops in nested:
        mask[k] = fill_plane(loops, (ny, nx), label=f"{label} at z={grid.z[k]:.2f} mm", report=report)
    return mask
