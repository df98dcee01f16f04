"""Exceptions and warnings of grtv_nb: every bad input ends in one of these, with a message that
names the file or argument and says what is wrong."""

from __future__ import annotations

import functools
import os
import sys
import types
import warnings
from pathlib import Path


class GRTVError(Exception):
    """Base class of grtv_nb errors (bad input, impossible request)."""


class DicomReadError(GRTVError):
    """A folder or file could not be read as the DICOM-RT data asked for."""


class DicomValueError(DicomReadError):
    """A DICOM attribute is missing, has the wrong number of values, is not a number, is not
    finite or is out of its plausible range. ``file``, ``attribute`` and ``problem`` say which
    file, which attribute and what is wrong (see :mod:`grtv_nb.dicom.values`)."""

    def __init__(self, file, attribute: str, problem: str):
        self.file = str(file) if file is not None else ""
        self.attribute = attribute
        self.problem = problem
        name = self.file.replace("\\", "/").rsplit("/", 1)[-1] or "?"
        super().__init__(f"{name}: {attribute} {problem}")


class GeometryError(GRTVError):
    """An image series has a geometry grtv_nb refuses (gantry tilt, mixed orientations...)."""


class ValidationError(GRTVError, ValueError):
    """An argument has the wrong shape, dtype, range or value."""


class GRTVWarning(UserWarning):
    """Something odd in the input that grtv_nb worked around (skipped file, gap, dropped contour)."""


@functools.cache
def _library_files() -> tuple[str, str]:
    """The package's folder and the ``grtv`` facade module (resolved on the first warning, not at import)."""
    here = Path(__file__).resolve()
    return str(here.parent) + os.sep, str(here.parents[1] / "grtv.py")


def _user_stacklevel() -> int:
    """``stacklevel`` for a ``warnings.warn`` called in :func:`warn`: the first frame outside grtv_nb
    (and the ``grtv`` facade module), i.e. the user's call, however deep inside the library the
    warning was raised."""
    level = 2  # 1: warn(); 2: the library function calling warn()
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_library_files()):
        frame, level = frame.f_back, level + 1
    return level


def warn(message: str, stacklevel: int | None = None) -> None:
    """Emit a :class:`GRTVWarning` attributed to the user's call (the first caller outside
    grtv_nb), or ``stacklevel`` frames up when given."""
    warnings.warn(message, GRTVWarning, stacklevel=stacklevel if stacklevel is not None else _user_stacklevel())


class GRTVCallFailed(GRTVWarning):
    """A pyGRTV facade call failed (it returned GRTV_STATUS_FALIED): shown every time, also for
    identical failures in a loop (see :func:`warn_every_time`)."""


def warn_every_time(message: str, category: type[Warning] = GRTVWarning, stacklevel: int = 2) -> None:
    """Emit a warning that Python's default filter does not de-duplicate: each call is shown,
    even from the same line with the same text (the user's own filters, e.g. "ignore" or
    "error", still apply)."""
    try:
        frame = sys._getframe(stacklevel)
    except ValueError:  # pragma: no cover - shallower stack than asked
        frame = sys._getframe(1)
    warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                           module=frame.f_globals.get("__name__"), registry=None)


class SegmentationError(GRTVError):
    """Automatic segmentation could not produce a plausible contour (organ absent from the image,
    unsupported modality, too few slices, unknown organ name)."""


class WriteError(GRTVError, OSError):
    """A file or folder could not be written (full disk, permissions...); the target is left as it
    was (see :mod:`grtv_nb.fileio`)."""


class FolderBusyError(WriteError):
    """Another grtv_nb run is writing into the same folder (it holds the folder's lock)."""


class DataError(GRTVError):
    """An example dataset (:mod:`grtv_nb.datasets`) is unknown, missing and not downloadable, or fails
    its checksum."""


class ViewerUnavailableError(GRTVError):
    """An optional viewer (itkwidgets, :mod:`grtv_nb.widgets.itk`) is not installed or its front end
    cannot load here; the message says why and what to use instead."""
