"""Spinal canal: the low-density channel enclosed by the vertebrae, followed from slice to slice.

Method (on the ~2 mm working grid, slice by slice, then along z)
----------------------------------------------------------------
1. Bone = HU > 200 inside the body, closed with a 3 mm disk (joins pedicles, laminae and the
   vertebral body across thin gaps).
2. Candidates: the holes of that bone mask (filled minus bone) with an area of a canal of radius
   4-12 mm (50-450 mm2), median HU between -60 and 50 (CSF, cord, epidural fat), reasonably
   round (area / bounding-ellipse area), in the posterior 65 % of the body and within 60 mm of
   its left-right centre (unless the body runs off the left or right edge of the image: then
   its centre is unknown and only the chain of step 3 decides), with bone-like density
   (mean > 110 HU) in the 20 x 17 mm box 8-25 mm anterior of it (the vertebral body; this
   rejects the marrow of a vertebral body and most holes between ribs and scapula), and bone
   on both sides of it in nearly equal amounts (the vertebra's symmetry; not checked where the
   image cuts one side off).
   A canal that the image's left or right edge cuts (a field of view cropped through the spine)
   is no hole of the bone mask: where the edge cuts the body, a strip along it is completed by
   its mirror image about the edge column (the vertebra is nearly symmetric about its canal) and
   searched the same way; a region that straddles the edge and, completed, is canal-sized
   (at least ``canal_edge_min_mm2``) and about as wide as deep (``canal_edge_width_frac``) is a
   candidate centred on its part in the image (a sliver of the canal, or a mirrored gap behind a
   lamina, is not).
3. Continuity: the track is the longest chain of candidates whose centres move by less than
   10 mm per 10 mm along z, with at most ``canal_gap_mm`` (35 mm, one vertebral level) between
   two candidates of the chain; candidates off the chain are dropped. Where the image cuts the
   body on its left or right edge, the candidates were not held near the body's centre, so the
   track must also be plausible along z: the canal runs on upwards through the whole trunk and
   neck, so the track must reach within ``canal_top_gap_mm`` of the highest slice whose body
   the image cuts (a chain of marrow cavities in the hip bones or the iliac wing, found where an
   image edge through or past the spine has cut the canal off, ends in the pelvis), unless at
   least ``canal_min_slices`` of its candidates lie on slices the image does not cut (held near
   the body's centre there). Otherwise the longest chain that reaches that high is the track;
   without one the canal is not found (and, where most slices are cut, the midline is not
   known: :func:`midline_known`).
4. Slices of the track without a closed ring (disc levels, foramina) get the canal of the
   interpolated centre: the soft-tissue region (-100..150 HU) connected to that centre, limited
   to a disk of the interpolated radius + 2 mm. The track is not extended beyond its first/last
   detected slice by more than 10 mm (the canal ends at the foramen magnum and the sacrum),
   except to the image's first/last slice when that lies within ``canal_gap_mm`` (the image
   cuts the canal there; the centre is continued at the track's slope, :func:`_along`).
5. The result grows by one working voxel (2-3 mm) where the HU is below 250 (the partial-volume
   rim of the canal wall belongs to the canal).

Assumptions and failure modes
-----------------------------
- Axial CT with the spine in the field of view; a spine with metal implants, severe scoliosis or
  a laminectomy (open ring over a long stretch) may lose the track there.
- At least 3 slices with a closed bony ring are needed; otherwise the canal is not found.
- An image edge 4 mm or more past the canal's middle leaves too little of it to be told from a
  gap between bones: the canal is then not found (example CT: the edge 7 mm right of the canal's
  middle, 11 % of the cord in the image). A laterally cut image whose canal is not found there
  but which shows a chain of holes reaching the top (e.g. a pelvis-only image cut through the
  spine, where the top of the image is the hips) could still take that chain.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._common import Context, denoise, denoise_size, disk, noise_sd, not_found, work_denoised
from .body import body_work
from .params import PARAMS as P


def canal_work(ctx: Context) -> np.ndarray:
    """Spinal canal mask on the working grid (empty if not found)."""
    return ctx.get("canal", _canal_work)


def canal_track(ctx: Context) -> dict:
    """Per-slice canal centre (x, y in mm; NaN where absent) on the working grid's z."""
    canal_work(ctx)
    return ctx.cache["canal_track"]


