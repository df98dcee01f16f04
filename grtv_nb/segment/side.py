"""Which side of the trunk an image holds, for images cut laterally past the spine.

An image whose one edge cuts the trunk (the body on its edge column spans
``cage_cut_depth_frac`` of its anterior-posterior extent) holds the other side of the patient
(:func:`held_side`); without the spinal canal in it (:func:`image_side`) the midline is placed
from the body (:func:`side_midline`). The abdominal organs (:mod:`.abdomen`) and the pelvis
landmark (:mod:`.landmarks`) share these answers, cached on the :class:`._common.Context`.
"""

from __future__ import annotations

import numpy as np

from ._common import Context
from .body import body_work
from .params import PARAMS as P
from .spine import canal_track, midline_x


def image_side(ctx: Context) -> str | None:
    """``"right"`` or ``"left"`` where no spinal canal was found and the image holds that side of the
    patient's trunk only: the image's edge on the other side cuts the trunk (the body on its edge
    column spans ``cage_cut_depth_frac`` of its anterior-posterior extent) on at least
    ``side_cut_frac`` of the slices with a body, and this side's edge on at most ``1 -
    side_cut_frac`` of them (a field of view cut laterally past the spine). The patient's left and
    right are the image's frame (x to the patient's left), so the side is known; only the midline's
    place is not (:func:`side_midline`). None otherwise (the canal was found, or the body is not cut on
    one side only)."""
    if np.isfinite(canal_track(ctx)["x"]).any():
        return None
    return held_side(ctx)


def held_side(ctx: Context) -> str | None:
    """``"right"`` or ``"left"``: the patient's side of the trunk that the image holds, where one
    of its edges cuts the trunk (see :func:`image_side`, which also needs the canal absent);
    None where neither or both do."""
    return ctx.get("abd_held_side", _held_side)


def edge_cut(ctx: Context, side: str) -> np.ndarray:
    """Per working slice: the image's edge on the patient's ``side`` (``"left"``: the last column,
    x increasing to the patient's left; ``"right"``: the first) cuts the trunk: the body on the
    edge column spans ``cage_cut_depth_frac`` of its anterior-posterior extent."""
    body = body_work(ctx)
    ap = np.maximum(body.any(axis=2).sum(axis=1), 1)
    return body[:, :, -1 if side == "left" else 0].sum(axis=1) >= P.cage_cut_depth_frac * ap


def _held_side(ctx: Context) -> str | None:
    n = int(body_work(ctx).any(axis=(1, 2)).sum())
    if n == 0:
        return None
    cut_left, cut_right = edge_cut(ctx, "left"), edge_cut(ctx, "right")
    few = (1.0 - P.side_cut_frac) * n
    if cut_left.sum() >= P.side_cut_frac * n and cut_right.sum() <= few:
        return "right"
    if cut_right.sum() >= P.side_cut_frac * n and cut_left.sum() <= few:
        return "left"
    return None


def side_midline(ctx: Context) -> float:
    """The midline x (mm) of an image holding one side of the trunk (:func:`held_side`): the
    trunk's half-width (``side_halfwidth_frac`` of its anterior-posterior extent) from the lateral
    skin, medians over the slices whose edge cuts the trunk; without the canal in the image, at
    least ``side_midline_mm`` beyond the cut edge (with it, the edge may lie on either side of the
    midline). The canal's midline (:func:`.spine.midline_x`) where no edge cuts the trunk."""
    return ctx.get("abd_side_midline", _side_midline)


def _side_midline(ctx: Context) -> float:
    side = held_side(ctx)
    if side is None:
        return midline_x(ctx)
    body = body_work(ctx)
    gx, gy = ctx.grid.x, ctx.grid.y
    cut = edge_cut(ctx, "left" if side == "right" else "right")  # the edge on the side not held
    skin, half = [], []
    for k in np.nonzero(cut)[0]:
        xs = gx[body[k].any(axis=0)]
        ys = gy[body[k].any(axis=1)]
        skin.append(float(xs.min() if side == "right" else xs.max()))
        half.append(P.side_halfwidth_frac * float(ys.max() - ys.min()))
    sign = 1.0 if side == "right" else -1.0
    est = float(np.median(skin)) + sign * float(np.median(half))
    if image_side(ctx) is None:
        return est  # the canal is in the image: the edge may lie on either side of the midline
    # no canal in the image: the midline lies beyond the edge that cuts the trunk
    edge = float(gx[-1] if side == "right" else gx[0]) + sign * P.side_midline_mm
    return max(edge, est) if side == "right" else min(edge, est)
