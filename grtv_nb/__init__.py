"""grtv_nb: a Jupyter-native toolkit for radiotherapy DICOM-RT data.

Open a DICOM-RT folder as a labelled study (:func:`open_study`), compute masks, DVHs and meshes,
prepare deep-learning volumes and write DICOM-RT back. The pyGRTV-compatible facade lives in
:mod:`grtv_nb.facade` (and the top-level module ``grtv``).
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["open_study", "Study", "Grid", "__version__"]


def __getattr__(name: str):
    # PEP 562 lazy attributes: ``import grtv_nb`` loads neither xarray, pydicom nor numba; the
    # study layer is imported on first use of ``open_study``/``Study``. Submodules never import
    # names from this package root (``_version`` holds the version), so there is no import cycle.
    if name in ("open_study", "Study"):
        from . import study

        return getattr(study, name)
    if name == "Grid":
        from .geometry import Grid

        return Grid
    raise AttributeError(f"module 'grtv_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
