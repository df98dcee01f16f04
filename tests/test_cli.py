"""The command line: the README's main job (phantom), summary of a folder, clear errors."""

import json

from grtv_nb.cli import main


def test_main_job_on_the_phantom(tmp_path, capsys):
    assert main(["phantom", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Lung_L" in out and "Dose      : max" in out and "largest difference" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["grid"]["shape_zyx"] == [64, 144, 192]
    assert {r["name"] for r in summary["rois"]} >= {"BODY", "PTV"}
    for f in ("summary.txt", "dvh_stats.csv", "dvh_cumulative.csv", "phantom_axial.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert (tmp_path / "phantom_dicom" / "RS_phantom.dcm").exists()


def test_summary_and_clear_error(tmp_path, phantom_dir, capsys):
    assert main(["summary", str(phantom_dir)]) == 0
    assert "ROIs      : 10" in capsys.readouterr().out
    assert main(["summary", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
