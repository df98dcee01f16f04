"""The API reference (``make docs``, docs/build_api.py) builds from the docstrings without a
warning, covers every public module, and every public function and class has a docstring."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "docs" / "build_api.py"

pytest.importorskip("pdoc", reason="pdoc builds the API reference (the test extra installs it)")


def _build_module():
    spec = importlib.util.spec_from_file_location("build_api", BUILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_api_reference_builds_without_warnings(tmp_path):
    out = tmp_path / "api"
    run = subprocess.run([sys.executable, str(BUILD), str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "(0 problems)" in run.stdout
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    expected = {f"{m.replace('.', '/')}.html" for m in _build_module().public_modules()}
    assert expected <= pages, sorted(expected - pages)
    # the folders without __init__.py are documented too, and the docstrings are rendered
    assert "grtv_nb/dicom/rtstruct.html" in pages and "grtv_nb/accessor.html" in pages
    assert "RT operations on a study Dataset" in (out / "grtv_nb" / "accessor.html").read_text(encoding="utf-8")


def test_missing_docstrings_are_found(monkeypatch):
    build = _build_module()
    fake = types.ModuleType("grtv_fake_module")

    def documented():
        """Has one."""

    def bare():
        pass

    class Bare:
        pass

    for obj in (documented, bare, Bare):
        obj.__module__ = fake.__name__
        setattr(fake, obj.__name__, obj)
    fake._private = bare  # private names are not part of the API
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    assert build.undocumented([fake.__name__]) == ["grtv_fake_module.bare", "grtv_fake_module.Bare"]
