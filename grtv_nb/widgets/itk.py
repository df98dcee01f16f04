"""Optional itkwidgets adapter: a study's image and an ROI label map handed to itkwidgets' ``view()``
as oriented images (spacing, origin, direction in DICOM LPS patient coordinates, mm).

itkwidgets is not a dependency: it is imported only inside :func:`show_in_itkwidgets`, which refuses
with :class:`~grtv_nb.errors.ViewerUnavailableError` (saying why, and pointing to the built-in
:func:`grtv_nb.widgets.dashboard`) where itkwidgets is not installed, is a 0.x release (those pin
ipywidgets < 8, which the rest of grtv_nb.widgets needs) or reports that its front end cannot load
(its JupyterLab/Notebook extension missing). itkwidgets 1.x loads its viewer from the internet in the
browser, so in an offline JupyterLab the cell shows no viewer even when the call succeeds: use the
dashboard there.

Conventions
-----------
Arrays are handed in grtv_nb's canonical ``[z, y, x]`` order, which is ITK's numpy order
``[k, j, i]``; ``spacing`` and ``origin`` are in ITK's ``(i, j, k)`` order, i.e. ``(x, y, z)``;
``direction`` is the 3x3 matrix whose columns are the patient-space (LPS) directions of the
``i, j, k`` axes (ITK's convention, and :attr:`grtv_nb.geometry.Grid.direction`'s). The physical
point of voxel ``[k, j, i]`` is ``origin + direction @ (spacing * (i, j, k))``.

Label map: value ``n`` is the ROI ``n - 1`` of the study (``label_names`` pairs each value with
its ROI name); ROIs overlap but a voxel holds one value, so larger ROIs are painted first and smaller
ones over them (a target inside the body shows as the target).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ViewerUnavailableError, warn

log = logging.getLogger(__name__)

# The first itkwidgets major version whose front end works with ipywidgets 8 (0.32.x pins ipywidgets < 8).
MIN_ITKWIDGETS_MAJOR = 1
# Non-uniform slice spacing whose spread (max - min, mm) is above this is reported (ITK grids are uniform).
Z_SPACING_TOL_MM = 0.01

_USE_INSTEAD = "Use the built-in viewer instead: `from grtv_nb.widgets import dashboard; dashboard(study)`."


@dataclass(frozen=True)
class ItkInputs:
    """What :func:`show_in_itkwidgets` hands to itkwidgets (see the module docstring for the
    conventions).

    Attributes
    ----------
    image : ndarray [z, y, x] or None
        The study's image (CT in HU, as stored), or its dose (Gy) when it has no image.
    label_image : ndarray [z, y, x] of uint8/uint16, or None
        ROI label map (0 outside every ROI); None without ROIs.
    label_names : list of (int, str)
        Label value and ROI name of each ROI in the map.
    spacing, origin : tuple of 3 floats
        ``(x, y, z)`` spacing and position of voxel ``[0, 0, 0]`` (mm, LPS).
    direction : ndarray (3, 3)
        Columns are the LPS directions of the ``x``, ``y``, ``z`` array axes.
    """

    image: np.ndarray | None
    label_image: np.ndarray | None
    label_names: list[tuple[int, str]]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray


def itk_inputs(study: Any, rois: Sequence[int | str] | None = None) -> ItkInputs:
    """The image, ROI label map and geometry of ``study`` as itkwidgets takes them (no itkwidgets
    needed).

    Parameters
    ----------
    study : grtv_nb.Study
    rois : sequence of ROI names or indices, optional
        ROIs in the label map (default: all).

    Returns
    -------
    ItkInputs
    """
    g = study.grid
    if study.has_image:
        image = np.asarray(study.image.values)
    elif study.has_dose:
        image = np.asarray(study.dose.values)
    else:
        image = None
    steps = np.diff(g.z)
    if steps.size and float(steps.max() - steps.min()) > Z_SPACING_TOL_MM:
        warn(f"slice spacing is not uniform ({steps.min():.3g} to {steps.max():.3g} mm): itkwidgets shows "
             f"the volume with the median spacing {g.dz:.3g} mm, so slice positions there are off by up to "
             f"{float(np.abs(g.z - (g.z[0] + np.arange(g.z.size) * g.dz)).max()):.3g} mm (the dashboard uses "
             "each slice's own position)")
    direction = np.array(g.direction, dtype=np.float64)
    # canonical coordinates run along the columns of direction (identity for axis-aligned grids)
    origin = direction @ np.array([g.x[0], g.y[0], g.z[0]], dtype=np.float64)
    indices = [study.roi_index(r) for r in rois] if rois is not None else list(range(len(study.rois)))
    labels, names = _label_map(study, indices)
    return ItkInputs(
        image=image,
        label_image=labels,
        label_names=names,
        spacing=(float(g.dx), float(g.dy), float(g.dz)),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=direction,
    )


def _label_map(study: Any, indices: list[int]) -> tuple[np.ndarray | None, list[tuple[int, str]]]:
    """Label map of the ROIs ``indices`` (value = index + 1), largest painted first."""
    if not indices:
        return None, []
    top = max(indices) + 1
    dtype = np.uint8 if top <= np.iinfo(np.uint8).max else np.uint16
    labels = np.zeros(study.grid.shape, dtype=dtype)
    counts = {i: study.voxel_count(i) for i in indices}
    for i in sorted(indices, key=lambda i: -counts[i]):
        labels[study.mask(i)] = i + 1
    hidden = [study.rois[i].name for i in indices if counts[i] and not np.any(labels == i + 1)]
    if hidden:
        warn(f"ROIs {hidden} lie entirely inside smaller ROIs and have no voxel of their own in the "
             "itkwidgets label map (a voxel holds one label)")
    return labels, [(i + 1, study.rois[i].name) for i in indices]


def _itkwidgets() -> Any:
    """The itkwidgets module, or :class:`ViewerUnavailableError` saying why it can't be used."""
    if importlib.util.find_spec("itkwidgets") is None:
        raise ViewerUnavailableError(
            "itkwidgets is not installed (it is optional: `pip install 'itkwidgets[lab]>=1.0a0'`, which also "
            f"needs internet access in the browser to load its viewer). {_USE_INSTEAD}")
    try:
        version = importlib.metadata.version("itkwidgets")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    major = version.split(".")[0]
    if major.isdigit() and int(major) < MIN_ITKWIDGETS_MAJOR:
        raise ViewerUnavailableError(
            f"itkwidgets {version} is installed; its front end needs ipywidgets < 8 and cannot load beside "
            f"grtv_nb's widgets (ipywidgets 8): itkwidgets >= {MIN_ITKWIDGETS_MAJOR}.0 is needed. {_USE_INSTEAD}")
    try:
        return importlib.import_module("itkwidgets")
    except (ImportError, RuntimeError) as e:  # itkwidgets raises RuntimeError when its extension is missing
        raise ViewerUnavailableError(
            f"itkwidgets' front end cannot load here ({type(e).__name__}: {e}); it needs its JupyterLab/Notebook "
            f"extension (`pip install 'itkwidgets[lab]'`, then reload the page) and internet access in the "
            f"browser. {_USE_INSTEAD}") from e


