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
- **Plane matching by slabs.** Loops are grouped into contour planes, each standing for its own
  slab (:mod:`grtv_nb.planes`); a slice shows the plane whose slab holds its centre
  (:func:`slab_slices`), so contour planes finer than the slices are never joined or XORed with
  each other. Planes outside the slices are dropped with a warning. Referenced image UIDs are not
  used (they are often stale after anonymisation). Volumes and DVHs do not come from these masks
  but from the planes themselves (:mod:`grtv_nb.dvh`).
- Loops with fewer than 3 points, or not parallel to the grid's slices, are dropped with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import warn
from .geometry import Grid

#: Vertices per loop used to decide how the loops of a plane nest (:func:`classify_loops`).
_CLASSIFY_POINTS = 32


def _edge_hits(loops: Sequence[np.ndarray], rows: tuple[int, int], cols: tuple[int, int]):
    """Scan-line crossings of the loops' edges: (row, first column at or right of the crossing)."""
    pts = np.concatenate(loops)
    nxt = np.concatenate([np.roll(lp, -1, axis=0) for lp in loops])
    _, j, start = _hits(pts, nxt, rows, cols)
    return j, start


def _hits(pts: np.ndarray, nxt: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]):
    """Scan-line crossings of the edges ``pts[i] -> nxt[i]``: (edge, row, first column at or right
    of the crossing), rows and columns relative to the window."""
    r0, r1 = rows
    c0, c1 = cols
    xa, ya, xb, yb = pts[:, 0], pts[:, 1], nxt[:, 0], nxt[:, 1]
    ymin = np.minimum(ya, yb)
    ymax = np.maximum(ya, yb)
    jstart = np.maximum(np.ceil(ymin), r0).astype(np.int64)
    jstop = np.minimum(np.ceil(ymax), r1).astype(np.int64)  # exclusive: j < ymax
    counts = np.maximum(jstop - jstart, 0)
    keep = np.flatnonzero(counts > 0)
    if not len(keep):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    xa, ya, xb, yb, jstart, counts = xa[keep], ya[keep], xb[keep], yb[keep], jstart[keep], counts[keep]
    edge = np.repeat(np.arange(len(counts)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    j = jstart[edge] + offs
    slope = (xb - xa) / (yb - ya)
    xc = xa[edge] + (j - ya[edge]) * slope[edge]
    start = np.clip(np.ceil(xc), c0, c1).astype(np.int64) - c0
    return keep[edge], j - r0, start


def crossings(loops: Sequence[np.ndarray], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Parity fill of loops (each (N, 2) array of fractional (col, row) indices) in a window.

    Returns a bool array of shape (rows[1]-rows[0], cols[1]-cols[0]): even-odd over all loops.
    """
    h, w = rows[1] - rows[0], cols[1] - cols[0]
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), dtype=bool)
    j, start = _edge_hits(loops, rows, cols)
    toggles = np.bincount(j * (w + 1) + start, minlength=h * (w + 1)).reshape(h, w + 1)
    return (np.cumsum(toggles[:, :w], axis=1, dtype=np.int32) & 1).astype(bool)


def fill_simple_planes(
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
        # the edges of all loops of the chunk's planes at once, each with its plane's index
        loops = [lp for _, lps in chunk for lp in lps]
        n_pts = np.array([len(lp) for lp in loops])
        pts = np.concatenate(loops)
        last = np.cumsum(n_pts) - 1
        nxt_i = np.arange(1, len(pts) + 1)
        nxt_i[last] = last - n_pts + 1  # a loop's last vertex joins its first
        plane = np.repeat(np.repeat(np.arange(len(chunk)), [len(lps) for _, lps in chunk]), n_pts)
        e, j, start = _hits(pts, pts[nxt_i], (r0, r1), (c0, c1))
        toggles = np.bincount((plane[e] * h + j) * (w + 1) + start, minlength=len(chunk) * h * (w + 1))
        toggles = toggles.reshape(len(chunk), h, w + 1)[:, :, :w]
        inside = (np.cumsum(toggles, axis=2, dtype=np.uint8) & 1).view(bool)  # uint8 wraps, parity stays
        ks = [k for k, _ in chunk]
        mask[ks, r0:r1, c0:c1] = inside


def loop_boxes(loops: Sequence[np.ndarray]) -> np.ndarray:
    """Bounding boxes ``(x min, x max, y min, y max)`` of ``loops`` (each a non-empty (N, 2) array),
    one row per loop, all at once."""
    pts = np.concatenate(loops)
    first = np.zeros(len(loops), np.int64)
    np.cumsum([len(lp) for lp in loops[:-1]], out=first[1:])
    x, y = pts[:, 0], pts[:, 1]
    return np.stack([np.minimum.reduceat(x, first), np.maximum.reduceat(x, first),
                     np.minimum.reduceat(y, first), np.maximum.reduceat(y, first)], axis=1)


def boxes_overlap(loops: Sequence[np.ndarray], boxes: np.ndarray | None = None) -> bool:
    """Whether the bounding boxes of any two of ``loops`` (each (N, 2) array of (col, row)
    points) overlap: only then can one loop lie inside another (nested fill needed). ``boxes``:
    their :func:`loop_boxes`, when already known."""
    if len(loops) < 2:
        return False
    b = loop_boxes(loops) if boxes is None else boxes
    ox = (b[:, None, 0] <= b[None, :, 1]) & (b[None, :, 0] <= b[:, None, 1])
    oy = (b[:, None, 2] <= b[None, :, 3]) & (b[None, :, 2] <= b[:, None, 3])
    o = ox & oy
    np.fill_diagonal(o, False)
    return bool(o.any())


def _points_in_loop(pts: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Even-odd test of points (M, 2) against one loop (N, 2), same half-open rule as the fill."""
    xa, ya = loop[:, 0], loop[:, 1]
    xb, yb = np.concatenate((xa[1:], xa[:1])), np.concatenate((ya[1:], ya[:1]))  # = np.roll(., -1)
    # the (point, edge) pairs whose edge spans the point's row (min <= y < max), found from the
    # points sorted by row; the crossing only for those
    order = np.argsort(pts[:, 1], kind="stable")
    ys = pts[order, 1]
    first = np.searchsorted(ys, np.minimum(ya, yb), side="left")
    n = np.searchsorted(ys, np.maximum(ya, yb), side="left") - first
    n = np.maximum(n, 0)
    ie = np.repeat(np.arange(len(xa)), n)
    # positions first[e], first[e] + 1, ... of each edge's points in the sorted order
    pos = np.arange(len(ie)) - np.repeat(np.cumsum(n) - n, n) + np.repeat(first, n)
    ip = order[pos]
    xc = xa[ie] + (pts[ip, 1] - ya[ie]) * (xb[ie] - xa[ie]) / (yb[ie] - ya[ie])
    hits = np.bincount(ip[pts[ip, 0] >= xc], minlength=len(pts))
    return (hits & 1).astype(bool)


def _same_loop(a: np.ndarray, b: np.ndarray, tol: float = 1e-3) -> bool:
    if a.shape != b.shape:
        return False
    sa = a[np.lexsort(a.T[::-1])]
    sb = b[np.lexsort(b.T[::-1])]
    return bool(np.allclose(sa, sb, atol=tol))


def classify_loops(loops: Sequence[np.ndarray], boxes: np.ndarray | None = None):
    """How the loops of one plane nest: the one classification used by the fill and the areas.

    Returns ``(keep, depth, n_duplicates, n_partial)``: the indices of the loops kept (exact
    duplicates dropped), each loop's nesting depth (number of kept loops containing it), the number
    of duplicates and the number of partly overlapping pairs.
    """
    n = len(loops)
    if boxes is None:
        boxes = loop_boxes(loops)
    dup = np.zeros(n, dtype=bool)
    # duplicates have about the same bounding box (far within 10x _same_loop's tolerance): the
    # pairs a < b with near boxes, in order
    bx = np.asarray(boxes)
    tol = 10 * (1e-3 + 1e-5 * np.abs(bx).max(axis=1))
    near = np.abs(bx[:, None, :] - bx[None, :, :]).max(axis=2) <= tol[None, :]
    for a, b in zip(*np.nonzero(np.triu(near, 1))):
        if not dup[b] and _same_loop(loops[a], loops[b]):
            dup[b] = True
    keep = [i for i in range(n) if not dup[i]]
    # containment is tested on up to _CLASSIFY_POINTS vertices of each loop (loops of a valid
    # structure do not cross, so a few vertices decide; a crossing is seen as some in, some out)
    probe = [lp[:: max(1, len(lp) // _CLASSIFY_POINTS)] for lp in loops]
    inside: dict[tuple[int, int], np.ndarray] = {}

    def inside_of(b: int, a: int) -> np.ndarray:  # which probe vertices of loop b lie inside loop a
        if (b, a) not in inside:
            inside[(b, a)] = _points_in_loop(probe[b], loops[a])
        return inside[(b, a)]

    bl = np.asarray(boxes).tolist()  # the same numbers, compared as Python floats
    contains = np.zeros((n, n), dtype=bool)  # contains[a, b]: loop b lies inside loop a
    for a in keep:
        for b in keep:
            ba, bb = bl[a], bl[b]
            if a != b and bb[0] >= ba[0] and bb[1] <= ba[1] and bb[2] >= ba[2] and bb[3] <= ba[3]:
                contains[a, b] = bool(inside_of(b, a).all())
    partial = 0
    for ia, a in enumerate(keep):
        for b in keep[ia + 1 :]:
            ba, bb = bl[a], bl[b]
            disjoint = ba[1] < bb[0] or bb[1] < ba[0] or ba[3] < bb[2] or bb[3] < ba[2]
            if disjoint or contains[a, b] or contains[b, a]:
                continue
            if inside_of(b, a).any() or inside_of(a, b).any():
                partial += 1
    return keep, contains.sum(axis=0), int(dup.sum()), partial


def region_area(loops: Sequence[np.ndarray], *, nesting: tuple | None = None) -> float | None:
    """Exact area of one plane's region (loops (N, 2), any unit): loops nested an even number of
    times add their area, an odd number subtract it; duplicates count once. ``None`` when two loops
    partly overlap (their union has no closed form here). ``nesting``: :func:`classify_loops` of
    these loops (those of 3 points or more), when already known."""
    from .planes import loop_area

    loops = [np.asarray(lp, dtype=np.float64) for lp in loops if len(lp) >= 3]
    if not loops:
        return 0.0
    areas = [loop_area(lp) for lp in loops]
    if nesting is None and not boxes_overlap(loops):
        return float(sum(areas))
    keep, depth, _, partial = classify_loops(loops) if nesting is None else nesting
    if partial:
        return None
    return float(sum(areas[i] * (1 - 2 * (int(depth[i]) & 1)) for i in keep))


def fill_plane(
    loops: Sequence[np.ndarray], shape: tuple[int, int], *, label: str = "", report=None,
    nesting: tuple | None = None,
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
    nesting : tuple, optional
        :func:`classify_loops` of these loops (those of 3 points or more; in any units: nesting
        does not change with a shift and scaling), when already known.
    """
    ny, nx = shape
    report = report or warn
    mask = np.zeros(shape, dtype=bool)
    loops = [np.asarray(lp, dtype=np.float64) for lp in loops if len(lp) >= 3]
    if not loops:
        return mask
    boxes = loop_boxes(loops)
    overlap = boxes_overlap(loops, boxes)
    r0 = max(int(np.floor(boxes[:, 2].min())), 0)
    r1 = min(int(np.ceil(boxes[:, 3].max())) + 1, ny)
    c0 = max(int(np.floor(boxes[:, 0].min())), 0)
    c1 = min(int(np.ceil(boxes[:, 1].max())) + 1, nx)
    if r1 <= r0 or c1 <= c0:
        return mask
    if not overlap:
        mask[r0:r1, c0:c1] = crossings(loops, (r0, r1), (c0, c1))
        return mask
    # Nested / overlapping loops: classify by geometry.
    keep, depth, n_dup, partial = classify_loops(loops, boxes) if nesting is None else nesting
    if n_dup:
        report(f"{label}: {n_dup} duplicated contour loop(s) counted once")
    if partial:
        report(
            f"{label}: {partial} pair(s) of partly overlapping contour loops; "
            "they were joined (union) instead of cut by XOR"
        )
    levels: dict[int, list[np.ndarray]] = {}
    for i in keep:
        levels.setdefault(int(depth[i]), []).append(loops[i])
    acc = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for _, lvl in sorted(levels.items()):
        union = np.zeros_like(acc)
        for lp in lvl:
            union |= crossings([lp], (r0, r1), (c0, c1))
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


def slab_slices(slabs, grid: Grid) -> dict[int, int]:
    """Which contour plane each slice of ``grid`` shows: slice ``k`` -> index of the slab
    (:class:`grtv_nb.planes.PlaneSlab`, sorted by z) whose ``[z0, z1)`` holds the slice centre.

    A plane whose slab holds no slice centre (planes finer than the slices) is shown on the nearest
    slice within half the local slice spacing when that slice shows no other plane, so thin
    structures stay visible; the volume never depends on this (see :mod:`grtv_nb.planes`).
    """
    if not slabs:
        return {}
    z = grid.z
    z0 = np.array([s.z0 for s in slabs])
    z1 = np.array([s.z1 for s in slabs])
    j = np.searchsorted(z0, z + 1e-6, side="right") - 1
    ok = (j >= 0) & (z < z1[np.clip(j, 0, None)] - 1e-6)
    out = {int(k): int(j[k]) for k in np.flatnonzero(ok)}
    shown = set(out.values())
    near = match_planes(np.array([s.z for s in slabs]), grid)
    for i, k in enumerate(near):
        if i not in shown and k >= 0 and int(k) not in out:
            out[int(k)] = i
    return out


def contours_to_planes(
    contours: Sequence[np.ndarray], grid: Grid, *, label: str = "", report=None, end_cap: str = "auto"
) -> dict[int, list[np.ndarray]]:
    """The loops each slice of ``grid`` shows, as fractional (column, row) indices of that slice.

    Loops are grouped into contour planes with their slabs (:func:`grtv_nb.planes.group_planes`);
    slice ``k`` shows the plane whose slab holds its centre (:func:`slab_slices`). Loops of
    different planes are never combined on one slice.
    """
    from .planes import group_planes

    report = report or warn
    groups = group_planes(
        contours, grid.direction, end_cap=end_cap, single_thickness=float(grid.slice_thickness or grid.dz),
        ref_z=grid.z,
    )
    if groups.n_short:
        report(f"{label}: {groups.n_short} contour(s) with fewer than 3 points ignored")
    if groups.n_skew:
        report(f"{label}: {groups.n_skew} contour(s) not parallel to the image slices ignored")
    slabs = groups.slabs
    if not slabs:
        return {}
    pz = np.array([s.z for s in slabs])
    outside = pz[match_planes(pz, grid) < 0]
    if len(z := grid.z) and len(outside):
        outside = outside[(outside < z[0]) | (outside > z[-1])]
    if len(outside):
        n = sum(len(slabs[i].loops) for i in np.flatnonzero(np.isin(pz, outside)))
        report(
            f"{label}: {n} contour(s) lie outside the image slices "
            f"(z = {outside.min():.2f}..{outside.max():.2f} mm) and were dropped"
        )
    planes: dict[int, list[np.ndarray]] = {}
    for k, i in slab_slices(slabs, grid).items():
        planes[k] = [
            np.stack([grid.continuous_index("x", lp[:, 0]), grid.continuous_index("y", lp[:, 1])], axis=1)
            for lp in slabs[i].loops
        ]
    return planes


def summarised(report, label: str):
    """A (collect, flush) pair: ``collect(z, message)`` gathers per-plane messages, ``flush()``
    sends one summary per ROI to ``report`` (default :func:`grtv_nb.errors.warn`) instead of one
    line per plane."""
    report = report or warn
    seen: list[tuple[float, str]] = []

    def collect(z: float, message: str) -> None:
        seen.append((z, message))

    def flush() -> None:
        if not seen:
            return
        zs = [z for z, _ in seen]
        kinds = sorted({m.split(": ", 1)[-1].split(";")[0].split(" ", 1)[-1] for _, m in seen})
        report(
            f"{label}: {len(seen)} plane(s) with overlapping or duplicated contour loops "
            f"(z = {min(zs):.2f}..{max(zs):.2f} mm; {', '.join(kinds)}); overlapping loops were joined "
            f"(union) instead of cut by XOR, duplicates counted once. First: {seen[0][1]}"
        )
        seen.clear()

    return collect, flush


def rasterize_roi(
    contours: Sequence[np.ndarray], grid: Grid, *, label: str = "", report=None, end_cap: str = "auto"
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
        Receives warning messages (default: emit :class:`~grtv_nb.errors.GRTVWarning`); loops that
        overlap on a plane give one summary message per ROI.
    end_cap : {"auto", "half", "none"}
        How far the end planes reach (:mod:`grtv_nb.planes`); decides which slices show them.

    Returns
    -------
    ndarray of bool, shape ``grid.shape``
    """
    mask = np.zeros(grid.shape, dtype=bool)
    planes = contours_to_planes(contours, grid, label=label, report=report, end_cap=end_cap)
    ny, nx = grid.shape[1:]
    simple: list[tuple[int, list[np.ndarray]]] = []
    nested: list[tuple[int, list[np.ndarray]]] = []
    for k, loops in sorted(planes.items()):
        loops = [lp for lp in loops if len(lp) >= 3]
        if loops:
            (nested if boxes_overlap(loops) else simple).append((k, loops))
    if simple:
        fill_simple_planes(mask, simple)
    collect, flush = summarised(report, label)
    for k, loops in nested:
        zk = float(grid.z[k])
        mask[k] = fill_plane(loops, (ny, nx), label=f"{label} at z={zk:.2f} mm", report=lambda m, z=zk: collect(z, m))
    flush()
    return mask
