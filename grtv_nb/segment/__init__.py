"""Automatic organ contours on CT: :func:`segment_organ` for body, lungs, spinal canal, liver,
kidneys and stomach.

Each organ is found by a classical image-analysis method in physical units (mm, HU; modules
:mod:`.body`, :mod:`.lungs`, :mod:`.spine`, :mod:`.landmarks`, :mod:`.abdomen`;
every tuned number in :mod:`.params`), unless a trained 3D U-Net for that
organ is present in the model folder (:mod:`.models`, :mod:`.unet`; TensorFlow optional). Input
images are in grtv_nb's canonical frame (x to the patient's left, y posterior, z superior), so
the result does not depend on the patient position of the scan.
"""

from __future__ import annotations

import sys

import numpy as np

from ..errors import SegmentationError, warn
from .organs import ORGAN_ALIASES, SUPPORTED_ORGANS, normalise_organ

__all__ = ["SUPPORTED_ORGANS", "segment_organ", "close_session", "ORGAN_ALIASES", "normalise_organ"]


def segment_organ(image, organ: str, *, model_dir=None) -> np.ndarray:
    """Segment one organ on a CT image.

    Parameters
    ----------
    image : xarray.DataArray
        CT in HU, dims ``(z, y, x)``, coordinates ``x, y, z`` in mm (canonical frame: x to the
        patient's left, y posterior, z superior; z may be non-uniform). ``attrs["modality"]``, if
        present, must be ``"CT"``.
    organ : str
        One of :data:`SUPPORTED_ORGANS` (``body``, ``llung``, ``rlung``, ``spinal_cord`` - the
        spinal canal -, ``liver``, ``lkidney``, ``rkidney``, ``stomach``); case-insensitive.
    model_dir : path, optional
        Model folder to look for a trained model of this organ in (default
        ``$GRTV_NB_MODEL_DIR`` or ``~/.cache/grtv_nb/models``). When one is found and TensorFlow
        is installed, the model segments the organ; otherwise the classical method does.

    Returns
    -------
    ndarray of bool, shape (nz, ny, nx)
        The organ mask on the image's grid.

    Raises
    ------
    SegmentationError
        Unknown organ name, non-CT image, 1-slice volume, or the organ is not in this image.
    """
    from ..geometry import slice_weights
    from . import _common
    from .params import min_cc

    name = normalise_organ(organ)
    hu, x, y, z = _common.check_image(image)
    mask = _predict_with_model(image, name, model_dir)
    if mask is None:
        mask = _classical(hu, x, y, z, name)
    mask = np.asarray(mask, dtype=bool)
    cc = float((mask.sum(axis=(1, 2)) * slice_weights(z)).sum() * abs(x[1] - x[0]) * abs(y[1] - y[0]) / 1000.0)
    if cc < min_cc(name):
        raise SegmentationError(
            f"could not find the {name} in this CT: the result ({cc:.1f} cc) is smaller than "
            f"{min_cc(name):g} cc"
        )
    return mask


def _classical(hu, x, y, z, name: str) -> np.ndarray:
    from . import _common

    ctx = _common.get_context(hu, x, y, z)
    if name == "body":
        from .body import segment_body

        return segment_body(ctx)
    if name in ("llung", "rlung"):
        from .lungs import segment_lung

        return segment_lung(ctx, "left" if name == "llung" else "right")
    if name == "spinal_cord":
        from .spine import segment_canal

        return segment_canal(ctx)
    from . import abdomen

    if name == "liver":
        return abdomen.segment_liver(ctx)
    if name in ("lkidney", "rkidney"):
        return abdomen.segment_kidney(ctx, "left" if name == "lkidney" else "right")
    return abdomen.segment_stomach(ctx)


def _predict_with_model(image, name: str, model_dir):
    from .models import find_model

    found = find_model(name, model_dir)
    if found is None:
        return None
    try:
        from . import unet

        unet.require_tf()
    except ImportError as exc:
        warn(
            f"a trained model for {name!r} is in {found[0]}, but it cannot be used ({exc}); "
            f"using the classical method instead"
        )
        return None
    return unet.predict_organ(image, name, found[0], found[1])


def close_session() -> None:
    """Release the loaded segmentation models and TensorFlow's memory, and forget the cached
    landmarks of the last image. Safe to call at any time, with or without TensorFlow."""
    from . import _common

    _common.clear_cache()
    unet = sys.modules.get(__name__ + ".unet")
    if unet is not None:
        unet.close_session()
