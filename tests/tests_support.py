"""Helpers importable by test modules (conftest is not importable by name)."""

from pathlib import Path

import pytest


def shared_case(shared_data: Path, rel: str) -> Path:
    p = shared_data / rel
    if not p.exists():
        pytest.skip(f"{rel} is not in {shared_data}")
    return p
