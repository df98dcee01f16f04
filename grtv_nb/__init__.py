"""grtv_nb: a Jupyter-native toolkit for radiotherapy DICOM-RT data.

Open a DICOM-RT folder as a labelled study (:func:`open_study`), compute masks, DVHs and meshes,
prepare deep-learning volumes and write DICOM-RT back. The pyGRTV-compatible facade lives in
:mod:`grtv_nb.facade` (and the top-level module ``grtv``).
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["open_study", "Study", "Grid", "__version__"]


def __getattr__(name: str):
    # Lazy imports keep ``import grtv_nb`` fast.
    if name in ("open_study", "Study"):
        from . import study

        return getattr(study, name)
    if name == "Grid":
        from .geometry import Grid

        return Grid
    raise AttributeError(f"module 'grtv_nb' has no attribute {name!r}")