def midline_known(ctx: Context) -> bool:
    """Whether :func:`midline_x` is the patient's midline: the spinal canal was found, or the
    image cuts the body on its left or right edge on fewer than half of the slices with a body
    (the centre of the body on the other slices is then the midline). An image whose edge cuts
    the trunk without a canal in it (an edge through or past the spine) has no known midline:
    the visible body's centre lies off it by up to half its width."""
    if np.isfinite(canal_track(ctx)["x"]).any():
        return True
    cut = ctx.get("canal_cut_lr", _cut_lr)
    return bool(cut.sum() < 0.5 * max(body_work(ctx).any(axis=(1, 2)).sum(), 1))


def _cut_lr(ctx: Context) -> np.ndarray:
    """Per working slice: the image's left or right edge cuts the body, and the image is
    narrower than ``canal_wide_fov_mm`` (a wider image shows most of the patient: its body's
    centre is near the midline)."""
    body = body_work(ctx)
    gx = ctx.grid.x
    return (body[:, :, 0].any(axis=1) | body[:, :, -1].any(axis=1)) & (gx[-1] - gx[0] < P.canal_wide_fov_mm)


def midline_x(ctx: Context) -> float:
    """Left-right position (mm) of the patient's midline: the spinal canal if found, else the
    body's centre on the slices the image's edges do not cut (all slices if it cuts every one;
    see :func:`midline_known` for whether that is the midline)."""
    tr = canal_track(ctx)
    if np.isfinite(tr["x"]).any():
        return float(np.nanmedian(tr["x"]))
    body = body_work(ctx)
    cut = ctx.get("canal_cut_lr", _cut_lr)
    keep = ~cut if (~cut & body.any(axis=(1, 2))).any() else np.ones_like(cut)
    prof = body[keep].sum(axis=(0, 1)).astype(float)
    return float(np.sum(ctx.grid.x * prof) / max(prof.sum(), 1.0))


def enclosure(ctx: Context) -> np.ndarray:
    """For every voxel, in how many of 8 in-plane directions bone (HU > 130) lies within 25 mm."""
    return ctx.get("enclosure", _enclosure)


def _enclosure(ctx: Context) -> np.ndarray:
    return _enclosure_of(ctx.w, body_work(ctx), ctx.spacing)


def _enclosure_of(w: np.ndarray, body: np.ndarray, spacing) -> np.ndarray:
    dz, dy, dx = spacing
    bone = (w > P.spine_bone_hu) & body
    cnt = np.zeros(w.shape, np.uint8)
    ny, nx = w.shape[1:]
    for ay, ax in ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)):
        n = int(P.enclose_mm / np.hypot(ay * dy, ax * dx))
        hit = np.zeros(w.shape, bool)
        for s in range(1, n + 1):
            sy, sx = ay * s, ax * s
            if abs(sy) >= ny or abs(sx) >= nx:
                break
            src = bone[:, max(sy, 0):ny + min(sy, 0), max(sx, 0):nx + min(sx, 0)]
            hit[:, max(-sy, 0):ny + min(-sy, 0), max(-sx, 0):nx + min(-sx, 0)] |= src
        cnt += hit
    return cnt


def _soft(w: np.ndarray) -> np.ndarray:
    return (w > P.canal_soft_hu[0]) & (w < P.canal_soft_hu[1])


def _candidates(ctx: Context):
    """Per working slice, the canal candidates ``(cx, cy, area)`` (step 2 of the module
    docstring), with those found at an image edge that cuts the body (:func:`_edge_candidates`)."""
    w = ctx.w
    body = body_work(ctx)
    gx, gy = ctx.grid.x, ctx.grid.y
    enc = enclosure(ctx)
    cut = ctx.get("canal_cut_lr", _cut_lr)
    wd = work_denoised(ctx)
    out = []
    for k in range(w.shape[0]):
        b = body[k]
        if not b.any():
            out.append([])
            continue
        rows = np.nonzero(b.any(axis=1))[0]
        prof = b.sum(axis=0).astype(float)
        xc = float(np.sum(gx * prof) / prof.sum())
        # a body cut by the left or right edge of the image (a field of view cropped to one
        # hemithorax) has no known left-right centre: every x is allowed, the chain decides; but
        # a wide image (a patient wider than the field of view) still shows most of the patient,
        # so its visible centre is near the midline
        out.append(_slice_candidates(wd[k], b, enc[k], gx, gy, (gy[rows[0]], gy[rows[-1]]),
                                     None if cut[k] else xc, ctx.spacing))
    for first in (True, False):
        for k, c in _edge_candidates(ctx, cut, first).items():
            out[k].extend(c)
    return out


