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



def test_warmup_command_runs_the_warmup(monkeypatch, capsys):
    import grtv_nb.warmup

    calls = []
    monkeypatch.setattr(grtv_nb.warmup, "warmup", lambda verbose=False: calls.append(verbose) or {})
    assert main(["warmup"]) == 0
    assert calls == [True]
    assert "Compiling grtv_nb's kernels into" in capsys.readouterr().out


def test_kernels_are_cached_on_disk_for_the_next_process(tmp_path):
    """A kernel compiled in one process lands in the on-disk cache (NUMBA_CACHE_DIR here), which
    is what ``grtv-nb warmup`` relies on."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    code = ("import numpy as np; from grtv_nb.transforms import load_kernel; from grtv_nb import _kernels; "
            "load_kernel(np.int16, np.int16); print(_kernels.cache_dir())")
    p = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == str(tmp_path)
    assert any("separable" in c.name for c in tmp_path.rglob("*.nbi"))
