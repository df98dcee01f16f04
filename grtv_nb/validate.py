"""Validation of user-supplied values: volumes (masks as 0..255 volumes, doses in cGy), colours,
ROI names (:func:`check_roi_name`, the one rule for readers, ``add_roi`` and the export; an ROI
found by index or name, :func:`roi_position`; the name and colour of a new or renamed ROI,
:func:`check_new_roi`, :func:`check_free_roi_name`), and the count of values a writer must clip to
an output dtype. Each check names the argument and says what is wrong, before anything in the
study changes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .display import default_color
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
    """Boolean mask from a volume, as setNewROI takes it.

    The rule: a boolean array is the mask itself; a numeric array whose values are all 0 or 1 (the
    commonest mask a user has) is inside where it is 1; any other 0..255 volume is inside where
    the value is >= 128 (the original's 0/255 convention).

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
        # a 0/1 volume is a mask (values >= 128 would make it empty)
        mask = a != 0 if hi <= 1 and (np.issubdtype(a.dtype, np.integer) or np.isin(a, (0, 1)).all()) else a >= 128
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


def count_out_of_range(values, dtype) -> int:
    """How many of ``values`` do not fit ``dtype`` as the writers convert them: for an integer
    ``dtype``, values whose rounding (half away from zero) falls outside its range, and NaN (they
    are clipped, NaN written as 0); for a float ``dtype``, finite values beyond its largest
    magnitude (they would become infinite). Booleans always fit."""
    dt = np.dtype(dtype)
    a = np.asarray(values)
    if a.dtype == np.bool_ or a.size == 0 or not (np.issubdtype(a.dtype, np.number)):
        return 0
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        if np.issubdtype(a.dtype, np.integer):
            ai = np.iinfo(a.dtype)
            if ai.min >= info.min and ai.max <= info.max:
                return 0
            return int(np.count_nonzero((a < info.min) | (a > info.max)))
        inside = (a > info.min - 0.5) & (a < info.max + 0.5)  # NaN compares False: counted
        return int(a.size - np.count_nonzero(inside))
    if np.issubdtype(dt, np.floating) and np.issubdtype(a.dtype, np.floating) and a.dtype.itemsize > dt.itemsize:
        big = np.finfo(dt).max
        return int(np.count_nonzero(np.isfinite(a) & (np.abs(a) > big)))
    return 0


def warn_clipped(count: int, total: int, dtype, call: str) -> None:
    """The one warning of a call that clipped ``count`` of ``total`` values to ``dtype``."""
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        what = f"outside {dt.name}'s range {info.min}..{info.max} (or NaN) and were clipped to it (NaN to 0)"
    else:
        what = f"beyond {dt.name}'s range and became infinite"
    warn(f"{call}: {count} of {total} values lie {what}")


#: longest ROI name an RTSTRUCT holds (ROIName is a DICOM LO: 64 characters)
ROI_NAME_MAX_CHARS = 64
_ROI_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_roi_name(name, *, fix: bool = False) -> str:
    """An ROI name as an RTSTRUCT can hold it (ROIName, DICOM LO): a non-empty string of at most
    :data:`ROI_NAME_MAX_CHARS` characters without backslash (the DICOM value separator) or
    control characters (NUL, newline, tab, ...); leading and trailing spaces are dropped (they
    are not significant in LO).

    With ``fix=False`` (names a user gives: ``add_roi``, ``setNewROI``) a bad name raises a
    :class:`~grtv_nb.errors.ValidationError` saying what is wrong. With ``fix=True`` (names
    read from files, and the export's last check) it is repaired instead, with a
    :class:`~grtv_nb.errors.GRTVWarning`: backslashes become ``/``, each run of control
    characters one space, the name is cut to 64 characters, and an empty result becomes
    ``"ROI"``.
    """
    if not isinstance(name, str):
        if fix and name is not None:
            name = str(name)
        else:
            raise ValidationError(f"ROI name must be a string, got {type(name).__name__} {name!r}")
    problems = []
    if "\\" in name:
        problems.append("a backslash")
    if _ROI_NAME_CONTROL.search(name):
        problems.append("control characters")
    clean = _ROI_NAME_CONTROL.sub(" ", name.replace("\\", "/"))
    clean = re.sub(r" {2,}", " ", clean).strip() if problems else clean.strip()
    if len(clean) > ROI_NAME_MAX_CHARS:
        problems.append(f"{len(clean)} characters, more than the {ROI_NAME_MAX_CHARS} characters an LO holds")
        clean = clean[:ROI_NAME_MAX_CHARS].rstrip()
    if not clean:
        problems.append("no visible character")
        clean = "ROI"
    if problems:
        if not fix:
            raise ValidationError(f"ROI name {name!r} can't be written to an RTSTRUCT (ROIName, DICOM LO): it has "
                                  + ", ".join(problems))
        warn(f"ROI name {name!r} has " + ", ".join(problems) + f"; it is used as {clean!r}")
    return clean


def roi_position(names: Sequence[str], roi: int | str) -> int:
    """Index of an ROI among ``names`` given its index or name (exact match first, then
    case-insensitive); a :class:`~grtv_nb.errors.ValidationError` naming the ROIs otherwise."""
    names = [str(n) for n in names]
    if isinstance(roi, int | np.integer):
        i = int(roi)
        if not 0 <= i < len(names):
            raise ValidationError(f"ROI index {i} is out of range (0..{len(names) - 1})")
        return i
    if roi in names:
        return names.index(roi)
    low = [n.lower() for n in names]
    if str(roi).lower() in low:
        return low.index(str(roi).lower())
    raise ValidationError(f"no ROI named '{roi}'; ROIs: {', '.join(names) or 'none'}")


def check_new_roi(names: Sequence[str], name: Any, color: Any = None) -> tuple[str, tuple[int, int, int]]:
    """``(name, colour)`` of an ROI to add after ``names``: the name checked as an RTSTRUCT holds it
    (:func:`grtv_nb.validate.check_roi_name`) and not taken, the colour checked (default: the next of
    :func:`grtv_nb.display.default_color`); a :class:`~grtv_nb.errors.ValidationError` otherwise."""
    name = check_free_roi_name(names, name)
    return name, validate_color(color if color is not None else default_color(len(names)))


def check_free_roi_name(names: Sequence[str], name: Any, *, renaming: int | None = None) -> str:
    """``name`` checked as an RTSTRUCT holds it (:func:`grtv_nb.validate.check_roi_name`) and not used
    by another ROI of ``names`` (ROI index ``renaming``, the one being renamed, excepted); a
    :class:`~grtv_nb.errors.ValidationError` otherwise."""
    name = check_roi_name(name)
    names = [str(n) for n in names]
    taken = [k for k, n in enumerate(names) if n == name and k != renaming]
    if taken:
        raise ValidationError(f"ROI name '{name}' is already used by ROI index {taken[0]}; choose another name")
    return name
