"""Validation of user-supplied volumes (masks as 0..255 volumes, doses in cGy): each check names
the argument and says what is wrong, before anything in the study changes."""

from __future__ import annotations

import numpy as np

from .errors import ValidationError, warn


def _as_volume(arr, shape: tuple[int, int, int], what: str) -> np.ndarray:
    try:
        a = np.asarray(arr)
    except Exception as exc:
        raise ValidationError(f"{what} is not an array: {exc}") from exc
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValidationError(f"{what} must be a numeric array, got dtype {a.dtype}")
    if a.ndim != 3:
        raise ValidationError(f"{what} must be a 3D array [z, y, x], got {a.ndim}D shape {a.shape}")
    if a.shape != tuple(shape):
        raise ValidationError(f"{what} has shape {a.shape}; the image is {tuple(shape)} (z, y, x)")
    return a


def mask_from_raw(roi_raw, shape: tuple[int, int, int], *, name: str = "") -> np.ndarray:
    """Boolean mask from a 0..255 volume (inside: value >= 128), as setNewROI takes it.

    Raises ValidationError for a wrong shape or dtype, NaN, or values outside 0..255. An all-zero
    volume is accepted with a warning (the ROI then has zero volume).
    """
    a = _as_volume(roi_raw, shape, "roiRaw")
    if a.dtype == bool:
        mask = a.copy()
    else:
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise ValidationError("roiRaw contains NaN or infinite values")
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > 255:
            raise ValidationError(f"roiRaw values must be within 0..255, got {lo}..{hi}")
        mask = a >= 128
    if not mask.any():
        warn(f"roiRaw for ROI '{name}' has no value >= 128: the ROI is empty (zero volume)")
    return mask


def dose_from_cgy(dose_raw, shape: tuple[int, int, int]) -> np.ndarray:
    """Dose in Gy (float32) from a cGy volume (0..65535), as setDose takes it."""
    a = _as_volume(dose_raw, shape, "doseRaw")
    if a.dtype == bool:
        raise ValidationError("doseRaw must be numeric cGy values, got a boolean array")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValidationError("doseRaw contains NaN or infinite values")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > 65535:
        raise ValidationError(f"doseRaw must be cGy within 0..65535, got {lo}..{hi}")
    return (a.astype(np.float32) / np.float32(100.0)).astype(np.float32)


def as_bool_mask(mask, shape: tuple[int, ...], name: str = "mask", what: str = "the grid") -> np.ndarray:
    """A mask as bool of the given shape; integer masks count nonzero voxels as inside."""
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ValidationError(f"{name} has shape {m.shape}, {what} has shape {tuple(shape)}")
    if m.dtype == bool:
        return m
    if np.issubdtype(m.dtype, np.integer):
        return m != 0
    raise ValidationError(f"{name} must be boolean (or integer, nonzero = inside), got {m.dtype}")


def validate_color(color) -> tuple[int, int, int]:
    """Validate an ROI colour: three ints 0..255 (list, tuple or array)."""
    try:
        arr = np.asarray(color)
    except Exception as exc:  # pragma: no cover
        raise ValidationError(f"roiColor {color!r} is not a sequence of 3 ints") from exc
    if arr.shape != (3,) or not np.issubdtype(arr.dtype, np.number):
        raise ValidationError(f"roiColor must be 3 numbers (R, G, B), got {color!r}")
    if np.any(arr != np.round(arr)) or np.any(arr < 0) or np.any(arr > 255):
        raise ValidationError(f"roiColor values must be integers 0..255, got {color!r}")
    return tuple(int(x) for x in arr)  # type: ignore[return-value]
