"""The model folder: where trained segmentation models live and how they are described.

Layout
------
``<model_dir>/<model name>/`` holds ``model.keras`` (the Keras model) and ``metadata.json``::

    {"format": "grtv_nb-unet", "format_version": 1, "grtv_nb_version": "0.1.0",
     "organs": ["llung", "rlung"], "spacing_mm": [dz, dy, dx], "hu_window": [lo, hi],
     "patch": [pz, py, px], "created": "2026-11-25T03:00:00Z", ...}

``organs[i]`` is the output channel ``i + 1`` (channel 0 is background). The default folder is
``$GRTV_NB_MODEL_DIR`` if set, else ``~/.cache/grtv_nb/models``. This module does not import
TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ValidationError

MODEL_FORMAT = "grtv_nb-unet"
MODEL_FORMAT_VERSION = 1
METADATA = "metadata.json"
MODEL_FILE = "model.keras"
ENV_VAR = "GRTV_NB_MODEL_DIR"


def default_model_dir() -> Path:
    """``$GRTV_NB_MODEL_DIR`` or ``~/.cache/grtv_nb/models``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "grtv_nb" / "models"


def resolve_model_dir(model_dir: str | os.PathLike | None) -> Path:
    return Path(model_dir).expanduser() if model_dir is not None else default_model_dir()


def read_metadata(model_path: str | os.PathLike) -> dict:
    """The metadata of one model folder (raises ValidationError if it is not a model)."""
    p = Path(model_path)
    meta_file = p / METADATA
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise ValidationError(f"{p} is not a grtv_nb model folder: no {METADATA}") from None
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{meta_file}: unreadable model metadata ({exc})") from None
    if meta.get("format") != MODEL_FORMAT:
        raise ValidationError(f"{meta_file}: format is {meta.get('format')!r}, expected {MODEL_FORMAT!r}")
    if int(meta.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise ValidationError(
            f"{meta_file}: model format version {meta.get('format_version')} is newer than this "
            f"grtv_nb understands ({MODEL_FORMAT_VERSION}); upgrade grtv_nb"
        )
    for key in ("organs", "spacing_mm", "hu_window", "patch"):
        if key not in meta:
            raise ValidationError(f"{meta_file}: metadata lacks {key!r}")
    return meta


def list_models(model_dir: str | os.PathLike | None = None) -> list[tuple[Path, dict]]:
    """All valid models in the model folder as ``(path, metadata)``, newest first. Folders that
    are not models are skipped silently."""
    root = resolve_model_dir(model_dir)
    if not root.is_dir():
        return []
    found = []
    for p in sorted(root.iterdir()):
        if not (p / METADATA).is_file() or not (p / MODEL_FILE).is_file():
            continue
        try:
            found.append((p, read_metadata(p)))
        except ValidationError:
            continue
    found.sort(key=lambda t: str(t[1].get("created", "")), reverse=True)
    return found


def find_model(organ: str, model_dir: str | os.PathLike | None = None) -> tuple[Path, dict] | None:
    """The newest model in the folder that segments ``organ``, or None."""
    for p, meta in list_models(model_dir):
        if organ in meta.get("organs", []):
            return p, meta
    return None
