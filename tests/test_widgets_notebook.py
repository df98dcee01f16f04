"""The dashboard notebook executed headless by papermill leaves static pictures in its outputs."""

from __future__ import annotations

import base64
import io
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
    out = tmp_path / "dashboard.out.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    import nbformat

    nb = nbformat.read(out, as_version=4)
    bundles = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "data" in o]
    widget_outputs = [o for o in bundles if "application/vnd.jupyter.widget-view+json" in o["data"]]
    assert widget_outputs, "the dashboard cell displayed no widget"
    for o in widget_outputs:
        assert "image/png" in o["data"], "widget output has no static image/png"
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(o["data"]["image/png"]))).convert("RGB"))
        assert img.shape[0] > 300 and img.shape[1] > 600
        # a real picture: many colours, and the phantom's BODY outline green is in it
        assert len(np.unique(img.reshape(-1, 3) // 16, axis=0)) > 50
        assert (np.abs(img.astype(int) - (0, 200, 0)).max(axis=2) < 10).sum() > 100

    # an HTML report (nbconvert) of the executed notebook shows that picture once the widget state
    # is left out (nbclient stores it, and nbconvert then prefers the live-widget view)
    from nbconvert import HTMLExporter

    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert widget_outputs[0]["data"]["image/png"][:200] in body
