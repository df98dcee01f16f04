"""The notebook gallery (notebooks/): every notebook is stored clean, has a parameters cell and a
papermill command that works as written; each runs top to bottom headless (papermill) on the phantom
or the real data of ../shared/data, and its outputs hold the numbers and pictures it promises."""

import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
GALLERY = sorted(p.name for p in NB.glob("*.ipynb"))
papermill = pytest.importorskip("papermill")
nbformat = pytest.importorskip("nbformat")


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory, shared_data):
    """Environment the kernels inherit: this checkout's grtv_nb, the example data from ../shared/data
    (offline), a private cache (the phantom is written there once)."""
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [saved.get("PYTHONPATH")])])
    os.environ["GRTV_NB_DATA_DIR"] = str(shared_data)
    os.environ["GRTV_NB_DATA_URL"] = "http://127.0.0.1:9/offline"  # a download would fail loudly
    os.environ["GRTV_NB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend puts the figures in the outputs
    yield shared_data
    os.environ.clear()
    os.environ.update(saved)


def _run(name, tmp_path, **params):
    out = tmp_path / name
    papermill.execute_notebook(str(NB / name), str(out), parameters=params, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    noise = [o.get("text", "")[:300] for o in outputs if o.get("name") == "stderr"]
    assert not noise, f"{name} wrote to stderr: {noise}"
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{name} shows a widget (a progress bar?): saved, it reopens as 'model not found'"
    return nb


def _text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") + o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _pngs(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


# ------------------------------------------------------------------------------- stored notebooks
@pytest.mark.parametrize("name", GALLERY)
def test_notebook_is_stored_clean_with_parameters(name):
    nb = nbformat.read(NB / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not stripped"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one cell tagged 'parameters'"
    # papermill can read every parameter (a comment with "=" in it makes it print parse errors)
    inferred = papermill.inspect_notebook(str(NB / name))
    names = re.findall(r"^(\w+)\s*=", params[0].source, re.M)
    assert names and set(inferred) == set(names)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")


COMMAND = re.compile(r"papermill notebooks/(\S+\.ipynb)[^`\n]*")


def test_every_gallery_notebook_prints_its_papermill_command():
    for name in GALLERY:
        text = "\n".join(c.source for c in nbformat.read(NB / name, as_version=4).cells if c.cell_type == "markdown")
        cmds = COMMAND.findall(text)
        assert cmds and all(c == name for c in cmds), f"{name}: no papermill command naming itself"
        for cmd in COMMAND.finditer(text):  # lists go as YAML (-y); -p would pass a string
            assert not re.search(r"-p \w+ ['\"]?\[", cmd[0]), f"{name}: {cmd[0]}"


# ------------------------------------------------------------------------------- executed notebooks
def test_quickstart(kernel_env, tmp_path):
    nb = _run("quickstart.ipynb", tmp_path)  # default: the phantom
    text = _text(nb)
    assert "ROIs      : 10" in text and "Dose      : max 62.881 Gy" in text
    # PTV row: volume, mean, max, D95. The volume against the phantom's analytic shape; the doses
    # ordered and under the dose maximum
    from grtv_nb.phantom import analytic_volume_cc

    row = re.search(r"PTV\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", text)
    assert row, text
    vol, mean, dmax, d95 = map(float, row.groups())
    assert vol == pytest.approx(analytic_volume_cc("PTV"), rel=0.005)
    assert 50 < d95 < mean < dmax <= 62.881
    assert _pngs(nb) == 2  # the axial slice and the DVH
    # the executed notebook, saved and turned into HTML, shows its pictures
    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(nb)
    assert page.count('src="data:image/png;base64,') == 2 and "PTV" in page


def test_explore_names_the_roi_and_shows_the_dose_slice(kernel_env, tmp_path, phantom_dir):
    nb = _run("explore.ipynb", tmp_path, folder=str(phantom_dir))
    text = _text(nb)
    from grtv_nb.phantom import analytic_volume_cc

    lung = re.search(r"Lung_L: 52526 voxels, ([\d.]+) cc", text)
    assert lung, text
    assert float(lung[1]) == pytest.approx(analytic_volume_cc("Lung_L"), rel=0.005)
    assert "axial slice at z = 37.5 mm" in text  # through the dose maximum (the PTV), not the middle
    assert _pngs(nb) == 1


def test_explore_refuses_a_wrong_folder_naming_the_parameter(kernel_env, tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match=r"parameter 'folder': '.*nowhere' is not an existing"):
        _run("explore.ipynb", tmp_path, folder=str(tmp_path / "nowhere"))


def test_pygrtv_sample1_meshes(kernel_env, tmp_path):
    nb = _run("pygrtv_sample1.ipynb", tmp_path, meshDir=str(tmp_path / "mesh"))
    text = _text(nb)
    assert "'size_x': 192, 'size_y': 144, 'size_z': 64, 'res_x': 2.0, 'res_y': 2.0, 'res_z': 3.0" in text
    assert "CT (64, 144, 192) int16" in text and "10 meshes written" in text
    assert sorted(p.stem for p in (tmp_path / "mesh").glob("*.ply"))[:2] == ["BODY", "Kidney_L"]
    assert _pngs(nb) == 1


def test_pygrtv_sample2_auto_lungs_exported(kernel_env, tmp_path):
    nb = _run("pygrtv_sample2.ipynb", tmp_path, expDataRoot=str(tmp_path / "export"))
    dice = [float(d) for d in re.findall(r"reference Lung_[LR]\s+Dice ([\d.]+)", _text(nb))]
    assert len(dice) == 2 and min(dice) > 0.95
    assert (tmp_path / "export" / "phantom" / "RS_grtv_nb.dcm").is_file()


def test_pygrtv_sample3_resized_raw(kernel_env, tmp_path):
    root = tmp_path / "rtsets"
    root.mkdir()
    (root / "p2").symlink_to(kernel_env / "cerr-radiomics-phantom" / "pat_2")
    out = tmp_path / "raw3d"
    nb = _run("pygrtv_sample3.ipynb", tmp_path, dataRoot=str(root), expDataRoot=str(out), size=64)
    assert (out / "0000_info.txt").read_text().splitlines()[0] == "41,64,64"
    assert (out / "0000_ct.raw").stat().st_size == 41 * 64 * 64 * 2
    assert (out / "0000_GTV-1.raw").stat().st_size == 41 * 64 * 64
    assert "read back (41, 64, 64) int16" in _text(nb) and _pngs(nb) == 1


def test_pygrtv_sample4_augmented(kernel_env, tmp_path):
    out = tmp_path / "aug"
    nb = _run("pygrtv_sample4.ipynb", tmp_path, outputDirectory=str(out), augmentTimes=1)
    text = _text(nb)
    assert "ROI 0: BODY ROI 5 : Lung_L" in text
    m = re.search(r"ct\.0001 labels \[0, 255\] lung voxels (\d+) vs (\d+)", text)
    assert m and abs(int(m[1]) / int(m[2]) - 1) < 0.1
    assert {p.name for p in out.iterdir()} >= {"ct.0001.raw", "ct.0001.mhd", "llung.0001.raw"}
    assert _pngs(nb) == 1


def test_dvh_plan_comparison(kernel_env, tmp_path):
    nb = _run("dvh_plan_comparison.ipynb", tmp_path)
    text = _text(nb)
    assert re.search(r"0\s+A\s+PTV\s+D95\s+at least\s+57\.0\s+58\.73\s+pass", text)  # plan A: the phantom's DVH
    assert re.search(r"\d\s+B\s+PTV\s+D95\s+at least\s+57\.0\s+[\d.]+\s+FAIL", text)  # shifted 10 mm: under-dosed
    assert "SpinalCanal" in text and _pngs(nb) == 1


def test_dvh_plan_comparison_refuses_bad_constraints(kernel_env, tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="parameter 'constraints' must be a list"):
        _run("dvh_plan_comparison.ipynb", tmp_path, constraints="PTV D95 >= 57")


def test_autocontour_dice_against_totalsegmentator(kernel_env, tmp_path):
    nb = _run("autocontour.ipynb", tmp_path, organs=["liver", "stomach", "spinal_cord"])
    rows = dict(re.findall(r"^(liver|stomach|spinal_cord)\s+[\d.]+\s+[\d.]+\s+([\d.]+)", _text(nb), re.M))
    assert float(rows["liver"]) > 0.8 and float(rows["stomach"]) > 0.6 and float(rows["spinal_cord"]) > 0.5
    assert "ROIs      : 3" in _text(nb) and _pngs(nb) == 1


def test_dl_data_prep(kernel_env, tmp_path):
    out = tmp_path / "dl"
    nb = _run("dl_data_prep.ipynb", tmp_path, folders=[str(kernel_env / "cerr-radiomics-phantom" / "pat_2")],
              out_dir=str(out), size=64, augment_times=1)
    assert (out / "case000_ct.raw").stat().st_size == 41 * 64 * 64 * 2
    assert (out / "case000_labels.mhd").is_file()
    assert (out / "augmented" / "case000" / "labels.0001.raw").stat().st_size == 41 * 64 * 64
    assert _pngs(nb) == 1


def test_export_roundtrip(kernel_env, tmp_path):
    nb = _run("export_roundtrip.ipynb", tmp_path, export_dir=str(tmp_path / "rt"))
    text = _text(nb)
    assert "largest voxel difference 0.0000 Gy" in text
    # the grown PTV (a mask ROI) written as contours and read back: same volume to 0.5 %
    grown = re.search(r"PTV_grown\s+[\d.]+\s+[\d.]+\s+1\.0\s+(-?[\d.]+)", text)
    assert grown and abs(float(grown[1])) < 0.5, text
    assert (tmp_path / "rt" / "RS_grtv_nb.dcm").is_file()


def test_patient_report(kernel_env, tmp_path, shared_data):
    html = tmp_path / "report.html"
    nb = _run("patient_report.ipynb", tmp_path, patient=str(shared_data / "dicompyler-example" / "example_data"),
              report_html=str(html))
    page = html.read_text()
    assert "Patient 123456" in page and "<td>Heart</td>" in page and page.count("data:image/png") == 2
    assert "<li>the RTSTRUCT references 98 image slices of which only 1 are present" in page  # the warning
    assert "Note: the RTSTRUCT references 98 image slices" in _text(nb)
    shown = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    assert "<td>Heart</td>" in shown


# ------------------------------------------------------------------------------- batch via papermill CLI
def _markdown_command(name: str) -> list[str]:
    text = "\n".join(c.source for c in nbformat.read(NB / name, as_version=4).cells if c.cell_type == "markdown")
    return shlex.split(COMMAND.search(text)[0])  # the first command of the notebook's text


def test_batch_command_as_written_and_a_string_is_refused(kernel_env, tmp_path, phantom_dir):
    """The command printed in batch_summary.ipynb, run as written (patient paths substituted)."""
    cmd = _markdown_command("batch_summary.ipynb")
    folders = [str(phantom_dir), str(kernel_env / "cerr-radiomics-phantom" / "pat_2"), str(tmp_path / "missing")]
    out = tmp_path / "batch"
    args = [sys.executable, "-m", "papermill", *cmd[1:]]
    args = [a.replace("/data/p1, /data/p2", ", ".join(folders)).replace("out/batch", str(out)) for a in args]
    assert "-y" in args and args[4] == str(out) + ".ipynb"
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    pats = list(csv.DictReader((out / "patients.csv").open()))
    assert [p["folder"] for p in pats] == folders
    assert [p["status"] for p in pats] == ["ok", "ok", "failed"] and "does not exist" in pats[2]["error"]
    assert float(pats[0]["dose_max_gy"]) > 60
    rois = list(csv.DictReader((out / "rois.csv").open()))
    gtv = [r for r in rois if r["roi"] == "GTV-1"]
    assert len(gtv) == 1 and gtv[0]["metric"] == "volume_cc" and float(gtv[0]["value"]) > 1  # no dose: volume only
    assert len(list((out / "reports").glob("*.html"))) == 2
    executed = nbformat.read(str(out) + ".ipynb", as_version=4)
    assert "3 patient(s), 1 failed" in _text(executed)
    # papermill's -p passes a string: refused with a clear message and a non-zero exit
    bad = [sys.executable, "-m", "papermill", str(NB / "batch_summary.ipynb"), str(tmp_path / "bad.ipynb"),
           "-p", "folders", f'["{phantom_dir}"]', "-p", "out_dir", str(tmp_path / "bad")]
    r = subprocess.run(bad, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "parameter 'folders' must be a list of patient folders, got the string" in r.stdout + r.stderr
    assert not (tmp_path / "bad").exists()