def _slice_candidates(wk, bk, enck, gx, gy, yrange, xc, spacing, mirror: float | None = None,
                      side: int = 1) -> list:
    """The canal candidates of one slice (``wk`` HU, ``bk`` body, ``enck`` enclosure counts):
    ``(cx, cy, area, None)``; ``xc`` the body's left-right centre (None: not known, every x
    allowed); with ``mirror``, only regions that straddle the column at x = ``mirror`` (the
    mirror line of :func:`_edge_candidates`; the image lies on its ``side``, +1 larger x, -1
    smaller), centred on their part in the image."""
    dz, dy, dx = spacing
    y0, y1 = yrange
    cand = _soft(wk) & (enck >= 7) & bk
    lab, n = ndi.label(cand)
    cands = []
    for i, sl in enumerate(ndi.find_objects(lab) if n else []):
        comp = lab[sl] == i + 1
        if mirror is not None and not (gx[sl[1].start] < mirror < gx[sl[1].stop - 1]):
            continue
        area = comp.sum() * dy * dx
        if not P.canal_area_mm2[0] <= area <= P.canal_area_mm2[1]:
            continue
        hh = (sl[0].stop - sl[0].start) * dy
        ww = (sl[1].stop - sl[1].start) * dx
        if max(hh, ww) > 3.0 * min(hh, ww):
            continue
        # completed by its mirror image, a canal the edge cuts near its middle is about as wide as
        # deep and canal-sized; a narrow slit or a small hole is a region the edge grazes (a
        # sliver of the canal's side, or a mirrored gap behind a lamina)
        if mirror is not None and (ww < P.canal_edge_width_frac * hh or area < P.canal_edge_min_mm2):
            continue
        med = float(np.median(wk[sl][comp]))
        if not P.canal_median_hu[0] <= med <= P.canal_median_hu[1]:
            continue
        yy, xx = np.nonzero(comp)
        cy = float(gy[sl[0].start + yy].mean())
        cx = float(gx[sl[1].start + xx].mean())
        if mirror is not None:
            # the centre of the part in the image (the edge need not cut the canal in its middle)
            xi = gx[sl[1].start + xx]
            cx = float(xi[(xi - mirror) * side >= 0].mean())
        if (xc is not None and abs(cx - xc) > P.canal_midline_mm) or cy < y0 + P.canal_posterior_frac * (y1 - y0):
            continue
        # the vertebral body lies just anterior (smaller y) of the canal
        front = wk[np.ix_((gy >= cy - 25.0) & (gy <= cy - 8.0), np.abs(gx - cx) <= 10.0)]
        if front.size == 0 or float(np.mean(front)) < P.vbody_min_hu:
            continue
        if not _symmetric(wk > P.spine_bone_hu, gx, gy, cx, cy):
            continue
        cands.append((cx, cy, area, None))
    return cands


