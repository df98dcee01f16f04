"""Planar contours of a mask: per-slice closed loops in patient coordinates (mm), outer boundaries and
holes, as RTSTRUCT CLOSED_PLANAR contours need them.

Method
------
The mask is cropped to its bounding box, padded by one empty voxel in-plane, and every slice is
traced at once with a vectorised marching squares at the level 0.5, inside voxels being
8-connected (saddle cells join their inside corners): the same loops as
``skimage.measure.find_contours(..., fully_connected="high")``. Directed segments (inside on the
left) are linked into cycles by pointer doubling, with no per-segment Python loop. The loops run
through the mid-points between inside and outside voxel centres, so every voxel centre lies
strictly on its own side (at least 0.35 voxel away): rasterising the loops back with the
voxel-centre even-odd rule (:func:`grtv_nb.raster.rasterize_roi`) gives the mask back exactly.
Loops never touch or cross. Vertices on straight runs (collinear, e.g. along a 45-degree
staircase) are removed.

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
        """Unsigned area of the loop (mm^2), in its own plane (also for oblique slices)."""
        p = self.points - self.points.mean(axis=0)
        return 0.5 * float(np.linalg.norm(np.cross(p, np.roll(p, -1, axis=0)).sum(axis=0)))


def _signed_area(x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


# --- vectorised marching squares ------------------------------------------------------------
# Cell corners TL, TR, BR, BL carry bits 1, 2, 4, 8; cell edges T, R, B, L are numbered 0..3.
_T, _R, _B, _L = 0, 1, 2, 3
_CORNER_XY = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
_EDGE_XY = ((0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5))
# Segments per case; in the saddle cases (5, 10) the inside corners stay connected (8-connectivity).
_CASE_SEGMENTS = {
    1: [(_L, _T)], 2: [(_T, _R)], 3: [(_L, _R)], 4: [(_R, _B)], 5: [(_T, _R), (_B, _L)],
    6: [(_T, _B)], 7: [(_B, _L)], 8: [(_B, _L)], 9: [(_T, _B)], 10: [(_L, _T), (_R, _B)],
    11: [(_R, _B)], 12: [(_L, _R)], 13: [(_T, _R)], 14: [(_L, _T)],
}  # fmt: skip
# edge -> (row offset, column offset, kind: 0 horizontal edge / 1 vertical edge) of its key
_EDGE_KEY = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]], dtype=np.int64)


def _segment_table() -> np.ndarray:
    """(16, 2, 2) directed segments (start edge, end edge) per case, -1 when absent, oriented with
    the inside on the left in (column, row) coordinates, so outer loops get a positive area."""
    table = np.full((16, 2, 2), -1, dtype=np.int64)
    for case, segs in _CASE_SEGMENTS.items():
        inside = [(case >> k) & 1 for k in range(4)]
        for s, (a, b) in enumerate(segs):
            (px, py), (qx, qy) = _EDGE_XY[a], _EDGE_XY[b]
            cross = [(qx - px) * (ky - py) - (qy - py) * (kx - px) for kx, ky in _CORNER_XY]
            left = [k for k in range(4) if cross[k] > 0]
            right = [k for k in range(4) if cross[k] < 0]
            small, is_left = (left, True) if len(left) <= len(right) else (right, False)
            keep = is_left == bool(inside[small[0]])
            table[case, s] = (a, b) if keep else (b, a)
    return table


_TABLE = _segment_table()


def _loops_of_volume(m: np.ndarray, simplify: bool = True) -> list[tuple[int, np.ndarray]]:
    """All marching-squares loops (level 0.5, 8-connected inside) of every slice of a (nz, H, W)
    bool array whose border rows/columns are empty. Returns (slice, loop (N, 2) as (col, row))
    pairs; outer loops have positive signed area, holes negative. ``simplify`` removes the
    vertices of straight runs."""
    nz, h, w = m.shape
    u = m.view(np.uint8)
    case = u[:, :-1, :-1] | (u[:, :-1, 1:] << 1) | (u[:, 1:, 1:] << 2) | (u[:, 1:, :-1] << 3)
    flat = np.flatnonzero((case - np.uint8(1)) < 14)  # case 1..14 (uint8 wrap-around for 0)
    if len(flat) == 0:
        return []
    cs = case.ravel()[flat].astype(np.int64)
    rc, c = np.divmod(flat, w - 1)
    z, r = np.divmod(rc, h - 1)
    two = (cs == 5) | (cs == 10)
    z = np.concatenate([z, z[two]]).astype(np.int64)
    r = np.concatenate([r, r[two]]).astype(np.int64)
    c = np.concatenate([c, c[two]]).astype(np.int64)
    seg = np.concatenate([_TABLE[cs, 0], _TABLE[cs[two], 1]])

    def key(e: np.ndarray) -> np.ndarray:
        off = _EDGE_KEY[e]
        return (((z * h + r + off[:, 0]) * w + c + off[:, 1]) << 1) | off[:, 2]

    start, end = key(seg[:, 0]), key(seg[:, 1])
    n = len(start)
    order = np.argsort(start, kind="stable")
    nxt = order[np.searchsorted(start, end, sorter=order)]
    # cycle labels: the smallest segment index of each cycle (pointer doubling)
    label = np.arange(n)
    p = nxt.copy()
    while True:
        new = np.minimum(label, label[p])
        p = p[p]
        if np.array_equal(new, label):
            break
        label = new
    # rank along each cycle, starting at its label: break the link back to the label, then count
    # the steps to the end of the chain (list ranking by pointer doubling)
    last = nxt == label
    idx = np.arange(n)
    rank = np.where(last, 0, 1)
    s = np.where(last, idx, nxt)
    while True:
        rank = rank + rank[s]
        s2 = s[s]
        if np.array_equal(s2, s):
            break
        s = s2
    order = np.lexsort((-rank, label))
    lab = label[order]
    bounds = np.flatnonzero(np.diff(lab)) + 1
    k = start[order]
    kind = k & 1
    rest = k >> 1
    col = rest % w
    row = (rest // w) % h
    sl = rest // (w * h)
    xy = np.empty((n, 2))
    xy[:, 0] = col + 0.5 * (1 - kind)
    xy[:, 1] = row + 0.5 * kind
    first = np.concatenate([[0], bounds])
    stop = np.concatenate([bounds, [n]])
    if simplify:
        # drop vertices in the middle of straight runs (all loops at once); midpoints are distinct
        # within a loop, and removing such a vertex never changes its neighbours' status
        loop_of = np.repeat(np.arange(len(first)), stop - first)
        i = np.arange(n)
        nxt_v = np.where(i + 1 == stop[loop_of], first[loop_of], i + 1)
        prv_v = np.where(i == first[loop_of], stop[loop_of] - 1, i - 1)
        d1 = xy - xy[prv_v]
        d2 = xy[nxt_v] - xy
        cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
        dot = (d1 * d2).sum(axis=1)
        keep = (np.abs(cross) > 1e-9) | (dot <= 0)
        counts = np.bincount(loop_of[keep], minlength=len(first))
        xy, sl = xy[keep], sl[keep]
        stop = np.cumsum(counts)
        first = stop - counts
    return [(int(sl[a]), xy[a:b]) for a, b in zip(first, stop) if b - a >= 3]


def _classified(loops: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray, bool]]:
    return [(k, lp, _signed_area(lp[:, 0], lp[:, 1]) < 0) for k, lp in loops]


def slice_loops(plane: np.ndarray, *, simplify: bool = True) -> list[tuple[np.ndarray, bool]]:
    """Loops of one 2D boolean plane (ny, nx) as fractional ``(column, row)`` indices.

    Returns a list of ``(loop (N, 2), is_hole)``; outer loops have positive signed area in
    (column, row) coordinates, holes negative.
    """
    p = np.asarray(plane, dtype=bool)
    pad = np.zeros((1, p.shape[0] + 2, p.shape[1] + 2), dtype=bool)
    pad[0, 1:-1, 1:-1] = p
    loops = [(k, lp - 1.0) for k, lp in _loops_of_volume(pad, simplify)]
    return [(lp, hole) for _, lp, hole in _classified(loops)]


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
    from .validate import as_bool_mask

    m = as_bool_mask(mask, grid.shape, name)
    out: list[PlanarContour] = []
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    if len(zs) == 0:
        return out
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    proj = m[z0:z1].any(axis=0)
    ys, xs = np.flatnonzero(proj.any(axis=1)), np.flatnonzero(proj.any(axis=0))
    r0, r1, c0, c1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    box = np.zeros((z1 - z0, r1 - r0 + 2, c1 - c0 + 2), dtype=bool)
    box[:, 1:-1, 1:-1] = m[z0:z1, r0:r1, c0:c1]
    loops = _classified(_loops_of_volume(box, simplify))
    by_slice: dict[int, list[tuple[np.ndarray, bool]]] = {}
    for k, loop, hole in loops:
        loop[:, 0] += c0 - 1
        loop[:, 1] += r0 - 1
        by_slice.setdefault(k + z0, []).append((loop, hole))
    x0, dx, y0, dy = float(grid.x[0]), grid.dx, float(grid.y[0]), grid.dy
    aligned = grid.axis_aligned
    for k in sorted(by_slice):
        sl = by_slice[k]
        if keyhole:
            sl = [(lp, False) for lp in keyhole_loops(sl)]
        sl.sort(key=lambda t: t[1])  # outer loops first
        for loop, hole in sl:
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
