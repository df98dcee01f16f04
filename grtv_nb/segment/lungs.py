"""Left and right lungs: air inside the body, airways removed, split left/right.

Method (on the ~2 mm working grid)
----------------------------------
1. Internal air = HU < -400 inside the filled body (:mod:`.body`), i.e. not connected to the air
   around the patient.
2. Airways: the trachea is looked for from the top of the internal air downwards, as a roughly
   round 2D air region of 0.5-8 cm2 within 50 mm of the midline (the spinal canal, else the
   body's left-right centre), mostly pure air
   (HU < -900). It is followed slice by slice downwards through air below -900 HU (the main and
   lobar bronchi); the tracking stops where the region suddenly grows (the threshold leaks into
   the lung). The tracked airway, dilated by 2 mm, is removed from the internal air.
3. Pure gas (3x3x3 mean below -950 HU, blobs of 5 cc or more: bowel and stomach gas) and a
   1-voxel margin around it are removed, so gas under a thin diaphragm cannot join a lung.
   Lung components: 3D components of the remaining internal air of at least 10 cc whose median
   HU is between -920 and -600 (aerated lung is about -850..-700; bowel and stomach gas is pure
   air, median below -920; partial-volume rims of fat are above -600), whose centre is not in
   the anterior third of the body (bowel content with gas bubbles has lung-like HU); components
   under 150 cc must also reach the top slice (a lung base whose lung continues above the
   image). Smaller pieces (1-10 cc) that reach the top slice and pass the same tests, hold no
   pure gas and do not touch a gas pocket's margin are pieces of a lung base that the top slice
   cut off (the costophrenic recess, joined to the rest above the image; likelier on thick
   slices): one that runs at least 10 mm down joins the lung within 12 mm of it on the top slice.
   Nothing below the diaphragm is lung (:func:`above_diaphragm`): below the slice where the
   lung-like components are largest, a lung only narrows, so a 2D piece of air there is kept
   only where it lies under the kept lung of the slice above (small holes of that lung filled,
   grown by the slice gap), and only when at least half of it does. Gas under the diaphragm
   lies under soft tissue; it is cut off even when a partial-volume leak joins it to a lung
   base, and the components are then chosen again from what is left.
4. Left/right: two large components on different sides (their left-right extents overlap by
   less than half of the narrower one) are the two lungs (left = larger x, the patient's left);
   two that overlap that much are pieces of one lung (cut by a tumour or a fissure) and are
   merged. A single component spanning both sides of the midline (the spinal canal's mean x,
   else the body's centre) (lungs touching at the anterior junction) is eroded step by step (up
   to 12 mm) until it splits into two parts of at least 10 % each that lie on different sides;
   every voxel then goes to the nearest part; this is not tried where the midline is not known
   (an image edge through or past the spine, :func:`.spine.midline_known`), where a single
   component is one lung. A single lung is named by where its chest wall is:
   along each image row through it, the skin is nearer on its lateral side than across the
   mediastinum (or the body runs off the image there); this also holds in a field of view
   cropped to one hemithorax, where the midline is unknown. Only when the rows don't decide
   does the side of its centre relative to the midline.
5. Vessels inside each lung are included by filling holes slice by slice and a 2 mm closing.
6. On the image grid (when it is finer than the working grid) the edge is drawn at the image's
   own resolution (:func:`lung_on_image`): the lung eroded by one working voxel as mapped, and
   within one working voxel of its edge the image voxels below -400 HU (half lung by partial
   volume), not the other lung, the airways or a gas pocket's margin.

Assumptions and failure modes
-----------------------------
- CT in HU; lungs aerated (a collapsed or consolidated lobe is left out; emphysematous bullae of
  pure air may be mistaken for gas pockets and dropped if they are separate components).
- Gas under the diaphragm is cut off only below the slice where the lungs are largest: in a CT
  that starts at the lung bases, bowel gas of lung-like HU joined to a base on its top slices
  stays in that lung there.
- Large gas pockets touching the lung bases (e.g. a distended stomach under a thin diaphragm at
  2 mm) could join a lung; they are cut where the connection is thinner than 12 mm.
- With no trachea in the field of view (abdominal scans) step 2 does nothing; in a cropped field
  of view the trachea is looked for around the spinal canal, so with neither in view a main
  bronchus at the image edge may stay in the lung.
- A single lung in a field of view that cuts off its lateral chest wall but shows the skin across
  the mediastinum would be given the wrong side.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._common import (
    Context,
    ball,
    bbox,
    component_sizes,
    disk,
    fill_holes_2d,
    label,
    label_medians,
    not_found,
    same_side,
)
from .body import body_work
from .params import PARAMS as P
from .params import min_cc
from .spine import midline_known, midline_x


def lungs_work(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) lung masks on the working grid (either may be empty)."""
    return ctx.get("lungs", _lungs_work)