def _edge_candidates(ctx: Context, cut: np.ndarray, first: bool) -> dict:
    """Candidates of a canal that the image's first (``first``) or last column cuts.

    On the slices where that edge cuts the trunk through its depth (the body on the edge column
    spans ``canal_edge_depth_frac`` of its anterior-posterior extent, as an edge through the
    spine does; an edge across an arm does not) and the image is narrower than
    ``canal_wide_fov_mm``, a strip of ``canal_edge_strip_mm`` along the edge is completed by its
    mirror image about the edge column (a vertebra is nearly symmetric about its canal, so an
    edge through the canal leaves the half that, mirrored, closes its bony ring) and searched
    as a slice is, keeping only the regions that straddle the edge (the others are mirror
    images of regions in the image). The candidate's centre is that of its part in the image,
    its area that of the completed canal. Returns ``{slice index: candidates}``."""
    body = body_work(ctx)
    gx, gy = ctx.grid.x, ctx.grid.y
    nx = len(gx)
    col = 0 if first else nx - 1
    # the edge cuts the trunk through its depth (as through the spine), not an arm beside it
    depth = body.any(axis=2).sum(axis=1)
    ks = np.nonzero(cut & (body[:, :, col].sum(axis=1) >= P.canal_edge_depth_frac * np.maximum(depth, 1)))[0]
    m = min(int(np.ceil(P.canal_edge_strip_mm / ctx.spacing[2])), nx - 1)
    if len(ks) == 0 or m < 2:
        return {}
    if first:
        idx = np.concatenate([np.arange(m, 0, -1), np.arange(0, m + 1)])
        xs = np.concatenate([2.0 * gx[0] - gx[m:0:-1], gx[:m + 1]])
    else:
        idx = np.concatenate([np.arange(nx - 1 - m, nx), np.arange(nx - 2, nx - 2 - m, -1)])
        xs = np.concatenate([gx[nx - 1 - m:], 2.0 * gx[-1] - gx[nx - 2:nx - 2 - m:-1]])
    ws = ctx.w[ks][:, :, idx]
    bs = body[ks][:, :, idx]
    enc = _enclosure_of(ws, bs, ctx.spacing)
    out = {}
    for j, k in enumerate(ks):
        rows = np.nonzero(body[k].any(axis=1))[0]
        c = _slice_candidates(ws[j], bs[j], enc[j], xs, gy, (gy[rows[0]], gy[rows[-1]]), None, ctx.spacing,
                              mirror=float(gx[col]), side=1 if first else -1)
        if c:
            out[int(k)] = c
    return out


def _symmetric(bone: np.ndarray, gx: np.ndarray, gy: np.ndarray, cx: float, cy: float) -> bool:
    """A vertebra is nearly left-right symmetric about its canal: the bone in the box
    ``canal_sym_box_mm`` (lateral from 5 mm, anterior-posterior extent) on one side of the
    candidate's centre holds at least ``canal_sym_frac`` of that on the other. Only checked when
    both boxes lie inside the image (a field of view cropped at the midline shows one side)."""
    half, lo_y, hi_y = P.canal_sym_box_mm
    if cx - half < gx[0] or cx + half > gx[-1]:
        return True
    ys = (gy >= cy + lo_y) & (gy <= cy + hi_y)
    left = float(bone[np.ix_(ys, (gx > cx + 5.0) & (gx <= cx + half))].sum())
    right = float(bone[np.ix_(ys, (gx < cx - 5.0) & (gx >= cx - half))].sum())
    return min(left, right) >= P.canal_sym_frac * max(left, right, 1.0)


def _chain(cands, z, top: float | None = None) -> list:
    """Longest chain through the candidates with small steps (dynamic programming along z); with
    ``top``, the longest that ends at or above z = ``top`` (mm)."""
    best = []  # per slice: list of (length, prev_slice, prev_idx)
    nz = len(cands)
    for k in range(nz):
        row = []
        for c in cands[k]:
            bl, bp = 1, None
            for kk in range(max(0, k - 12), k):
                gap = z[k] - z[kk]
                if gap > P.canal_gap_mm:
                    continue
                for j, cc in enumerate(cands[kk]):
                    d = np.hypot(c[0] - cc[0], c[1] - cc[1])
                    if d <= P.canal_step_mm * max(gap, 10.0) / 10.0 and best[kk][j][0] + 1 > bl:
                        bl, bp = best[kk][j][0] + 1, (kk, j)
            row.append((bl, bp))
        best.append(row)
    end, length = None, 0
    for k in range(nz):
        if top is not None and z[k] < top:
            continue
        for i, (bl, _) in enumerate(best[k]):
            if bl > length:
                length, end = bl, (k, i)
    chain = {}
    while end is not None:
        k, i = end
        chain[k] = i
        end = best[k][i][1]
    return [chain.get(k) for k in range(nz)]


