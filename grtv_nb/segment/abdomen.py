"""Liver, kidneys and stomach from anatomical priors (relative to the body, lungs and spine found
first) plus intensity and shape.

Common ground
-------------
- Abdominal slices (:func:`_abdomen`): the spinal canal is found, the body is trunk-sized (at
  least 250 cm2 and 200 mm wide), the slice is below the lung bases (+ 30 mm, the liver dome)
  and 30 mm below the lowest slice of the trachea. When the lungs reach the bottom slice with
  most of their area, or no slice qualifies (head, neck, chest or limb CT), the organs are
  reported as not found. Without lungs (abdominal scans) every trunk slice is searched.
- Left/right comes from the midline (the spinal canal, else the body centre) in the canonical
  frame (x increases to the patient's left). An image cut laterally past the spine (no canal,
  one edge cutting the trunk: :func:`.side.image_side`) holds one known side: its organs are looked
  for with the midline placed from the body (the trunk's half-width from the lateral skin, at
  least ``side_midline_mm`` beyond the cut edge) and the canal's y from the body's depth; the
  other side's organs are refused.
- Intensities are estimated from the image (peaks of the smoothed HU histogram in the expected
  region), so plain and contrast-enhanced CT both work, within the limits stated per organ.
- Work is done on the ~2 mm working grid inside the bounding box of each organ's search region;
  morphology uses distance transforms (cost independent of the radius).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import SegmentationError
from ._common import (
    Context,
    bbox,
    close_mm,
    component_sizes,
    dilate_mm,
    erode_mm,
    fill_holes_2d,
    label,
    not_found,
    open_mm,
)
from .body import body_depth, body_work
from .lungs import lungs_work
from .params import PARAMS as P
from .side import edge_cut, held_side, image_side, side_midline
from .spine import canal_track, midline_known, midline_x


def _smooth(ctx: Context) -> np.ndarray:
    """Mean-filtered HU on the working grid (3x3x3), for intensity classification."""
    return ctx.get("smooth", lambda c: ndi.uniform_filter(c.w, size=3))


def _box_sizes(spacing, mm: float) -> list[int]:
    """Per axis: the odd number of voxels (at least 1) of a box mean spanning at most ``mm``."""
    return [max(2 * int((mm / d + 1e-6 - 1.0) // 2) + 1, 1) for d in spacing]


def _smooth_liver(ctx: Context) -> np.ndarray:
    """The HU box mean of the liver: at most ``liver_smooth_mm`` along each axis (an odd number of
    voxels, 3 on 2-3 mm grids, 1 along z on 4-5 mm slabs: thick slabs are not averaged with their
    neighbours, whose partial volume at the liver's edges spans a slab's thickness). On the image's
    first and last slice the mean is in-plane only: the slice beyond is not in the image, and the
    mean with the end slice counted in its place (a reflected border) differs from the one the
    uncut image gives by up to 240 HU at bone and air edges (example CT cut at z 370 mm: the
    candidate on the cut slice joined the stomach, and the liver grew from it into the stomach up
    to 21 mm above the cut, 12-61 of its voxels per slice)."""
    def f(c: Context) -> np.ndarray:
        size = _box_sizes(c.spacing, P.liver_smooth_mm)
        out = _smooth(c) if size == [3, 3, 3] else ndi.uniform_filter(c.w, size=size)
        if size[0] > 1 and c.w.shape[0] > 1:
            out = out.copy()
            for k in (0, c.w.shape[0] - 1):
                out[k] = ndi.uniform_filter(c.w[k], size=size[1:])
        return out

    return ctx.get("smooth_liver", f)


def _bone(ctx: Context) -> np.ndarray:
    def f(c):
        return dilate_mm(c.w > 200.0, 3.0, c.spacing, planar=True) & body_work(c)

    return ctx.get("bone_d", f)


def _cage(ctx: Context, open_ends: bool = False) -> np.ndarray:
    """Inside of the bony cage: per slice, the convex hull of the bone (> 200 HU) of the slices
    within 40 mm, eroded by 3 mm. Abdominal-wall muscle lies outside it in the upper abdomen.
    Where that hull covers less than 30 % of the body (no ribs there) the whole body is used.

    With ``open_ends`` (the liver) the hull is completed where the image cuts the cage:

    - so it is within 40 mm of the image's ends when no lungs are in it: the ribs beyond a
      cropped abdominal CT are not seen, so the hull there is smaller than the cage and would
      cut the liver in half;
    - where the image's edge on the patient's left cuts the trunk (a field of view cropped to
      the right side: the body on the edge column spans at least ``cage_cut_depth_frac`` of its
      anterior-posterior extent; a flank grazing the edge does not count), the cage's left side
      is not in the image and the hull of the right ribs and the spine would cut the liver's
      anterior and medial part (left lobe) off along a chord from the spine to the anterior
      ribs: the bone is mirrored about the midline (the spinal canal) first, so the hull spans
      the cage as on the uncropped CT. An image cut on the patient's right has cut the liver
      itself; its cage is not completed (mirrored there, the left-lobe search region took in
      the stomach and spleen side: a wrong liver instead of a refusal).

    - on slabs thicker than ``cage_slab_mm`` the ribs are partial-volumed below ``cage_bone_hu``:
      the hull is of the voxels above :func:`_cage_bone_hu`.

    The stomach keeps the strict hull (bowel gas under the abdominal wall must not become its
    gas pocket)."""
    if open_ends:
        return ctx.get("cage_open_ends", _cage_open_ends)
    return ctx.get("cage", lambda c: _cage_hull(c, mirror=None))


def _left_cut(ctx: Context) -> np.ndarray:
    """Per slice: the image's edge on the patient's left (its last column: x increases to the
    patient's left) cuts the trunk (see :func:`_cage`)."""
    return edge_cut(ctx, "left")


def _cage_bone_hu(ctx: Context) -> float:
    """The HU above which a voxel is rib for the cage's hull: ``cage_bone_hu`` on slices up to
    ``cage_slab_mm`` thick; on thicker slabs a rib fills a smaller part of the slab's thickness, so
    its partial-volume HU falls towards soft tissue (``cage_soft_hu``) in proportion."""
    keep = min(1.0, P.cage_slab_mm / ctx.spacing[0])
    return P.cage_soft_hu + (P.cage_bone_hu - P.cage_soft_hu) * keep


def _cage_hull(ctx: Context, mirror: str | None, bone_hu: float = P.cage_bone_hu) -> np.ndarray:
    """:func:`_cage` without ``open_ends``; with ``mirror`` (``"left"`` or ``"right"``), completed
    by the mirror image of the bone about the midline where the image's edge on the patient's
    ``mirror`` side cuts the trunk; the hull of the voxels above ``bone_hu``."""
    from skimage.morphology import convex_hull_image

    body = body_work(ctx)
    bone = (ctx.w > bone_hu) & body
    z = ctx.grid.z
    nx = bone.shape[2]
    cut = edge_cut(ctx, mirror) if mirror else np.zeros(len(z), bool)
    # column of the mirror image (about the midline) of every column, on a canvas padded by nx on
    # both sides (columns mirrored beyond it are dropped)
    col = np.rint((2.0 * _xm(ctx) - ctx.grid.x - ctx.grid.x[0]) / ctx.spacing[2]).astype(int) + nx
    keep = (col >= 0) & (col < 3 * nx)
    out = np.zeros_like(bone)
    for k in range(len(z)):
        sel = np.abs(z - z[k]) <= 40.0
        proj = bone[sel].any(axis=0)
        if proj.sum() < 3:
            continue
        if cut[k]:
            canvas = np.zeros((proj.shape[0], 3 * nx), bool)
            canvas[:, nx:2 * nx] = proj
            canvas[:, col[keep]] |= proj[:, keep]
        else:
            canvas = proj
        # the hull lies within the bone's bounding box (+ the half-pixel offsets of
        # convex_hull_image): computed there
        rows, cols = np.nonzero(canvas.any(axis=1))[0], np.nonzero(canvas.any(axis=0))[0]
        box = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
        hull = np.zeros_like(canvas)
        hull[box] = convex_hull_image(canvas[box])
        out[k] = hull[:, nx:2 * nx] if cut[k] else hull
    out = erode_mm(out, 3.0, ctx.spacing, planar=True)
    # no ribs (a cage much smaller than the body): no constraint on that slice
    small = out.sum(axis=(1, 2)) < 0.3 * body.sum(axis=(1, 2))
    out[small] = body[small]
    return out


def _cage_open_ends(ctx: Context) -> np.ndarray:
    """:func:`_cage` with ``open_ends``."""
    thr = _cage_bone_hu(ctx)
    mirror = "left" if _left_cut(ctx).any() else None
    if thr < P.cage_bone_hu:
        out = _cage_hull(ctx, mirror=mirror, bone_hu=thr)  # thick slabs: ribs partial-volumed
    else:
        out = _cage(ctx) if mirror is None else _cage_hull(ctx, mirror=mirror)
    if _lung_any(ctx).any():
        return out
    # no lung bases in the image (an abdomen-only CT): the ribs beyond its first or last slice
    # are cut off, so within the window of its ends the hull is too small (the cage widens
    # towards the chest) and does not constrain the liver there
    cut = _cut_ends(ctx)
    if not cut.any():
        return out
    out = out.copy()
    out[cut] = body_work(ctx)[cut]
    return out


def _cut_ends(ctx: Context) -> np.ndarray:
    """Per slice: its cage window (40 mm either side) runs past the image's first or last slice."""
    z = ctx.grid.z
    half = 0.5 * ctx.spacing[0]
    return (z + 40.0 > z[-1] + half) | (z - 40.0 < z[0] - half)


def _cage_stomach(ctx: Context) -> np.ndarray:
    """The stomach's cage: :func:`_cage` (the strict hull), completed where the image's end cuts the
    cage window and no lung bases are in the image (an abdomen-only CT). There the ribs beyond the
    image's end are not seen and the hull is too small: at the top of a crop through the upper
    abdomen it held the whole stomach out (its region then held only small bowel). On those
    slices the body deeper under the skin than the cage lies on the other slices (the
    ``stomach_cage_depth_q`` quantile of the depth of the hull's edge on the slices with ribs: the
    abdominal wall and the ribs) is added; the wall's muscle, whose HU is the stomach's, stays out (the whole body, as
    for the liver, let it in). On an image holding the patient's left side without the spine, the
    hull is completed by the bone's mirror image about the midline (:func:`_cage_left_side`)."""

    def f(c: Context) -> np.ndarray:
        out = _cage_left_side(c)
        cut = _cut_ends(c)
        if _lung_any(c).any() or not cut.any():
            return out
        body = body_work(c)
        depth = body_depth(c)
        real = out.sum(axis=(1, 2)) < body.sum(axis=(1, 2))  # a hull of ribs (not the whole body)
        if not real.any():
            return out
        edge = out[real] & ~erode_mm(out[real], 3.0, c.spacing, planar=True)
        d_wall = float(np.quantile(depth[real][edge], P.stomach_cage_depth_q))
        out = out.copy()
        out[cut] |= body[cut] & (depth[cut] >= d_wall)
        return out

    return ctx.get("cage_stomach", f)


def _cage_left_side(ctx: Context) -> np.ndarray:
    """The strict hull of :func:`_cage`, completed (as the liver's on the other side) by the bone's
    mirror image about the midline placed from the body where the image holds the patient's left
    side without the spine (:func:`.side.image_side`) and its edge cuts the trunk: the hull of the left
    ribs and the bone at that edge cut the stomach's medial part off along a chord (example CT cut
    20 mm left of the midline: stomach Dice 0.53, the whole CT's on the same voxels 0.71; now 0.73).
    Not where the canal is in the image: cut at the midline or 40 mm right of it the example CT's
    stomach gained (0.55 -> 0.66, 0.55 -> 0.65), but a CERR left-hemithorax CT (pat_4), whose
    stomach region holds the heart, grew its wrong 11 cc "stomach" to 245 cc."""

    def f(c: Context) -> np.ndarray:
        cut = image_side(c) == "left" and edge_cut(c, "right").any()
        return _cage_hull(c, mirror="right") if cut else _cage(c)

    return ctx.get("cage_left_side", f)


def _near_spine(ctx: Context, radius: float) -> np.ndarray:
    """Voxels within ``radius`` mm (in-plane) of the vertebral body's centre (30 mm anterior of
    the tracked canal, or of its estimate on an image holding one side of the trunk without the
    spine, :func:`_xm`, :func:`_canal_y_raw`; interpolated along z, nearest value beyond the track)."""
    raw = _canal_y_raw(ctx)
    ok = np.isfinite(raw)
    z = ctx.grid.z
    tx = canal_track(ctx)["x"] if image_side(ctx) is None else np.full(len(z), _xm(ctx))
    cx = np.interp(z, z[ok], tx[ok])
    cy = np.interp(z, z[ok], raw[ok]) - 30.0
    X = ctx.grid.x[None, None, :]
    Y = ctx.grid.y[None, :, None]
    return (X - cx[:, None, None]) ** 2 + (Y - cy[:, None, None]) ** 2 <= radius**2


def _lung_near(ctx: Context) -> np.ndarray:
    """Lungs dilated by 5 mm in-plane."""
    return ctx.get("lung_near", lambda c: dilate_mm(_lung_any(c), 5.0, c.spacing, planar=True))


def _lung_any(ctx: Context) -> np.ndarray:
    left, right = lungs_work(ctx)
    return left | right


def _xm(ctx: Context) -> float:
    """The patient's midline x (mm) for the abdominal organs: the spinal canal's (:func:`.spine.midline_x`),
    or, on an image holding one side of the trunk without the spine (:func:`.side.image_side`), the
    trunk's half-width (``side_halfwidth_frac`` of its anterior-posterior extent) from the lateral
    skin, but at least ``side_midline_mm`` beyond the edge that cuts the trunk (the canal is not in
    the image); medians over the slices whose edge cuts the trunk."""
    return midline_x(ctx) if image_side(ctx) is None else side_midline(ctx)


def _canal_y_raw(ctx: Context) -> np.ndarray:
    """Per working slice: the y (mm) of the spinal canal where it was tracked (NaN elsewhere), or,
    on an image holding one side of the trunk without the spine (:func:`.side.image_side`), its estimate
    ``canal_back_frac`` of the body's anterior-posterior extent in front of the back (NaN without
    body)."""
    if image_side(ctx) is None:
        return canal_track(ctx)["y"]
    body = body_work(ctx)
    gy = ctx.grid.y
    rows = np.asarray(body.any(axis=2), bool)
    out = np.full(len(ctx.grid.z), np.nan)
    for k in np.nonzero(rows.any(axis=1))[0]:
        ys = gy[rows[k]]
        front, back = float(ys.min()), float(ys.max())
        out[k] = back - P.canal_back_frac * (back - front)
    return out


def _cy(ctx: Context) -> float:
    """The canal's y (mm), median over the slices (see :func:`_canal_y_raw`)."""
    return float(np.nanmedian(_canal_y_raw(ctx)))


def _only_side(ctx: Context, organ: str, side: str) -> None:
    """Refuse ``organ`` (which lies on the patient's ``side``) on an image that holds the other
    side of the trunk only (:func:`.side.image_side`)."""
    held = image_side(ctx)
    if held is not None and held != side:
        raise not_found(organ, f"the image holds the patient's {held} side of the trunk only (its edge cuts the "
                        f"trunk past the spine); the {organ} lies on the {side}")


def _abdomen(ctx: Context, organ: str) -> tuple[np.ndarray, float | None, np.ndarray]:
    """(lungs, z of the lung bases or None, per-slice bool: abdominal trunk slices).

    Trunk slices: body cross-section of at least 250 cm2 and 200 mm wide (a head or neck is
    smaller; half of each where the image's left or right edge cuts the body); when lungs are in
    the image, below the highest point of the lung bases + 30 mm
    (:func:`.landmarks.lung_dome_z`: the liver dome lies under it, so a CT that ends a little
    below the domes still has abdominal slices); 30 mm below the lowest slice of the trachea
    (see :func:`_lowest_airway_z`); when the pelvis is in the image, above its top (the iliac
    crests) - 20 mm (:func:`.landmarks.pelvis_top_z`).

    Without a spinal canal, an image that holds one side of the trunk only (:func:`.side.image_side`: a
    field of view cut laterally past the spine) is searched on that side, with the midline and the
    canal's y estimated from the body (:func:`_xm`, :func:`_canal_y_raw`); the organs of the other
    side are refused.

    The landmarks fail safe: no spinal canal (but for one side as above), lungs that reach the
    bottom of the image without narrowing, a pelvis-only image, or a canal that runs along less
    than ``abdomen_canal_frac`` of the abdominal slices (an image edge through or past the spine)
    give a refusal that says so; "lungs" lying no higher than the pelvis (gas in the pelvis taken
    for lung) are not used as lungs."""
    from .landmarks import lung_dome_z, pelvis_top_z

    tr = canal_track(ctx)
    side = image_side(ctx)
    if not np.isfinite(tr["x"]).any() and side is None:
        if not midline_known(ctx):
            raise not_found(organ, "no spinal canal was found: the image's left or right edge cuts the trunk, "
                            "not on one side only, and the spine is not in the image, so the patient's "
                            "midline cannot be placed")
        raise not_found(organ, "no spinal canal was found, so this is not a CT of the trunk")
    body = body_work(ctx)
    z = ctx.grid.z
    dz, dy, dx = ctx.spacing
    area_cm2 = body.sum(axis=(1, 2)) * dy * dx / 100.0
    cols = body.any(axis=1)
    width = np.array([(np.ptp(np.nonzero(c)[0]) + 1) * dx if c.any() else 0.0 for c in cols])
    # a body cut by the left or right edge of the image (a field of view cropped to one side)
    # shows about half of its width and area
    cut = body[:, :, 0].any(axis=1) | body[:, :, -1].any(axis=1)
    frac = np.where(cut, P.trunk_cut_frac, 1.0)
    trunk = (area_cm2 >= frac * P.trunk_min_cm2) & (width >= frac * P.trunk_min_width_mm)
    lung = _lung_any(ctx)
    z_pelvis = pelvis_top_z(ctx)
    if z_pelvis is not None and lung.any():
        z_lung_top = float(z[np.nonzero(lung.any(axis=(1, 2)))[0].max()])
        if z_lung_top <= z_pelvis:
            lung = np.zeros_like(lung)  # not lungs: air in the pelvis
    area = lung.sum(axis=(1, 2)).astype(float)
    z_base = None
    if area.max() > 0:
        z_dome, reaches_bottom = lung_dome_z(ctx, lung)
        if reaches_bottom or z_dome is None:
            raise not_found(organ, "the lungs reach the bottom of the image: it ends above the diaphragm")
        k = int(np.nonzero(area > 0.05 * area.max())[0][0])
        z_base = float(z[k])
        trunk &= z < max(z_dome, z_base) + P.dome_margin_mm
    z_air = _lowest_airway_z(ctx)
    if z_air is not None:
        trunk &= z < z_air - P.airway_below_mm
    if z_pelvis is not None:
        above = z > z_pelvis - P.pelvis_margin_mm
        # the iliac wings reaching the top slice: the image starts inside the pelvis
        if z_pelvis >= z[-1] - 0.5 * dz or (trunk.any() and not (trunk & above).any()):
            raise not_found(organ, f"the image shows the pelvis only: its trunk slices all lie below the "
                            f"iliac crests (z = {z_pelvis:.0f} mm) - {P.pelvis_margin_mm:g} mm, or the iliac wings "
                            "reach its top slice; there is no liver, kidney or stomach there")
        trunk &= above
    if trunk.sum() * dz < P.abdomen_min_mm:
        raise not_found(organ, f"the image has no abdominal slices (at least {P.abdomen_min_mm:g} mm of them): none "
                        "is below the lungs and the trachea "
                        "with a trunk-sized body (at least 250 cm2 and 200 mm wide); a head, neck, chest "
                        "or limb CT has no liver, kidneys or stomach")
    # left and right come from the canal: it must run along the abdominal slices (an image whose
    # left or right edge cuts through or past the spine has no canal there, and a ring of bone
    # elsewhere, such as the iliac wing below the organs, may have been tracked instead)
    if side is not None:
        return lung, z_base, trunk  # one side of the trunk, no canal: the midline is placed from the body
    ok = np.nonzero(np.isfinite(tr["x"]))[0]
    along = float(np.mean((z[trunk] >= z[ok[0]]) & (z[trunk] <= z[ok[-1]])))
    if along < P.abdomen_canal_frac:
        raise not_found(organ, f"the spinal canal, the landmark of the midline, runs along only {along:.0%} of "
                        f"the abdominal slices (at least {P.abdomen_canal_frac:.0%} needed): the spine is not in "
                        "the image there (an edge of the image may cut through or past it), so the patient's "
                        "left and right cannot be told")
    return lung, z_base, trunk


def _lowest_airway_z(ctx: Context) -> float | None:
    """z (mm) of the lowest slice of the trachea (or pharynx/larynx), or None: an air tube (0.8-8
    cm2, mean below -800 HU) within 30 mm of the canal's x and 15-100 mm anterior of it, on at
    least 4 consecutive slices. Abdominal organs are below the carina, so only slices 30 mm below
    it count as trunk."""
    tr = canal_track(ctx)
    w = ctx.w
    air = (w < -400.0) & body_work(ctx)
    dz, dy, dx = ctx.spacing
    gx, gy = ctx.grid.x, ctx.grid.y
    hit = np.zeros(w.shape[0], bool)
    for k in range(w.shape[0]):
        if not np.isfinite(tr["x"][k]) or not air[k].any():
            continue
        xs = np.abs(gx - tr["x"][k]) <= 30.0
        ys = (gy >= tr["y"][k] - 100.0) & (gy <= tr["y"][k] - 15.0)
        sub = air[k][np.ix_(ys, xs)]
        lab, n = ndi.label(sub)
        for i in range(1, n + 1):
            comp = lab == i
            a = comp.sum() * dy * dx / 100.0
            if 0.8 <= a <= 8.0 and float(w[k][np.ix_(ys, xs)][comp].mean()) < -800.0:
                hit[k] = True
                break
    runs = ndi.label(hit)[0]
    good = [r for r in range(1, runs.max() + 1) if (runs == r).sum() >= 4]
    if not good:
        return None
    return float(min(ctx.grid.z[runs == r].min() for r in good))


def _peaks(values: np.ndarray, lo: float, hi: float, n: int = 2) -> list[tuple[float, float, float]]:
    """Up to ``n`` histogram peaks (mode, half widths below/above) of at least a quarter of the
    highest one, highest first."""
    v = values[(values >= lo) & (values <= hi)]
    if v.size < 50:
        return []
    hist, edges = np.histogram(v, bins=int(hi - lo), range=(lo, hi))
    hist = ndi.gaussian_filter1d(hist.astype(float), 2.0)
    is_max = (hist >= np.roll(hist, 1)) & (hist > np.roll(hist, -1)) & (hist >= 0.25 * hist.max())
    out = []
    for i in sorted(np.nonzero(is_max)[0], key=lambda j: -hist[j])[:n]:
        half = hist[i] / 2.0
        below = np.nonzero(hist[:i] < half)[0]
        above = np.nonzero(hist[i:] < half)[0]
        hw_lo = float(i - below[-1]) if len(below) else float(i)
        hw_hi = float(above[0]) if len(above) else float(len(hist) - i)
        out.append((float(0.5 * (edges[i] + edges[i + 1])), hw_lo, hw_hi))
    return out


# ----------------------------------------------------------------------------------- liver


def liver_work(ctx: Context) -> np.ndarray:
    return ctx.get("liver", _liver_work)


def _liver_work(ctx: Context) -> np.ndarray:
    """Liver on the working grid.

    Method: the liver is the large, homogeneous soft-tissue organ in the right upper abdomen.

    1. Seed zone: the patient's right side (x < midline - 20 mm), anterior of the canal + 20 mm,
       15 mm inside the skin; with lungs in the image, only under the right lung's footprint
       and from 40 mm below to 30 mm above the lung bases (the dome sits under the right lung).
    2. Liver HU = the mode of the smoothed HU in [0, 250] there (plain CT about 50,
       portal-venous about 100), with the half widths of its histogram peak. If steps 3-4 reject
       it (e.g. the mode is muscle), the second histogram peak is tried.
    3. Candidate = HU within the mode - 2.5 half widths (12-30 HU) / + 2.5 half widths
       (12-35 HU), inside the rib cage, outside bone and lungs, 8 mm below the skin, not within
       35 mm of the vertebral body's centre (crura, aorta, IVC), at most 100 mm left of the
       midline.
    4. An 8 mm ball opening cuts thin bridges to the neighbours (heart, spleen, stomach wall,
       muscle, kidney); the component with the most seed-zone voxels is the liver if it holds
       100-5000 cc, less than 40 % of the body, lies right of the midline, and has at most
       ``liver_paraspinal_frac`` of its voxels behind the spinal canal within
       ``liver_paraspinal_mm`` of the midline (the back muscles, at the liver's HU on a plain CT:
       on a CT whose top is well below the dome the seed zone holds the liver's tip, the right
       kidney and those muscles, joined into one candidate).
    5. The opening is undone within the candidate (8 mm), then the region grows by up to 10 mm
       into a window 10 HU wider below (at most half-way to a clearly separate lower histogram peak) / 5 HU
       above (uneven enhancement); a 3 mm opening, a
       5 mm closing and hole filling per slice put the vessels back and smooth the surface.
    6. :func:`segment_liver` removes the kidneys (found next, allowed into the liver's outer
       5 mm) from the result.

    Failure modes: neighbours of the same density joined over a broad contact (spleen wrapping
    round, heart on the dome, abdominal wall muscle below the ribs, a mass); a liver much darker
    or brighter than its neighbours' range is fine, one with heterogeneous (arterial-phase)
    enhancement or large lesions loses those parts.
    """
    organ = "liver"
    sm = _smooth_liver(ctx)
    body = body_work(ctx)
    gx, gy, gz = ctx.grid.x, ctx.grid.y, ctx.grid.z
    _only_side(ctx, organ, "right")
    lung, z_base, trunk = _abdomen(ctx, organ)
    xm = _xm(ctx)
    cy = _cy(ctx)
    depth = body_depth(ctx)
    X = gx[None, None, :]
    Y = gy[None, :, None]
    Z = gz[:, None, None]
    lung_d = _lung_near(ctx)
    bone = _bone(ctx)
    seed = (depth > 15.0) & (X < xm - 20.0) & (Y < cy + 20.0) & ~bone & ~lung_d & trunk[:, None, None]
    if z_base is not None:
        if trunk.any() and gz[np.nonzero(trunk)[0].max()] < z_base:
            # the dome lies under the lung bases: trunk slices that stop below them (an image cut
            # so far to one side that the body there is too narrow for a trunk) have cut the
            # seed band off; what is left of it is the liver's lower tip and its neighbours
            raise not_found(organ, f"the abdominal slices end below the lung bases (z = {z_base:.0f} mm): "
                            "the body there is too narrow for a trunk, and the liver is looked for under them")
        seed &= (Z > z_base - 40.0) & (Z < z_base + 30.0)
        footprint = lungs_work(ctx)[1].any(axis=0)
        if (seed & footprint[None]).sum() * ctx.grid.voxel_cc > 20.0:
            seed &= footprint[None]
    elif trunk.any():
        # no lung bases in the image (an abdomen-only CT): the liver is the organ under the right
        # dome, so it fills the right side of the highest abdominal slices; lower down the right
        # abdomen holds colon, kidney and bowel of other HU
        seed &= Z > gz[np.nonzero(trunk)[0].max()] - P.liver_seed_top_mm
    region = (depth > 8.0) & ~bone & ~lung_d & (X < xm + 100.0) & (Y < cy + 60.0) & _cage(ctx, True)
    region &= trunk[:, None, None]
    region &= ~_near_spine(ctx, P.liver_spine_mm)
    box = bbox(region)
    peaks = _peaks(sm[seed], *P.liver_hu, n=4)
    if box is None or not peaks:
        raise not_found(organ, "no soft tissue in the right upper abdomen")
    body_cc = body[trunk].sum() * ctx.grid.voxel_cc
    held = held_side(ctx)
    if held is not None:
        # the image holds one side of the trunk: the trunk is twice its part on that side of the
        # midline (the liver under the right dome of the example thorax cut 20 mm past the spine:
        # 0.48 of the body in the image, "not separable")
        half = (X < xm) if held == "right" else (X > xm)
        body_cc = 2.0 * (body & half)[trunk].sum() * ctx.grid.voxel_cc
    why = ""
    for mu, hw_lo, hw_hi in peaks[:2]:
        lo = mu - float(np.clip(2.5 * hw_lo, 12.0, 30.0))
        hi = mu + float(np.clip(2.5 * hw_hi, 12.0, 35.0))
        # the wider window of step 5 stops half-way to a lower neighbouring peak (e.g. muscle)
        # (only for a clearly separate peak: gap > 3 x the two half widths)
        lower = [p[0] for p in peaks if p[0] < lo and mu - p[0] > 3.0 * (p[2] + hw_lo)]
        wide_lo = max(lo - 10.0, 0.5 * (max(lower) + lo)) if lower else lo - 10.0
        liver, why = _liver_for(ctx, box, sm, region, seed, lo, hi, wide_lo, xm, body_cc)
        if liver is not None:
            out = np.zeros_like(body)
            out[box] = liver
            return out & body
    raise not_found(organ, why)


def _liver_for(ctx, box, sm, region, seed, lo, hi, wide_lo, xm, body_cc):
    """Steps 3-5 of :func:`_liver_work` for one HU window; (mask in the box, "") or (None, why)."""
    sp = ctx.spacing
    gx = ctx.grid.x
    smb, regb, seedb = sm[box], region[box], seed[box]
    cand = (smb >= lo) & (smb <= hi) & regb
    opened = open_mm(cand, P.liver_open_mm, sp)
    lab, n = label(opened)
    if n == 0:
        return None, f"no homogeneous tissue within {lo:.0f}..{hi:.0f} HU in the right upper abdomen"
    in_seed = np.bincount(lab[seedb].ravel(), minlength=n + 1)[1:]
    liver = lab == int(np.argmax(in_seed)) + 1
    vol = liver.sum() * ctx.grid.voxel_cc
    if vol < P.liver_cc[0]:
        return None, f"the largest candidate in the right upper abdomen is only {vol:.0f} cc"
    if vol > P.liver_body_frac * body_cc or vol > P.liver_cc[1]:
        return None, f"the tissue within {lo:.0f}..{hi:.0f} HU is not separable from its surroundings"
    if float(gx[box[2]][np.nonzero(liver)[2]].mean()) > xm:
        return None, "the candidate organ lies left of the midline"
    # the liver never lies behind the spinal canal beside the spine: the back muscles there have
    # its HU on a plain CT and join it across the region's posterior part
    cy = _cy(ctx)
    _, yy, xx = np.nonzero(liver)
    back = (ctx.grid.y[box[1]][yy] > cy) & (np.abs(gx[box[2]][xx] - xm) < P.liver_paraspinal_mm)
    if back.mean() > P.liver_paraspinal_frac:
        return None, (f"the tissue within {lo:.0f}..{hi:.0f} HU joins the back muscles ({back.mean():.0%} of it "
                      "behind the spinal canal beside the spine)")
    # undo the opening within the candidate (bounded, so bridges do not reopen), then a wider
    # window within 10 mm of that core (enhancement is uneven in contrast CT)
    wide = (smb >= wide_lo) & (smb <= hi + 5.0) & regb
    for radius, allowed in ((P.liver_open_mm, cand), (P.liver_grow_mm, wide)):
        lab, n = label(dilate_mm(liver, radius, sp) & allowed)
        liver = np.isin(lab, np.unique(lab[liver & (lab > 0)]))
    liver = close_mm(open_mm(liver, 3.0, sp), 5.0, sp)
    return fill_holes_2d(liver), ""


def segment_liver(ctx: Context) -> np.ndarray:
    """Liver on the image grid, less the kidneys (found after it, see :func:`_kidneys_work`)."""
    liver = liver_work(ctx)
    try:
        for m in kidneys_work(ctx).values():
            if m is not None:
                liver = liver & ~m
    except SegmentationError:
        pass
    return ctx.grid.to_image(liver)


# ----------------------------------------------------------------------------------- kidneys



def kidneys_work(ctx: Context) -> dict:
    return ctx.get("kidneys", _kidneys_work)


def _kidneys_work(ctx: Context) -> dict:
    """Kidneys on the working grid: ``{"left": mask or None, "right": mask or None}``.

    Method: the kidneys are retroperitoneal, one each side of the spine, 35-120 mm from the
    midline, from 65 mm anterior to 5 mm posterior of the canal on the same slice (the canal's y
    averaged over ``kidney_canal_mm`` along z, see :func:`_canal_y`), surrounded by perirenal fat,
    outside the liver's interior (the liver is found first; its outer
    ``kidney_liver_rim_mm`` (:mod:`.params`) stay searchable, since where the kidney abuts the liver at
    nearly the same HU the liver contour may have taken part of the kidney).
    For each HU window of ``kidney_windows`` (plain, then contrast), the image smoothed by a box
    mean of at most ``kidney_smooth_mm`` per axis (thick slabs are not averaged with their
    neighbours) within the window and the side's search region is opened (6 mm ball) and split
    into convex pieces (:func:`_kidney_pieces`: a watershed of its distance map, pieces merged
    where the neck between them is at least ``kidney_neck_frac`` of the thinner one's depth), so a
    bowel loop or the psoas touching the kidney over a narrow neck of the same HU is cut off (the
    opening alone, whatever its radius, either kept the neck or lost the thin kidney); in the plain
    window (which also holds muscle) a piece against the zone's medial limit (the vertebral body's
    side, :func:`_medial_limit`) whose mean HU is ``kidney_psoas_hu`` above its merged organ's median
    is psoas and is split off (unenhanced kidney is less dense than muscle); a merged
    piece is a kidney candidate when it holds 40-450 cc (from
    ``kidney_cut_cc`` when the image's first or last slice cuts it: a pole of a kidney the CT ends in),
    is compact (at least 15 % of its bounding box), is not longer than 170 mm craniocaudally, not wider
    than 110 mm and not narrower than ``kidney_min_width_mm`` in either in-plane direction (psoas, crus), and
    does not run into the zone's lateral limit (120 mm from the midline) on more than
    ``kidney_lateral_edge_frac`` of its slices (there it is part of a larger organ beyond the
    zone: the spleen or the liver, as on a CT that ends at the liver dome, above most of the kidney),
    nor into its front limit on more than ``kidney_front_edge_frac`` of them (a small-bowel loop in
    front of the kidney, split off it).
    The best candidate is kept; its score multiplies compactness, closeness to 150 cc, closeness
    to the expected position in-plane (75 mm from the midline, 25 mm anterior of the canal) and,
    when the liver was found, along z (centre 40 mm above the liver's lower end); the opening is undone
    within the window (6 mm, only where no other piece is nearer), then holes are filled slice by
    slice and a 3 mm closing adds the sinus and the other half of a corticomedullary pattern.

    Failure modes: a kidney touching the liver or spleen at the same HU (plain CT with a fatty
    liver; nephrographic phase close to the spleen's HU); atrophic (< 40 cc), horseshoe or
    transplant (pelvic) kidneys are not found; large cysts are left out unless enclosed.
    """
    organ = "kidneys"
    sp = ctx.spacing
    # box mean over at most kidney_smooth_mm per axis: an odd number of voxels, 1 on thick slabs
    size = _box_sizes(sp, P.kidney_smooth_mm)
    sm = ndi.uniform_filter(ctx.w, size=size)
    trunk = _abdomen(ctx, organ)[2]
    gx, gy = ctx.grid.x, ctx.grid.y
    xm = _xm(ctx)
    held = image_side(ctx)
    cyz = _canal_y(ctx)
    depth = body_depth(ctx)
    X = gx[None, None, :]
    Y = gy[None, :, None] - cyz[:, None, None]  # mm posterior of the canal on the same slice
    base = (depth > 8.0) & ~_bone(ctx) & ~_lung_near(ctx) & (Y > -65.0) & (Y < 5.0)
    base &= ~_near_spine(ctx, 32.0) & trunk[:, None, None]
    z_expect = None
    try:
        liver = liver_work(ctx)
        # only the liver's interior: its rim may hold kidney that the liver took at the same HU
        base &= ~erode_mm(liver, P.kidney_liver_rim_mm, ctx.spacing)
        z_expect = float(ctx.grid.z[np.nonzero(liver.any(axis=(1, 2)))[0][0]]) + 40.0
    except SegmentationError:
        pass
    vcc = ctx.grid.voxel_cc
    out: dict = {"left": None, "right": None}
    k0, k1 = P.kidney_midline_mm
    sides = (("right", (X < xm - k0) & (X > xm - k1)), ("left", (X > xm + k0) & (X < xm + k1)))
    for side, sel in sides:
        if held is not None and held != side:
            continue
        region = base & sel
        box = bbox(region)
        if box is None:
            continue
        best, best_score = None, 0.0
        medial = _medial_limit(ctx, box, xm)
        for lo, hi in P.kidney_windows:
            cand = (sm[box] >= lo) & (sm[box] <= hi) & region[box]
            # the plain window also holds muscle: pieces lying against the medial limit and
            # denser than the rest of their organ are psoas (unenhanced kidney is less dense)
            psoas = (sm[box], medial) if lo < P.kidney_psoas_window_hu else None
            lab, n = _kidney_pieces(open_mm(cand, 6.0, sp), sp, psoas)
            if n == 0:
                continue
            near = None  # the nearest piece of each voxel (computed once a candidate is kept)
            sizes = component_sizes(lab, n) * vcc
            for i, sl in enumerate(ndi.find_objects(lab)):
                # a piece cut by the image's first or last slice is part of a kidney at most
                at_end = box[0].start + sl[0].start == 0 or box[0].start + sl[0].stop == sm.shape[0]
                if not (P.kidney_cut_cc if at_end else P.kidney_cc[0]) <= sizes[i] <= P.kidney_cc[1]:
                    continue
                ext = [(s.stop - s.start) * d for s, d in zip(sl, sp)]
                if ext[0] > 170.0 or max(ext[1], ext[2]) > 110.0 or min(ext[1], ext[2]) < P.kidney_min_width_mm:
                    continue
                fill = sizes[i] / (np.prod(ext) / 1000.0)
                if fill < 0.15:
                    continue
                comp = lab[sl] == i + 1
                if lo > 100.0 and float(np.mean(sm[box][sl][comp])) < 140.0:
                    continue
                # a kidney is wrapped in perirenal fat: a piece cut by the zone's lateral limit on
                # most of its slices is a larger organ lying beyond it (the spleen, the liver)
                edge = np.abs(gx[box[2]][sl[2]] - xm) > k1 - 1.5 * sp[2]
                n_z = max(int(comp.any(axis=(1, 2)).sum()), 1)
                if comp[:, :, edge].any(axis=(1, 2)).sum() > P.kidney_lateral_edge_frac * n_z:
                    continue
                # ... and one cut by the zone's front limit on most of its slices is a bowel loop in
                # front of the kidney (the kidney's front lies in the zone)
                front = Y[box[0], box[1], 0][sl[0], sl[1]] < -65.0 + 1.5 * sp[1]
                if (comp & front[:, :, None]).any(axis=(1, 2)).sum() > P.kidney_front_edge_frac * n_z:
                    continue
                zz, xx = np.nonzero(comp.any(axis=(1, 2)))[0], np.nonzero(comp.any(axis=(0, 1)))[0]
                zc = float(ctx.grid.z[box[0]][sl[0]][zz].mean())
                yc = float(Y[box[0], box[1], 0][sl[0], sl[1]][comp.any(axis=2)].mean())  # from the canal
                xc = float(gx[box[2]][sl[2]][xx].mean())
                score = fill * np.exp(-abs(np.log(sizes[i] / 150.0)))
                score *= np.exp(-(((abs(xc - xm) - 75.0) / 30.0) ** 2) - ((yc + 25.0) / 25.0) ** 2)
                if z_expect is not None:
                    score *= np.exp(-(((zc - z_expect) / 60.0) ** 2))
                if score > best_score:
                    best_score = score
                    comp = lab == i + 1
                    if near is None:
                        idx = ndi.distance_transform_edt(lab == 0, sampling=sp, return_distances=False,
                                                          return_indices=True)
                        near = lab[tuple(idx)]
                    grown = dilate_mm(comp, 6.0, sp) & cand & (near == i + 1)
                    lab2, _ = label(grown)
                    comp = np.isin(lab2, np.unique(lab2[comp & (lab2 > 0)]))
                    best = (box, comp, lo)
        if best is not None:
            box, comp, lo = best
            if lo > 100.0:
                # enhanced parenchyma: the partial-volume boundary voxel belongs to the kidney
                comp |= dilate_mm(comp, 1.01 * max(sp[1], sp[2]), sp, planar=True) & (ctx.w[box] >= lo - 40.0)
            comp = fill_holes_2d(close_mm(comp, 3.0, sp))
            m = np.zeros(sm.shape, bool)
            m[box] = comp
            out[side] = m
    return out


def _medial_limit(ctx: Context, box: tuple[slice, slice, slice], xm: float) -> np.ndarray:
    """Within ``box``: the voxels within 1.5 voxels of the kidney zone's medial limit (the
    vertebral body's side: ``kidney_midline_mm[0]`` from the midline ``xm``, 32 mm from the
    vertebral body's centre), where the psoas lies."""
    sp = ctx.spacing
    reach = 1.5 * max(sp[1], sp[2])
    near_mid = np.abs(ctx.grid.x[box[2]] - xm) < P.kidney_midline_mm[0] + reach
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, len(near_mid))
    return np.broadcast_to(near_mid, shape) | _near_spine(ctx, 32.0 + reach)[box]


