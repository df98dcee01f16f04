"""Liver, kidneys and stomach from anatomical priors (relative to the body, lungs and spine found
first) plus intensity and shape.

Common ground
-------------
- The upper abdomen is below the diaphragm: when lungs are in the image and reach its bottom
  slice with most of their area, the CT ends above the diaphragm and these organs are reported
  as not found. Without lungs (abdominal scans) the whole volume is searched.
- Left/right comes from the midline (the spinal canal, else the body centre) in the canonical
  frame (x increases to the patient's left).
- Intensities are estimated from the image (the mode of the soft-tissue histogram in the
  expected region), so plain and contrast-enhanced CT both work within limits stated per organ.
- The spinal canal must be found in the abdominal slices: a head, neck or limb CT has no liver,
  kidneys or stomach and is reported as such.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import SegmentationError
from ._common import (
    Context,
    bbox,
    body_depth,
    close_mm,
    component_sizes,
    dilate_mm,
    erode_mm,
    fill_holes_2d,
    label,
    not_found,
    open_mm,
)
from .body import body_work
from .lungs import lungs_work
from .spine import canal_track, midline_x

LIVER_OPEN_MM = 8.0


def _smooth(ctx: Context) -> np.ndarray:
    """Mean-filtered HU on the working grid (3x3x3), for intensity classification."""
    return ctx.get("smooth", lambda c: ndi.uniform_filter(c.w, size=3))


def _bone(ctx: Context) -> np.ndarray:
    def f(c):
        return dilate_mm(c.w > 200.0, 3.0, c.spacing, planar=True) & body_work(c)

    return ctx.get("bone_d", f)


def _cage(ctx: Context) -> np.ndarray:
    """Inside of the bony cage: per slice, the convex hull of the bone (> 200 HU) of the slices
    within 40 mm, eroded by 3 mm. Abdominal-wall muscle lies outside it in the upper abdomen."""

    def f(c):
        from skimage.morphology import convex_hull_image

        bone = (c.w > 200.0) & body_work(c)
        z = c.grid.z
        out = np.zeros_like(bone)
        for k in range(len(z)):
            sel = np.abs(z - z[k]) <= 40.0
            proj = bone[sel].any(axis=0)
            if proj.sum() >= 3:
                out[k] = convex_hull_image(proj)
        return erode_mm(out, 3.0, c.spacing, planar=True)

    return ctx.get("cage", f)


def _near_spine(ctx: Context, radius: float) -> np.ndarray:
    """Voxels within ``radius`` mm (in-plane) of the vertebral body's centre (30 mm anterior of
    the tracked canal; interpolated along z, nearest value beyond the track)."""
    tr = canal_track(ctx)
    ok = np.isfinite(tr["x"])
    z = ctx.grid.z
    cx = np.interp(z, z[ok], tr["x"][ok])
    cy = np.interp(z, z[ok], tr["y"][ok]) - 30.0
    X = ctx.grid.x[None, None, :]
    Y = ctx.grid.y[None, :, None]
    return (X - cx[:, None, None]) ** 2 + (Y - cy[:, None, None]) ** 2 <= radius**2


def _lung_near(ctx: Context) -> np.ndarray:
    """Lungs dilated by 5 mm in-plane."""
    return ctx.get("lung_near", lambda c: dilate_mm(_lung_any(c), 5.0, c.spacing, planar=True))


def _lung_any(ctx: Context) -> np.ndarray:
    left, right = lungs_work(ctx)
    return left | right


def _check_abdomen(ctx: Context, organ: str) -> tuple[np.ndarray, float | None]:
    """Raise unless the image can hold upper-abdominal organs. Returns the lung mask (working
    grid) and the z (mm) of the lung bases (None when no lungs are in the image)."""
    tr = canal_track(ctx)
    if not np.isfinite(tr["x"]).any():
        raise not_found(organ, "no spinal canal was found, so this is not a CT of the trunk")
    lung = _lung_any(ctx)
    area = lung.sum(axis=(1, 2)).astype(float)
    if area.max() == 0:
        return lung, None
    if area[0] > 0.5 * area.max():
        raise not_found(organ, "the lungs reach the bottom of the image: it ends above the diaphragm")
    k = int(np.nonzero(area > 0.05 * area.max())[0][0])
    return lung, float(ctx.grid.z[k])


def _mode(values: np.ndarray, lo: float, hi: float) -> float:
    v = values[(values >= lo) & (values <= hi)]
    if v.size < 50:
        return float("nan")
    hist, edges = np.histogram(v, bins=int(hi - lo) // 2, range=(lo, hi))
    hist = ndi.gaussian_filter1d(hist.astype(float), 2.0)
    i = int(np.argmax(hist))
    return float(0.5 * (edges[i] + edges[i + 1]))


# ----------------------------------------------------------------------------------- liver


def liver_work(ctx: Context) -> np.ndarray:
    return ctx.get("liver", _liver_work)


def _liver_work(ctx: Context) -> np.ndarray:
    """Liver on the working grid.

    Method: the liver is the large, homogeneous soft-tissue organ in the right upper abdomen.
    (1) Seed zone: the patient's right half of the body (x < midline - 20 mm), anterior of the
    canal + 20 mm, in the slices below the diaphragm, 15 mm inside the skin. (2) Liver HU = the
    mode of the median-filtered HU in [0, 250] there (plain CT about 50, portal-venous about 100).
    (3) Candidate = HU within [mode - 30, mode + 35], not bone, not lung, not within 8 mm of the
    skin. (4) A 6 mm opening cuts thin bridges to the neighbours (heart, spleen, stomach wall,
    muscle, kidney); the component with the most seed-zone voxels is the liver, if it holds at
    least 100 cc. (5) Closing (5 mm) and hole filling per slice put the vessels back, and a 1-voxel
    dilation within [mode - 60, mode + 80] HU restores the boundary lost to the opening.

    Failure modes: neighbours of the same density joined over a broad contact (spleen in the left
    upper quadrant wrapping round, heart in contact with the dome, a mass); a fatty liver far
    below the spleen's HU is still found (the mode is the liver's) but the spleen is then excluded
    only by the opening and position; arterial-phase CT with heterogeneous enhancement.
    """
    organ = "liver"
    sm = _smooth(ctx)
    body = body_work(ctx)
    gx, gy, gz = ctx.grid.x, ctx.grid.y, ctx.grid.z
    lung, z_base = _check_abdomen(ctx, organ)
    xm = midline_x(ctx)
    cy = float(np.nanmedian(canal_track(ctx)["y"]))
    depth = body_depth(ctx)
    X = gx[None, None, :]
    Y = gy[None, :, None]
    Z = gz[:, None, None]
    lung_d = _lung_near(ctx)
    bone = _bone(ctx)
    seed = (depth > 15.0) & (X < xm - 20.0) & (Y < cy + 20.0) & ~bone & ~lung_d
    if z_base is not None:
        seed &= (Z > z_base - 50.0) & (Z < z_base + 30.0)
    mu = _mode(sm[seed], 0.0, 250.0)
    if not np.isfinite(mu):
        raise not_found(organ, "no soft tissue in the right upper abdomen")
    region = (depth > 8.0) & ~bone & ~lung_d & (X < xm + 100.0) & (Y < cy + 60.0) & _cage(ctx)
    region &= ~_near_spine(ctx, 30.0)
    box = bbox(region)
    if box is None:
        raise not_found(organ, "no soft tissue in the right upper abdomen")
    sp = ctx.spacing
    smb, regb, seedb = sm[box], region[box], seed[box]
    cand = (smb >= mu - 30.0) & (smb <= mu + 35.0) & regb
    opened = open_mm(cand, LIVER_OPEN_MM, sp)
    lab, n = label(opened)
    if n == 0:
        raise not_found(organ, f"no homogeneous tissue near {mu:.0f} HU in the right upper abdomen")
    in_seed = np.bincount(lab[seedb].ravel(), minlength=n + 1)[1:]
    liver = lab == int(np.argmax(in_seed)) + 1
    vol = liver.sum() * ctx.grid.voxel_cc
    if vol < 100.0:
        raise not_found(organ, f"the largest candidate in the right upper abdomen is only {vol:.0f} cc")
    if float(gx[box[2]][np.nonzero(liver)[2]].mean()) > xm:
        raise not_found(organ, "the candidate organ lies left of the midline")
    # undo the opening within the candidate (bounded, so bridges do not reopen), then a wider
    # window within 10 mm of that core (enhancement is uneven in contrast CT)
    wide = (smb >= mu - 40.0) & (smb <= mu + 40.0) & regb
    for radius, allowed in ((LIVER_OPEN_MM, cand), (10.0, wide)):
        lab, n = label(dilate_mm(liver, radius, sp) & allowed)
        liver = np.isin(lab, np.unique(lab[liver & (lab > 0)]))
    liver = close_mm(open_mm(liver, 3.0, sp), 5.0, sp)
    liver = fill_holes_2d(liver)
    out = np.zeros_like(body)
    out[box] = liver
    return out & body


def segment_liver(ctx: Context) -> np.ndarray:
    return ctx.grid.to_image(liver_work(ctx))


# ----------------------------------------------------------------------------------- kidneys

#: HU windows tried for the kidney parenchyma: plain CT (kidney darker than muscle and liver) and
#: contrast-enhanced CT (cortex and medulla brighter than everything but bone and vessels).
KIDNEY_WINDOWS = ((-15.0, 42.0), (120.0, 400.0))


def kidneys_work(ctx: Context) -> dict:
    return ctx.get("kidneys", _kidneys_work)


def _kidneys_work(ctx: Context) -> dict:
    """Kidneys on the working grid: ``{"left": mask or None, "right": mask or None}``.

    Method: the kidneys are retroperitoneal, one each side of the spine, 35-120 mm from the
    midline, from 75 mm anterior to 5 mm posterior of the canal, surrounded by perirenal fat,
    outside the liver (found first).
    For each HU window of :data:`KIDNEY_WINDOWS` (plain, then contrast), the smoothed image
    within the window and the side's search region is opened (4 mm ball) and cut into 3D
    components (6 mm ball opening); a component is a kidney candidate when it holds 40-450 cc, is compact (at least
    15 % of its bounding box), is not longer than 170 mm craniocaudally and not wider than 110 mm.
    The best candidate is kept; its score multiplies compactness, closeness to 150 cc, closeness
    to the expected position in-plane (75 mm from the midline, 25 mm anterior of the canal) and,
    when the liver was found, along z (centre 40 mm above the liver's lower end); the opening is undone
    within the window (6 mm), then holes are filled slice by slice and a 3 mm closing adds the
    sinus and the other half of a corticomedullary pattern.

    Failure modes: a kidney touching the liver or spleen at the same HU (plain CT with a fatty
    liver; nephrographic phase close to the spleen's HU); atrophic (< 40 cc), horseshoe or
    transplant (pelvic) kidneys are not found; large cysts are left out unless enclosed.
    """
    organ = "kidneys"
    sm = _smooth(ctx)
    _check_abdomen(ctx, organ)
    gx, gy = ctx.grid.x, ctx.grid.y
    xm = midline_x(ctx)
    cy = float(np.nanmedian(canal_track(ctx)["y"]))
    depth = body_depth(ctx)
    X = gx[None, None, :]
    Y = gy[None, :, None]
    base = (depth > 8.0) & ~_bone(ctx) & ~_lung_near(ctx) & (Y > cy - 58.0) & (Y < cy + 5.0)
    base &= ~_near_spine(ctx, 32.0)
    z_expect = None
    try:
        liver = liver_work(ctx)
        base &= ~dilate_mm(liver, 3.0, ctx.spacing)
        z_expect = float(ctx.grid.z[np.nonzero(liver.any(axis=(1, 2)))[0][0]]) + 40.0
    except SegmentationError:
        pass
    sp = ctx.spacing
    vcc = ctx.grid.voxel_cc
    out: dict = {"left": None, "right": None}
    sides = (("right", (X < xm - 35.0) & (X > xm - 120.0)), ("left", (X > xm + 35.0) & (X < xm + 120.0)))
    for side, sel in sides:
        region = base & sel
        box = bbox(region)
        if box is None:
            continue
        best, best_score = None, 0.0
        for lo, hi in KIDNEY_WINDOWS:
            cand = (sm[box] >= lo) & (sm[box] <= hi) & region[box]
            opened = open_mm(cand, 6.0, sp)
            lab, n = label(opened)
            if n == 0:
                continue
            sizes = component_sizes(lab, n) * vcc
            for i, sl in enumerate(ndi.find_objects(lab)):
                if not 40.0 <= sizes[i] <= 450.0:
                    continue
                ext = [(s.stop - s.start) * d for s, d in zip(sl, sp)]
                if ext[0] > 170.0 or max(ext[1], ext[2]) > 110.0:
                    continue
                fill = sizes[i] / (np.prod(ext) / 1000.0)
                if fill < 0.15:
                    continue
                comp = lab[sl] == i + 1
                if lo > 100.0 and float(np.mean(sm[box][sl][comp])) < 140.0:
                    continue
                zz, yy, xx = (np.nonzero(comp.any(axis=(1, 2)))[0], np.nonzero(comp.any(axis=(0, 2)))[0],
                              np.nonzero(comp.any(axis=(0, 1)))[0])
                zc = float(ctx.grid.z[box[0]][sl[0]][zz].mean())
                yc = float(gy[box[1]][sl[1]][yy].mean())
                xc = float(gx[box[2]][sl[2]][xx].mean())
                score = fill * np.exp(-abs(np.log(sizes[i] / 150.0)))
                score *= np.exp(-(((abs(xc - xm) - 75.0) / 30.0) ** 2) - ((yc - (cy - 25.0)) / 25.0) ** 2)
                if z_expect is not None:
                    score *= np.exp(-(((zc - z_expect) / 60.0) ** 2))
                if score > best_score:
                    best_score = score
                    comp = lab == i + 1
                    grown = dilate_mm(comp, 6.0, sp) & cand
                    lab2, _ = label(grown)
                    comp = np.isin(lab2, np.unique(lab2[comp & (lab2 > 0)]))
                    best = (box, comp)
        if best is not None:
            box, comp = best
            comp = fill_holes_2d(close_mm(comp, 3.0, sp))
            m = np.zeros(sm.shape, bool)
            m[box] = comp
            out[side] = m
    return out


def segment_kidney(ctx: Context, side: str) -> np.ndarray:
    m = kidneys_work(ctx)[side]
    if m is None:
        raise not_found(
            f"{side} kidney",
            "no compact 40-450 cc organ of kidney density beside the spine on that side",
        )
    return ctx.grid.to_image(m)


# ----------------------------------------------------------------------------------- stomach


def segment_stomach(ctx: Context) -> np.ndarray:
    raise not_found("stomach", "not implemented yet")


__all__ = ["segment_liver", "segment_kidney", "segment_stomach", "component_sizes"]