def internal_air(ctx: Context) -> np.ndarray:
    return ctx.get("internal_air", lambda c: (c.w < P.air_hu) & body_work(c))


def airway_work(ctx: Context) -> np.ndarray:
    return ctx.get("airway", _airway_work)


def _airway_work(ctx: Context) -> np.ndarray:
    air = internal_air(ctx)
    w = ctx.w
    dz, dy, dx = ctx.spacing
    area_px = dy * dx / 100.0  # cm2 per pixel
    xc = midline_x(ctx)
    gx = ctx.grid.x
    out = np.zeros_like(air)
    nz = air.shape[0]
    seed = None
    # the trachea: first (from the top) round, pure-air region near the midline
    for k in range(nz - 1, -1, -1):
        if not air[k].any():
            continue
        lab, n = ndi.label(air[k])
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())[1:] * area_px
        lo_cm2, hi_cm2 = P.trachea_cm2
        for i in np.nonzero((sizes >= lo_cm2) & (sizes <= hi_cm2))[0]:
            comp = lab == i + 1
            cols = np.nonzero(comp.any(axis=0))[0]
            cx = gx[cols].mean()
            if abs(cx - xc) > P.trachea_midline_mm:
                continue
            if np.mean(w[k][comp] < P.airway_hu) < 0.5:
                continue
            rows = np.nonzero(comp.any(axis=1))[0]
            ext = max((rows[-1] - rows[0] + 1) * dy, (cols[-1] - cols[0] + 1) * dx)
            if ext > P.trachea_max_mm:
                continue
            seed = (k, comp)
            break
        if seed is not None:
            break
        # stop looking once large internal air (lungs) is present without a trachea candidate
        if sizes.max() > P.trachea_stop_cm2:
            break
    if seed is None:
        return out
    k0, cur = seed
    out[k0] = cur
    prev_area = cur.sum()
    grow = disk(P.airway_grow_mm, dy, dx)[0]
    for k in range(k0 - 1, -1, -1):
        cand = (w[k] < P.airway_hu) & air[k]
        lab, n = ndi.label(cand)
        if n == 0:
            break
        hit = np.unique(lab[ndi.binary_dilation(cur, structure=grow) & (lab > 0)])
        if len(hit) == 0:
            break
        nxt = np.isin(lab, hit)
        area = nxt.sum()
        if area * area_px > P.airway_max_cm2 or area > P.airway_max_growth * max(prev_area, 2.0 / area_px):
            break
        out[k] = nxt
        cur = nxt
        prev_area = area
    return ndi.binary_dilation(out, structure=disk(P.airway_margin_mm, dy, dx)) & air