def _canal_y(ctx: Context) -> np.ndarray:
    """Per working slice: the y (mm) of the spinal canal, interpolated along z where it was not
    tracked (nearest value beyond the track) and averaged over ``kidney_canal_mm`` along z."""
    raw = _canal_y_raw(ctx)
    z = ctx.grid.z
    ok = np.isfinite(raw)
    y = np.interp(z, z[ok], raw[ok])
    n = max(int(round(P.kidney_canal_mm / ctx.spacing[0])), 1)
    return ndi.uniform_filter1d(y, n, mode="nearest")


def _kidney_pieces(mask: np.ndarray, sp, psoas: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> tuple[np.ndarray, int]:
    """``mask`` (a kidney candidate: the window opened) split into organs joined by narrow necks:
    (labels, count).

    A watershed of the distance map to the mask's edge from its maxima (at least
    ``kidney_peak_sep_mm`` apart) cuts it into convex pieces; two adjacent pieces are merged when
    their neck (the largest distance to the edge found on their border, taken on both sides) is at
    least ``kidney_neck_frac`` of the smaller of their two maxima (widest necks first; a merged group
    counts with its deepest maximum, so a shallow piece of a neck joins one side only). A kidney's own pieces (its
    poles, the lips of the hilum) meet over wide necks; a bowel loop or the psoas that touches it
    over a few mm of the same HU does not. Pieces so merged are one label. With ``psoas`` (the
    smoothed HU and the zone's medial limit, both on ``mask``'s grid), a merged organ's pieces that
    touch the medial limit and whose mean HU is ``kidney_psoas_hu`` above the organ's median are
    split off it as one more label (the psoas, denser than the unenhanced kidney)."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    comps, n0 = label(mask)
    if n0 == 0:
        return comps, 0
    dist = ndi.distance_transform_edt(mask, sampling=sp)
    seeds = peak_local_max(dist, min_distance=max(int(round(P.kidney_peak_sep_mm / min(sp))), 1),
                           labels=comps, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    pieces = watershed(-dist, markers, mask=mask)
    n = int(pieces.max())
    depth = np.zeros(n + 1)
    np.maximum.at(depth, pieces.ravel(), dist.ravel())
    neck = np.zeros((n + 1, n + 1))
    for ax in range(3):
        a, d = np.moveaxis(pieces, ax, 0), np.moveaxis(dist, ax, 0)
        la, lb = a[:-1].ravel(), a[1:].ravel()
        on = (la > 0) & (lb > 0) & (la != lb)
        v = np.minimum(d[:-1], d[1:]).ravel()[on]
        np.maximum.at(neck, (la[on], lb[on]), v)
        np.maximum.at(neck, (lb[on], la[on]), v)
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # widest necks first; a merged group is as deep as its deepest piece, so a shallow piece
    # between two organs (a stretch of the neck itself) joins one of them, not both
    ii, jj = np.nonzero(np.triu(neck, 1))
    for k in np.argsort(-neck[ii, jj], kind="stable"):
        a, b = root(int(ii[k])), root(int(jj[k]))
        if a != b and neck[ii[k], jj[k]] >= P.kidney_neck_frac * min(depth[a], depth[b]):
            parent[a] = b
            depth[b] = max(depth[a], depth[b])
    roots = np.array([root(i) for i in range(n + 1)])
    if psoas is not None:
        # a piece against the zone's medial limit, denser than its merged organ's median by
        # kidney_psoas_hu, is psoas: it is split off its organ (one new organ per organ it left)
        hu, medial = psoas
        on = pieces > 0
        cnt = np.bincount(pieces[on], minlength=n + 1)
        mean = np.bincount(pieces[on], weights=hu[on], minlength=n + 1) / np.maximum(cnt, 1)
        touch = np.bincount(pieces[on & medial], minlength=n + 1) > 0
        vox_root = roots[pieces]
        for r in np.unique(roots[1:]):
            members = np.nonzero(roots == r)[0]
            if len(members) < 2:
                continue
            med = float(np.median(hu[vox_root == r]))
            off = [int(i) for i in members if touch[i] and mean[i] >= med + P.kidney_psoas_hu]
            if off and len(off) < len(members):
                roots[off] = n + 1 + int(r)
    _, group = np.unique(roots, return_inverse=True)  # root 0 (the background) stays 0
    return group.reshape(-1)[pieces].astype(np.int32), int(group.max())


def segment_kidney(ctx: Context, side: str) -> np.ndarray:
    _only_side(ctx, f"{side} kidney", side)
    m = kidneys_work(ctx)[side]
    if m is None:
        raise not_found(
            f"{side} kidney",
            f"no compact {P.kidney_cc[0]:.0f}-{P.kidney_cc[1]:.0f} cc organ of kidney density beside "
            f"the spine on that side ({P.kidney_cut_cc:.0f} cc where the image's end cuts it)",
        )
    return ctx.grid.to_image(m)


# ----------------------------------------------------------------------------------- stomach


def stomach_work(ctx: Context) -> np.ndarray:
    return ctx.get("stomach", _stomach_work)


def _stomach_work(ctx: Context) -> np.ndarray:
    """Stomach on the working grid.

    Method: the stomach is found from its gas when it has a gas pocket sitting on fluid, food or
    wall; otherwise (collapsed or fluid-filled) as the soft-tissue mass under the left
    hemidiaphragm, medial of the spleen.

    1. Region: abdominal slices, inside the rib cage (for the fluid route completed where an
       abdomen-only image's end cuts it, :func:`_cage_stomach`), anterior of the spine (y < canal
       - 20 mm, the canal's y slice by slice, :func:`_canal_y`), from 40 mm right of the midline
       to the left, 5 mm below the skin, outside the liver, kidneys, bone
       and lungs.
    2. Gas route. Gas pockets = 3D components of HU < -600 of at least 2 cc whose 4-10 mm ring is
       mostly not fat (at most half below -40 HU) and has a soft-tissue HU peak (above -20 HU):
       the stomach's gas lies on its contents and thick wall, while colon gas is mixed with stool
       and surrounded by pericolic fat. Of these, the one scoring best on "high and medial": its
       top z (the fundus lies under the left hemidiaphragm) minus the distance of its centre from
       40 mm left of the midline (the colon's splenic flexure is more lateral). Contents and
       wall: the ring's HU peak gives a window (peak -/+ 2.5 half widths, 12-60 HU); voxels in it
       (fat excluded) plus the 4 mm partial-volume rim of the gas, within 60 mm of the gas,
       opened by 8 mm (cuts neighbouring loops joined by thin contact) and connected to the gas.
    3. Fluid route (no qualifying gas pocket). With the lung bases in the image the top of the
       region is the left dome; without them (an abdomen-only CT) the image's top must reach the
       stomach bed, ``stomach_bed_mm`` above the left kidney's lowest slice (no kidney found: no
       fluid route), and the first piece must be cut by the image's top over at least
       ``stomach_seed_cm2`` (the stomach runs on up to the dome; a loop of small bowel is
       narrower; chosen as below, such a crop took small bowel). Soft tissue (-15..90 HU, smoothed) of the region,
       opened by 4 mm, is split into convex pieces by a watershed of its distance map (one
       basin per local maximum at least 8 mm apart and 6 mm deep). Pieces of at least 3 cc, not
       tubes along z (``stomach_tube_ratio``: the aorta), whose
       centre lies 35-90 mm left of the midline and 50 mm or more anterior of the canal (in front
       of the vertebral body, medial of the spleen) and which reach within 60 mm of the top of
       the region (under the left dome) are candidates; the largest and the candidates touching
       it, transitively, are the stomach.
    4. Closing 4 mm, holes filled per slice, plus the gas.

    Failure modes: colon gas on fluid, higher and more medial than the stomach's, is taken for
    it; the boundary with adjacent bowel loops, spleen, pancreas or muscle of the same HU is not
    seen, so the contour may include parts of them (e.g. the phantom, whose stomach lies in
    muscle of nearly its HU). The fluid route finds the fundus and body under the dome but not
    the antrum where it runs anteriorly under the abdominal wall (outside the rib cage), and a
    spleen reaching medially into the prior zone is taken in; with neither gas nor a mass in the
    zone the stomach is reported as not found.
    """
    organ = "stomach"
    w = ctx.w
    sm = _smooth(ctx)
    _only_side(ctx, organ, "left")
    lung, z_base, trunk = _abdomen(ctx, organ)
    gx, gy, gz = ctx.grid.x, ctx.grid.y, ctx.grid.z
    xm = _xm(ctx)
    cy = _cy(ctx)
    depth = body_depth(ctx)
    X = gx[None, None, :]
    Y = gy[None, :, None]
    sp = ctx.spacing
    # in front of the vertebral body slice by slice (the lumbar lordosis moves the canal by 30 mm; one
    # median for the image moved the region's back with the image's z range)
    cyz = _canal_y(ctx)[:, None, None]
    region = (depth > 5.0) & (Y < cyz - 20.0) & (X > xm - 40.0) & ~_bone(ctx) & ~_lung_near(ctx)
    region &= _cage_stomach(ctx) & trunk[:, None, None]
    for fn in (liver_work,):
        try:
            region &= ~dilate_mm(fn(ctx), 2.0, sp)
        except SegmentationError:
            pass
    kid: dict = {}
    try:
        kid = kidneys_work(ctx)
        for m in kid.values():
            if m is not None:
                region &= ~m
    except SegmentationError:
        pass
    box = bbox(region)
    if box is None:
        raise not_found(organ, "no abdominal region left of the midline")
    regb = region[box]
    smb = sm[box]
    coords = (gz[box[0]], gy[box[1]], gx[box[2]])
    k_cap = _thorax_cap(trunk, z_base)
    cap = None if k_cap is None else k_cap - box[0].start
    # the gas route keeps the strict hull: bowel gas under the abdominal wall is no gas pocket
    found = _stomach_gas(ctx, w[box] < P.stomach_gas_hu, regb & _cage(ctx)[box], smb, coords, xm, cap)
    if found is None:
        if z_base is None and not _stomach_bed_in(ctx, kid.get("left")):
            raise not_found(organ, "no gas pocket on fluid in the left upper abdomen, and without the lung "
                            f"bases the image's top does not reach {P.stomach_bed_mm:g} mm above the left "
                            "kidney's lowest slice (the stomach bed, the kidney's upper half)")
        st = _stomach_fluid(ctx, regb, smb, coords, xm, cy, top_seed=z_base is None, cap=cap)
        if st is None:
            raise not_found(organ, "no gas pocket on fluid and no soft-tissue mass under the left "
                            "hemidiaphragm, medial of the spleen")
        gas = dilate_mm(st, 3.0, sp) & (w[box] < -300.0) & regb
    else:
        st, gas = found
    st = fill_holes_2d(close_mm(st | gas, 4.0, sp)) & regb | gas
    out = np.zeros(w.shape, bool)
    out[box] = st
    return out


def _thorax_cap(trunk: np.ndarray, z_base: float | None) -> int | None:
    """Index of the abdominal slices' top slice where the lungs set it (``dome_margin_mm`` above the
    lung bases, or below the trachea, :func:`_abdomen`) under the image's top, else None (no lungs,
    or the image's top is the abdominal slices' top). Everything under the diaphragm ends below
    it: a piece that reaches it runs on into the thorax (the heart, the oesophagus)."""
    k = int(np.nonzero(trunk)[0].max())
    return k if z_base is not None and k < len(trunk) - 1 else None


def _stomach_gas(ctx, gas, regb, smb, coords, xm, cap=None):
    """Gas route of :func:`_stomach_work`: (contents and wall, gas pocket) or None. ``cap``: the
    index of the region's thoracic top slice (:func:`_thorax_cap`); a gas pocket that reaches it is
    not the stomach's."""
    sp = ctx.spacing
    lab, n = label(gas & regb)
    if n == 0:
        return None
    sizes = component_sizes(lab, n) * ctx.grid.voxel_cc
    gz, _, gx = coords
    best, best_score, best_peak = None, -np.inf, None
    for i, sl in enumerate(ndi.find_objects(lab)):
        if sizes[i] < P.stomach_gas_cc or (cap is not None and sl[0].stop - 1 == cap):
            continue
        comp = lab == i + 1
        ring = dilate_mm(comp, 10.0, sp) & ~dilate_mm(comp, 4.0, sp) & regb
        vals = smb[ring]
        if vals.size == 0 or np.mean(vals < -40.0) > 0.5:
            continue  # surrounded by fat (and stool): colon
        peaks = _peaks(vals, -40.0, 100.0, n=1)
        if not peaks or peaks[0][0] <= -20.0:
            continue  # no fluid, food or wall under the gas
        zz, _, xx = np.nonzero(comp[sl])
        score = float(gz[sl[0]][zz].max()) - abs(float(gx[sl[2]][xx].mean()) - (xm + 40.0))
        if score > best_score:
            best, best_score, best_peak = comp, score, peaks[0]
    if best is None:
        return None
    mu, hw_lo, hw_hi = best_peak
    lo_c = max(-40.0, mu - float(np.clip(2.5 * hw_lo, 12.0, 60.0)))
    hi_c = min(100.0, mu + float(np.clip(2.5 * hw_hi, 12.0, 60.0)))
    allowed = (((smb >= lo_c) & (smb <= hi_c)) | dilate_mm(best, 4.0, sp)) & regb
    near = dilate_mm(best, 60.0, sp) & allowed
    near = open_mm(near, 8.0, sp) | best
    lab2, _ = label(near)
    return np.isin(lab2, np.unique(lab2[best & (lab2 > 0)])), best


