"""Craniocaudal landmarks that bound the abdominal organ search: the highest point of the lung
bases (:func:`lung_dome_z`) and the top of the pelvis (:func:`pelvis_top_z`).

Both are found on the working grid (``[z, y, x]``, canonical frame: x to the patient's left, y
posterior, z superior) from the trunk (:mod:`.body`) and the lungs (:mod:`.lungs`), and the pelvis
is cached in the image's context. A landmark that is not in the image is ``None``; the organ
methods then either do without it or refuse (:mod:`.abdomen`), never guess.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._common import Context
from .body import body_work
from .params import PARAMS as P
from .side import held_side, side_midline


def lung_dome_z(ctx: Context, lungs: np.ndarray) -> tuple[float | None, bool]:
    """``(z, reaches_bottom)``: z (mm) of the highest point of the lung bases, where the organs
    under the diaphragm begin, and whether the lungs reach the bottom of the image without
    narrowing (the image ends above the diaphragm).

    Going down from the slice where the lungs' cross-section is largest, the first slice whose
    lung area is below ``lung_base_area_frac`` of that largest area: the domes have pushed in
    there. ``(None, False)`` without lungs; ``(None, True)`` when the area never falls that low."""
    area = lungs.sum(axis=(1, 2)).astype(float)
    if not area.any():
        return None, False
    k_max = int(np.argmax(area))
    low = np.nonzero(area[:k_max + 1] < P.lung_base_area_frac * area[k_max])[0]
    if len(low) == 0:
        return None, True
    return float(ctx.grid.z[low[-1]]), False


def pelvis_top_z(ctx: Context) -> float | None:
    """z (mm) of the top of the pelvis (the iliac crests), or None when no pelvis is in the image.

    A pelvis slice has two large bone pieces (> ``pelvis_bone_hu``, at least ``pelvis_wing_cm2``
    each), one on each side of the body's left-right centre (not the spinal canal, which a pelvis-only
    image may lack) at ``pelvis_lateral_mm`` from it: the iliac wings
    (lower down the acetabula and femoral heads). Ribs are thin and vertebrae lie within 50 mm of
    the midline. The longest run of pelvis slices must span ``pelvis_min_slices_mm``; the top is
    the highest point of the lateral bone connected to its wings (the crests). On an image that
    holds one side of the trunk (:func:`.side.held_side`: its other edge cuts the trunk) one
    wing, on that side of the midline placed from the body (:func:`.side.side_midline`: a ring
    of the hip bone may pass for the canal there), makes a pelvis slice."""
    return ctx.get("pelvis_top", _pelvis_top)


def _pelvis_top(ctx: Context) -> float | None:
    body = body_work(ctx)
    side = held_side(ctx)
    x_side = side_midline(ctx) if side is not None else None
    dz, dy, dx = ctx.spacing
    gx = ctx.grid.x
    lo, hi = P.pelvis_lateral_mm
    bone = (ctx.w > P.pelvis_bone_hu) & body
    hit = np.zeros(bone.shape[0], bool)
    for k in range(bone.shape[0]):
        if not bone[k].any():
            continue
        lab, n = ndi.label(bone[k])
        area = np.bincount(lab.ravel(), minlength=n + 1)[1:] * dy * dx / 100.0
        big = np.nonzero(area >= P.pelvis_wing_cm2)[0] + 1
        if len(big) < (2 if side is None else 1):
            continue
        prof = body[k].sum(axis=0)
        xm = float(np.sum(gx * prof) / max(prof.sum(), 1)) if x_side is None else x_side
        xs = np.atleast_1d(ndi.mean(np.broadcast_to(gx, lab.shape), lab, big)) - xm
        right = np.any((xs <= -lo) & (xs >= -hi))
        left = np.any((xs >= lo) & (xs <= hi))
        hit[k] = bool(right and left) if side is None else bool(right if side == "right" else left)
    runs, n = ndi.label(hit)
    if n == 0:
        return None
    z = ctx.grid.z
    best = max(range(1, n + 1), key=lambda r: np.ptp(z[runs == r]))
    ks = np.nonzero(runs == best)[0]
    if z[ks[-1]] - z[ks[0]] + dz < P.pelvis_min_slices_mm:
        return None
    # the iliac wings thin out towards the crests (a thin cortical plate): followed upwards as
    # the lateral bone (> pelvis_crest_hu, beyond pelvis_lateral_mm[0] from the midline, which
    # cuts off the sacrum and the spine) connected to the wings of that run
    prof = body.sum(axis=(0, 1))
    xm = float(np.sum(gx * prof) / max(prof.sum(), 1)) if x_side is None else x_side
    lateral = (ctx.w > P.pelvis_crest_hu) & body & (np.abs(gx - xm) >= lo)[None, None, :]
    lab3, n3 = ndi.label(lateral)
    seeds = np.unique(lab3[ks][bone[ks] & (lab3[ks] > 0)])
    if len(seeds) == 0:
        return float(z[ks[-1]])
    top = np.nonzero(np.isin(lab3, seeds).any(axis=(1, 2)))[0].max()
    return float(z[max(top, ks[-1])])
