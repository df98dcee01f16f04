"""Display helpers shared by the facade and the widgets: window/level of grey values."""

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
