"""Planar contours of a mask: per-slice closed loops in patient coordinates (mm), outer boundaries and
holes, as RTSTRUCT CLOSED_PLANAR contours need them.

Method
------
Each slice holding voxels is cropped to its bounding box, padded by one empty voxel, and traced
with marching squares (:func:`skimage.measure.find_contours`) at the level 0.5, inside voxels being
8-connected (``fully_connected="high"``). The loops run through the mid-points between inside and
outside voxel centres, so every voxel centre lies strictly on its own side (at least
``0.35`` voxel away): rasterising the loops back with the voxel-centre even-odd rule
(:func:`grtv_nb.raster.rasterize_roi`) gives the mask back exactly. Loops never touch or cross.
Vertices on straight runs (collinear, e.g. along a 45-degree staircase) are removed.

Conventions
-----------
Loop vertices are ``(x, y, z)`` patient coordinates (mm), not repeated at the end. Outer
boundaries are counter-clockwise in the canonical ``(x, y)`` plane (positive shoelace area), holes
clockwise; a loop is an outer boundary when it encloses inside voxels (islands inside holes are
outer boundaries again). Rounding to DICOM DS strings is the writer's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ValidationError
from .geometry import Grid


@dataclass(frozen=True, eq=False)
class PlanarContour:
    """One closed planar loop.

    Attributes
    ----------
    points : ndarray float64 (N, 3)
        Vertices in patient coordinates (mm), N >= 3, first point not repeated.
    slice_index : int
        Index ``k`` of the grid slice (``grid.z[k]``) the loop lies on.
    is_hole : bool
        True when the loop bounds a hole (encloses outside voxels).
    """

    points: np.ndarray
    slice_index: int
    is_hole: bool

    def area_mm2(self) -> float:
        """Unsigned area of the loop (mm^2), in the slice plane."""
        return abs(_signed_area(self.points[:, 0], self.points[:, 1]))


def _signed_area(x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _simplify(loop: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Drop repeated vertices and vertices in the middle of straight runs (exact collinearity)."""
    if len(loop) > 1:
        d = np.abs(np.diff(loop, axis=0, append=loop[:1])).sum(axis=1)
        loop = loop[d > tol]
    for _ in range(2):
        if len(loop) <= 3:
            return loop
        prev = loop - np.roll(loop, 1, axis=0)
        nxt = np.roll(loop, -1, axis=0) - loop
        cross = prev[:, 0] * nxt[:, 1] - prev[:, 1] * nxt[:, 0]
        dot = (prev * nxt).sum(axis=1)
        keep = (np.abs(cross) > tol) | (dot <= 0)
        if keep.all():
            break
        loop = loop[keep]
    return loop


