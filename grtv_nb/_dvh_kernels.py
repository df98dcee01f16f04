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
    nb_ = len(P)
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
                    lo = d[j]
                    hi = d[j + 1]
                    if hi < lo:
                        lo, hi = hi, lo
                else:
                    lo = 0.0
                    hi = 0.0
                    stats[4] += w
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

