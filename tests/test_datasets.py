"""Example datasets (grtv_nb.datasets): served offline from a local data folder (../shared/data),
downloaded from a mirror with their checksums verified, clear errors otherwise; the CLI's data command."""

import functools
import http.server
import shutil
import threading

import pytest

from grtv_nb import datasets
from grtv_nb.cli import main
from grtv_nb.errors import DataError


@pytest.fixture
def mirror():
    """A local HTTP server standing in for GRTV_NB_DATA_URL; yields (base_url, served folder setter)."""
    state = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(state["root"]), **k)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", functools.partial(state.__setitem__, "root")
    finally:
        srv.shutdown()
        srv.server_close()


def test_registry_matches_the_published_files(shared_data):
    reg = datasets._registry()
    assert set(reg) == set(datasets.DATASETS)
    for name, entries in reg.items():
        if name == "phantom":
            assert entries == []
            continue
        assert entries, name
        for e in entries:
            assert e.url.startswith("https://raw.githubusercontent.com/") and e.url.endswith(e.path)
            assert datasets.sha256sum(shared_data / name / e.path) == e.sha256, e.path


def test_offline_from_the_local_data_folder(shared_data, monkeypatch):
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(shared_data))
    monkeypatch.setenv(datasets.ENV_DATA_URL, "http://127.0.0.1:9/unreachable")  # never used: all local
    assert datasets.fetch("dicompyler-example") == shared_data / "dicompyler-example"
    pats = datasets.patient_folders("cerr-radiomics-phantom")
    assert [p.name for p in pats] == ["pat_1", "pat_2", "pat_3", "pat_4"]
    assert all(len(list(p.glob("*.dcm"))) > 40 for p in pats)
    rows = {r["name"]: r for r in datasets.list_datasets()}
    assert all(r["available"] for r in rows.values())
    assert rows["cerr-radiomics-phantom"]["files"] == 208 and "CC BY-NC" in rows["cerr-radiomics-phantom"]["licence"]
    assert rows["pycerr-headneck-ct"]["local_mb"] > 40


def test_download_from_a_mirror_verifies_and_repairs(shared_data, mirror, tmp_path):
    base, serve = mirror
    serve(shared_data)
    folder = datasets.fetch("dicompyler-example", root=tmp_path, base_url=base)
    assert folder == tmp_path / "dicompyler-example"
    for e in datasets._registry()["dicompyler-example"]:
        assert (folder / e.path).read_bytes() == (shared_data / "dicompyler-example" / e.path).read_bytes()
    assert not datasets.list_datasets(tmp_path)[2]["available"]  # only what was fetched is there
    # A corrupted cached file is noticed by its checksum and downloaded again.
    bad = folder / "example_data" / "rtss.dcm"
    bad.write_bytes(b"truncated")
    datasets.fetch("dicompyler-example", root=tmp_path, base_url=base)
    assert datasets.sha256sum(bad) == datasets.sha256sum(shared_data / "dicompyler-example/example_data/rtss.dcm")


def test_a_mirror_serving_a_wrong_file_is_refused(shared_data, mirror, tmp_path):
    base, serve = mirror
    served = tmp_path / "mirror"
    shutil.copytree(shared_data / "dicompyler-example", served / "dicompyler-example")
    (served / "dicompyler-example" / "example_data" / "rtplan.dcm").write_bytes(b"not the plan")
    serve(served)
    with pytest.raises(DataError, match=r"rtplan\.dcm .*does not match its SHA-256"):
        datasets.fetch("dicompyler-example", root=tmp_path / "cache", base_url=base)
    assert not (tmp_path / "cache" / "dicompyler-example" / "example_data" / "rtplan.dcm").exists()


def test_unreachable_and_unknown_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path))
    with pytest.raises(DataError, match="could not be downloaded.*GRTV_NB_DATA_DIR.*GRTV_NB_DATA_URL"):
        datasets.fetch("dicompyler-example", base_url="http://127.0.0.1:9")
    with pytest.raises(DataError, match="unknown dataset 'nope'; available: phantom, dicompyler-example"):
        datasets.fetch("nope")


def test_phantom_is_always_available_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GRTV_NB_CACHE", str(tmp_path))
    monkeypatch.setenv(datasets.ENV_DATA_URL, "http://127.0.0.1:9/unreachable")
    (folder,) = datasets.patient_folders("phantom")
    assert folder.parent == tmp_path and (folder / "RS_phantom.dcm").is_file()
    assert len(list(folder.glob("CT*.dcm"))) == 64


def test_cli_data_list_and_fetch(shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(shared_data))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "totalsegmentator-example" in out and "Apache-2.0" in out and "not fetched" not in out
    assert main(["data", "fetch", "cerr-radiomics-phantom"]) == 0
    assert str(shared_data / "cerr-radiomics-phantom") in capsys.readouterr().out
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path))
    assert main(["data", "list"]) == 0
    assert "not fetched" in capsys.readouterr().out
    assert main(["data", "fetch", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