def _canal_work(ctx: Context) -> np.ndarray:
    w = work_denoised(ctx)
    nz = w.shape[0]
    z = ctx.grid.z
    dz, dy, dx = ctx.spacing
    gx, gy = ctx.grid.x, ctx.grid.y
    out = np.zeros(w.shape, bool)
    track = {"x": np.full(nz, np.nan), "y": np.full(nz, np.nan), "r": np.full(nz, np.nan)}
    ctx.cache["canal_track"] = track
    cands = _candidates(ctx)
    chain = _chain(cands, z)
    cut = ctx.get("canal_cut_lr", _cut_lr)
    if cut.any():
        # where the image cuts the body the candidates are not held near its centre: the track
        # must run on up to the highest cut slice, or hold canal_min_slices candidates on slices
        # it does not cut (held there near the body's centre) (step 3)
        top = float(z[np.nonzero(cut)[0].max()]) - P.canal_top_gap_mm
        ks = [k for k in range(nz) if chain[k] is not None]
        if not ks or (z[ks[-1]] < top and sum(not cut[k] for k in ks) < P.canal_min_slices):
            chain = _chain(cands, z, top)
    found = [k for k in range(nz) if chain[k] is not None]
    if len(found) < P.canal_min_slices:
        return out
    for k in found:
        cx, cy, area, _ = cands[k][chain[k]]
        track["x"][k], track["y"][k], track["r"][k] = cx, cy, np.sqrt(area / np.pi)
    fz = z[found]
    # beyond its ends the track is extended by canal_extend_mm (the canal ends at the sacrum and
    # the foramen magnum), or to the image's end where that is within canal_gap_mm: the image cuts
    # the canal there, and a stretch without a closed ring that long is bridged inside the track
    lo = z[0] if fz[0] - z[0] <= P.canal_gap_mm else fz[0] - P.canal_extend_mm
    hi = z[-1] if z[-1] - fz[-1] <= P.canal_gap_mm else fz[-1] + P.canal_extend_mm
    ks = [k for k in range(nz) if lo <= z[k] <= hi]
    xi = _along(z[ks], fz, track["x"][found], lo == z[0], hi == z[-1])
    yi = _along(z[ks], fz, track["y"][found], lo == z[0], hi == z[-1])
    ri = np.interp(z[ks], fz, track["r"][found])
    enc = enclosure(ctx)
    X, Y = np.meshgrid(gx, gy)
    for k, cx, cy, r in zip(ks, xi, yi, ri):
        if chain[k] is not None:
            cx, cy, area, _ = cands[k][chain[k]]
            r = np.sqrt(area / np.pi)
        d2 = (X - cx) ** 2 + (Y - cy) ** 2
        inside = d2 <= (r + 4.0) ** 2
        soft = _soft(w[k]) & (enc[k] >= 5) & inside
        lab, n = ndi.label(soft)
        core = d2 <= (0.6 * r) ** 2
        hit = np.unique(lab[core & (lab > 0)])
        out[k] = np.isin(lab, hit) if len(hit) else core
        out[k] |= d2 <= (0.6 * r) ** 2
        out[k] = ndi.binary_fill_holes(out[k])
        track["x"][k], track["y"][k], track["r"][k] = cx, cy, r
    # the partial-volume rim of the canal wall: one more voxel (2-3 mm) where not dense bone
    rim = ndi.binary_dilation(out, structure=disk(1.01 * max(dx, dy), dy, dx)) & (w < P.canal_rim_hu)
    return out | rim


def _along(zq: np.ndarray, fz: np.ndarray, v: np.ndarray, cut_lo: bool, cut_hi: bool) -> np.ndarray:
    """The track's coordinate ``v`` (at its ring slices ``fz``) at ``zq``: interpolated between
    ring slices; beyond an end that the image cuts (``cut_lo``, ``cut_hi``: the track is extended
    to the image's end) continued at its slope over the last ``canal_gap_mm`` of the track (a
    least-squares line, its slope at most ``canal_step_mm`` per 10 mm), since the canal runs on
    through the image's end along its curve (the lumbar lordosis moves it 30 mm in 40 mm: held at
    its last value, it was drawn behind the canal, in the laminae); beyond the other ends, the
    nearest value (the canal ends at the sacrum and the foramen magnum)."""
    out = np.interp(zq, fz, v)
    lim = P.canal_step_mm / 10.0
    for cut, beyond, near in ((cut_lo, zq < fz[0], fz <= fz[0] + P.canal_gap_mm),
                              (cut_hi, zq > fz[-1], fz >= fz[-1] - P.canal_gap_mm)):
        if not cut or not beyond.any() or near.sum() < 2:
            continue
        slope, icpt = np.polyfit(fz[near], v[near], 1)
        slope = float(np.clip(slope, -lim, lim))
        end = fz[0] if zq[beyond].max() < fz[0] else fz[-1]
        v_end = float(slope * end + icpt)
        out[beyond] = v_end + slope * (zq[beyond] - end)
    return out


