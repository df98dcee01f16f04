"""Exceptions and warnings of grtv_nb: every bad input ends in one of these, with a message that
names the file or argument and says what is wrong."""

from __future__ import annotations

import warnings


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


def warn(message: str, stacklevel: int = 3) -> None:
    """Emit a :class:`GRTVWarning`."""
    warnings.warn(message, GRTVWarning, stacklevel=stacklevel)


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