def _lungs_work(ctx: Context):
    airway = airway_work(ctx)
    ctx.cache["not_lung_air"] = airway
    air = internal_air(ctx) & ~airway
    # pure gas (bowel, stomach) is never lung parenchyma: cut it out, with a 1-voxel margin, so
    # that gas under a thin diaphragm does not join a lung base
    gas = ndi.uniform_filter(ctx.w, size=3) < P.gas_hu
    glab, gn = label(gas & air)
    # (air holding pure gas, or touching that margin, with no tissue between it and the gas, is a
    # gas pocket or its partial-volume rim, never a small piece of lung base, which the diaphragm
    # separates from the gas)
    gas_rim = gas & air
    if gn:
        gsizes = component_sizes(glab, gn) * ctx.grid.voxel_cc
        big_gas = np.isin(glab, np.nonzero(gsizes >= P.gas_min_cc)[0] + 1)
        if big_gas.any():
            margin = ndi.binary_dilation(big_gas)
            air &= ~margin
            ctx.cache["not_lung_air"] = airway | margin
            gas_rim = (gas_rim | ndi.binary_dilation(margin)) & air
    lab, n, sizes, keep, pieces = _lung_components(ctx, air, gas_rim)
    # below the diaphragm nothing is lung: the internal air is cut below the slice where the
    # lungs found so far are largest, where it does not continue from the lung above (gas under
    # the diaphragm that a partial-volume leak joined to a lung base, or that passed the tests of
    # _lung_components, is cut off), and the lungs are looked for again in what is left
    # (the components of lung-like HU, before the position tests: a lung joined to bowel gas
    # may fail them)
    ref = np.isin(lab, _lung_like(ctx, lab, n, sizes))
    if ref.any():
        air = above_diaphragm(air, ref | np.isin(lab, pieces), ctx.spacing)
        lab, n, sizes, keep, pieces = _lung_components(ctx, air, gas_rim)
    if not keep:
        return np.zeros_like(air), np.zeros_like(air)
    body = body_work(ctx)
    keep.sort(key=lambda i: -sizes[i - 1])
    xc = midline_x(ctx)
    gx = ctx.grid.x
    parts = [lab == i for i in keep[:2]]
    if len(parts) == 2 and sizes[keep[1] - 1] < P.lung_split_min_frac * sizes[keep[0] - 1]:
        parts = parts[:1]
    if len(parts) == 2 and same_side(parts, gx):
        parts = [parts[0] | parts[1]]  # one lung cut in two (tumour, fissure), not two lungs
    elif len(parts) == 1 and midline_known(ctx):
        # (without a known midline, in an image whose edge cuts the trunk without the spinal
        # canal in it, the visible body's centre is no midline: the single component is one
        # lung, named by its chest wall)
        comp = parts[0]
        xs = gx[np.nonzero(comp)[2]]
        left_frac = np.mean(xs > xc)
        if 0.15 < left_frac < 0.85:
            split = _split(comp, ctx.spacing)
            if split is not None and not same_side(split, gx):
                parts = split
    res_left = np.zeros_like(air)
    res_right = np.zeros_like(air)
    cents = [float(gx[np.nonzero(p)[2]].mean()) for p in parts]
    if len(parts) == 2:
        li = int(np.argmax(cents))
        res_left, res_right = parts[li], parts[1 - li]
    elif _single_lung_is_left(parts[0], body, ctx.grid.x, xc):
        res_left = parts[0]
    else:
        res_right = parts[0]
    _join_top_pieces(ctx, lab, pieces, res_left, res_right)
    se = ball(P.lung_close_mm, ctx.spacing)
    out = []
    for m in (res_left, res_right):
        if m.any():
            m = fill_holes_2d(ndi.binary_closing(m, structure=se) | m)
        out.append(m)
    # the closing must not make the two lungs overlap
    out[1] &= ~out[0]
    return out[0], out[1]


def above_diaphragm(air: np.ndarray, lungs: np.ndarray, spacing) -> np.ndarray:
    """The part of the internal air ``air`` (working grid, ``[z, y, x]``, z superior) that can be
    lung: everything above the slice where ``lungs`` (the lungs found so far) are largest, and
    below it only what continues from the lung above (step 4 of the module docstring).

    Below its largest cross-section a lung only narrows towards its bases: each slice of it lies
    under the lung of the slice above. Going down from that slice (where ``lungs`` is the lung),
    the footprint of the slice above is its kept lung with holes of up to
    ``lung_hole_cm2`` filled (vessels, a small tumour) grown by the slice gap in-plane (a 45
    degree wall), at least one voxel. A 2D piece of internal air is kept only when at least
    ``subdiaphragm_frac`` of its area lies in that footprint, and only its part in the footprint.
    Gas under the diaphragm (stomach, bowel, colon, free air) lies under the diaphragm's soft
    tissue, not under lung, so it and everything below it is dropped, even when a thin or
    partial-volume diaphragm joins it to a lung base. Apices, which start without lung above
    them, lie above that slice and are kept."""
    area = lungs.sum(axis=(1, 2))
    if air.shape[0] < 2 or not area.any():
        return air
    dz, dy, dx = spacing
    k_max = int(np.argmax(area))
    out = air.copy()
    out[:k_max] = False
    grow = disk(max(dz, 1.01 * max(dy, dx)), dy, dx)[0]
    max_hole = P.lung_hole_cm2 * 100.0 / (dy * dx)

    def footprint(m):
        holes = ndi.binary_fill_holes(m) & ~m
        if holes.any():
            hl, hn = ndi.label(holes)
            small = np.bincount(hl.ravel(), minlength=hn + 1) <= max_hole
            small[0] = False
            m = m | small[hl]
        return ndi.binary_dilation(m, structure=grow)

    above = footprint(lungs[k_max])
    for k in range(k_max - 1, -1, -1):
        if not air[k].any() or not above.any():
            break
        lab, n = ndi.label(air[k])
        tot = np.bincount(lab.ravel(), minlength=n + 1)
        hit = np.bincount(lab[above].ravel(), minlength=n + 1)
        ok = hit >= P.subdiaphragm_frac * np.maximum(tot, 1)
        ok[0] = False
        out[k] = ok[lab] & above
        above = footprint(out[k])
    return out


