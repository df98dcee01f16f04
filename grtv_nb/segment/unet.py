"""The TensorFlow path of automatic segmentation: a compact 3D U-Net (Keras) for one or several
organs, its training from DICOM-RT patient folders, saving/loading in the model folder
(:mod:`.models`), and sliding-window inference with cleanup.

TensorFlow is imported only inside the functions of this module that need it (``pip install
grtv_nb[tf]``); without it they raise :class:`TensorFlowMissing`.

Conventions
-----------
- Volumes are resampled to the model's voxel spacing ``(dz, dy, dx)`` mm in the canonical frame
  (x to the patient's left), so a model works for any scanner resolution and patient position.
- HU are clipped to the model's window ``[lo, hi]`` and scaled to [0, 1].
- The network outputs ``1 + len(organs)`` softmax channels: 0 background, ``i + 1`` organ ``i``.
- Left/right pairs (llung/rlung, lkidney/rkidney) predicted by one model are cleaned up
  together: the two largest components of their union are assigned by position (larger x is
  the patient's left); other organs keep their largest component.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..errors import GRTVError, SegmentationError, ValidationError
from ..fileio import check_file_name
from . import _common
from .models import METADATA, MODEL_FILE, MODEL_FORMAT, MODEL_FORMAT_VERSION, read_metadata, resolve_model_dir

INSTALL_HINT = "pip install grtv_nb[tf]"
PAIRS = {"llung": "rlung", "rlung": "llung", "lkidney": "rkidney", "rkidney": "lkidney"}

_MODELS: dict[str, object] = {}
_PREDICTIONS: dict[tuple, np.ndarray] = {}


class TensorFlowMissing(GRTVError, ImportError):
    """TensorFlow is needed for this and is not installed."""


def require_tf():
    """Import and return ``tensorflow`` (raises :class:`TensorFlowMissing` with the install hint)."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise TensorFlowMissing(
            f"the U-Net segmentation path needs TensorFlow, which is not installed: {INSTALL_HINT}"
        ) from exc
    return tf


# ------------------------------------------------------------------------------------ network


def build_unet(
    n_classes: int,
    patch: Sequence[int] = (32, 64, 64),
    base_filters: int = 8,
    depth: int = 3,
):
    """A compact 3D U-Net: ``depth`` down/up levels of two 3x3x3 convolutions (ReLU), max-pooling
    and transposed convolutions, skip connections, softmax over ``n_classes`` channels.

    Parameters
    ----------
    n_classes : int
        Output channels (background included).
    patch : (pz, py, px)
        Input patch shape; each must be divisible by ``2 ** depth``.
    """
    require_tf()
    import keras
    from keras import layers

    patch = tuple(int(p) for p in patch)
    if any(p % (2**depth) for p in patch):
        raise ValidationError(f"patch {patch} must be divisible by 2**depth = {2**depth}")

    def block(x, f):
        for _ in range(2):
            x = layers.Conv3D(f, 3, padding="same", activation="relu", kernel_initializer="he_normal")(x)
        return x

    inp = keras.Input(shape=(*patch, 1))
    x = inp
    skips = []
    for d in range(depth):
        x = block(x, base_filters * 2**d)
        skips.append(x)
        x = layers.MaxPooling3D(2)(x)
    x = block(x, base_filters * 2**depth)
    for d in reversed(range(depth)):
        x = layers.Conv3DTranspose(base_filters * 2**d, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[d]])
        x = block(x, base_filters * 2**d)
    out = layers.Conv3D(n_classes, 1, activation="softmax", dtype="float32")(x)
    return keras.Model(inp, out, name="grtv_nb_unet3d")


def _loss(n_classes: int):
    import keras
    from keras import ops

    ce = keras.losses.SparseCategoricalCrossentropy()

    def loss(y_true, y_pred):
        yt = ops.one_hot(ops.cast(ops.squeeze(y_true, -1), "int32"), n_classes)
        inter = ops.sum(yt * y_pred, axis=(1, 2, 3))
        denom = ops.sum(yt + y_pred, axis=(1, 2, 3))
        dice = (2.0 * inter + 1.0) / (denom + 1.0)
        return ce(y_true, y_pred) + 1.0 - ops.mean(dice[:, 1:])

    return loss