def segment_canal(ctx: Context) -> np.ndarray:
    m = canal_work(ctx)
    if m.sum() * ctx.grid.voxel_cc < 1.0:
        raise not_found(
            "spinal canal",
            "no vertebral bony ring with a soft-tissue channel (canal radius 4-13 mm) was found on "
            "at least 3 consecutive slices",
        )
    return _refine(ctx)


def _refine(ctx: Context) -> np.ndarray:
    """The canal on the image grid: per image slice, the region below (canal content +
    ``canal_delta_hu``) connected to the tracked centre, within the tracked radius + 5 mm (10-13 mm);
    the centre is then moved to that region's centroid and the region found again (the track's
    centre comes from the most enclosed part of the canal, often its posterior half). Holes are
    filled and a 1.5 mm rim below 300 HU is added (partial volume of the wall)."""
    tr = canal_track(ctx)
    g = ctx.grid
    hu = ctx.hu
    out = np.zeros(hu.shape, bool)
    ok = np.isfinite(tr["x"])
    wz = g.z[ok]
    ox, oy = g.ox, g.oy
    dx = float(np.median(np.diff(ox)))
    dy = float(np.median(np.diff(oy)))
    half_gap = 0.5 * max(float(np.median(np.diff(g.z))), 1.0) + 1e-3
    rim_se = disk(1.5, dy, dx)[0]
    m = 22.0  # window half-size (mm)
    # noise above noise_target_hu left after the 3 x 3 mean of fine pixels (a third of white noise)
    size = denoise_size(noise_sd(ctx) / (3.0 if min(dx, dy) < 1.5 else 1.0))
    for k, zk in enumerate(g.oz):
        j = int(np.argmin(np.abs(wz - zk)))
        if abs(wz[j] - zk) > half_gap:
            continue
        cx = float(np.interp(zk, wz, tr["x"][ok]))
        cy = float(np.interp(zk, wz, tr["y"][ok]))
        r = float(np.clip(np.interp(zk, wz, tr["r"][ok]) + 5.0, 10.0, 13.0))
        i0, i1 = np.searchsorted(ox, cx - m), np.searchsorted(ox, cx + m)
        j0, j1 = np.searchsorted(oy, cy - m), np.searchsorted(oy, cy + m)
        if i1 - i0 < 3 or j1 - j0 < 3:
            continue
        win = hu[k, j0:j1, i0:i1].astype(np.float32)
        if min(dx, dy) < 1.5:
            win = ndi.uniform_filter(win, 3)
        win = denoise(win, size)
        X, Y = np.meshgrid(ox[i0:i1], oy[j0:j1])
        core_r = max(0.4 * (r - 5.0), 1.5 * max(dx, dy))
        for it in range(2):
            d2 = (X - cx) ** 2 + (Y - cy) ** 2
            core = d2 <= core_r**2
            if not core.any():
                break
            thr = float(np.clip(np.median(win[core]) + P.canal_delta_hu, 80.0, 170.0))
            reg = (win < thr) & (win > -150.0) & (d2 <= r * r)
            lab, n = ndi.label(reg)
            hit = np.unique(lab[core & (lab > 0)])
            sub = np.isin(lab, hit) if len(hit) else core
            sub = ndi.binary_fill_holes(sub | core)
            if it == 0:
                cx, cy = float(X[sub].mean()), float(Y[sub].mean())
        rim = ndi.binary_dilation(sub, structure=rim_se) & (win < 300.0)
        out[k, j0:j1, i0:i1] = sub | rim
    return out
