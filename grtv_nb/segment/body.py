"""Body outline (external contour) of a CT by thresholding and morphology in mm.

Method (on the ~2 mm working grid)
----------------------------------
1. Tissue = HU > -500 (fat, soft tissue and bone; air, lung and low-density foam are below).
   When the image is finer than the working grid, a working cell that holds an air voxel of
   the image (minimum over the cell's footprint) is not tissue in steps 2-4, so an air seam
   thinner than the working spacing (skin against skin) still separates.
2. An axial opening with a 6 mm disk detaches thin structures touching the patient: couch shells,
   thermoplastic masks, cables, blankets.
3. The largest 3D connected component is the trunk (``plastimatch segment`` keeps only it).
4. The opening is undone: tissue within 8 mm of the kept component and connected to it is added
   back, so the skin surface is the threshold surface, not a smoothed one (plus the one skin
   cell that step 1's finer air made partial).
5. For the organ methods' landmarks (:func:`body_work`, the trunk), arms lying against the trunk
   are cut off, slice by slice (:func:`_drop_limbs`): in the opened tissue of step 2, a piece
   other than the slice's largest one (the trunk) is an arm when it holds 10 cm2 to 30 % of the
   trunk's area, contains at least 0.5 cm2 of bone (> 300 HU: the humerus, radius or ulna) and
   its centre lies beyond 80 % of the trunk's half-width from the trunk's centre; every body
   voxel nearer in-plane to it than to the trunk is removed, and the largest 3D component is
   kept.
6. Holes are filled slice by slice, so lungs, airways and bowel gas are inside the body. A region
   touching the image border that is not pure air (mean HU > -900, a removed arm counting as
   air) and is mostly (75 % of its rim) surrounded by the body, e.g. a lung cut by a small
   field of view, also counts as inside; one that reaches across the image only where, for at
   least half of it, body lies on both sides along its column or its row (the gap between the
   back and the couch, when the image's left and right edges both cut the body, does not).
7. The body ROI (:func:`patient_work`, what ``segment_organ(image, "body")`` returns) is the
   whole patient, as a clinical external contour is (the planning system treats everything
   outside it as air): the trunk of step 4 with the arms lying against it, plus every other
   3D piece of step 2 that is a limb: at least 20 cc, at least 2 cc and 2 % of bone (> 300 HU),
   median HU between -120 and 100 (fat to muscle). Immobilisation devices, head rests and couch
   parts that survive the opening hold no bone or are less dense, and stay out. Steps 4 and 6
   are applied to the limbs too.

Assumptions and failure modes
-----------------------------
- CT in HU with air at about -1000 outside the patient. A patient lying on a thick dense
  (> -500 HU) mattress thicker than 12 mm whose contact with the skin is broad may keep part of it.
- Immobilisation masks in contact with the skin survive within 8 mm of the skin (step 4).
- Air cavities open to the outside in the slice plane (nostrils, mouth) stay outside.
- A limb is recognised by its bone: a hand or foot smaller than 20 cc, or a soft-tissue part
  separated from the trunk by air with no bone in it (a breast or a skin fold lying apart on
  every slice), is left out; a dense immobilisation device with metal inserts of 2 cc or more and
  a tissue-like median HU would be taken in.
- On the trunk landmark (step 5): a hand or forearm resting on the abdomen (lateral-centre test
  fails) stays in; a lateral bony piece of the trunk itself separated by the opening (not seen
  in practice: ribs are inside the trunk) would be cut off.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._common import Context, component_sizes, dilate_mm, label, label_medians, not_found, open_mm
from .params import PARAMS as P


def body_work(ctx: Context) -> np.ndarray:
    """Filled trunk mask on the working grid (cached in the context): the body without limbs
    (steps 1-6). The organ methods take their landmarks (skin depth, body centre and width, what
    the body encloses) from it."""
    return ctx.get("body", _body_work)


def patient_work(ctx: Context) -> np.ndarray:
    """Filled body mask on the working grid including the limbs (step 7): the body ROI."""
    return ctx.get("patient", _patient_work)


def _body_work(ctx: Context) -> np.ndarray:
    w = ctx.w
    tissue = w > P.body_hu
    strict = _strict_tissue(ctx, tissue)
    opened = open_mm(strict, P.body_open_mm, ctx.spacing, planar=True)
    lab, n = label(opened)
    if n == 0:
        raise not_found("body", f"no tissue above {P.body_hu:g} HU: no patient in the image")
    sizes = component_sizes(lab, n)
    main = int(np.argmax(sizes)) + 1
    body = lab == main
    if body.sum() * ctx.grid.voxel_cc < P.body_min_cc:
        raise not_found("body", f"the largest tissue region is smaller than {P.body_min_cc:g} cc")
    body = _reconstruct(body, strict, tissue, ctx)
    limbs = _limb_pieces(lab, n, main, ctx)
    kept = _drop_limbs(body, opened, ctx)
    # the body ROI (step 7) before hole filling; None when it is the trunk itself
    ctx.cache["patient_unfilled"] = (
        body | _reconstruct(np.isin(lab, limbs), strict, tissue, ctx) if limbs
        else (body if kept is not body else None)
    )
    if kept is not body:
        # a removed arm counts as outside air when judging what the body encloses
        w = np.where(body & ~kept, np.float32(-1000.0), w)
    return _fill_inside(kept, w)


def _reconstruct(seed: np.ndarray, strict: np.ndarray, tissue: np.ndarray, ctx: Context) -> np.ndarray:
    """Undo the opening of step 2 for ``seed`` (step 4): the tissue within 8 mm of it and
    connected to it, plus the skin cell that the finer image's air made partial."""
    dz, dy, dx = ctx.spacing
    near = dilate_mm(seed, P.body_recon_mm, ctx.spacing, planar=True) & strict
    lab, n = label(near)
    out = np.isin(lab, np.unique(lab[seed & (lab > 0)]))
    if strict is not tissue:
        out = dilate_mm(out, 1.01 * max(dy, dx), ctx.spacing, planar=True) & tissue
    return out


