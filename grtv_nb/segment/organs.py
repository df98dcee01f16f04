"""The organ names of automatic segmentation: the supported organs, their accepted other
spellings, and :func:`normalise_organ`. Imported by :mod:`grtv_nb.segment` and its U-Net module
(so neither imports the other for the names)."""

from __future__ import annotations

from ..errors import SegmentationError

#: Organ names accepted by :func:`segment_organ`.
SUPPORTED_ORGANS: tuple[str, ...] = (
    "body",
    "llung",
    "rlung",
    "spinal_cord",
    "liver",
    "lkidney",
    "rkidney",
    "stomach",
)

#: Other spellings accepted for the supported organs.
ORGAN_ALIASES = {
    "external": "body",
    "lung_left": "llung",
    "left_lung": "llung",
    "lung_l": "llung",
    "lung_right": "rlung",
    "right_lung": "rlung",
    "lung_r": "rlung",
    "spinalcord": "spinal_cord",
    "spinal_canal": "spinal_cord",
    "spinalcanal": "spinal_cord",
    "cord": "spinal_cord",
    "kidney_left": "lkidney",
    "kidney_l": "lkidney",
    "kidney_r": "rkidney",
    "left_kidney": "lkidney",
    "kidney_right": "rkidney",
    "right_kidney": "rkidney",
}

def normalise_organ(organ: str) -> str:
    """The canonical organ name of ``organ`` (case-insensitive, aliases accepted)."""
    if not isinstance(organ, str):
        raise SegmentationError(
            f"organ must be a string, one of {', '.join(SUPPORTED_ORGANS)}; got {organ!r}"
        )
    key = organ.strip().lower().replace(" ", "_").replace("-", "_")
    key = ORGAN_ALIASES.get(key, key)
    if key not in SUPPORTED_ORGANS:
        raise SegmentationError(
            f"unknown organ {organ!r}: automatic segmentation supports {', '.join(SUPPORTED_ORGANS)}"
        )
    return key
