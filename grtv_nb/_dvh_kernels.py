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

_OPTS = dict(cache=True, nogil=True)


@nb.njit(inline="always")
def _bilinear(plane, y0, ty, x0, tx, ny, nx):
    y1 = y0 + 1 if y0 + 1 < ny else ny - 1
    x1 = x0 + 1 if x0 + 1 < nx else nx - 1
    a = plane[y0, x0] + (plane[y0, x1] - plane[y0, x0]) * tx
    b = plane[y1, x0] + (plane[y1, x1] - plane[y1, x0]) * tx
    return a + (b - a) * ty


@nb.njit(**_OPTS)
def slab_segments(dose, ys0, yt, xs0, xt, valid, kz, tz, zvalid, wseg, inv_w, flat, A, B, P, stats):
    """Accumulate the segments of one slab's samples.

    dose (nz, ny, nx); per sample ``i``: ``ys0[i], yt[i], xs0[i], xt[i]`` (bilinear taps) and
    ``valid[i]`` (inside the dose grid in-plane); per z boundary ``j`` (m + 1 of them): ``kz[j]``,
    ``tz[j]`` (linear taps along z); per piece ``j`` (m): ``zvalid[j]`` and ``wseg[j]`` (volume of
    each sample's piece, cc). ``stats`` = [volume, sum of volume x mean dose, min, max] is updated.
    """
    nz, ny, nx = dose.shape
    m = len(wseg)
    nb_ = len(P)
    d = np.empty(m + 1, np.float64)
    for i in range(len(ys0)):
        for j in range(m + 1):
            k0 = kz[j]
            k1 = k0 + 1 if k0 + 1 < nz else nz - 1
            v0 = _bilinear(dose[k0], ys0[i], yt[i], xs0[i], xt[i], ny, nx)
            if tz[j] != 0.0:
                v1 = _bilinear(dose[k1], ys0[i], yt[i], xs0[i], xt[i], ny, nx)
                v0 = v0 + (v1 - v0) * tz[j]
            d[j] = v0
        for j in range(m):
            w = wseg[j]
            if valid[i] and zvalid[j]:
                lo = d[j]
                hi = d[j + 1]
                if hi < lo:
                    lo, hi = hi, lo
            else:
                lo = 0.0
                hi = 0.0
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
                c = w / (b - a)
                ja = int(a) + 1
                jb = int(b) + 1
                if ja > nb_:
                    ja = nb_
                if jb > nb_:
                    jb = nb_
                A[ja] += c
                B[ja] += c * a
                A[jb] -= c
                B[jb] -= c * b
