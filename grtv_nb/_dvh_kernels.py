"""Compiled (numba) loop behind :mod:`grtv_nb.solid`: dose segments of one slab into a DVH.

Private; imported lazily by :func:`grtv_nb.solid.roi_samples` (numba's import and first
compilation cost time; compiled code is cached next to this file).

Histogram convention: bins of width ``1 / inv_w`` Gy; a segment whose dose runs linearly from
``lo`` to ``hi`` over its volume spreads that volume uniformly over ``[lo, hi]``. Its cumulative is
piecewise linear with two kinks, accumulated in ``A`` (slope changes) and ``B`` (slope change times
position) at the first bin edge above each kink; a segment narrower than ``flat`` bins goes whole
into the bin of its midpoint (``P``). The caller turns ``A``, ``B``, ``P`` into the differential
histogram.

Speed: the loops write each segment (low dose, high dose, volume) to a buffer of
:data:`SEGMENT_BUFFER` entries that :func:`_histogram_segments` empties into the histogram. A call per
segment to a helper taking the arrays cost about 8x (reference counting of its array arguments), and
so did adding to the same array element segment after segment (neighbouring samples mostly fall in
the same bins): the sums of the last bins written are kept in registers until another bin comes.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: error_model "numpy": no zero-division checks in the loops (every divisor here is nonzero: plane and
#: cell spacings, distinct EDT indices, a segment wider than ``flat`` bins); same numbers, faster.
_OPTS = dict(cache=True, nogil=True, error_model="numpy")
#: Segments buffered by the loops before they are histogrammed (:func:`_histogram_segments`).
SEGMENT_BUFFER = 4096


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
    npl, nyf, nxf = mask.shape
    most = 1
    for p in range(npl):
        most = max(most, zs[p + 1] - zs[p])
    d = np.empty(most, np.float64)
    blo = np.empty(max(SEGMENT_BUFFER, most), np.float64)
    bhi = np.empty(len(blo), np.float64)
    bw = np.empty(len(blo), np.float64)
    nbuf = 0
    vout = 0.0  # volume outside the dose grid
    for p in range(npl):
        z0 = zs[p]
        nbd = zs[p + 1] - z0
        for r in range(nyf):
            rok = rin[r]
            for c in range(nxf):
                if not mask[p, r, c]:
                    continue
                ok = rok and cin[c]
                for j in range(nbd):
                    k0 = kz[z0 + j]
                    k1 = k0 + 1 if k0 + 1 < nz else nz - 1
                    v0 = np.float64(lat[k0 - kbase, r, c])
                    t = tz[z0 + j]
                    if t != 0.0:
                        v0 = v0 + (np.float64(lat[k1 - kbase, r, c]) - v0) * t
                    d[j] = v0
                if nbuf + nbd > len(bw):
                    _histogram_segments(blo, bhi, bw, nbuf, inv_w, flat, A, B, P, stats)
                    nbuf = 0
                for j in range(nbd - 1):
                    w = wpt[p] * dzb[z0 + j]
                    bw[nbuf] = w
                    if ok and zin[z0 + j]:
                        blo[nbuf] = d[j]
                        bhi[nbuf] = d[j + 1]
                    else:  # outside the dose grid: counted as 0 Gy and as volume outside
                        vout += w
                        blo[nbuf] = 0.0
                        bhi[nbuf] = 0.0
                    nbuf += 1
    _histogram_segments(blo, bhi, bw, nbuf, inv_w, flat, A, B, P, stats)
    stats[4] += vout


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


@nb.njit(inline="always", **_OPTS)
def _edt_1d(f, lo, hi, q0, n, d, v, zz):
    """Squared distance transform (Felzenszwalb & Huttenlocher) into ``d[q0:n]`` of the samples
    ``f[lo:hi]``, the others taken as infinitely far: ``d[q]`` = min over ``lo <= i < hi`` of
    ``(q - i)**2 + f[i]``. (Samples ``f`` = ``big`` outside ``lo:hi`` give the same numbers:
    their parabolas never hold the lower envelope within ``0:n``.)"""
    k = 0
    v[0] = lo
    zz[0] = -1e300
    zz[1] = 1e300
    for q in range(lo + 1, hi):
        s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
        while s <= zz[k]:
            k -= 1
            s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
        k += 1
        v[k] = q
        zz[k] = s
        zz[k + 1] = 1e300
    k = 0
    for q in range(q0, n):
        while zz[k + 1] < q:
            k += 1
        d[q] = (q - v[k]) * (q - v[k]) + f[v[k]]


@nb.njit(inline="always", **_OPTS)
def _edt_binary_column(m, c, r0, r1, inside, big, out, oc):
    """Squared distance along column ``c`` of ``m`` (rows ``r0:r1``) from each row to the nearest row
    where ``m`` is ``not inside`` (outside cells of the region when ``inside``, else its cells),
    ``big`` where there is none, into ``out[r, oc]``: two scans, the values of :func:`_edt_1d` on
    samples 0 there and ``big`` elsewhere (whole numbers, exact)."""
    last = -1
    for r in range(r0, r1):
        if m[r, c] != inside:
            last = r
            out[r, oc] = 0.0
        elif last >= 0:
            out[r, oc] = np.float64((r - last) * (r - last))
        else:
            out[r, oc] = big
    nxt = -1
    for r in range(r1 - 1, r0 - 1, -1):
        if m[r, c] != inside:
            nxt = r
        elif nxt >= 0:
            dd = np.float64((nxt - r) * (nxt - r))
            if dd < out[r, oc]:
                out[r, oc] = dd


@nb.njit(**_OPTS)
def _true_box(m):
    """(row0, row1, col0, col1) bounding the True cells of the 2D ``m``; (ny, 0, nx, 0) if none."""
    ny, nx = m.shape
    r0, r1, c0, c1 = ny, 0, nx, 0
    for r in range(ny):
        for c in range(nx):
            if m[r, c]:
                r0 = min(r0, r)
                r1 = max(r1, r + 1)
                c0 = min(c0, c)
                c1 = max(c1, c + 1)
    return r0, r1, c0, c1


@nb.njit(**_OPTS)
def _taps(f, n):
    """Clamped linear taps of the fractional indices ``f`` on an axis of ``n`` samples: lower and
    upper index and the upper one's float32 weight (a weight rounding to 1 reads the upper one)."""
    m = len(f)
    i0 = np.empty(m, np.int64)
    i1 = np.empty(m, np.int64)
    w = np.empty(m, np.float32)
    for o in range(m):
        fc = min(max(f[o], 0.0), n - 1.0)
        a = min(int(np.floor(fc)), max(n - 2, 0))
        wo = np.float32(fc - a)
        if n == 1:
            a = 0
            wo = np.float32(0.0)
        b = min(a + 1, n - 1)
        if wo >= 1.0:
            a = b
            wo = np.float32(0.0)
        i0[o], i1[o], w[o] = a, b, wo
    return i0, i1, w