def _join_top_pieces(ctx: Context, lab: np.ndarray, pieces: list[int], left: np.ndarray,
                     right: np.ndarray) -> None:
    """Add to the lungs ``left`` / ``right`` (in place) the small pieces of lung base that the
    image's top slice cuts off them (``pieces``, from :func:`_lung_components`).

    Where the image ends at the lung bases, the ring of the costophrenic recess round the dome
    (anterior, lateral, posterior) can be cut by the top slice into several pieces joined only
    above the image; thick slices (a 5 mm top slab ends lower) make this likelier. A piece joins
    the lung nearest to it on the top slice, where both are cut, if within ``lung_piece_gap_mm``
    of it (in-plane distance), and if it reaches ``lung_piece_min_mm`` down from the top slice (a
    recess runs down along the chest wall; partial volume at a gas pocket's edge cut by the top
    slice may be a lung-like sliver on that slice alone)."""
    if not pieces or not (left.any() or right.any()):
        return
    dz, dy, dx = ctx.spacing
    top = lab.shape[0] - 1
    dist = [ndi.distance_transform_edt(~m[top], sampling=(dy, dx)) if m[top].any() else None
            for m in (left, right)]
    for i in pieces:
        comp = lab == i
        zs = np.nonzero(comp.any(axis=(1, 2)))[0]
        if (top - zs[0] + 1) * dz < P.lung_piece_min_mm:
            continue
        d = [np.inf if e is None else float(e[comp[top]].min()) for e in dist]
        j = int(np.argmin(d))
        if d[j] <= P.lung_piece_gap_mm:
            (left, right)[j][comp] = True


def _lung_like(ctx: Context, lab: np.ndarray, n: int, sizes: np.ndarray,
               least_cc: float = P.lung_min_cc) -> list[int]:
    """Labels of the components of at least ``least_cc`` whose median HU is lung-like."""
    idx = np.arange(1, n + 1)
    big = idx[sizes >= least_cc]
    if len(big) == 0:
        return []
    meds = label_medians(ctx.w, lab, big)
    return [int(i) for i, m in zip(big, meds) if P.lung_median_hu[0] < m < P.lung_median_hu[1]]


def _lung_components(ctx: Context, air: np.ndarray, gas_rim: np.ndarray):
    """``(labels, n, sizes in cc, kept labels, pieces)``: the 3D components of ``air`` that are
    lung (step 3 of the module docstring), and the pieces of lung base cut by the image's top
    slice that are too small to be a lung alone (at least ``lung_piece_min_cc``, less than
    ``lung_min_cc``, passing the same tests as a small lung base, and not touching ``gas_rim``:
    pure gas, or the air next to the margin cut round a gas pocket)."""
    vcc = ctx.grid.voxel_cc
    lab, n = label(air)
    sizes = component_sizes(lab, n) * vcc
    cand = _lung_like(ctx, lab, n, sizes, P.lung_piece_min_cc)
    keep = [i for i in cand if sizes[i - 1] >= P.lung_min_cc]
    if not keep:
        return lab, n, sizes, [], []
    # lungs are not centred in the anterior third of the body (bowel content with gas bubbles
    # has lung-like HU); a small component is a lung base only if it reaches the top slice of
    # the image (the rest of the lung is above the field of view). A small apex at the bottom of
    # a neck CT is not told from rectal gas and stool, so it is not taken.
    body = body_work(ctx)
    rows = np.nonzero(body.any(axis=(0, 2)))[0]
    y_front = ctx.grid.y[rows[0]] + P.lung_front_frac * (ctx.grid.y[rows[-1]] - ctx.grid.y[rows[0]])
    # (for large components only when the front of the body is in the image: not in a small,
    # cropped field of view)
    front_seen = float(np.mean(body[:, 0, :].any(axis=1))) < 0.5
    objs = ndi.find_objects(lab)
    drop = []
    for i in cand:
        sl = objs[i - 1]
        yy = np.nonzero(lab[sl] == i)[1] + sl[1].start
        if float(ctx.grid.y[yy].mean()) < y_front and (front_seen or sizes[i - 1] < P.lung_large_cc):
            drop.append(i)
        elif sizes[i - 1] < P.lung_large_cc and sl[0].stop < lab.shape[0]:
            drop.append(i)
    pieces = [i for i in cand if i not in drop and sizes[i - 1] < P.lung_min_cc]
    if pieces:
        on_rim = set(np.unique(lab[gas_rim]).tolist())
        pieces = [i for i in pieces if i not in on_rim]
    return lab, n, sizes, [i for i in keep if i not in drop], pieces


