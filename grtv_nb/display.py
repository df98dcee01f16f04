"""Display helpers shared by the facade, the study and the widgets: window/level of grey values
and the default ROI colours."""

from __future__ import annotations

import numpy as np

from .errors import ValidationError

#: Window/level presets (level, width) in HU.
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "soft tissue": (50.0, 350.0),
    "brain": (40.0, 80.0),
}

_DEFAULT_COLORS = [
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
    (255, 128, 0), (128, 0, 255), (0, 128, 255), (255, 0, 128), (128, 255, 0), (0, 255, 128),
]


def default_color(i: int) -> tuple[int, int, int]:
    """Colour (R, G, B) of the i-th ROI when none is given (ROIDisplayColor missing, an ROI
    added without a colour, a Dataset without ``roi_color``)."""
    return _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)]


def window_level(values, level: float = 0.0, width: float = 2000.0) -> np.ndarray:
    """Map grey values to uint8 with a linear window: ``level - width/2`` -> 0,
    ``level + width/2`` -> 255, clipped outside.

    Parameters
    ----------
    values : array_like
        Any shape (a 2D slice for getSliceByLut).
    level, width : float
        Window centre and width (width > 0).
    """
    a = np.asarray(values)
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise ValidationError(f"slice must be numeric, got dtype {a.dtype}")
    width = float(width)
    if not width > 0:
        raise ValidationError(f"ww (window width) must be > 0, got {width}")
    lo = float(level) - width / 2.0
    out = (a.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / width)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
