"""The Binder files describe the environment the gallery was tested in: the lock (binder/constraints.txt,
`make lock`) pins every package the notebooks need, at versions pyproject.toml accepts and this (tested)
environment has; every import of the gallery is provided; apt.txt has the off-screen GL libraries.
Building a fresh environment from the Binder files and running the gallery there takes minutes: it runs
only with GRTV_NB_BINDER_BUILD=1."""

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
sys.path.insert(0, str(BINDER))
import lock  # noqa: E402  (binder/lock.py)

packaging = pytest.importorskip("packaging")
from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

BINDER_EXTRAS = ("widgets", "batch", "notebooks")  # what postBuild installs
OPTIONAL_NOTEBOOKS = {"train_unet.ipynb": {"tensorflow"}}  # marked optional: TensorFlow is not on Binder


def _pins() -> dict[str, str]:
    pins = {}
    for line in (BINDER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_lock_pins_what_pyproject_asks_for():
    pins = _pins()
    proj = _pyproject()
    reqs = [Requirement(r) for r in proj["dependencies"]]
    for extra in BINDER_EXTRAS:
        reqs += [Requirement(r) for r in proj["optional-dependencies"][extra]]
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            reqs.append(Requirement(line))
    for r in reqs:
        name = canonicalize_name(r.name)
        assert name in pins, f"{r.name} (pyproject/requirements) is not in binder/constraints.txt: run `make lock`"
        assert r.specifier.contains(pins[name], prereleases=True), f"lock pins {name}=={pins[name]}, outside {r}"


def test_lock_is_the_tested_environment():
    """Every package the notebook extras need is pinned at the version installed here (make test installs
    with the lock, so a difference means pyproject.toml changed without `make lock`)."""
    pins = _pins()
    need = lock._closure(lock.project_requirements(BINDER_EXTRAS))
    missing = sorted(set(need) - set(pins))
    assert not missing, f"not pinned in binder/constraints.txt (run `make lock`): {missing}"
    if lock.lock_python() != "{}.{}".format(*sys.version_info[:2]):
        pytest.skip(f"the lock is for Python {lock.lock_python()}; this is {sys.version_info[:2]}")
    drift = {n: (pins[n], v) for n, v in need.items() if pins[n] != v}
    assert not drift, f"pinned vs installed versions differ (run `make lock`): {drift}"


def test_binder_files_use_the_lock_and_the_same_python():
    req = (BINDER / "requirements.txt").read_text()
    assert re.search(r"^-c constraints\.txt$", req, re.M)
    post = (BINDER / "postBuild").read_text()
    m = re.search(r'pip install .*-c binder/constraints\.txt -e "\.\[([\w,]+)\]"', post)
    assert m and set(m[1].split(",")) == set(BINDER_EXTRAS)
    assert set(BINDER_EXTRAS) <= set(_pyproject()["optional-dependencies"])
    assert "grtv-nb data fetch" in post  # the gallery's data are in the image
    for f in ("postBuild", "start"):
        assert os.access(BINDER / f, os.X_OK), f"binder/{f} must be executable"
    assert (BINDER / "runtime.txt").read_text().strip() == f"python-{lock.lock_python()}"
    apt = set((BINDER / "apt.txt").read_text().split())
    assert {"libosmesa6", "libegl1", "libgl1"} <= apt  # VTK's off-screen rendering for the static 3D picture


def _imports(nb_path: Path) -> set[str]:
    import nbformat

    mods = set()
    for c in nbformat.read(nb_path, as_version=4).cells:
        if c.cell_type != "code":
            continue
        src = "\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods.add(node.module.split(".")[0])
    return mods


def test_every_gallery_import_is_provided_on_binder():
    need = set(lock._closure([*lock.project_requirements(BINDER_EXTRAS), Requirement("jupyterlab")]))
    dists = metadata.packages_distributions()
    own = {"grtv_nb", "grtv"}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for mod in sorted(_imports(nb) - own):
            if mod in sys.stdlib_module_names:
                continue
            names = {canonicalize_name(d) for d in dists.get(mod, [])}
            if names & OPTIONAL_NOTEBOOKS.get(nb.name, set()):
                continue
            assert names & set(need), f"{nb.name} imports {mod} ({names or 'not installed'}), not in the Binder env"


@pytest.mark.skipif(os.environ.get("GRTV_NB_BINDER_BUILD") != "1",
                    reason="builds a fresh environment from binder/ (minutes, network): set GRTV_NB_BINDER_BUILD=1")
def test_gallery_runs_in_an_environment_built_from_the_binder_files(tmp_path, shared_data):
    venv = tmp_path / "venv"
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(BINDER / "requirements.txt")], check=True)
    post = (BINDER / "postBuild").read_text()
    pip_line = re.search(r"python -m pip install (.*)", post)[1]
    subprocess.run([str(py), "-m", "pip", "install", "-q", *pip_line.replace('"', "").split()], check=True, cwd=ROOT)
    env = {**os.environ, "GRTV_NB_DATA_DIR": str(shared_data), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    for nb in ("quickstart.ipynb", "dvh_plan_comparison.ipynb", "patient_report.ipynb"):
        subprocess.run([str(py), "-m", "papermill", f"notebooks/{nb}", str(tmp_path / nb)], check=True, cwd=ROOT,
                       env=env)