def _stomach_bed_in(ctx: Context, left_kidney: np.ndarray | None) -> bool:
    """The image's top reaches the left kidney's upper half (``stomach_bed_mm`` above its lowest
    slice): the level of the stomach bed, where a fluid-filled stomach is looked for without
    the lung bases."""
    if left_kidney is None or not left_kidney.any():
        return False
    z = ctx.grid.z
    return bool(z[-1] - z[np.nonzero(left_kidney.any(axis=(1, 2)))[0][0]] >= P.stomach_bed_mm)


def _stomach_fluid(ctx, regb, smb, coords, xm, cy, top_seed=False, cap=None):
    """Fluid route of :func:`_stomach_work`: the soft-tissue pieces of the stomach, or None.
    ``cap``: as in :func:`_stomach_gas`, for the soft-tissue pieces. ``top_seed`` (no lung bases:
    the region's top is the image's, not the dome): the largest piece is chosen among those cut
    by the region's top slice over at least ``stomach_seed_cm2`` (the
    stomach runs on up to the dome, above the image, and its body is wider than a loop of small
    bowel, which lies below it)."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    sp = ctx.spacing
    soft = open_mm((smb > -15.0) & (smb < 90.0) & regb, 4.0, sp)
    if not soft.any():
        return None
    dist = ndi.distance_transform_edt(soft, sampling=sp)
    peaks = peak_local_max(dist, min_distance=max(int(round(8.0 / min(sp))), 1), threshold_abs=6.0,
                           labels=soft.astype(np.int32))
    if len(peaks) == 0:
        return None
    markers = np.zeros(soft.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    pieces = watershed(-dist, markers, mask=soft)
    gz, gy, gx = coords
    z_top = float(gz[np.nonzero(regb.any(axis=(1, 2)))[0].max()])
    cand = {}
    for i, sl in enumerate(ndi.find_objects(pieces)):
        if sl is None:
            continue
        comp = pieces[sl] == i + 1
        vol = comp.sum() * ctx.grid.voxel_cc
        if vol < 3.0:
            continue
        zz, yy, xx = np.nonzero(comp)
        xc = float(gx[sl[2]][xx].mean()) - xm
        yc = float(gy[sl[1]][yy].mean()) - cy
        # a tube running along z (the aorta, a crus, a bowel loop beside them) is no piece of the
        # stomach: longer craniocaudally than stomach_tube_ratio times its mean diameter
        n_z = int(comp.any(axis=(1, 2)).sum())
        diam = 2.0 * np.sqrt(comp.sum() * sp[1] * sp[2] / max(n_z, 1) / np.pi)
        if n_z * sp[0] > P.stomach_tube_ratio * diam:
            continue
        if cap is not None and sl[0].stop - 1 == cap:
            continue  # it runs on above the abdominal slices' top: the heart on the diaphragm
        if 35.0 <= xc <= 90.0 and yc <= -50.0 and float(gz[sl[0]][zz].max()) >= z_top - 60.0:
            cand[i + 1] = vol
    seeds = cand
    if top_seed:
        top = np.nonzero(regb.any(axis=(1, 2)))[0].max()
        a_top = {k: float((pieces[top] == k).sum()) * sp[1] * sp[2] / 100.0 for k in cand}
        seeds = {k: v for k, v in cand.items() if a_top[k] >= P.stomach_seed_cm2}
    if not seeds:
        return None
    st = pieces == max(seeds, key=seeds.get)
    grown = True
    while grown:
        touch = set(np.unique(pieces[dilate_mm(st, 1.5 * max(sp), sp) & ~st]).tolist()) & set(cand)
        grown = bool(touch)
        for j in touch:
            st |= pieces == j
            del cand[j]
    return st


def segment_stomach(ctx: Context) -> np.ndarray:
    return ctx.grid.to_image(stomach_work(ctx))


__all__ = ["segment_liver", "segment_kidney", "segment_stomach"]
