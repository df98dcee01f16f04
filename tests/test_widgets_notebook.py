"""The dashboard notebook executed headless by papermill leaves static pictures in its outputs."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "dashboard.ipynb"


def test_papermill_leaves_static_images(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    pytest.importorskip("anywidget")
    from PIL import Image

    monkeypatch.setenv("GRTV_NB_CACHE", str(tmp_path / "cache"))
    # the kernel imports grtv_nb from this checkout (not from wherever the venv points)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "dashboard.out.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    import nbformat

    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "data" in o]
    widget_at = [k for k, o in enumerate(outputs) if "application/vnd.jupyter.widget-view+json" in o["data"]]
    assert widget_at, "the dashboard cell displayed no widget"
    for k in widget_at:
        # the static picture is its own output, just before the live widget
        static = outputs[k - 1]["data"]
        assert "grtv-static" in static.get("text/html", "") and "image/png" in static, "no static picture"
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(static["image/png"]))).convert("RGB"))
        assert img.shape[0] > 300 and img.shape[1] > 600
        # a real picture: many colours, and the phantom's BODY outline green is in it
        assert len(np.unique(img.reshape(-1, 3) // 16, axis=0)) > 50
        assert (np.abs(img.astype(int) - (0, 200, 0)).max(axis=2) < 10).sum() > 100
        # the background DVHs made it into the recorded picture: the PTV's red curve in the lower row
        lower = img[int(img.shape[0] * 0.6):]
        assert (np.abs(lower.astype(int) - (255, 0, 0)).max(axis=2) < 30).sum() > 100, "DVH missing"

    # an HTML report (nbconvert) of the executed notebook shows that picture, with the live-widget
    # state papermill stored left as it is
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    assert outputs[widget_at[0] - 1]["data"]["image/png"][:200] in body
