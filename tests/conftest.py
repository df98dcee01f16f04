"""Shared fixtures: the real data folder (../shared/data) and phantom patients written once per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public DICOM-RT data beside the project (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (the ../shared/data folder beside the project)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """The default (HFS) phantom patient written as DICOM once per test session."""
    from grtv_nb.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("phantom") / "HFS")


@pytest.fixture(scope="session")
def phantom_study(phantom_dir):
    from grtv_nb import open_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_study(phantom_dir)


@pytest.fixture(scope="module")
def ts(shared_data):
    """(CT, labels) of the TotalSegmentator example (tests/nifti_ref.py); skips when absent."""
    from nifti_ref import ts_ct, ts_labels, ts_unavailable

    why = ts_unavailable()
    if why:
        pytest.skip(why)
    return ts_ct(), ts_labels()