def slice_loops(plane: np.ndarray, *, simplify: bool = True) -> list[tuple[np.ndarray, bool]]:
    """Loops of one 2D boolean plane (ny, nx) as fractional ``(column, row)`` indices.

    Returns a list of ``(loop (N, 2), is_hole)``; outer loops have positive signed area in
    (column, row) coordinates, holes negative.
    """
    from skimage.measure import find_contours

    p = np.asarray(plane, dtype=bool)
    rows = np.flatnonzero(p.any(axis=1))
    if len(rows) == 0:
        return []
    cols = np.flatnonzero(p.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    box = np.zeros((r1 - r0 + 2, c1 - c0 + 2), dtype=np.float32)
    box[1:-1, 1:-1] = p[r0:r1, c0:c1]
    out = []
    for rc in find_contours(box, 0.5, fully_connected="high", positive_orientation="high"):
        loop = np.empty((len(rc), 2))
        loop[:, 0] = rc[:, 1] + (c0 - 1)
        loop[:, 1] = rc[:, 0] + (r0 - 1)
        if len(loop) > 1 and np.array_equal(loop[0], loop[-1]):
            loop = loop[:-1]
        if simplify:
            loop = _simplify(loop)
        if len(loop) < 3:
            continue
        area = _signed_area(loop[:, 0], loop[:, 1])
        out.append((loop, area < 0))
    # find_contours with positive_orientation="high" winds loops around high values
    # counter-clockwise in (row, col), i.e. clockwise in (col, row): flip to our convention.
    return [(lp[::-1].copy(), not hole) for lp, hole in out]


def _crossings_at(loop: np.ndarray, yl: float) -> tuple[np.ndarray, np.ndarray]:
    """x of the crossings of the horizontal line y = yl (never through a vertex) with the loop's
    edges, and the index of each crossed edge (edge i runs from vertex i to vertex i + 1)."""
    ya, yb = loop[:, 1], np.roll(loop[:, 1], -1)
    xa, xb = loop[:, 0], np.roll(loop[:, 0], -1)
    hit = (np.minimum(ya, yb) < yl) & (yl < np.maximum(ya, yb))
    idx = np.flatnonzero(hit)
    xc = xa[idx] + (yl - ya[idx]) * (xb[idx] - xa[idx]) / (yb[idx] - ya[idx])
    return xc, idx


def _inside(pt: np.ndarray, loop: np.ndarray) -> bool:
    x, y = pt
    ya, yb = loop[:, 1], np.roll(loop[:, 1], -1)
    xa, xb = loop[:, 0], np.roll(loop[:, 0], -1)
    cond = (np.minimum(ya, yb) <= y) & (y < np.maximum(ya, yb))
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = xa + (y - ya) * (xb - xa) / (yb - ya)
    return bool((cond & (xc > x)).sum() % 2)


def _rightmost_crossing(loop: np.ndarray, yl: float) -> tuple[float, int]:
    xc, ei = _crossings_at(loop, yl)
    j = int(np.argmax(xc))
    return float(xc[j]), int(ei[j])


def keyhole_loops(loops: list[tuple[np.ndarray, bool]]) -> list[np.ndarray]:
    """Merge each hole into its enclosing outer loop with a zero-width bridge ("keyhole").

    Works on the ``(column, row)`` loops of one plane as returned by :func:`slice_loops` (outer
    loops counter-clockwise, holes clockwise, vertices at multiples of half a voxel). Each bridge
    runs along a line ``row = j + 0.25`` (through no vertex and no voxel centre) from the hole's
    right-most crossing to the nearest edge on its right, so the even-odd / voxel-centre
    rasterisation of the result equals that of the input. Returns outer loops only (islands inside
    holes stay separate loops).
    """
    outers = [lp for lp, hole in loops if not hole]
    holes = [lp for lp, hole in loops if hole]
    if not holes:
        return outers
    areas = [abs(_signed_area(o[:, 0], o[:, 1])) for o in outers]
    owned: dict[int, list[np.ndarray]] = {}
    for h in holes:
        cands = [i for i, o in enumerate(outers) if _inside(h[0], o)]
        if cands:  # always, for marching-squares loops
            owned.setdefault(min(cands, key=lambda i: areas[i]), []).append(h)
    result = []
    for i, poly in enumerate(outers):
        remaining = owned.get(i, [])
        while remaining:
            k = int(np.argmax([h[:, 0].max() for h in remaining]))
            h = remaining[k]
            r = int(np.argmax(h[:, 0]))
            yl = float(np.floor(h[r, 1])) + 0.25
            if len(_crossings_at(h, yl)[0]) == 0:
                yl -= 0.5
            px, pe = _rightmost_crossing(h, yl)
            while True:  # nearest edge right of P: the outer's, or another hole's (then bridge from it)
                best = (np.inf, -1, -1)
                for owner, lp in [(-1, poly), *enumerate(remaining)]:
                    if owner == k:
                        continue
                    cx, ce = _crossings_at(lp, yl)
                    right = cx > px
                    if right.any():
                        m = int(np.argmin(np.where(right, cx, np.inf)))
                        if cx[m] < best[0]:
                            best = (float(cx[m]), owner, int(ce[m]))
                if best[1] < 0:
                    break
                k = best[1]
                h = remaining[k]
                px, pe = _rightmost_crossing(h, yl)
            ix, oe = best[0], best[2]
            p_pt = np.array([[px, yl]])
            i_pt = np.array([[ix, yl]])
            walk = np.concatenate([i_pt, p_pt, np.roll(h, -(pe + 1), axis=0), p_pt, i_pt])
            poly = np.concatenate([poly[: oe + 1], walk, poly[oe + 1 :]])
            remaining = remaining[:k] + remaining[k + 1 :]
        result.append(poly)
    return result


def mask_to_contours(
    mask: np.ndarray, grid: Grid, *, simplify: bool = True, keyhole: bool = False, name: str = "mask"
) -> list[PlanarContour]:
    """Closed planar contours (outer boundaries and holes) of a mask, slice by slice.

    Parameters
    ----------
    mask : ndarray bool (z, y, x)
        The structure on ``grid``; integer masks count nonzero voxels as inside.
    grid : Grid
        The mask's grid (in-plane spacing uniform; oblique grids mapped through ``direction``).
    simplify : bool
        Remove vertices on straight runs (the rasterised result is unchanged).
    keyhole : bool
        Merge every hole into its enclosing outer loop with a zero-width bridge
        (:func:`keyhole_loops`), for systems that do not read separate hole contours; then no
        contour has ``is_hole`` set.
    name : str
        Used in error messages.

    Returns
    -------
    list of PlanarContour
        Ordered by slice, outer loops before holes within a slice. Empty for an empty mask.
    """
    m = np.asarray(mask)
    if m.ndim != 3 or m.shape != grid.shape:
        raise ValidationError(f"{name} has shape {m.shape}, the grid has shape {grid.shape}")
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.integer):
            raise ValidationError(f"{name} must be boolean (or integer, nonzero = inside), got {m.dtype}")
        m = m != 0
    out: list[PlanarContour] = []
    x0, dx, y0, dy = float(grid.x[0]), grid.dx, float(grid.y[0]), grid.dy
    aligned = grid.axis_aligned
    for k in np.flatnonzero(m.any(axis=(1, 2))):
        loops = slice_loops(m[k], simplify=simplify)
        if keyhole:
            loops = [(lp, False) for lp in keyhole_loops(loops)]
        loops.sort(key=lambda t: t[1])  # outer loops first
        for loop, hole in loops:
            pts = np.empty((len(loop), 3))
            pts[:, 0] = x0 + loop[:, 0] * dx
            pts[:, 1] = y0 + loop[:, 1] * dy
            pts[:, 2] = grid.z[k]
            if not aligned:
                pts = grid.to_patient_points(pts)
            out.append(PlanarContour(pts, int(k), bool(hole)))
    return out


def contour_points(contours: list[PlanarContour]) -> list[np.ndarray]:
    """The (N, 3) point arrays of contours (what :func:`grtv_nb.raster.rasterize_roi` takes)."""
    return [c.points for c in contours]
