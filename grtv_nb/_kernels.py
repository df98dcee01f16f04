"""Compiled (numba) loops behind :mod:`grtv_nb.transforms` and :mod:`grtv_nb.augment`.

Private: call the public functions of those modules instead. Imported lazily (numba's import and
first compilation cost time; compiled code is cached next to this file). Every kernel writes into
an output array the caller allocated, so the callers own the dtype and memory decisions.

Value conventions shared by all kernels
---------------------------------------
* Linear interpolation is written ``a + (b - a) * t`` so a weight ``t == 0`` returns ``a``
  exactly (identity transforms give the input back bit for bit).
* Integer outputs are rounded half away from zero and clipped to ``[lo, hi]`` (``is_int``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ._numba_cache import choose_cache_dir

choose_cache_dir()  # before numba is imported

import numba as nb  # noqa: E402  (after the cache folder is chosen)
import numpy as np  # noqa: E402
from numba import prange  # noqa: E402

if os.environ.get("NUMBA_CACHE_DIR") and not nb.config.CACHE_DIR:  # numba was imported before us
    nb.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

_OPTS = dict(cache=True, nogil=True)


def cache_dir() -> str:
    """Where the compiled kernels are cached on disk."""
    return nb.config.CACHE_DIR or str(Path(__file__).resolve().parent / "__pycache__")


@nb.njit(inline="always")
def _store(v, is_int, lo, hi):
    if is_int:
        if v != v:  # NaN: no integer meaning, use 0
            return 0.0
        v = math.floor(v + 0.5) if v >= 0 else math.ceil(v - 0.5)
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
    return v


@nb.njit(parallel=True, **_OPTS)
def separable(vol, out, z0, z1, wz, vz, y0, y1, wy, vy, x0, x1, wx, vx, fill, is_int, lo, hi):
    """Trilinear sampling of ``vol`` on the tensor grid given by per-axis tables.

    For output index ``o`` along an axis: input taps ``i0[o]``, ``i1[o]``, weight ``w[o]`` of
    ``i1`` and ``valid[o]`` (False: the output takes ``fill``). Integer outputs are rounded to
    the nearest integer; exact ties (x.5) go up where ``oz + oy + ox`` is even and down where it
    is odd, so ties do not bias sums (a 0/255 mask halved in size and thresholded at 128 keeps
    its volume). Each output row blends its (up
    to 4) input rows along z and y into a float32 row buffer (taps of weight 0 skipped), then
    interpolates along x into a second buffer, which is rounded/clipped/cast in one vector loop.
    """
    nzo, nyo, nxo = out.shape
    nxi = vol.shape[2]
    nrows = nzo * nyo
    nblocks = min(nrows, 64)
    fill_v = np.float32(_store(fill, is_int, lo, hi))
    lo32 = np.float32(lo)
    hi32 = np.float32(hi)
    half = np.float32(0.5)
    all_vx = True
    same_x = nxo == nxi
    half_x = nxi == 2 * nxo
    for ox in range(nxo):
        if not vx[ox]:
            all_vx = False
        if not (x0[ox] == ox and wx[ox] == 0):
            same_x = False
        if not (x0[ox] == 2 * ox and x1[ox] == 2 * ox + 1 and wx[ox] == 0.5):
            half_x = False
    x_mode = 1 if same_x else (2 if half_x else 0)
    for b in prange(nblocks):
        r_start = b * nrows // nblocks
        r_end = (b + 1) * nrows // nblocks
        row = np.empty(nxi, np.float32)
        orow = np.empty(nxo, np.float32)
        for r in range(r_start, r_end):
            oz = r // nyo
            oy = r - oz * nyo
            o = out[oz, oy]
            if not (vz[oz] and vy[oy]):
                for ox in range(nxo):
                    o[ox] = fill_v
                continue
            tz = wz[oz]
            ty = wy[oy]
            a0 = vol[z0[oz], y0[oy]]
            if tz == 0:
                if ty == 0:
                    for i in range(nxi):
                        row[i] = a0[i]
                else:
                    a1 = vol[z0[oz], y1[oy]]
                    for i in range(nxi):
                        p = np.float32(a0[i])
                        row[i] = p + (np.float32(a1[i]) - p) * ty
            else:
                b0 = vol[z1[oz], y0[oy]]
                if ty == 0:
                    for i in range(nxi):
                        p = np.float32(a0[i])
                        row[i] = p + (np.float32(b0[i]) - p) * tz
                else:
                    a1 = vol[z0[oz], y1[oy]]
                    b1 = vol[z1[oz], y1[oy]]
                    for i in range(nxi):
                        p = np.float32(a0[i])
                        q = np.float32(b0[i])
                        p = p + (np.float32(a1[i]) - p) * ty
                        q = q + (np.float32(b1[i]) - q) * ty
                        row[i] = p + (q - p) * tz
            if x_mode == 1:  # x kept: no interpolation
                for ox in range(nxo):
                    orow[ox] = row[ox]
            elif x_mode == 2:  # x halved: the mean of each pair (strided loads vectorise)
                for ox in range(nxo):
                    orow[ox] = (row[2 * ox] + row[2 * ox + 1]) * half
            else:
                for ox in range(nxo):
                    p = row[x0[ox]]
                    orow[ox] = p + (row[x1[ox]] - p) * wx[ox]
            if not all_vx:
                for ox in range(nxo):
                    if not vx[ox]:
                        orow[ox] = fill_v
            if is_int:
                # round to nearest; exact .5 ties up where oz+oy+ox is even, down where odd
                par = (oz + oy) & 1
                for ox in range(nxo):
                    v = orow[ox]
                    v = v if v == v else np.float32(0.0)
                    v = min(max(v, lo32), hi32)
                    f = np.floor(v)
                    d = v - f
                    up = d > half or (d == half and ((ox + par) & 1) == 0)
                    o[ox] = f + np.float32(1.0) if up else f
            else:
                for ox in range(nxo):
                    o[ox] = orow[ox]


_TILE_Y = 32
_TILE_X = 128


def warp_tiles(box) -> int:
    """Number of tiles :func:`warp` splits ``box`` into (callers share them out in ranges)."""
    nzt = box[1] - box[0]
    nyt = (box[3] - box[2] + _TILE_Y - 1) // _TILE_Y
    nxt = (box[5] - box[4] + _TILE_X - 1) // _TILE_X
    return max(nzt, 0) * max(nyt, 0) * max(nxt, 0)


@nb.njit(**_OPTS)
def warp(vol, out, m, c, ctrl, bzi, bzw, byi, byw, bxt, has_def, box, mode, thr, on_val, fill,
         is_int, lo, hi, proto, blk, reach, t_start, t_end):
    """Sample ``vol`` at ``s(p) = m @ (p - c) + c + d(p)`` for every output index ``p`` in ``box``.

    Only tiles ``t_start .. t_end - 1`` (of :func:`warp_tiles`) are done: the kernel is serial and
    releases the GIL, the caller runs tile ranges on several threads (a serial kernel compiles in
    a third of the time of a numba-parallel one).

    ``d(p)`` (voxels, z/y/x components) is the tensor-product cubic B-spline of the control
    vectors ``ctrl[kz, ky, kx, :]``: along z (y) output index ``i`` uses controls
    ``bZi[i] .. bZi[i] + 3`` with weights ``bZw[i, 0:4]``; along x the dense basis
    ``bxt[kx, x]`` is used (vectorises). ``box = (z0, z1, y0, y1, x0, x1)`` (half-open); outputs
    outside it are not touched.

    Sampling: a position more than half a voxel beyond the outer voxel centres (outside the
    volume's extent) takes ``fill``; otherwise it is clamped to ``[0, n-1]`` and interpolated
    trilinearly (``mode`` 0), trilinearly then set to ``on_val if v >= thr else 0`` (``mode``
    1, binary labels) or from the nearest voxel (``mode`` 2). Interpolation is written
    ``a + (b - a) * t`` (``b`` when ``t == 1``, at the last index of an axis): a constant volume
    stays exactly constant and a position on a voxel centre returns its value exactly.

    Labels (``mode`` 1, 2) may pass ``blk``, the :func:`block_flags` of ``vol`` (an empty array
    otherwise), and ``reach``, a bound of ``|d|`` per axis (voxels): a tile whose input region
    (the affine image of its corners, widened by ``reach`` and the interpolation taps) only covers
    all-zero blocks is left as it is (the caller zero-fills ``out``), and one that only covers
    all-``on_val`` blocks inside the volume is filled with ``on_val`` (``mode`` 1), without sampling;
    the same test is then made for each row segment of the other tiles.

    Work is split in tiles of one output slice x ``_TILE_Y`` rows x ``_TILE_X`` columns, so the
    input a tile reads stays in cache even when the rotation tilts rows across input slices.
    Each row segment is done in passes without branches: displacement, positions and weights,
    the 8 gathers into scratch rows of ``proto``'s dtype (int32 for small integer inputs: no
    scalar int->float converts), then a vectorised float32 interpolation and cast.
    """
    cy, cx = ctrl.shape[1], ctrl.shape[2]
    nz, ny, nx = vol.shape
    flat = vol.ravel()
    z0b, z1b, y0b, y1b, x0b, x1b = box[0], box[1], box[2], box[3], box[4], box[5]
    nxt = (x1b - x0b + _TILE_X - 1) // _TILE_X
    nyt = (y1b - y0b + _TILE_Y - 1) // _TILE_Y
    ntiles = (z1b - z0b) * nyt * nxt
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    c0, c1, c2 = c[0], c[1], c[2]
    hz, hy, hx = nz - 0.5, ny - 0.5, nx - 0.5
    # first tap index is at most n-2 (the second is +1 along the axis; 0 for a 1-voxel axis)
    lz, ly, lx = max(nz - 2, 0), max(ny - 2, 0), max(nx - 2, 0)
    sy_ = np.uint64(nx)
    sz_ = np.uint64(nx * ny)
    oz = np.uint64(nx * ny) if nz > 1 else np.uint64(0)
    oy = np.uint64(nx) if ny > 1 else np.uint64(0)
    ox = np.uint64(1) if nx > 1 else np.uint64(0)
    thr32 = np.float32(thr)
    on32 = np.float32(on_val)
    fill32 = np.float32(fill)
    lo32 = np.float32(lo)
    hi32 = np.float32(hi)
    half = np.float32(0.5)
    one32 = np.float32(1.0)
    use_blk = blk.size > 0 and mode != 0
    for tile in range(max(t_start, 0), min(t_end, ntiles)):
        # z varies fastest: consecutive tiles of a thread re-read mostly the same input
        nzt = z1b - z0b
        z = z0b + tile % nzt
        rest = tile // nzt
        ya = y0b + (rest // nxt) * _TILE_Y
        yb = min(ya + _TILE_Y, y1b)
        xa = x0b + (rest % nxt) * _TILE_X
        w = min(xa + _TILE_X, x1b) - xa
        if use_blk:
            flag = _tile_flag(blk, m, c, reach, z, ya, yb - 1, xa, xa + w - 1, nz, ny, nx)
            if flag == 0:
                continue
            if flag == 1 and mode == 1:
                onv = _store(on_val, is_int, lo, hi)
                for y in range(ya, yb):
                    o = out[z, y]
                    for q in range(w):
                        o[xa + q] = onv
                continue
        slab = np.zeros((cy, cx, 3), np.float64)
        acc = np.zeros((3, cy, w), np.float64)
        base = np.empty(w, np.uint64)
        tx = np.empty(w, np.float32)
        ty = np.empty(w, np.float32)
        tz = np.empty(w, np.float32)
        ok = np.empty(w, np.bool_)
        g = np.empty((8, w), proto.dtype)
        res = np.empty(w, np.float32)
        ssz = np.empty(w, np.float64)
        ssy = np.empty(w, np.float64)
        ssx = np.empty(w, np.float64)
        ddz = np.zeros(w, np.float64)
        ddy = np.zeros(w, np.float64)
        ddx = np.zeros(w, np.float64)
        if has_def:
            # the field on this tile: contract z (4 controls), then x for the controls the tile's
            # columns use (acc[d, j, q]); each row then only combines its 4 y controls
            k0 = bzi[z]
            for k in range(4):
                wk = bzw[z, k]
                for j in range(cy):
                    for i in range(cx):
                        for d in range(3):
                            slab[j, i, d] += wk * ctrl[k0 + k, j, i, d]
            ilo = cx
            ihi = 0
            for i in range(cx):
                used = False
                bi = bxt[i]
                for q in range(w):
                    if bi[xa + q] != 0.0:
                        used = True
                if used:
                    ilo = min(ilo, i)
                    ihi = max(ihi, i + 1)
            jlo = byi[ya]
            jhi = byi[yb - 1] + 4
            for d in range(3):
                for j in range(jlo, jhi):
                    row = acc[d, j]
                    for i in range(ilo, ihi):
                        a = slab[j, i, d]
                        bi = bxt[i]
                        for q in range(w):
                            row[q] += a * bi[xa + q]
        pz = z - c0
        for y in range(ya, yb):
            if use_blk:  # the same test for this row segment alone (a smaller input region)
                rflag = _tile_flag(blk, m, c, reach, z, y, y, xa, xa + w - 1, nz, ny, nx)
                if rflag == 0:
                    continue
                if rflag == 1 and mode == 1:
                    onv = _store(on_val, is_int, lo, hi)
                    o = out[z, y]
                    for q in range(w):
                        o[xa + q] = onv
                    continue
            # pass 1: displacement along the row segment, then positions
            if has_def:
                j0 = byi[y]
                w0 = byw[y, 0]
                w1 = byw[y, 1]
                w2 = byw[y, 2]
                w3 = byw[y, 3]
                a0 = acc[0]
                a1 = acc[1]
                a2 = acc[2]
                for q in range(w):
                    ddz[q] = w0 * a0[j0, q] + w1 * a0[j0 + 1, q] + w2 * a0[j0 + 2, q] + w3 * a0[j0 + 3, q]
                    ddy[q] = w0 * a1[j0, q] + w1 * a1[j0 + 1, q] + w2 * a1[j0 + 2, q] + w3 * a1[j0 + 3, q]
                    ddx[q] = w0 * a2[j0, q] + w1 * a2[j0 + 1, q] + w2 * a2[j0 + 2, q] + w3 * a2[j0 + 3, q]
            py = y - c1
            bz = m00 * pz + m01 * py + c0
            by = m10 * pz + m11 * py + c1
            bx = m20 * pz + m21 * py + c2
            for q in range(w):
                px = (xa + q) - c2
                ssz[q] = bz + m02 * px + ddz[q]
                ssy[q] = by + m12 * px + ddy[q]
                ssx[q] = bx + m22 * px + ddx[q]
            for q in range(w):
                sz = ssz[q]
                sy = ssy[q]
                sx = ssx[q]
                ok[q] = sz >= -0.5 and sy >= -0.5 and sx >= -0.5 and sz <= hz and sy <= hy and sx <= hx
                ssz[q] = min(max(sz, 0.0), nz - 1.0)
                ssy[q] = min(max(sy, 0.0), ny - 1.0)
                ssx[q] = min(max(sx, 0.0), nx - 1.0)
            if mode == 2:
                for q in range(w):
                    ssz[q] = math.floor(ssz[q] + 0.5)
                    ssy[q] = math.floor(ssy[q] + 0.5)
                    ssx[q] = math.floor(ssx[q] + 0.5)
            for q in range(w):
                sz = ssz[q]
                sy = ssy[q]
                sx = ssx[q]
                iz = min(int(sz), lz)
                iy = min(int(sy), ly)
                ix = min(int(sx), lx)
                tz[q] = sz - iz
                ty[q] = sy - iy
                tx[q] = sx - ix
                base[q] = np.uint64(iz) * sz_ + np.uint64(iy) * sy_ + np.uint64(ix)
            # pass 2: gathers; pass 3: interpolation
            g0 = g[0]
            if mode == 2:
                for q in range(w):
                    b = base[q]
                    # nearest: the rounded position is an index, but may sit on the +1 tap
                    b += oz if tz[q] > 0 else np.uint64(0)
                    b += oy if ty[q] > 0 else np.uint64(0)
                    b += ox if tx[q] > 0 else np.uint64(0)
                    g0[q] = flat[b]
                for q in range(w):
                    res[q] = np.float32(g0[q]) if ok[q] else fill32
            else:
                g1 = g[1]
                g2 = g[2]
                g3 = g[3]
                g4 = g[4]
                g5 = g[5]
                g6 = g[6]
                g7 = g[7]
                for q in range(w):
                    b = base[q]
                    g0[q] = flat[b]
                    g1[q] = flat[b + ox]
                    g2[q] = flat[b + oy]
                    g3[q] = flat[b + oy + ox]
                    g4[q] = flat[b + oz]
                    g5[q] = flat[b + oz + ox]
                    g6[q] = flat[b + oz + oy]
                    g7[q] = flat[b + oz + oy + ox]
                for q in range(w):
                    a = tx[q]
                    v0 = np.float32(g0[q])
                    v1 = np.float32(g1[q])
                    v2 = np.float32(g2[q])
                    v3 = np.float32(g3[q])
                    v4 = np.float32(g4[q])
                    v5 = np.float32(g5[q])
                    v6 = np.float32(g6[q])
                    v7 = np.float32(g7[q])
                    c00 = v0 + (v1 - v0) * a if a < one32 else v1
                    c01 = v2 + (v3 - v2) * a if a < one32 else v3
                    c10 = v4 + (v5 - v4) * a if a < one32 else v5
                    c11 = v6 + (v7 - v6) * a if a < one32 else v7
                    bb = ty[q]
                    e0 = c00 + (c01 - c00) * bb if bb < one32 else c01
                    e1 = c10 + (c11 - c10) * bb if bb < one32 else c11
                    cc = tz[q]
                    v = e0 + (e1 - e0) * cc if cc < one32 else e1
                    res[q] = v if ok[q] else fill32
                if mode == 1:
                    for q in range(w):
                        res[q] = on32 if res[q] >= thr32 else np.float32(0.0)
            o = out[z, y]
            if is_int:
                for q in range(w):
                    v = res[q]
                    v = v if v == v else np.float32(0.0)
                    v = min(max(v, lo32), hi32)
                    o[xa + q] = v + half if v >= 0 else v - half
            else:
                for q in range(w):
                    o[xa + q] = res[q]


BLOCK = (4, 16, 16)


@nb.njit(parallel=True, **_OPTS)
def block_flags(vol):
    """Per block of ``BLOCK`` voxels (z, y, x; the last ones may be smaller): 0 if all voxels
    are zero, 1 if all are non-zero, 2 if mixed."""
    nz, ny, nx = vol.shape
    bz, by, bx = BLOCK
    gz, gy, gx = (nz + bz - 1) // bz, (ny + by - 1) // by, (nx + bx - 1) // bx
    flags = np.empty((gz, gy, gx), np.uint8)
    for k in prange(gz):
        for j in range(gy):
            for i in range(gx):
                n_on = 0
                n_all = 0
                for z in range(k * bz, min((k + 1) * bz, nz)):
                    for y in range(j * by, min((j + 1) * by, ny)):
                        for x in range(i * bx, min((i + 1) * bx, nx)):
                            n_all += 1
                            if vol[z, y, x] != 0:
                                n_on += 1
                flags[k, j, i] = 0 if n_on == 0 else (1 if n_on == n_all else 2)
    return flags


@nb.njit(inline="always")
def _tile_flag(blk, m, c, reach, z, y0, y1, x0, x1, nz, ny, nx):
    """0 / 1 if every input voxel the output tile (slice z, rows y0..y1, columns x0..x1) can read
    is in an all-zero / all-non-zero block (1 also needs the region inside the volume); else 2."""
    lo0 = 1e300
    lo1 = 1e300
    lo2 = 1e300
    hi0 = -1e300
    hi1 = -1e300
    hi2 = -1e300
    pz = z - c[0]
    for yy in (y0, y1):
        for xx in (x0, x1):
            py = yy - c[1]
            px = xx - c[2]
            s0 = m[0, 0] * pz + m[0, 1] * py + m[0, 2] * px + c[0]
            s1 = m[1, 0] * pz + m[1, 1] * py + m[1, 2] * px + c[1]
            s2 = m[2, 0] * pz + m[2, 1] * py + m[2, 2] * px + c[2]
            lo0 = min(lo0, s0)
            lo1 = min(lo1, s1)
            lo2 = min(lo2, s2)
            hi0 = max(hi0, s0)
            hi1 = max(hi1, s1)
            hi2 = max(hi2, s2)
    lo0 -= reach[0] + 1.0
    lo1 -= reach[1] + 1.0
    lo2 -= reach[2] + 1.0
    hi0 += reach[0] + 1.0
    hi1 += reach[1] + 1.0
    hi2 += reach[2] + 1.0
    inside = lo0 >= -0.5 and lo1 >= -0.5 and lo2 >= -0.5 and hi0 <= nz - 0.5 and hi1 <= ny - 0.5 and hi2 <= nx - 0.5
    bz, by, bx = BLOCK
    k0 = max(int(math.floor(lo0)), 0) // bz
    k1 = min(int(math.ceil(hi0)), nz - 1) // bz
    j0 = max(int(math.floor(lo1)), 0) // by
    j1 = min(int(math.ceil(hi1)), ny - 1) // by
    i0 = max(int(math.floor(lo2)), 0) // bx
    i1 = min(int(math.ceil(hi2)), nx - 1) // bx
    if k1 < k0 or j1 < j0 or i1 < i0:
        return 0  # entirely outside the volume: fill (0 for labels)
    first = blk[k0, j0, i0]
    if first == 2:
        return 2
    for k in range(k0, k1 + 1):
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                if blk[k, j, i] != first:
                    return 2
    if first == 1 and not inside:
        return 2
    return first