@nb.njit(**_OPTS)
def lattice_dose(dose, klo, khi, fy, fx):
    """Dose planes ``klo..khi`` interpolated bilinearly at the lattice's fractional rows ``fy`` and
    columns ``fx`` (clamped at the edges), float32: value for value
    :func:`grtv_nb.transforms.sample_separable` (``fill=None``) at integer z, i.e. blended along y
    (a weight of 0 reads the lower row), then along x (the pair mean where every output column is
    the mean of two adjacent input columns, as it does), in float32."""
    nz, ny, nx = dose.shape
    y0, y1, wy = _taps(fy, ny)
    x0, x1, wx = _taps(fx, nx)
    nyo, nxo = len(fy), len(fx)
    same_x = nxo == nx
    half_x = nx == 2 * nxo
    for o in range(nxo):
        if not (x0[o] == o and wx[o] == 0):
            same_x = False
        if not (x0[o] == 2 * o and x1[o] == 2 * o + 1 and wx[o] == 0.5):
            half_x = False
    out = np.empty((khi - klo + 1, nyo, nxo), np.float32)
    row = np.empty(nx, np.float32)
    half = np.float32(0.5)
    for k in range(klo, khi + 1):
        for r in range(nyo):
            a, b, w = y0[r], y1[r], wy[r]
            for c in range(nx):
                lo = np.float32(dose[k, a, c])
                if w != 0:
                    row[c] = (np.float32(dose[k, b, c]) - lo) * w + lo
                else:
                    row[c] = lo
            o = out[k - klo, r]
            if same_x:
                for c in range(nxo):
                    o[c] = row[c]
            elif half_x:
                for c in range(nxo):
                    o[c] = (row[2 * c] + row[2 * c + 1]) * half
            else:
                for c in range(nxo):
                    lo = row[x0[c]]
                    o[c] = (row[x1[c]] - lo) * wx[c] + lo
    return out