# ------------------------------------------------------------------------------------ data


@dataclass
class TrainingCase:
    """One patient resampled for training: ``image`` float32 in [0, 1], ``labels`` uint8."""

    image: np.ndarray
    labels: np.ndarray
    name: str = ""


def exact_grid(x, y, z, spacing: Sequence[float]) -> _common.WorkGrid:
    """A working grid of exactly ``spacing`` (dz, dy, dx) mm covering the image's coordinates."""
    axes = []
    for c, s in zip((x, y, z), (spacing[2], spacing[1], spacing[0])):
        n = max(int(np.floor((c[-1] - c[0]) / s + 1e-6)) + 1, 1)
        start = 0.5 * (c[0] + c[-1]) - 0.5 * (n - 1) * s
        axes.append(start + s * np.arange(n))
    return _common.WorkGrid(axes[0], axes[1], axes[2], np.asarray(x), np.asarray(y), np.asarray(z))


def normalise(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    lo, hi = float(window[0]), float(window[1])
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def case_from_arrays(
    hu: np.ndarray,
    x,
    y,
    z,
    masks: dict[str, np.ndarray],
    organs: Sequence[str],
    spacing: Sequence[float],
    hu_window: Sequence[float],
    name: str = "",
) -> TrainingCase:
    """Resample an image and its organ masks (image grid) to the model grid."""
    g = exact_grid(np.asarray(x, float), np.asarray(y, float), np.asarray(z, float), spacing)
    img = normalise(g.to_work(np.asarray(hu, dtype=np.float32)), hu_window)
    labels = np.zeros(img.shape, np.uint8)
    for i, organ in enumerate(organs):
        m = masks.get(organ)
        if m is None:
            continue
        labels[(g.to_work(np.asarray(m, dtype=np.float32)) >= 0.5) & (labels == 0)] = i + 1
    return TrainingCase(img, labels, name)


def find_roi(roi_names: Sequence[str], organ: str) -> str | None:
    """The ROI of a study that holds ``organ`` (names compared through the organ aliases)."""
    from .organs import normalise_organ

    for n in roi_names:
        try:
            if normalise_organ(n) == organ:
                return n
        except SegmentationError:
            continue
    return None


def case_from_study(study, organs: Sequence[str], spacing, hu_window) -> TrainingCase:
    """A training case from a :class:`grtv_nb.study.Study` with a CT and ROIs of the organs."""
    if not getattr(study, "has_image", False):
        raise ValidationError("the study has no image to train on")
    img = study.image
    masks = {}
    for organ in organs:
        roi = find_roi(study.roi_names, organ)
        if roi is not None:
            masks[organ] = study.mask(roi)
    if not masks:
        raise ValidationError(
            f"the study has none of the organs {', '.join(organs)} among its ROIs ({', '.join(study.roi_names)})"
        )
    return case_from_arrays(
        img.values, img.x.values, img.y.values, img.z.values, masks, organs, spacing, hu_window,
        name=str(study.source.get("folder", "")) if isinstance(getattr(study, "source", None), dict) else "",
    )


def patient_folders(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Patient folders from a list of paths: a folder with DICOM files is a patient; a folder
    without files but with subfolders stands for its subfolders."""
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ValidationError(f"training folder '{p}' does not exist or is not a folder")
        if any(f.is_file() for f in p.iterdir()):
            out.append(p)
        else:
            out.extend(sorted(q for q in p.iterdir() if q.is_dir()))
    if not out:
        raise ValidationError(f"no patient folders in {', '.join(map(str, paths))}")
    return out


# ------------------------------------------------------------------------------------ training


def _sample_batch(cases, patch, batch, rng, augment: bool, spacing):
    xs, ys = [], []
    for _ in range(batch):
        c = cases[rng.integers(len(cases))]
        shape = c.image.shape
        pad = [max(p - s, 0) for p, s in zip(patch, shape)]
        img, lab = c.image, c.labels
        if any(pad):
            img = np.pad(img, [(0, q) for q in pad])
            lab = np.pad(lab, [(0, q) for q in pad])
            shape = img.shape
        fg = np.argwhere(lab > 0) if rng.random() < 0.6 else None
        if fg is not None and len(fg):
            centre = fg[rng.integers(len(fg))]
        else:
            centre = np.array([rng.integers(s) for s in shape])
        start = [int(np.clip(c0 - p // 2, 0, s - p)) for c0, p, s in zip(centre, patch, shape)]
        sl = tuple(slice(a, a + p) for a, p in zip(start, patch))
        pi, pl = img[sl].copy(), lab[sl].copy()
        if augment:
            pi, pl = _augment(pi, pl, rng, spacing)
        xs.append(pi)
        ys.append(pl)
    return np.stack(xs)[..., None], np.stack(ys)[..., None].astype(np.int32)


def _augment(img, lab, rng, spacing):
    """A random small rotation with the engine of augmentImg3D (:mod:`grtv_nb.augment`), and an
    intensity jitter. No left/right flips: they would swap the sides of paired organs."""
    from .. import augment as aug

    t = aug.random_transform(img.shape, rng, rotate=True, rotate_range_deg=5.0, spacing=spacing)
    img, lab = aug.apply_transform([img, lab], t, labels=[1], fill_values=[0.0, None])
    scale = 1.0 + 0.1 * (rng.random() - 0.5)
    shift = 0.05 * (rng.random() - 0.5)
    return np.clip(img * scale + shift, 0.0, 1.0).astype(np.float32), lab


def train(
    cases: Sequence[TrainingCase],
    organs: Sequence[str],
    *,
    model_dir=None,
    name: str | None = None,
    spacing: Sequence[float] = (3.0, 3.0, 3.0),
    hu_window: Sequence[float] = (-1000.0, 1000.0),
    patch: Sequence[int] = (32, 64, 64),
    steps: int = 200,
    batch: int = 2,
    base_filters: int = 8,
    depth: int = 3,
    learning_rate: float = 1e-3,
    augment: bool = True,
    seed: int = 0,
    overwrite: bool = False,
    log=print,
) -> Path:
    """Train a U-Net on prepared cases and save it in the model folder; returns its path.

    The folder ``<model_dir>/<name>`` is written atomically (see :func:`save_model`); an existing
    model of that name is replaced only with ``overwrite=True``.
    """
    tf = require_tf()
    import keras

    from .organs import normalise_organ

    organs = [normalise_organ(o) for o in organs]
    if not cases:
        raise ValidationError("no training cases")
    root = resolve_model_dir(model_dir)
    name = check_file_name(name or "-".join(organs), "model name")
    final = root / name
    if final.exists() and not overwrite:
        raise ValidationError(f"model '{final}' exists (pass overwrite=True / --overwrite to replace it)")
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)
    n_classes = len(organs) + 1
    model = build_unet(n_classes, patch, base_filters, depth)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=_loss(n_classes))
    t0 = time.time()
    losses = []
    for step in range(int(steps)):
        xb, yb = _sample_batch(cases, tuple(patch), int(batch), rng, augment, tuple(spacing))
        loss = float(np.asarray(model.train_on_batch(xb, yb)).ravel()[0])
        losses.append(loss)
        if log and (step % max(int(steps) // 10, 1) == 0 or step == int(steps) - 1):
            log(f"step {step + 1}/{steps}  loss {loss:.4f}  ({time.time() - t0:.0f} s)")
    meta = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "grtv_nb_version": _version(),
        "organs": organs,
        "spacing_mm": [float(s) for s in spacing],
        "hu_window": [float(w) for w in hu_window],
        "patch": [int(p) for p in patch],
        "base_filters": int(base_filters),
        "depth": int(depth),
        "steps": int(steps),
        "batch": int(batch),
        "final_loss": losses[-1] if losses else None,
        "n_cases": len(cases),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tensorflow_version": tf.__version__,
    }
    save_model(model, meta, final, overwrite=overwrite)
    return final


def save_model(model, meta: dict, path: Path, overwrite: bool = False) -> Path:
    """Write ``model.keras`` + ``metadata.json`` as the folder ``path``, atomically
    (:func:`grtv_nb.fileio.replace_folder`: ``overwrite`` replaces a model saved by grtv_nb only)."""
    from ..fileio import replace_folder

    path = Path(path)
    with replace_folder(path, "model folder", overwrite=overwrite, kind="model") as tmp:
        model.save(tmp / MODEL_FILE)
        (tmp / METADATA).write_text(json.dumps(meta, indent=2))
    _MODELS.pop(str(path), None)
    return path


def _version() -> str:
    from .. import __version__

    return __version__


# ------------------------------------------------------------------------------------ inference


def load_model(path: str | os.PathLike):
    """The Keras model of a model folder (cached until :func:`close_session`)."""
    require_tf()
    import keras

    key = str(Path(path).resolve())
    if key not in _MODELS:
        read_metadata(path)
        try:
            _MODELS[key] = keras.models.load_model(Path(path) / MODEL_FILE, compile=False)
        except Exception as exc:  # noqa: BLE001 - report any Keras failure as ours
            raise ValidationError(f"could not load the model in '{path}': {exc}") from None
    return _MODELS[key]


def predict_labels(model, vol: np.ndarray, patch: Sequence[int], n_classes: int, batch: int = 4) -> np.ndarray:
    """Sliding-window prediction (stride = half a patch, windows averaged) -> label map."""
    patch = tuple(int(p) for p in patch)
    shape0 = vol.shape
    pad = [max(p - s, 0) for p, s in zip(patch, shape0)]
    if any(pad):
        vol = np.pad(vol, [(0, q) for q in pad])
    shape = vol.shape
    starts = []
    for s, p in zip(shape, patch):
        st = list(range(0, s - p + 1, max(p // 2, 1)))
        if st[-1] != s - p:
            st.append(s - p)
        starts.append(st)
    acc = np.zeros((*shape, n_classes), np.float32)
    cnt = np.zeros(shape, np.float32)
    windows = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    for i in range(0, len(windows), batch):
        chunk = windows[i:i + batch]
        xb = np.stack([vol[a:a + patch[0], b:b + patch[1], c:c + patch[2]] for a, b, c in chunk])[..., None]
        pb = np.asarray(model.predict_on_batch(xb))
        for (a, b, c), p in zip(chunk, pb):
            acc[a:a + patch[0], b:b + patch[1], c:c + patch[2]] += p
            cnt[a:a + patch[0], b:b + patch[1], c:c + patch[2]] += 1.0
    lab = np.argmax(acc / np.maximum(cnt, 1.0)[..., None], axis=-1).astype(np.uint8)
    return lab[: shape0[0], : shape0[1], : shape0[2]]


def _cleanup(lab: np.ndarray, organs: list[str], organ: str) -> np.ndarray:
    ch = organs.index(organ) + 1
    partner = PAIRS.get(organ)
    if partner in organs:
        pch = organs.index(partner) + 1
        union = (lab == ch) | (lab == pch)
        cl, n = ndi.label(union)
        if n == 0:
            return np.zeros(lab.shape, bool)
        sizes = np.bincount(cl.ravel())[1:]
        order = np.argsort(sizes)[::-1]
        keep = [order[0] + 1] + ([order[1] + 1] if n > 1 and sizes[order[1]] >= 0.1 * sizes[order[0]] else [])
        if len(keep) == 2 and _common.same_side([cl == k for k in keep], np.arange(lab.shape[2], dtype=float)):
            cl = np.where(cl == keep[1], keep[0], cl)  # one organ in two pieces (a tumour, a fissure)
            keep = keep[:1]
        if len(keep) == 2:
            xs = [np.nonzero(cl == k)[2].mean() for k in keep]
            left = keep[int(np.argmax(xs))]
            want = left if organ.startswith("l") else keep[1 - keep.index(left)]
            return cl == want
        comp = cl == keep[0]
        # one organ: the model's majority vote decides its side
        return comp if (lab[comp] == ch).sum() >= (lab[comp] == pch).sum() else np.zeros(lab.shape, bool)
    m = lab == ch
    return _common.largest_component(m) if m.any() else m


def predict_organ(image, organ: str, model_path, meta: dict | None = None) -> np.ndarray:
    """Segment ``organ`` on a CT DataArray with the model in ``model_path`` (image grid mask)."""
    meta = meta or read_metadata(model_path)
    hu, x, y, z = _common.check_image(image)
    organs = list(meta["organs"])
    if organ not in organs:
        raise SegmentationError(f"the model in '{model_path}' does not segment {organ!r} (it has {organs})")
    key = (_common._image_key(hu, x, y, z), str(Path(model_path).resolve()))
    g = exact_grid(x, y, z, meta["spacing_mm"])
    if key not in _PREDICTIONS:
        model = load_model(model_path)
        vol = normalise(g.to_work(np.asarray(hu, dtype=np.float32)), meta["hu_window"])
        _PREDICTIONS.clear()
        _PREDICTIONS[key] = predict_labels(model, vol, meta["patch"], len(organs) + 1)
    mask = _cleanup(_PREDICTIONS[key], organs, organ)
    return g.to_image(mask)


def close_session() -> None:
    """Drop the loaded models and cached predictions and release TensorFlow's memory. Safe to
    call at any time (also without TensorFlow, or twice)."""
    _MODELS.clear()
    _PREDICTIONS.clear()
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        try:
            import keras

            keras.backend.clear_session()
        except Exception:  # noqa: BLE001 - releasing must never fail
            pass
    gc.collect()


# ------------------------------------------------------------------------------------ CLI


def _floats(s: str, n: int) -> list[float]:
    v = [float(t) for t in s.replace("x", ",").split(",") if t.strip()]
    if len(v) == 1:
        v = v * n
    if len(v) != n:
        raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {s!r}")
    return v


def main_train(argv: Sequence[str] | None = None) -> int:
    """``grtv-nb train-seg``: train a U-Net from DICOM-RT patient folders.

    Returns the exit status (0 on success, 2 on bad input).
    """
    p = argparse.ArgumentParser(
        prog="grtv-nb train-seg",
        description="Train a 3D U-Net for organ segmentation from DICOM-RT patient folders "
        "(CT + RTSTRUCT with the organs as ROIs) and save it in the model folder.",
    )
    p.add_argument("folders", nargs="+", help="patient folders, or folders of patient folders")
    p.add_argument("--organs", default="llung,rlung", help="comma-separated organs (default llung,rlung)")
    p.add_argument(
        "--model-dir", default=None, help="model folder (default $GRTV_NB_MODEL_DIR or ~/.cache/grtv_nb/models)"
    )
    p.add_argument("--name", default=None, help="model name (default: the organ names)")
    p.add_argument("--spacing", default="3,3,3", help="voxel spacing dz,dy,dx in mm (default 3,3,3)")
    p.add_argument("--hu-window", default="-1000,1000", help="HU window lo,hi (default -1000,1000)")
    p.add_argument("--patch", default="32,64,64", help="patch shape pz,py,px (default 32,64,64)")
    p.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    p.add_argument("--batch", type=int, default=2, help="patches per step (default 2)")
    p.add_argument("--filters", type=int, default=8, help="filters of the first level (default 8)")
    p.add_argument("--depth", type=int, default=3, help="U-Net levels (default 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--no-augment", action="store_true", help="no rotation/deformation augmentation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a model of the same name")
    args = p.parse_args(list(argv) if argv is not None else None)
    try:
        from .. import open_study
        from .organs import normalise_organ

        organs = [normalise_organ(o) for o in args.organs.split(",") if o.strip()]
        spacing = _floats(args.spacing, 3)
        window = _floats(args.hu_window, 2)
        patch = [int(v) for v in _floats(args.patch, 3)]
        cases = []
        for folder in patient_folders(args.folders):
            study = open_study(folder)
            cases.append(case_from_study(study, organs, spacing, window))
            print(f"read {folder}: {cases[-1].image.shape} voxels at {spacing} mm")
        path = train(
            cases, organs, model_dir=args.model_dir, name=args.name, spacing=spacing, hu_window=window,
            patch=patch, steps=args.steps, batch=args.batch, base_filters=args.filters, depth=args.depth,
            learning_rate=args.lr, augment=not args.no_augment, seed=args.seed, overwrite=args.overwrite,
        )
    except (GRTVError, argparse.ArgumentTypeError) as exc:
        print(f"grtv-nb train-seg: error: {exc}", file=sys.stderr)
        return 2
    print(f"saved model {path}")
    return 0
