"""Body outline (external contour) of a CT by thresholding and morphology in mm.

Method (on the ~2 mm working grid)
----------------------------------
1. Tissue = HU > -500 (fat, soft tissue and bone; air, lung and low-density foam are below).
2. An axial opening with a 6 mm disk detaches thin structures touching the patient: couch shells,
   thermoplastic masks, cables, blankets.
3. The largest 3D connected component is the body (as ``plastimatch segment`` does).
4. The opening is undone: tissue within 8 mm of the kept component and connected to it is added
   back, so the skin surface is the threshold surface, not a smoothed one.
5. Holes are filled slice by slice, so lungs, airways and bowel gas are inside the body. A region
   touching the image border that is not pure air (mean HU > -900) and is mostly (75 % of its
   rim) surrounded by the body, e.g. a lung cut by a small field of view, also counts as inside.

Assumptions and failure modes
-----------------------------
- CT in HU with air at about -1000 outside the patient. A patient lying on a thick dense
  (> -500 HU) mattress thicker than 12 mm whose contact with the skin is broad may keep part of it.
- Immobilisation masks in contact with the skin survive within 8 mm of the skin (step 4).
- Air cavities open to the outside in the slice plane (nostrils, mouth) stay outside.
- Parts of the patient separated from the trunk by air over the whole scan (an arm lying apart)
  are left out; an arm touching the trunk is included.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._common import Context, component_sizes, dilate_mm, label, not_found, open_mm

BODY_HU = -500.0
OPEN_MM = 6.0
RECON_MM = 8.0


def body_work(ctx: Context) -> np.ndarray:
    """Filled body mask on the working grid (cached in the context)."""
    return ctx.get("body", _body_work)


def _body_work(ctx: Context) -> np.ndarray:
    w = ctx.w
    dz, dy, dx = ctx.spacing
    tissue = w > BODY_HU
    opened = open_mm(tissue, OPEN_MM, ctx.spacing, planar=True)
    lab, n = label(opened)
    if n == 0:
        raise not_found("body", "no tissue above -500 HU")
    sizes = component_sizes(lab, n)
    body = lab == int(np.argmax(sizes)) + 1
    if body.sum() * ctx.grid.voxel_cc < 20.0:
        raise not_found("body", "the largest tissue region is smaller than 20 cc")
    # undo the opening: tissue within 8 mm of the kept body and connected to it
    near = dilate_mm(body, RECON_MM, ctx.spacing, planar=True) & tissue
    lab, n = label(near)
    body = np.isin(lab, np.unique(lab[body & (lab > 0)]))
    return _fill_inside(body, w)


def _fill_inside(body: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice; a background region touching the image border is also inside
    when it is not pure air (mean > -900 HU) and the body makes at least 75 % of its rim away
    from the border (a lung cut by a small field of view), not e.g. the gap between the back and
    a couch mattress."""
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
                if m <= -900.0:
                    continue
                sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in objs[t - 1])
                comp = bg[sl] == t
                rim = ndi.binary_dilation(comp) & ~comp & ~edge[sl]
                if rim.any() and b[sl][rim].mean() >= 0.75:
                    inside[t] = True
        inside[0] = True
        out[k] = inside[bg] | b
    return out


def segment_body(ctx: Context) -> np.ndarray:
    """Body mask on the image grid."""
    return ctx.grid.to_image(body_work(ctx))