def _single_lung_is_left(comp: np.ndarray, body: np.ndarray, gx: np.ndarray, xm: float) -> bool:
    """Side of a single lung. A lung's lateral surface lies under the chest wall, a few cm from
    the skin, while medially the mediastinum (and the other hemithorax) lie between it and the
    skin. Along every image row through the lung, the distance from the lung's outermost voxel
    to the skin is measured in both x directions (infinite where the body runs off the image);
    when at least 60 % of the rows with a finite difference put the skin closer on one side,
    that side is lateral. This holds in a cropped field of view that shows one hemithorax,
    where the midline is not known. Otherwise the lung's centre relative to the midline ``xm``
    decides."""
    nx = comp.shape[2]
    idx = np.arange(nx)
    rows = comp.any(axis=2)
    lo = np.argmax(comp, axis=2)
    hi = nx - 1 - np.argmax(comp[..., ::-1], axis=2)
    out_left = np.maximum.accumulate(np.where(~body, idx, -1), axis=2)
    out_right = np.minimum.accumulate(np.where(~body, idx, nx)[..., ::-1], axis=2)[..., ::-1]
    zz, yy = np.nonzero(rows)
    a = out_left[zz, yy, lo[zz, yy]]
    b = out_right[zz, yy, hi[zz, yy]]
    d_minus = np.where(a >= 0, lo[zz, yy] - a, np.inf)
    d_plus = np.where(b < nx, b - hi[zz, yy], np.inf)
    informative = d_minus != d_plus
    if informative.sum() >= 10:
        plus_closer = float(np.mean(d_plus[informative] < d_minus[informative]))
        if plus_closer >= P.lung_side_rows_frac:
            return True
        if plus_closer <= 1.0 - P.lung_side_rows_frac:
            return False
    return float(gx[np.nonzero(comp)[2]].mean()) > xm


def _split(comp: np.ndarray, spacing) -> list[np.ndarray] | None:
    dz, dy, dx = spacing
    total = comp.sum()
    se = disk(min(dy, dx) * 1.01, dy, dx)
    cur = comp
    for _ in range(int(np.ceil(P.lung_split_max_mm / min(dy, dx)))):
        cur = ndi.binary_erosion(cur, structure=se)
        lab, n = ndi.label(cur)
        if n < 2:
            continue
        sizes = component_sizes(lab, n)
        order = np.argsort(sizes)[::-1]
        if sizes[order[1]] >= P.lung_split_min_frac * total * (cur.sum() / total):
            markers = np.zeros(comp.shape, np.int32)
            markers[lab == order[0] + 1] = 1
            markers[lab == order[1] + 1] = 2
            _, ind = ndi.distance_transform_edt(markers == 0, sampling=spacing, return_indices=True)
            nearest = markers[tuple(ind)]
            return [comp & (nearest == 1), comp & (nearest == 2)]
    return None


def lung_on_image(ctx: Context, lung: np.ndarray, other: np.ndarray) -> np.ndarray:
    """A lung found on the working grid (``lung``; ``other``: the other lung) on the image grid,
    its edge drawn at the image's own resolution.

    Mapping the working-grid mask alone (:meth:`.WorkGrid.to_image`) puts the edge where the
    coarser grid's voxels change, up to half a working voxel off (an image slice midway between two
    working slices takes the union of both: 1 mm slices on the 2 mm grid). The lung's edge is
    where the partial-volume-averaged HU crosses ``air_hu`` (half lung, half tissue), so: the lung
    eroded by one working voxel is kept as mapped (vessels inside it included), and in the band
    one working voxel either side of its edge (not in the other lung, the airways or a gas
    pocket's margin, which are air too) an image voxel is lung where its HU is below ``air_hu``.
    On a working grid equal to the image grid the mask is returned as it is."""
    g = ctx.grid
    if g.identity:
        return lung.copy()
    se = ndi.generate_binary_structure(3, 1)
    inner = ndi.binary_erosion(lung, se)
    outer = ndi.binary_dilation(lung, se) & ~other & ~ctx.cache.get("not_lung_air", np.zeros_like(lung))
    out = g.to_image(inner)
    band = g.to_image(outer) & ~out
    box = bbox(band, margin=0)
    if box is not None:
        out[box] |= band[box] & (ctx.hu[box] < P.air_hu)
    return out


def segment_lung(ctx: Context, side: str) -> np.ndarray:
    left, right = lungs_work(ctx)
    m, other = (left, right) if side == "left" else (right, left)
    if m.sum() * ctx.grid.voxel_cc < min_cc(side[0] + 'lung'):
        raise not_found(f"{side} lung", f"no aerated lung of at least {min_cc(side[0] + 'lung'):g} cc on that side")
    return lung_on_image(ctx, m, other)