def _limb_pieces(lab: np.ndarray, n: int, main: int, ctx: Context) -> list[int]:
    """Labels of the opened pieces other than the trunk (``main``) that are limbs (step 7)."""
    w = ctx.w
    vcc = ctx.grid.voxel_cc
    sizes = component_sizes(lab, n) * vcc
    bone_cc = np.bincount(lab[w > P.limb_bone_hu].ravel(), minlength=n + 1)[1:] * vcc
    limbs = [i + 1 for i in range(n) if i + 1 != main and sizes[i] >= P.limb_min_cc
             and bone_cc[i] >= max(P.limb_bone_cc, P.limb_bone_frac * sizes[i])]
    if not limbs:
        return []
    meds = label_medians(w, lab, limbs)
    return [i for i, m in zip(limbs, meds) if P.limb_median_hu[0] <= m <= P.limb_median_hu[1]]


def _patient_work(ctx: Context) -> np.ndarray:
    trunk = body_work(ctx)
    unfilled = ctx.cache["patient_unfilled"]
    return trunk if unfilled is None else _fill_inside(unfilled, ctx.w)


def _strict_tissue(ctx: Context, tissue: np.ndarray) -> np.ndarray:
    """Working-grid tissue without the cells that hold an air voxel of the finer image: an air
    seam thinner than the working spacing (the skin-to-skin gap of an arm lying against the
    trunk) then still separates them. ``tissue`` itself when the image is not finer."""
    g = ctx.grid
    if g.identity:
        return tissue
    size = [1]
    for w_ax, o_ax in ((g.y, g.oy), (g.x, g.ox)):
        step = float(np.median(np.diff(o_ax))) if len(o_ax) > 1 else 1.0
        wstep = float(np.median(np.diff(w_ax))) if len(w_ax) > 1 else step
        size.append(max(int(np.ceil(wstep / step)) | 1, 1))
    if size == [1, 1, 1]:
        return tissue
    low = ndi.minimum_filter(np.asarray(ctx.hu), size=tuple(size))
    return tissue & (g.to_work(low) > P.body_hu)