@nb.njit(**_OPTS)
def fill_loops(px, py, first, planes, x0, y0, s, mask):
    """Even-odd fill of loops on the lattice (sample ``i`` of a row at ``x0 + i * s``, row ``j`` at
    ``y0 + j * s``): loop ``l`` has the vertices ``first[l]:first[l + 1]`` of ``px``, ``py`` (mm)
    and fills ``mask[planes[l]]`` (loops of a plane consecutive; ``mask`` all False there before).
    Value for value :func:`grtv_nb.raster.fill_simple_planes` on the loops' lattice indices: a
    sample is inside where an odd number of edges cross its row at or left of it. Each plane is
    scanned within the box of its own loops (outside it no edge crosses: False, as before).
    Returns each plane's count of samples inside (0 for planes without loops here)."""
    npl, ny, nx = mask.shape
    n = len(px)
    ix = np.empty(n, np.float64)
    iy = np.empty(n, np.float64)
    for i in range(n):
        ix[i] = (px[i] - x0) / s
        iy[i] = (py[i] - y0) / s
    counts = np.zeros(npl, np.int64)
    tog = np.zeros((ny, nx + 1), np.uint8)
    nl = len(first) - 1
    l = 0
    while l < nl:
        p = planes[l]
        l_end = l
        while l_end < nl and planes[l_end] == p:
            l_end += 1
        # the box of this plane's loops, clamped to the lattice
        a, b = first[l], first[l_end]
        ymin, ymax, xmin, xmax = iy[a], iy[a], ix[a], ix[a]
        for i in range(a, b):
            ymin = min(ymin, iy[i])
            ymax = max(ymax, iy[i])
            xmin = min(xmin, ix[i])
            xmax = max(xmax, ix[i])
        r0 = max(int(np.floor(ymin)), 0)
        r1 = min(int(np.ceil(ymax)) + 1, ny)
        c0 = max(int(np.floor(xmin)), 0)
        c1 = min(int(np.ceil(xmax)) + 1, nx)
        h, w = r1 - r0, c1 - c0
        if h <= 0 or w <= 0:
            l = l_end
            continue
        for j in range(h):
            for c in range(w + 1):
                tog[j, c] = 0
        while l < l_end:
            a, b = first[l], first[l + 1]
            for i in range(a, b):
                k = i + 1 if i + 1 < b else a
                xa, ya, xb, yb = ix[i], iy[i], ix[k], iy[k]
                j0 = max(int(np.ceil(min(ya, yb))), r0)
                j1 = min(int(np.ceil(max(ya, yb))), r1)
                if j1 <= j0:
                    continue
                slope = (xb - xa) / (yb - ya)
                for j in range(j0, j1):
                    xc = xa + (j - ya) * slope
                    st = min(max(np.ceil(xc), c0), c1)
                    tog[j - r0, int(st) - c0] ^= 1
            l += 1
        cnt = 0
        for j in range(h):
            par = 0
            for c in range(w):
                par ^= tog[j, c]
                mask[p, r0 + j, c0 + c] = par == 1
                cnt += par
        counts[p] += cnt
    return counts


@nb.njit(**_OPTS)
def inside_boxes(phi):
    """(row0, row1, col0, col1) of each plane ``phi[p]`` bounding its cells with ``phi <= 0``;
    zeros for a plane without such a cell."""
    box = np.zeros((phi.shape[0], 4), np.int64)
    for p in range(phi.shape[0]):
        r0, r1, c0, c1 = _true_box(phi[p] <= 0)
        if r1 > 0:
            box[p, 0], box[p, 1], box[p, 2], box[p, 3] = r0, r1, c0, c1
    return box


