"""Compiled (numba) loop behind :mod:`grtv_nb.solid`: dose segments of one slab into a DVH.

Private; imported lazily by :func:`grtv_nb.solid.roi_samples` (numba's import and first
compilation cost time; compiled code is cached next to this file).

Histogram convention: bins of width ``1 / inv_w`` Gy; a segment whose dose runs linearly from
``lo`` to ``hi`` over its volume spreads that volume uniformly over ``[lo, hi]``. Its cumulative is
piecewise linear with two kinks, accumulated in ``A`` (slope changes) and ``B`` (slope change times
position) at the first bin edge above each kink; a segment narrower than ``flat`` bins goes whole
into the bin of its midpoint (``P``). The caller turns ``A``, ``B``, ``P`` into the differential
histogram.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: error_model "numpy": no zero-division checks in the loops (every divisor here is nonzero: plane and
#: cell spacings, distinct EDT indices, a segment wider than ``flat`` bins); same numbers, faster.
_OPTS = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(**_OPTS)
def roi_segments(lat, kbase, nz, mask, rin, cin, zs, kz, tz, dzb, zin, wpt, inv_w, flat, A, B, P, stats):
    """Accumulate the segments of all planes of one ROI.

    ``lat[k - kbase, r, c]`` is the dose plane ``k`` (of ``nz``) interpolated bilinearly at lattice row
    ``r``, column ``c``. The samples of plane ``p`` are the True cells of ``mask[p]``; ``rin[r]`` and
    ``cin[c]`` say whether a lattice row/column lies inside the dose grid. Plane ``p``
    has z boundaries ``zs[p]:zs[p + 1]`` with taps ``kz, tz``; piece ``j`` (between boundaries ``j``
    and ``j + 1``) is ``dzb[j]`` mm thick and inside the dose grid when ``zin[j]``. Each sample of
    plane ``p`` stands for ``wpt[p]`` cc per mm of thickness. ``stats`` = [volume, sum of volume x
    mean dose, min, max, volume outside the dose grid] is updated.
    """
    d = np.empty(64, np.float64)
    npl, nyf, nxf = mask.shape
    for p in range(npl):
        z0 = zs[p]
        nbd = zs[p + 1] - z0
        if nbd > len(d):
            d = np.empty(nbd, np.float64)
        for cell in range(nyf * nxf):
            r = cell // nxf
            c = cell - r * nxf
            if not mask[p, r, c]:
                continue
            ok = rin[r] and cin[c]
            for j in range(nbd):
                k0 = kz[z0 + j]
                k1 = k0 + 1 if k0 + 1 < nz else nz - 1
                v0 = np.float64(lat[k0 - kbase, r, c])
                t = tz[z0 + j]
                if t != 0.0:
                    v0 = v0 + (np.float64(lat[k1 - kbase, r, c]) - v0) * t
                d[j] = v0
            for j in range(nbd - 1):
                w = wpt[p] * dzb[z0 + j]
                if ok and zin[z0 + j]:
                    _add_segment(d[j], d[j + 1], w, inv_w, flat, A, B, P, stats)
                else:  # outside the dose grid: counted as 0 Gy and as volume outside
                    stats[4] += w
                    _add_segment(0.0, 0.0, w, inv_w, flat, A, B, P, stats)



@nb.njit(**_OPTS)
def _dose_at(lat, kbase, gz, r, c, z):
    """Dose of lattice cell (r, c) at height z: linear between the dose planes ``gz`` (ascending),
    the edge plane beyond them."""
    nz = len(gz)
    if nz == 1 or z <= gz[0]:
        return np.float64(lat[0 - kbase, r, c])
    if z >= gz[nz - 1]:
        return np.float64(lat[nz - 1 - kbase, r, c])
    k = np.searchsorted(gz, z, side="right") - 1
    t = (z - gz[k]) / (gz[k + 1] - gz[k])
    v0 = np.float64(lat[k - kbase, r, c])
    return v0 + (np.float64(lat[k + 1 - kbase, r, c]) - v0) * t


@nb.njit(**_OPTS)
def _edt_1d(f, n, d, v, zz):
    """Squared distance transform of the samples ``f[:n]`` (Felzenszwalb & Huttenlocher) into ``d``."""
    k = 0
    v[0] = 0
    zz[0] = -1e300
    zz[1] = 1e300
    for q in range(1, n):
        s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
        while s <= zz[k]:
            k -= 1
            s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
        k += 1
        v[k] = q
        zz[k] = s
        zz[k + 1] = 1e300
    k = 0
    for q in range(n):
        while zz[k + 1] < q:
            k += 1
        d[q] = (q - v[k]) * (q - v[k]) + f[v[k]]


@nb.njit(**_OPTS)
def signed_distance(mask, s, phi):
    """``phi[p]`` = signed distance (mm, negative inside) of each cell of ``mask[p]`` to the region's
    boundary: the Euclidean distance to the nearest cell of the other kind less half a cell, times
    the cell size ``s`` (exact Euclidean distance transform, two passes per plane)."""
    npl, ny, nx = mask.shape
    m = max(ny, nx)
    f = np.empty(m, np.float64)
    d = np.empty(m, np.float64)
    v = np.empty(m, np.int64)
    zz = np.empty(m + 1, np.float64)
    big = 1e20
    g = np.empty((2, ny, nx), np.float64)
    for p in range(npl):
        for side in range(2):
            want = side == 0  # side 0: distance of outside cells to the region; 1: of inside cells to outside
            for c in range(nx):
                for r in range(ny):
                    f[r] = 0.0 if mask[p, r, c] == want else big
                _edt_1d(f, ny, d, v, zz)
                for r in range(ny):
                    g[side, r, c] = d[r]
            for r in range(ny):
                for c in range(nx):
                    f[c] = g[side, r, c]
                _edt_1d(f, nx, d, v, zz)
                for c in range(nx):
                    g[side, r, c] = d[c]
        for r in range(ny):
            for c in range(nx):
                if mask[p, r, c]:
                    phi[p, r, c] = (0.5 - np.sqrt(g[1, r, c])) * s
                else:
                    phi[p, r, c] = (np.sqrt(g[0, r, c]) - 0.5) * s


@nb.njit(inline="always", **_OPTS)
def _add_segment(lo, hi, w, inv_w, flat, A, B, P, stats):
    """Histogram a volume ``w`` whose dose runs linearly from ``lo`` to ``hi`` (see the module docstring)."""
    nb_ = len(P)
    if hi < lo:
        lo, hi = hi, lo
    stats[0] += w
    stats[1] += w * 0.5 * (lo + hi)
    if lo < stats[2]:
        stats[2] = lo
    if hi > stats[3]:
        stats[3] = hi
    a = lo * inv_w
    b = hi * inv_w
    if b - a < flat:
        k = int(0.5 * (a + b))
        P[k if k < nb_ else nb_ - 1] += w
    else:
        cw = w / (b - a)
        ja = int(a) + 1
        jb = int(b) + 1
        if ja > nb_:
            ja = nb_
        if jb > nb_:
            jb = nb_
        A[ja] += cw
        B[ja] += cw * a
        A[jb] -= cw
        B[jb] -= cw * b


@nb.njit(**_OPTS)
def _gap_taps(za, zt, cuts, i0, i1, gz, zin_lo, zin_hi, fzb, fk, fz, fin):
    """The boundaries ``fzb`` of a cell inside over the whole gap ``[za, zt]`` (cut at ``cuts[i0:i1]``),
    their dose-plane taps (lower plane ``fk``, weight of the upper ``fz``) and whether each piece is
    inside the dose grid (``fin``); returns their number."""
    ngz = len(gz)
    nf = 0
    fzb[nf] = za
    nf += 1
    for i in range(i0, i1):
        fzb[nf] = cuts[i]
        nf += 1
    fzb[nf] = zt
    nf += 1
    for j in range(nf):
        z = fzb[j]
        if ngz == 1 or z <= gz[0]:
            fk[j] = 0
            fz[j] = 0.0
        elif z >= gz[ngz - 1]:
            fk[j] = ngz - 2
            fz[j] = 1.0
        else:
            k = np.searchsorted(gz, z, side="right") - 1
            fk[j] = k
            fz[j] = (z - gz[k]) / (gz[k + 1] - gz[k])
        if j < nf - 1:
            zm = 0.5 * (fzb[j] + fzb[j + 1])
            fin[j] = zm >= zin_lo and zm <= zin_hi
    return nf


@nb.njit(**_OPTS)
def roi_interpolated(lat, kbase, gz, zin_lo, zin_hi, cuts, phi, box, rin, cin, gz0, gz1, gpa, gpb, w0,
                     inv_w, flat, A, B, P, stats):
    """Accumulate the interpolated solid of one ROI (chunk of gaps) into a DVH.

    ``phi[p]`` is a signed distance (mm, negative inside) on the lattice. Gap ``g`` spans heights
    ``gz0[g] < gz1[g]``; its signed distance runs linearly from ``phi[gpa[g]]`` at the bottom to
    ``phi[gpb[g]]`` at the top (the same plane: the region extruded), so at each cell the solid is
    one z interval. Each cell stands for ``w0`` cc per mm. Pieces are cut at ``cuts`` (dose planes
    and the dose grid's outer faces); a piece outside ``[zin_lo, zin_hi]`` or outside the grid
    in-plane (``rin``, ``cin``) gets 0 Gy and counts in ``stats[4]``. ``lat[k - kbase, r, c]`` is
    dose plane ``k`` (at height ``gz[k]``, ascending) on the lattice. ``box[p]`` = (row0, row1,
    col0, col1) bounds the cells where ``phi[p] <= 0``. Histogram arguments as :func:`roi_segments`.
    """
    npl, nyf, nxf = phi.shape
    nzb = len(cuts) + 2
    zb = np.empty(nzb, np.float64)
    fz = np.empty(nzb, np.float64)
    fzb = np.empty(nzb, np.float64)
    fk = np.empty(nzb, np.int64)
    fin = np.empty(nzb, np.bool_)
    for g in range(len(gz0)):
        za = gz0[g]
        zt = gz1[g]
        L = zt - za
        i0 = np.searchsorted(cuts, za, side="right")
        i1 = np.searchsorted(cuts, zt, side="left")
        nf = _gap_taps(za, zt, cuts, i0, i1, gz, zin_lo, zin_hi, fzb, fk, fz, fin)
        pa = phi[gpa[g]]
        pb = phi[gpb[g]]
        ba = box[gpa[g]]
        bb = box[gpb[g]]
        for r in range(min(ba[0], bb[0]), max(ba[1], bb[1])):
            rok = rin[r]
            for c in range(min(ba[2], bb[2]), max(ba[3], bb[3])):
                fa = np.float64(pa[r, c])
                fb = np.float64(pb[r, c])
                if fa > 0.0 and fb > 0.0:
                    continue
                ok = rok and cin[c]
                if fa <= 0.0 and fb <= 0.0:
                    dprev = 0.0
                    for j in range(nf):
                        k = fk[j] - kbase
                        v0 = np.float64(lat[k, r, c])
                        t = fz[j]
                        if t != 0.0:
                            v0 = v0 + (np.float64(lat[k + 1, r, c]) - v0) * t
                        if j > 0:
                            w = w0 * (fzb[j] - fzb[j - 1])
                            if ok and fin[j - 1]:
                                _add_segment(dprev, v0, w, inv_w, flat, A, B, P, stats)
                            else:
                                stats[4] += w
                                _add_segment(0.0, 0.0, w, inv_w, flat, A, B, P, stats)
                        dprev = v0
                    continue
                if fa <= 0.0:
                    s0 = za
                    s1 = za + L * fa / (fa - fb)
                else:
                    s0 = za + L * fa / (fa - fb)
                    s1 = zt
                if s1 <= s0:
                    continue
                n = 0
                zb[n] = s0
                n += 1
                for i in range(i0, i1):
                    if cuts[i] > s0 and cuts[i] < s1:
                        zb[n] = cuts[i]
                        n += 1
                zb[n] = s1
                n += 1
                dprev = _dose_at(lat, kbase, gz, r, c, zb[0])
                for j in range(n - 1):
                    dnext = _dose_at(lat, kbase, gz, r, c, zb[j + 1])
                    w = w0 * (zb[j + 1] - zb[j])
                    zm = 0.5 * (zb[j] + zb[j + 1])
                    if ok and zm >= zin_lo and zm <= zin_hi:
                        _add_segment(dprev, dnext, w, inv_w, flat, A, B, P, stats)
                    else:
                        stats[4] += w
                        _add_segment(0.0, 0.0, w, inv_w, flat, A, B, P, stats)
                    dprev = dnext
