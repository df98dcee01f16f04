"""The notebooks in notebooks/ run headless with papermill (the batch one on a local Dask cluster)."""

import csv
from pathlib import Path

import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name, tmp_path, **params):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / name
    papermill.execute_notebook(str(NB / name), str(out), parameters=params, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False)
    import nbformat

    return nbformat.read(out, as_version=4)


def test_explore_notebook(tmp_path, phantom_dir):
    nb = _run("explore.ipynb", tmp_path, folder=str(phantom_dir))
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "Lung_L" in text and "voxels" in text
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_batch_notebook_on_dask(tmp_path, phantom_dir, shared_data):
    folders = [str(phantom_dir), str(shared_data / "cerr-radiomics-phantom" / "pat_2"), str(tmp_path / "missing")]
    out_csv = tmp_path / "summary.csv"
    _run("batch_summary.ipynb", tmp_path, folders=folders, out_csv=str(out_csv), n_workers=2)
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["folder"] for r in rows] == folders
    assert float(rows[0]["Lung_L cc"]) > 600 and float(rows[0]["dose_max_gy"]) > 60
    assert float(rows[1]["GTV-1 cc"]) > 1
    assert "does not exist" in rows[2]["error"]
