"""Batch results as tidy tables, the per-patient HTML report, parameter validation, the CLI batch."""

import base64
import csv
import io
import re

import numpy as np
import pytest

from grtv_nb.batch import (
    PATIENT_COLUMNS,
    ROI_COLUMNS,
    ROI_METRICS,
    patient_report_html,
    patient_summary,
    report_figures,
    tidy_tables,
    validate_folder,
    validate_folders,
    write_tables,
)
from grtv_nb.cli import main
from grtv_nb.errors import ValidationError
from grtv_nb.phantom import analytic_volume_cc


def test_folder_parameters_are_validated(tmp_path):
    with pytest.raises(ValidationError, match=r"parameter 'folders' must be a list .*got the string '\[\"/a\"\]'.*-y"):
        validate_folders('["/a"]')
    with pytest.raises(ValidationError, match="parameter 'folders' must be a list of patient folders, got int 3"):
        validate_folders(3)
    with pytest.raises(ValidationError, match="parameter 'folders': item 1 must be a folder path"):
        validate_folders(["/a", ""])
    assert validate_folders([tmp_path, "missing"]) == [str(tmp_path), "missing"]
    with pytest.raises(ValidationError, match=r"parameter 'patient': '.*missing' is not an existing folder"):
        validate_folder(tmp_path / "missing")
    assert validate_folder(str(tmp_path)) == tmp_path


def test_tidy_tables_of_the_phantom_and_a_failure(tmp_path, phantom_dir, phantom_study):
    res = patient_summary(phantom_dir)
    tables = tidy_tables([res, {"folder": "/nowhere", "error": "DicomReadError: /nowhere does not exist"}])
    pats = tables["patients"]
    assert [p["status"] for p in pats] == ["ok", "failed"] and "does not exist" in pats[1]["error"]
    assert pats[0]["shape_zyx"] == "64x144x192" and pats[0]["dose_max_gy"] > 60 and pats[0]["n_rois"] == 10
    rois = tables["rois"]
    assert all(set(r) == set(ROI_COLUMNS) for r in rois)
    vol = {r["roi"]: r["value"] for r in rois if r["metric"] == "volume_cc"}
    assert vol["Lung_L"] == pytest.approx(analytic_volume_cc("Lung_L"), rel=0.03)
    assert vol["Liver"] == pytest.approx(phantom_study.volume_cc("Liver"), abs=1e-3)
    ptv = {r["metric"]: r["value"] for r in rois if r["roi"] == "PTV"}
    assert set(ptv) == {"volume_cc", *ROI_METRICS}
    stats = phantom_study.dvh().stats
    assert ptv["D95"] == pytest.approx(float(stats["D95"].sel(roi="PTV")), abs=1e-4)
    assert ptv["D98"] <= ptv["D95"] <= ptv["D50"] <= ptv["D2"] <= ptv["max"]
    paths = write_tables(tables, tmp_path)
    got = list(csv.DictReader(paths["patients"].open()))
    assert list(got[0])[: len(PATIENT_COLUMNS)] == list(PATIENT_COLUMNS) and len(got) == 2
    assert len(list(csv.DictReader(paths["rois"].open()))) == len(rois)
    assert paths["warnings"].read_text().startswith("folder,patient_id,category,message")


def _pngs(page):
    import matplotlib.image as mpimg

    return [mpimg.imread(io.BytesIO(base64.b64decode(b)), format="png")
            for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_patient_report_with_and_without_dose(phantom_study, shared_data):
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("svg")  # stands in for a notebook's inline backend: the report must leave it alone
    try:
        figures = plt.get_fignums()
        page = patient_report_html(phantom_study)
        assert (matplotlib.get_backend(), plt.get_fignums()) == ("svg", figures)
    finally:
        plt.switch_backend(before)
    assert "<h1>Patient GRTVPHANTOM</h1>" in page and "<td>PTV</td>" in page and "D95 Gy" in page
    imgs = _pngs(page)
    assert len(imgs) == 2 and all(im.shape[0] > 150 and im.std() > 0.05 for im in imgs)
    ax = report_figures(phantom_study)["slice"].axes[0]
    left, right, bottom, top = ax.images[0].get_extent()
    assert top < bottom and left < right  # anterior (small y) at the top, patient's left on the right
    from grtv_nb import open_study

    st = open_study(shared_data / "cerr-radiomics-phantom" / "pat_2")
    page = patient_report_html(st, notes=["a <note>"])
    assert "<li>a &lt;note&gt;</li>" in page and "No dose" in page
    assert "<td>GTV-1</td>" in page and len(_pngs(page)) == 1


def test_cli_batch_writes_tidy_tables_and_reports(tmp_path, phantom_dir, capsys):
    out = tmp_path / "batch"
    assert main(["batch", str(phantom_dir), str(tmp_path / "missing"), "--out", str(out), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 patient(s), 1 failed" in text and "missing" in text
    pats = list(csv.DictReader((out / "patients.csv").open()))
    assert [p["status"] for p in pats] == ["ok", "failed"]
    (report,) = (out / "reports").glob("*.html")
    assert pats[0]["report"] == str(report) and "Lung_R" in report.read_text()
    rows = list(csv.DictReader((out / "rois.csv").open()))
    assert {r["roi"] for r in rows} >= {"BODY", "PTV", "Lung_L"}
    assert np.isfinite([float(r["value"]) for r in rows if r["metric"] == "mean"]).all()
