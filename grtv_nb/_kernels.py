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

import numba as nb
import numpy as np
from numba import prange

_OPTS = dict(cache=True, nogil=True)


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
    ``i1`` and ``valid[o]`` (False: the output takes ``fill``). Each output row blends its (up
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
    for ox in range(nxo):
        if not vx[ox]:
            all_vx = False
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
            for ox in range(nxo):
                p = row[x0[ox]]
                orow[ox] = p + (row[x1[ox]] - p) * wx[ox]
            if not all_vx:
                for ox in range(nxo):
                    if not vx[ox]:
                        orow[ox] = fill_v
            if is_int:
                for ox in range(nxo):
                    v = orow[ox]
                    v = v if v == v else np.float32(0.0)
                    v = min(max(v, lo32), hi32)
                    o[ox] = v + half if v >= 0 else v - half
            else:
                for ox in range(nxo):
                    o[ox] = orow[ox]


@nb.njit(inline="always")
def _tap(vol, z, y, x, fill):
    nz, ny, nx = vol.shape
    if z < 0 or y < 0 or x < 0 or z >= nz or y >= ny or x >= nx:
        return fill
    return np.float64(vol[z, y, x])


@nb.njit(inline="always")
def _trilinear(vol, sz, sy, sx, fill):
    nz, ny, nx = vol.shape
    fz = math.floor(sz)
    fy = math.floor(sy)
    fx = math.floor(sx)
    tz = sz - fz
    ty = sy - fy
    tx = sx - fx
    iz = int(fz)
    iy = int(fy)
    ix = int(fx)
    if iz >= 0 and iy >= 0 and ix >= 0 and iz < nz - 1 and iy < ny - 1 and ix < nx - 1:
        v000 = np.float64(vol[iz, iy, ix])
        v001 = np.float64(vol[iz, iy, ix + 1])
        v010 = np.float64(vol[iz, iy + 1, ix])
        v011 = np.float64(vol[iz, iy + 1, ix + 1])
        v100 = np.float64(vol[iz + 1, iy, ix])
        v101 = np.float64(vol[iz + 1, iy, ix + 1])
        v110 = np.float64(vol[iz + 1, iy + 1, ix])
        v111 = np.float64(vol[iz + 1, iy + 1, ix + 1])
    else:
        if iz < -1 or iy < -1 or ix < -1 or iz >= nz or iy >= ny or ix >= nx:
            return fill
        # a zero weight never reads its (possibly outside) tap
        jz = iz + 1 if tz > 0 else iz
        jy = iy + 1 if ty > 0 else iy
        jx = ix + 1 if tx > 0 else ix
        v000 = _tap(vol, iz, iy, ix, fill)
        v001 = _tap(vol, iz, iy, jx, fill)
        v010 = _tap(vol, iz, jy, ix, fill)
        v011 = _tap(vol, iz, jy, jx, fill)
        v100 = _tap(vol, jz, iy, ix, fill)
        v101 = _tap(vol, jz, iy, jx, fill)
        v110 = _tap(vol, jz, jy, ix, fill)
        v111 = _tap(vol, jz, jy, jx, fill)
    c00 = v000 + (v001 - v000) * tx
    c01 = v010 + (v011 - v010) * tx
    c10 = v100 + (v101 - v100) * tx
    c11 = v110 + (v111 - v110) * tx
    c0 = c00 + (c01 - c00) * ty
    c1 = c10 + (c11 - c10) * ty
    return c0 + (c1 - c0) * tz


_TILE_X = 64


@nb.njit(parallel=True, **_OPTS)
def warp(vol, out, m, c, ctrl, bzi, bzw, byi, byw, bxi, bxw, has_def, box, mode, thr, on_val, fill,
         is_int, lo, hi):
    """Sample ``vol`` at ``s(p) = m @ (p - c) + c + d(p)`` for every output index ``p`` in ``box``.

    ``d(p)`` (voxels, z/y/x components) is the tensor-product cubic B-spline of the control
    vectors ``ctrl[kz, ky, kx, :]``: along each axis output index ``i`` uses controls
    ``bXi[i] .. bXi[i] + 3`` with weights ``bXw[i, 0:4]``. ``box = (z0, z1, y0, y1, x0, x1)``
    (half-open); outputs outside it are not touched. ``mode`` 0: linear; 1: linear then
    ``on_val if v >= thr else 0`` (binary labels); 2: nearest. Samples outside take ``fill``.

    Work is split in tiles of one output slice by ``_TILE_X`` columns (all rows), so the input
    a tile reads stays in cache even when the rotation tilts rows across many input slices.
    """
    cy, cx = ctrl.shape[1], ctrl.shape[2]
    nz, ny, nx = vol.shape
    z0b, z1b, y0b, y1b, x0b, x1b = box[0], box[1], box[2], box[3], box[4], box[5]
    nxt = (x1b - x0b + _TILE_X - 1) // _TILE_X
    ntiles = (z1b - z0b) * nxt
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    c0, c1, c2 = c[0], c[1], c[2]
    for tile in prange(ntiles):
        z = z0b + tile // nxt
        xa = x0b + (tile % nxt) * _TILE_X
        xb = min(xa + _TILE_X, x1b)
        slab = np.zeros((cy, cx, 3), np.float64)
        rowc = np.zeros((cx, 3), np.float64)
        if has_def:
            k0 = bzi[z]
            for k in range(4):
                w = bzw[z, k]
                for j in range(cy):
                    for i in range(cx):
                        for d in range(3):
                            slab[j, i, d] += w * ctrl[k0 + k, j, i, d]
        pz = z - c0
        for y in range(y0b, y1b):
            if has_def:
                j0 = byi[y]
                for i in range(cx):
                    for d in range(3):
                        rowc[i, d] = (byw[y, 0] * slab[j0, i, d] + byw[y, 1] * slab[j0 + 1, i, d]
                                      + byw[y, 2] * slab[j0 + 2, i, d] + byw[y, 3] * slab[j0 + 3, i, d])
            py = y - c1
            bz = m00 * pz + m01 * py + c0
            by = m10 * pz + m11 * py + c1
            bx = m20 * pz + m21 * py + c2
            for x in range(xa, xb):
                px = x - c2
                sz = bz + m02 * px
                sy = by + m12 * px
                sx = bx + m22 * px
                if has_def:
                    i0 = bxi[x]
                    w0 = bxw[x, 0]
                    w1 = bxw[x, 1]
                    w2 = bxw[x, 2]
                    w3 = bxw[x, 3]
                    sz += w0 * rowc[i0, 0] + w1 * rowc[i0 + 1, 0] + w2 * rowc[i0 + 2, 0] + w3 * rowc[i0 + 3, 0]
                    sy += w0 * rowc[i0, 1] + w1 * rowc[i0 + 1, 1] + w2 * rowc[i0 + 2, 1] + w3 * rowc[i0 + 3, 1]
                    sx += w0 * rowc[i0, 2] + w1 * rowc[i0 + 1, 2] + w2 * rowc[i0 + 2, 2] + w3 * rowc[i0 + 3, 2]
                if mode == 2:
                    iz = int(math.floor(sz + 0.5))
                    iy = int(math.floor(sy + 0.5))
                    ix = int(math.floor(sx + 0.5))
                    if iz < 0 or iy < 0 or ix < 0 or iz >= nz or iy >= ny or ix >= nx:
                        v = fill
                    else:
                        v = np.float64(vol[iz, iy, ix])
                else:
                    v = _trilinear(vol, sz, sy, sx, fill)
                    if mode == 1:
                        v = on_val if v >= thr else 0.0
                out[z, y, x] = _store(v, is_int, lo, hi)


@nb.njit(parallel=True, **_OPTS)
def label_scan(vol):
    """Per volume: (number of distinct non-zero values seen, capped at 2; the first non-zero
    value; bounding box z0, z1, y0, y1, x0, x1 of the non-zero voxels, half-open; (0,)*6 if none)."""
    nz, ny, nx = vol.shape
    first = np.zeros(nz, np.float64)
    multi = np.zeros(nz, np.bool_)
    anyv = np.zeros(nz, np.bool_)
    ylo = np.full(nz, ny, np.int64)
    yhi = np.zeros(nz, np.int64)
    xlo = np.full(nz, nx, np.int64)
    xhi = np.zeros(nz, np.int64)
    for z in prange(nz):
        f = 0.0
        seen = False
        mult = False
        for y in range(ny):
            row_any = False
            for x in range(nx):
                v = vol[z, y, x]
                if v != 0:
                    fv = np.float64(v)
                    if not seen:
                        seen = True
                        f = fv
                    elif fv != f:
                        mult = True
                    row_any = True
                    if x < xlo[z]:
                        xlo[z] = x
                    if x + 1 > xhi[z]:
                        xhi[z] = x + 1
            if row_any:
                if y < ylo[z]:
                    ylo[z] = y
                yhi[z] = y + 1
        first[z] = f
        multi[z] = mult
        anyv[z] = seen
    box = np.zeros(6, np.int64)
    ndist = 0
    value = 0.0
    zlo = nz
    zhi = 0
    y0 = ny
    y1 = 0
    x0 = nx
    x1 = 0
    for z in range(nz):
        if not anyv[z]:
            continue
        if ndist == 0:
            ndist = 1
            value = first[z]
        elif first[z] != value:
            ndist = 2
        if multi[z]:
            ndist = 2
        zlo = min(zlo, z)
        zhi = z + 1
        y0 = min(y0, ylo[z])
        y1 = max(y1, yhi[z])
        x0 = min(x0, xlo[z])
        x1 = max(x1, xhi[z])
    if ndist > 0:
        box[0] = zlo
        box[1] = zhi
        box[2] = y0
        box[3] = y1
        box[4] = x0
        box[5] = x1
    return ndist, value, box