def _as_itkwasm(array: np.ndarray, name: str, inputs: ItkInputs) -> Any:
    """``array`` as an ``itkwasm.Image`` (the image type itkwidgets uses) with the study's geometry."""
    import itkwasm

    array = np.ascontiguousarray(array)
    image_type = itkwasm.ImageType(dimension=3, componentType=array.dtype.name, pixelType="Scalar", components=1)
    return itkwasm.Image(
        imageType=image_type,
        name=name,
        origin=list(inputs.origin),
        spacing=list(inputs.spacing),
        direction=inputs.direction.copy(),
        size=list(array.shape[::-1]),
        data=array,
    )


def show_in_itkwidgets(study: Any, rois: Sequence[int | str] | None = None, **view_kwargs: Any) -> Any:
    """Show ``study`` in itkwidgets: its image with the ROI label map (and ROI names) over it.

    Parameters
    ----------
    study : grtv_nb.Study
    rois : sequence of ROI names or indices, optional
        ROIs in the label map (default: all).
    **view_kwargs
        Passed on to ``itkwidgets.view`` (e.g. ``cmap``, ``ui_collapsed``).

    Returns
    -------
    The itkwidgets viewer (display it as the cell's last value).

    Raises
    ------
    ViewerUnavailableError
        itkwidgets is not installed, is too old, or its front end cannot load (see the module
        docstring); nothing is computed then.
    """
    itkwidgets = _itkwidgets()
    inputs = itk_inputs(study, rois)
    kwargs: dict[str, Any] = {}
    if inputs.image is not None:
        kwargs["image"] = _as_itkwasm(inputs.image, "image", inputs)
    if inputs.label_image is not None:
        kwargs["label_image"] = _as_itkwasm(inputs.label_image, "ROIs", inputs)
        kwargs["label_names"] = inputs.label_names
    if not kwargs:
        raise ViewerUnavailableError(f"the study has no image, dose or ROI to show. {_USE_INSTEAD}")
    kwargs.update(view_kwargs)
    log.info("itkwidgets.view: image %s, %d ROIs", None if inputs.image is None else inputs.image.shape,
             len(inputs.label_names))
    return itkwidgets.view(**kwargs)
