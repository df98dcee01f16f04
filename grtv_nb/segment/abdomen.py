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


def segment_kidney(ctx: Context, side: str) -> np.ndarray:
    raise not_found(f"{side} kidney", "not implemented yet")


# ----------------------------------------------------------------------------------- stomach


def segment_stomach(ctx: Context) -> np.ndarray:
    raise not_found("stomach", "not implemented yet")


__all__ = ["segment_liver", "segment_kidney", "segment_stomach", "component_sizes"]