@nb.njit(**_OPTS)
def _inside_distance(m, g, r0, r1, c0, c1, big, f, d, v, zz):
    """Squared distance ``g`` of the True cells of ``m`` (within rows ``r0:r1``, columns ``c0:c1``)
    to the nearest False cell, computed within that box and one cell around it."""
    ny, nx = m.shape
    ra, rb = max(r0 - 1, 0), min(r1 + 1, ny)
    ca, cb = max(c0 - 1, 0), min(c1 + 1, nx)
    for c in range(ca, cb):
        _edt_binary_column(m, c, ra, rb, True, big, g, c)
    for r in range(r0, r1):
        for c in range(ca, cb):
            f[c - ca] = g[r, c]
        _edt_1d(f, 0, cb - ca, 0, cb - ca, d, v, zz)
        for c in range(ca, cb):
            g[r, c] = d[c - ca]


@nb.njit(**_OPTS)
def signed_distance(mask, s, phi):
    """``phi[p]`` = signed distance (mm, negative inside) of each cell of ``mask[p]`` to the region's
    boundary: the Euclidean distance to the nearest cell of the other kind less half a cell, times
    the cell size ``s`` (exact Euclidean distance transform, two passes per plane: along columns two
    scans of the binary mask, along rows :func:`_edt_1d`). :func:`signed_distance_in` over the
    whole lattice."""
    npl, ny, nx = mask.shape
    rect = np.empty((npl, 4), np.int64)
    for p in range(npl):
        rect[p, 0], rect[p, 1], rect[p, 2], rect[p, 3] = 0, ny, 0, nx
    signed_distance_in(mask, s, phi, rect)


@nb.njit(**_OPTS)
def mask_boxes(mask):
    """(row0, row1, col0, col1) of each plane ``mask[p]`` bounding its True cells; (ny, 0, nx, 0)
    for a plane without any."""
    box = np.empty((mask.shape[0], 4), np.int64)
    for p in range(mask.shape[0]):
        box[p, 0], box[p, 1], box[p, 2], box[p, 3] = _true_box(mask[p])
    return box


@nb.njit(**_OPTS)
def signed_distance_in(mask, s, phi, rect):
    """:func:`signed_distance`, the outside cells' distances only within ``rect[p]`` = (row0, row1,
    col0, col1) of each plane (a rectangle holding its True cells; elsewhere ``phi`` gets the value
    of a cell with no region at all, far outside), the inside cells' everywhere.

    Squared distances are whole numbers, exact in float64, so the passes are cut to where they can
    matter: the distances of inside cells within the region's bounding box (one cell more each
    side), those of outside cells with the column pass only through the box's columns (over the
    rectangle's rows: they hold every inside cell) and the row pass's lower envelope built from
    those columns only (the others hold no inside cell), evaluated over the rectangle's columns.
    Within ``rect`` the numbers are those over the whole lattice."""
    npl, ny, nx = mask.shape
    m = max(ny, nx) + 2
    f = np.empty(m, np.float64)
    d = np.empty(m, np.float64)
    v = np.empty(m, np.int64)
    zz = np.empty(m + 1, np.float64)
    big = 1e20
    far = (np.sqrt(big) - 0.5) * s
    g = np.empty((2, ny, nx), np.float64)
    for p in range(npl):
        r0, r1, c0, c1 = _true_box(mask[p])
        if r1 == 0:  # no inside cell
            for r in range(ny):
                for c in range(nx):
                    phi[p, r, c] = far
            continue
        ra, rb = min(max(rect[p, 0], 0), r0), max(min(rect[p, 1], ny), r1)
        ca, cb = min(max(rect[p, 2], 0), c0), max(min(rect[p, 3], nx), c1)
        if ra > 0 or rb < ny or ca > 0 or cb < nx:
            for r in range(ny):
                for c in range(nx):
                    phi[p, r, c] = far
        _inside_distance(mask[p], g[1], r0, r1, c0, c1, big, f, d, v, zz)
        # outside cells: distance to the region, from the columns holding inside cells
        for c in range(c0, c1):
            _edt_binary_column(mask[p], c, ra, rb, False, big, g[0], c)
        for r in range(ra, rb):
            for c in range(c0, c1):
                f[c] = g[0, r, c]
            _edt_1d(f, c0, c1, ca, cb, d, v, zz)
            for c in range(ca, cb):
                if mask[p, r, c]:
                    phi[p, r, c] = (0.5 - np.sqrt(g[1, r, c])) * s
                else:
                    phi[p, r, c] = (np.sqrt(d[c]) - 0.5) * s


