"""Example data for the notebooks: a few public DICOM-RT / CT sets, fetched with checksums and cached.

Every file of every set is listed in ``datasets_registry.txt`` (beside this module) with its SHA-256
and its upstream URL (a raw file at a fixed commit of the project that publishes it), the way
scikit-image and xarray ship their tutorial data (:mod:`pooch`).

Where the files come from
-------------------------
- **Data folder** (``GRTV_NB_DATA_DIR``; default ``$GRTV_NB_CACHE/data`` or ``~/.cache/grtv_nb/data``):
  laid out as ``<dataset>/<path>``. A file already there is used when its checksum matches, so a
  read-only copy of the data (the tests point it at ``../shared/data``) serves everything offline.
- **Download** of a missing (or corrupted) file into the data folder, from the upstream URL or from a
  mirror (``GRTV_NB_DATA_URL``: ``<mirror>/<dataset>/<path>``). Needs :mod:`pooch` (``grtv_nb[notebooks]``).
- ``phantom``: the built-in analytical patient, written locally (no download, always available).

A checksum that does not match after download, or a file that cannot be found nor downloaded, is an
error (:class:`~grtv_nb.errors.DataError`) naming the dataset, the file and what to set.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

#: Environment variables: the data folder, and a mirror base URL replacing the upstream URLs.
ENV_DATA_DIR = "GRTV_NB_DATA_DIR"
ENV_DATA_URL = "GRTV_NB_DATA_URL"
REGISTRY_FILE = Path(__file__).with_name("datasets_registry.txt")
HASH_CHUNK = 1 << 20  # bytes read at a time when checking a file's SHA-256


@dataclass(frozen=True)
class Dataset:
    """One example dataset: what it is, where it comes from, under which licence."""

    name: str
    title: str
    licence: str
    source: str
    patients: tuple[str, ...] = ()  # sub-folders holding one patient each ("" = the set itself)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("phantom", "Built-in analytical torso phantom: CT, RTSTRUCT (10 ROIs), RTDOSE (written locally)",
            "MIT (part of grtv_nb)", "grtv_nb.phantom", ("",)),
    Dataset("dicompyler-example", "Breast boost patient: 1 CT slice, RTSTRUCT (10 ROIs), RTPLAN, RTDOSE",
            "BSD-3-Clause (dicompyler-core)", "github.com/dicompyler/dicompyler-core tests/testdata/example_data",
            ("example_data",)),
    Dataset("cerr-radiomics-phantom", "4 cropped lung CTs with a GTV RTSTRUCT each",
            "CC BY-NC 3.0 (non-commercial; CancerData doi:10.17195/candat.2016.08.1)",
            "github.com/cerr/pyCERR cerr/datasets/radiomics_phantom_dicom", ("pat_1", "pat_2", "pat_3", "pat_4")),
    Dataset("pycerr-headneck-ct", "Head-and-neck CT, 90 slices, no structures",
            "pyCERR sample data (GPL-3.0 repository)", "github.com/cerr/pyCERR cerr/datasets/sample_ct",
            ("head_and_neck/pt_1",)),
    Dataset("totalsegmentator-example", "Abdominal CT (NIfTI + 20-slice JPEG 2000 DICOM) with TotalSegmentator labels",
            "Apache-2.0 (TotalSegmentator)", "github.com/wasserth/TotalSegmentator tests/reference_files",
            ("example_ct_dicom",)),
)}


@dataclass(frozen=True)
class _Entry:
    path: str  # relative to the dataset folder
    sha256: str
    url: str


def _registry() -> dict[str, list[_Entry]]:
    out: dict[str, list[_Entry]] = {name: [] for name in DATASETS}
    for line in REGISTRY_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sha, url = line.split()
        name, rel = key.split("/", 1)
        out[name].append(_Entry(rel, sha, url))
    return out


def data_dir() -> Path:
    """The data folder: ``$GRTV_NB_DATA_DIR``, else ``$GRTV_NB_CACHE/data``, else ``~/.cache/grtv_nb/data``."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("GRTV_NB_CACHE", Path.home() / ".cache" / "grtv_nb")).expanduser() / "data"


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[name]


