"""The TensorFlow path of grtv_nb.segment: model folder, a tiny U-Net trained for real on the
phantom (train, save, reload, predict through segment_organ, close the session), and the
behaviour without TensorFlow."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from nifti_ref import dice

from grtv_nb.errors import GRTVWarning
from grtv_nb.segment import close_session, models, segment_organ


def test_model_folder_default_and_listing(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path / "m"))
    assert models.default_model_dir() == tmp_path / "m"
    monkeypatch.delenv(models.ENV_VAR)
    assert models.default_model_dir().parts[-3:] == (".cache", "grtv_nb", "models")
    assert models.list_models(tmp_path / "missing") == []
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.json").write_text("{not json")
    (tmp_path / "junk" / "model.keras").write_text("")
    assert models.list_models(tmp_path) == []
    assert models.find_model("liver", tmp_path) is None


def test_without_tensorflow(monkeypatch, tmp_path, phantom_study):
    from grtv_nb.segment import unet

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(unet.TensorFlowMissing, match=r"pip install grtv_nb\[tf\]"):
        unet.require_tf()
    # a model in the folder but no TensorFlow: warn and use the classical method
    d = tmp_path / "lungs"
    d.mkdir()
    meta = {"format": models.MODEL_FORMAT, "format_version": 1, "organs": ["llung"], "spacing_mm": [3, 3, 3],
            "hu_window": [-1000, 1000], "patch": [16, 32, 32]}
    (d / "metadata.json").write_text(json.dumps(meta))
    (d / "model.keras").write_bytes(b"")
    with pytest.warns(GRTVWarning, match="classical"):
        m = segment_organ(phantom_study.image, "llung", model_dir=tmp_path)
    assert dice(m, phantom_study.mask("Lung_L")) > 0.95
    close_session()  # safe without TensorFlow


def test_train_cli_bad_input(tmp_path, capsys):
    from grtv_nb.segment.unet import main_train

    assert main_train([str(tmp_path / "nowhere"), "--model-dir", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main_train([str(tmp_path), "--organs", "pancreas"]) == 2


def test_tiny_unet_train_save_reload_predict(phantom_study, tmp_path):
    pytest.importorskip("tensorflow")
    from grtv_nb.segment import unet

    organs = ["llung", "rlung"]
    spacing = (6.0, 6.0, 6.0)
    case = unet.case_from_study(phantom_study, organs, spacing, (-1000, 1000))
    assert set(np.unique(case.labels)) == {0, 1, 2}
    path = unet.train(
        [case], organs, model_dir=tmp_path, spacing=spacing, patch=(16, 32, 32), steps=150, batch=2,
        base_filters=4, depth=2, learning_rate=3e-3, log=None,
    )
    meta = models.read_metadata(path)
    assert meta["organs"] == organs and meta["spacing_mm"] == list(spacing)
    assert meta["hu_window"] == [-1000.0, 1000.0] and "grtv_nb_version" in meta
    assert models.find_model("rlung", tmp_path)[0] == path
    with pytest.raises(Exception, match="exists"):
        unet.train([case], organs, model_dir=tmp_path, steps=1, log=None)

    img = phantom_study.image
    left = segment_organ(img, "llung", model_dir=tmp_path)
    assert unet._PREDICTIONS, "segment_organ did not use the model"
    right = segment_organ(img, "rlung", model_dir=tmp_path)
    assert dice(left, phantom_study.mask("Lung_L")) > 0.5
    assert dice(right, phantom_study.mask("Lung_R")) > 0.5
    assert img.x.values[np.nonzero(left)[2]].mean() > img.x.values[np.nonzero(right)[2]].mean()
    close_session()
    assert not unet._MODELS and not unet._PREDICTIONS
    again = segment_organ(img, "llung", model_dir=tmp_path)  # reloaded from disk
    assert np.array_equal(again, left)
    close_session()
    close_session()


@pytest.mark.slow
def test_training_notebook_runs(tmp_path):
    pytest.importorskip("tensorflow")
    papermill = pytest.importorskip("papermill")
    from pathlib import Path

    nb = Path(__file__).resolve().parents[1] / "notebooks" / "train_unet.ipynb"
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(nb), str(out), kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
        parameters={"model_dir": str(tmp_path / "models"), "steps": 5, "spacing": [8.0, 8.0, 8.0],
                    "patch": [16, 16, 16], "filters": 2, "depth": 2},
    )
    import nbformat

    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert "saved" in text and "llung" in text
    assert models.find_model("llung", tmp_path / "models") is not None


def test_cleanup_left_right_and_one_lung_in_two_pieces():
    """Model output cleanup (no TensorFlow needed): two lungs are told apart by x (x increases to
    the patient's left), whatever the model voted; two pieces of one lung on the same side (a
    cropped field of view, a tumour between them) stay one lung, named by the model's vote."""
    from grtv_nb.segment.unet import _cleanup

    organs = ["llung", "rlung"]
    two = np.zeros((4, 20, 40), np.uint8)
    two[:, 2:18, 2:12] = 1  # voted "llung" but lying on the right (small x)
    two[:, 2:18, 28:38] = 2
    left = _cleanup(two, organs, "llung")
    assert left.sum() == 640 and np.nonzero(left)[2].min() == 28
    one = np.zeros((4, 20, 40), np.uint8)
    one[:, 2:8, 2:12] = 2
    one[:, 12:18, 3:11] = 2
    assert _cleanup(one, organs, "rlung").sum() == 4 * 6 * 10 + 4 * 6 * 8
    assert not _cleanup(one, organs, "llung").any()
