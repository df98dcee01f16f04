"""Exceptions and warnings of grtv_nb: every bad input ends in one of these, with a message that
names the file or argument and says what is wrong."""

from __future__ import annotations

import os
import sys
import types
import warnings
from pathlib import Path


class GRTVError(Exception):
    """Base class of grtv_nb errors (bad input, impossible request)."""


class DicomReadError(GRTVError):
    """A folder or file could not be read as the DICOM-RT data asked for."""


class GeometryError(GRTVError):
    """An image series has a geometry grtv_nb refuses (gantry tilt, mixed orientations...)."""


class ValidationError(GRTVError, ValueError):
    """An argument has the wrong shape, dtype, range or value."""


class GRTVWarning(UserWarning):
    """Something odd in the input that grtv_nb worked around (skipped file, gap, dropped contour)."""


_LIBRARY_FILES = (str(Path(__file__).resolve().parent) + os.sep, str(Path(__file__).resolve().parents[1] / "grtv.py"))


def _user_stacklevel() -> int:
    """``stacklevel`` for a ``warnings.warn`` called in :func:`warn`: the first frame outside grtv_nb
    (and the ``grtv`` facade module), i.e. the user's call, however deep inside the library the
    warning was raised."""
    level = 2  # 1: warn(); 2: the library function calling warn()
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_FILES):
        frame, level = frame.f_back, level + 1
    return level


def warn(message: str, stacklevel: int | None = None) -> None:
    """Emit a :class:`GRTVWarning` attributed to the user's call (the first caller outside
    grtv_nb), or ``stacklevel`` frames up when given."""
    warnings.warn(message, GRTVWarning, stacklevel=stacklevel if stacklevel is not None else _user_stacklevel())


class SegmentationError(GRTVError):
    """Automatic segmentation could not produce a plausible contour (organ absent from the image,
    unsupported modality, too few slices, unknown organ name)."""


class WriteError(GRTVError, OSError):
    """A file or folder could not be written (full disk, permissions...); the target is left as it
    was (see :mod:`grtv_nb.fileio`)."""


class FolderBusyError(WriteError):
    """Another grtv_nb run is writing into the same folder (it holds the folder's lock)."""