@nb.njit(**_OPTS)
def _histogram_segments(lo_, hi_, w_, n, inv_w, flat, A, B, P, stats):
    """Histogram the segments ``0..n-1``: a volume ``w_[i]`` whose dose runs linearly from ``lo_[i]``
    to ``hi_[i]`` (see the module docstring); ``stats[0:4]`` (volume, volume x mean dose, min, max)
    are updated."""
    nb_ = len(P)
    vol = 0.0
    vd = 0.0
    dmin = stats[2]
    dmax = stats[3]
    # pending sums of the last bins written (low ends, high ends, point masses): -1 = none
    ka, sa, sba = -1, 0.0, 0.0
    kb, sb, sbb = -1, 0.0, 0.0
    kp, sp = -1, 0.0
    for i in range(n):
        lo = lo_[i]
        hi = hi_[i]
        w = w_[i]
        if hi < lo:
            lo, hi = hi, lo
        vol += w
        vd += w * 0.5 * (lo + hi)
        dmin = min(dmin, lo)
        dmax = max(dmax, hi)
        a = lo * inv_w
        b = hi * inv_w
        if b - a < flat:
            k = min(int(0.5 * (a + b)), nb_ - 1)
            if k != kp:
                if kp >= 0:
                    P[kp] += sp
                kp, sp = k, 0.0
            sp += w
        else:
            cw = w / (b - a)
            ja = min(int(a) + 1, nb_)
            jb = min(int(b) + 1, nb_)
            if ja != ka:
                if ka >= 0:
                    A[ka] += sa
                    B[ka] += sba
                ka, sa, sba = ja, 0.0, 0.0
            sa += cw
            sba += cw * a
            if jb != kb:
                if kb >= 0:
                    A[kb] -= sb
                    B[kb] -= sbb
                kb, sb, sbb = jb, 0.0, 0.0
            sb += cw
            sbb += cw * b
    if ka >= 0:
        A[ka] += sa
        B[ka] += sba
    if kb >= 0:
        A[kb] -= sb
        B[kb] -= sbb
    if kp >= 0:
        P[kp] += sp
    stats[0] += vol
    stats[1] += vd
    stats[2] = dmin
    stats[3] = dmax


@nb.njit(**_OPTS)
def ramps_histogram(A, B, P, top, scale, hist):
    """The differential histogram from the accumulators of :func:`_histogram_segments` into
    ``hist`` (zeros beyond bin ``top``): value for value ``G = np.arange(top + 1) *
    np.cumsum(A[:top + 1]) - np.cumsum(B[:top + 1])``, ``hist[:top] = np.diff(G) + P[:top]``, then
    times ``scale`` when it is not 1 (one pass, no temporaries)."""
    ca = 0.0
    cb = 0.0
    g_prev = 0.0
    for i in range(top + 1):
        ca += A[i]
        cb += B[i]
        g = np.float64(i) * ca - cb
        if i > 0:
            h = (g - g_prev) + P[i - 1]
            if scale != 1.0:
                h = h * scale
            hist[i - 1] = h
        g_prev = g
    for i in range(top, len(hist)):
        hist[i] = 0.0