def _drop_limbs(body: np.ndarray, cores: np.ndarray, ctx: Context) -> np.ndarray:
    """Remove arms lying against the trunk (step 5 of the module docstring); ``body`` itself
    when there is none. ``cores``: the opened tissue, in which an air seam separates an arm
    from the trunk."""
    dz, dy, dx = ctx.spacing
    cm2 = dy * dx / 100.0
    bone = ctx.w > P.limb_bone_hu
    xs = ctx.grid.x
    out = body.copy()
    dropped = False
    for k in range(body.shape[0]):
        lab, n = ndi.label(cores[k] & body[k])
        if n < 2:
            continue
        area = np.bincount(lab.ravel(), minlength=n + 1)[1:] * cm2
        bone_a = np.bincount(lab[bone[k]].ravel(), minlength=n + 1)[1:] * cm2
        main = int(np.argmax(area)) + 1
        cols = (lab == main).any(axis=0)
        x0, x1 = xs[cols].min(), xs[cols].max()
        xmid, half = 0.5 * (x0 + x1), 0.5 * (x1 - x0)
        xsum = np.bincount(lab.ravel(), weights=np.broadcast_to(xs, lab.shape).ravel(), minlength=n + 1)[1:]
        limb = np.zeros(n + 1, bool)
        for i in range(n):
            if i + 1 == main or not P.limb_min_cm2 <= area[i] <= P.limb_max_frac * area[main - 1]:
                continue
            xc = xsum[i] / (area[i] / cm2)
            if bone_a[i] >= P.limb_bone_cm2 and abs(xc - xmid) > P.limb_lateral_frac * half:
                limb[i + 1] = True
        if not limb.any():
            continue
        dropped = True
        seeds = (lab == main) | limb[lab]
        idx = ndi.distance_transform_edt(~seeds, sampling=(dy, dx), return_distances=False, return_indices=True)
        out[k] &= ~limb[lab[idx[0], idx[1]]]
    if not dropped:
        return body
    lab, n = label(out)
    return lab == int(np.argmax(component_sizes(lab, n))) + 1 if n else body


def _fill_inside(body: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice; a background region touching the image border is also inside
    when it is not pure air (mean > -900 HU) and the body makes at least 75 % of its rim away
    from the border (a lung cut by a small field of view), not e.g. the gap between the back and
    a couch mattress. A region that reaches across the image (touches its left and right, or
    its top and bottom, border) must also lie on both sides of ``body_inside_between_frac`` of
    it along its image columns (body in front and behind) or rows (left and right): where the
    image's left and right edges both cut the body, the couch gap is rimmed by the body
    everywhere but at the image's posterior edge, with body only in front of it."""
    out = np.zeros_like(body)
    edge = np.zeros(body.shape[1:], bool)
    edge[0, :] = edge[-1, :] = True
    edge[:, 0] = edge[:, -1] = True
    for k in range(body.shape[0]):
        b = body[k]
        if not b.any():
            continue
        bg, n = ndi.label(~b)
        if n == 0:
            out[k] = b
            continue
        touching = np.unique(bg[edge & (bg > 0)])
        inside = np.ones(n + 1, bool)
        if len(touching):
            means = np.atleast_1d(ndi.mean(w[k], bg, touching))
            objs = ndi.find_objects(bg)
            for t, m in zip(touching, means):
                inside[t] = False
                if m <= P.body_outside_air_hu:
                    continue
                sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in objs[t - 1])
                comp = bg[sl] == t
                rim = ndi.binary_dilation(comp) & ~comp & ~edge[sl]
                if rim.any() and b[sl][rim].mean() >= P.body_inside_rim_frac:
                    inside[t] = not _across(bg == t) or _between(b, bg == t) >= P.body_inside_between_frac
        inside[0] = True
        out[k] = inside[bg] | b
    return out


def _across(region: np.ndarray) -> bool:
    """The 2D region touches two opposite borders of the image."""
    return bool((region[:, 0].any() and region[:, -1].any()) or (region[0].any() and region[-1].any()))


def _between(b: np.ndarray, region: np.ndarray) -> float:
    """The larger of the fractions of ``region`` with body ``b`` on both sides along its column
    (in front and behind) and along its row (left and right)."""
    ap = np.maximum.accumulate(b, axis=0) & np.maximum.accumulate(b[::-1], axis=0)[::-1]
    lr = np.maximum.accumulate(b, axis=1) & np.maximum.accumulate(b[:, ::-1], axis=1)[:, ::-1]
    return max(float(ap[region].mean()), float(lr[region].mean()))


def body_depth(ctx: Context) -> np.ndarray:
    """In-plane depth (mm) of every trunk voxel below the skin (0 outside the trunk)."""

    def f(c):
        # slice by slice (in-plane distances only: half the work of a 3D transform); a slice that
        # the body fills entirely has no skin in it: deep everywhere
        b = body_work(c)
        _, dy, dx = c.spacing
        out = np.zeros(b.shape, np.float32)
        for k in range(b.shape[0]):
            if b[k].all():
                out[k] = np.float32(1e6)
            elif b[k].any():
                out[k] = ndi.distance_transform_edt(b[k], sampling=(dy, dx))
        return out

    return ctx.get("body_depth", f)


def segment_body(ctx: Context) -> np.ndarray:
    """Body mask on the image grid: the whole patient, limbs included (:func:`patient_work`)."""
    return ctx.grid.to_image(patient_work(ctx))