def sha256sum(path: str | os.PathLike) -> str:
    """SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _url(name: str, entry: _Entry, base_url: str | None) -> str:
    base = base_url if base_url is not None else os.environ.get(ENV_DATA_URL)
    return f"{base.rstrip('/')}/{name}/{entry.path}" if base else entry.url


def _download(name: str, entry: _Entry, target: Path, url: str) -> None:
    try:
        import pooch
    except ImportError as exc:
        raise DataError(f"dataset {name!r}: {entry.path} is not in {target.parent} and downloading it needs "
                        "pooch (pip install 'grtv_nb[notebooks]'); or set GRTV_NB_DATA_DIR to a folder "
                        "holding the data") from exc
    import logging

    pooch.get_logger().setLevel(logging.WARNING)  # no "Downloading..." lines on stderr (notebook outputs)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=target.name, path=target.parent,
                       progressbar=False)
    except ValueError as exc:  # pooch: checksum mismatch (the bad download is not kept)
        raise DataError(f"dataset {name!r}: {entry.path} downloaded from {url} does not match its SHA-256 "
                        f"{entry.sha256[:12]}...: {exc}") from exc
    except Exception as exc:
        raise DataError(f"dataset {name!r}: {entry.path} is not in {target.parent} and could not be downloaded "
                        f"from {url} ({type(exc).__name__}: {exc}); set {ENV_DATA_DIR} to a folder holding "
                        f"<dataset>/<path>, or {ENV_DATA_URL} to a mirror") from exc


def fetch(name: str, *, root: str | os.PathLike | None = None, base_url: str | None = None) -> Path:
    """Make a dataset available locally and return its folder (``<data folder>/<name>``).

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (``grtv-nb data list``).
    root : path, optional
        The data folder (default :func:`data_dir`).
    base_url : str, optional
        A mirror serving ``<base_url>/<name>/<path>`` (default ``$GRTV_NB_DATA_URL``, else upstream).

    Every file is checked against its SHA-256; a missing or corrupted one is downloaded again.
    ``phantom`` is written locally (:func:`grtv_nb.phantom.default_phantom_dir`).
    """
    ds = _dataset(name)
    if ds.name == "phantom":
        from .phantom import default_phantom_dir

        return default_phantom_dir()
    root = Path(root).expanduser() if root is not None else data_dir()
    folder = root / name
    for entry in _registry()[name]:
        target = folder / entry.path
        if target.is_file() and sha256sum(target) == entry.sha256:
            continue
        _download(name, entry, target, _url(name, entry, base_url))
    return folder


def patient_folders(name: str, **kwargs) -> list[Path]:
    """The patient folders of a dataset (fetched first), each one study for :func:`grtv_nb.open_study`."""
    folder = fetch(name, **kwargs)
    return [folder / p if p else folder for p in _dataset(name).patients]


def list_datasets(root: str | os.PathLike | None = None) -> list[dict]:
    """One row per dataset: name, title, licence, source, files, MB (as published) and whether it is
    already complete in the data folder (by file presence; :func:`fetch` checks the checksums)."""
    root = Path(root).expanduser() if root is not None else data_dir()
    reg = _registry()
    rows = []
    for ds in DATASETS.values():
        entries = reg[ds.name]
        if ds.name == "phantom":
            local = True
        else:
            local = all((root / ds.name / e.path).is_file() for e in entries)
        size = sum((root / ds.name / e.path).stat().st_size for e in entries
                   if (root / ds.name / e.path).is_file())
        rows.append({"name": ds.name, "title": ds.title, "licence": ds.licence, "source": ds.source,
                     "files": len(entries), "local_mb": round(size / 1e6, 1), "available": local})
    return rows