@nb.njit(**_OPTS)
def ranks_le(x):
    """Each value's count of values ``<=`` it in the float32 array ``x`` (float64 counts): value
    for value ``np.searchsorted(np.sort(x), x, side="right")``. A stable LSD radix sort on the
    values' order-preserving 32-bit keys (-0.0 counted as 0.0), then one pass over its runs of
    equal keys: linear in ``len(x)`` (a cap's thousands of cells, ranked once per cap)."""
    n = len(x)
    xf = np.empty(n, np.float32)
    for i in range(n):
        xf[i] = x[i] + np.float32(0.0)  # -0.0 -> +0.0: equal values, one key
    key = xf.view(np.uint32)
    for i in range(n):
        b = key[i]
        key[i] = ~b if b & np.uint32(0x80000000) else b | np.uint32(0x80000000)
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    cnt = np.empty(257, np.int64)
    for shift in range(0, 32, 8):
        cnt[:] = 0
        for i in range(n):
            cnt[((key[order[i]] >> shift) & 255) + 1] += 1
        for j in range(256):
            cnt[j + 1] += cnt[j]
        for i in range(n):
            kk = (key[order[i]] >> shift) & 255
            tmp[cnt[kk]] = order[i]
            cnt[kk] += 1
        order, tmp = tmp, order
    out = np.empty(n)
    i = 0
    while i < n:
        j = i + 1
        while j < n and key[order[j]] == key[order[i]]:
            j += 1
        for k in range(i, j):
            out[order[k]] = j
        i = j
    return out


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
def roi_interpolated(lat, kbase, gz, zin_lo, zin_hi, cuts, phi, box, rin, cin, gz0, gz1, gpa, gpb, gw,
                     inv_w, flat, A, B, P, stats):
    """Accumulate the interpolated solid of one ROI (chunk of gaps) into a DVH.

    ``phi[p]`` is a signed distance (mm, negative inside) on the lattice. Gap ``g`` spans heights
    ``gz0[g] < gz1[g]``; its signed distance runs linearly from ``phi[gpa[g]]`` at the bottom to
    ``phi[gpb[g]]`` at the top (the same plane: the region extruded), so at each cell the solid is
    one z interval. Each cell of gap ``g`` stands for ``gw[g]`` cc per mm. Pieces are cut at ``cuts`` (dose planes
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
    blo = np.empty(max(SEGMENT_BUFFER, nzb), np.float64)
    bhi = np.empty(len(blo), np.float64)
    bw = np.empty(len(blo), np.float64)
    nbuf = 0
    vout = 0.0  # volume outside the dose grid
    for g in range(len(gz0)):
        za = gz0[g]
        zt = gz1[g]
        w0 = gw[g]
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
                if nbuf + nzb > len(bw):
                    _histogram_segments(blo, bhi, bw, nbuf, inv_w, flat, A, B, P, stats)
                    nbuf = 0
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
                            bw[nbuf] = w
                            if ok and fin[j - 1]:
                                blo[nbuf] = dprev
                                bhi[nbuf] = v0
                            else:
                                vout += w
                                blo[nbuf] = 0.0
                                bhi[nbuf] = 0.0
                            nbuf += 1
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
                    bw[nbuf] = w
                    if ok and zm >= zin_lo and zm <= zin_hi:
                        blo[nbuf] = dprev
                        bhi[nbuf] = dnext
                    else:
                        vout += w
                        blo[nbuf] = 0.0
                        bhi[nbuf] = 0.0
                    nbuf += 1
                    dprev = dnext
    _histogram_segments(blo, bhi, bw, nbuf, inv_w, flat, A, B, P, stats)
    stats[4] += vout


@nb.njit(**_OPTS)
def cells_inside_length(phi, box, gpa, gpb, glen, out):
    """``out[g]`` = sum over lattice cells of the length of ``z`` in ``[0, glen[g]]`` where the signed
    distance, linear from ``phi[gpa[g]]`` to ``phi[gpb[g]]``, is <= 0 (the cells' z intervals of a
    gap of :func:`roi_interpolated`), within the planes' boxes ``box`` of cells with ``phi <= 0``."""
    for g in range(len(gpa)):
        pa = phi[gpa[g]]
        pb = phi[gpb[g]]
        ba = box[gpa[g]]
        bb = box[gpb[g]]
        L = glen[g]
        both = 0
        part = 0.0
        for r in range(min(ba[0], bb[0]), max(ba[1], bb[1])):
            for c in range(min(ba[2], bb[2]), max(ba[3], bb[3])):
                fa = np.float64(pa[r, c])
                fb = np.float64(pb[r, c])
                if fa <= 0.0:
                    if fb <= 0.0:
                        both += 1
                    else:
                        part += L * fa / (fa - fb)
                elif fb <= 0.0:
                    part += L * fb / (fb - fa)
        out[g] = both * L + part


@nb.njit(**_OPTS)
def boundary_distance(px, py, ax, ay, vx, vy, out):
    """``out[i]`` = distance from point (``px[i]``, ``py[i]``) to the nearest edge ``a + t v``
    (``0 <= t <= 1``) of the edges ``(ax, ay, vx, vy)`` (end caps' inradii, :mod:`grtv_nb.solid`).

    Edge by edge, all points at once (the inner loop has no branch and compiles to vector
    instructions: the search of :func:`inradius` tries 8 points at a time); the same operations on
    each (point, edge) pair as point by point, and the minimum does not depend on the order."""
    n = len(px)
    for i in range(n):
        out[i] = np.inf  # squared distances until the end
    for j in range(len(ax)):
        axj, ayj, vxj, vyj = ax[j], ay[j], vx[j], vy[j]
        vv = vxj * vxj + vyj * vyj
        if vv > 0.0:
            for i in range(n):
                dx = px[i] - axj
                dy = py[i] - ayj
                t = min(max((dx * vxj + dy * vyj) / vv, 0.0), 1.0)
                dx -= t * vxj
                dy -= t * vyj
                out[i] = min(out[i], dx * dx + dy * dy)
        else:  # a zero-length edge: its point
            for i in range(n):
                dx = px[i] - axj
                dy = py[i] - ayj
                out[i] = min(out[i], dx * dx + dy * dy)
    for i in range(n):
        out[i] = np.sqrt(out[i])


@nb.njit(**_OPTS)
def _inside_loops(x, y, px, py, first):
    """Whether the point (``x``, ``y``) lies inside the loops (vertices ``first[l]:first[l + 1]`` of
    ``px``, ``py``) combined even-odd: ray casting, an edge crossing the point's row at ``xc > x``."""
    inside = False
    for l in range(len(first) - 1):
        a, b = first[l], first[l + 1]
        cnt = 0
        for i in range(a, b):
            k = i + 1 if i + 1 < b else a
            x0, y0, x1, y1 = px[i], py[i], px[k], py[k]
            if (y0 > y) != (y1 > y):
                xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
                if x < xc:
                    cnt += 1
        if cnt % 2 == 1:
            inside = not inside
    return inside


@nb.njit(**_OPTS)
def inradius(px, py, first, bx, by, s):
    """Largest distance (mm) from a point inside the region of the loops (vertices
    ``first[l]:first[l + 1]`` of ``px``, ``py``, combined even-odd) to its boundary: pattern search
    from (``bx``, ``by``) (the deepest lattice cell) along the 8 axis and diagonal directions, steps
    from ``s / 2`` halving down to ``s / 16`` (at most ``s`` moved in all), against the edges that can
    be nearest within the search's reach (those within the start's distance plus ``2 s``)."""
    n = len(px)
    ax = np.empty(n, np.float64)
    ay = np.empty(n, np.float64)
    vx = np.empty(n, np.float64)
    vy = np.empty(n, np.float64)
    for l in range(len(first) - 1):
        a, b = first[l], first[l + 1]
        for i in range(a, b):
            k = i + 1 if i + 1 < b else a
            ax[i], ay[i] = px[i], py[i]
            vx[i], vy[i] = px[k] - px[i], py[k] - py[i]
    one = np.empty(1, np.float64)
    boundary_distance(np.array([bx]), np.array([by]), ax, ay, vx, vy, one)
    near = one[0]
    keep = np.empty(n, np.bool_)
    for i in range(n):
        mx, my = ax[i] + 0.5 * vx[i], ay[i] + 0.5 * vy[i]
        keep[i] = np.hypot(mx - bx, my - by) - 0.5 * np.hypot(vx[i], vy[i]) <= near + 2.0 * s
    ax, ay, vx, vy = ax[keep], ay[keep], vx[keep], vy[keep]
    r2 = 1.0 / np.sqrt(2.0)
    dx = np.array([1.0, -1.0, 0.0, 0.0, r2, r2, -r2, -r2])
    dy = np.array([0.0, 0.0, 1.0, -1.0, r2, -r2, r2, -r2])
    cx = np.empty(8, np.float64)
    cy = np.empty(8, np.float64)
    dist = np.empty(8, np.float64)
    val = near
    step = 0.5 * s
    moved = 0.0
    while step > s / 16 and moved < s:
        for j in range(8):
            cx[j] = bx + step * dx[j]
            cy[j] = by + step * dy[j]
        boundary_distance(cx, cy, ax, ay, vx, vy, dist)
        if step >= val:  # a step this long may leave the region
            for j in range(8):
                if not _inside_loops(cx[j], cy[j], px, py, first):
                    dist[j] = -np.inf
        j = np.argmax(dist)
        if dist[j] > val:
            bx, by, val = cx[j], cy[j], dist[j]
            moved += step
        else:
            step *= 0.5
    return val
