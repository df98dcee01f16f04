"""Helpers importable by test modules (conftest is not importable by name)."""

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest


def shared_case(shared_data: Path, rel: str) -> Path:
    p = shared_data / rel
    if not p.exists():
        pytest.skip(f"{rel} is not in {shared_data}")
    return p


@contextlib.contextmanager
def grtv_warns(*patterns: str) -> Iterator[list[warnings.WarningMessage]]:
    """Expect several GRTVWarnings at once: each regex of ``patterns`` must match (``re.search``) the
    message of at least one GRTVWarning raised in the block, and every GRTVWarning raised must match
    one of them (an unexpected warning fails the test, as the suite's ``error`` filter wants).
    Warnings of other categories are re-emitted after the block, so the suite's filters apply to
    them. Yields the list of recorded GRTVWarnings (filled when the block ends)."""
    from grtv_nb.errors import GRTVWarning

    ours: list[warnings.WarningMessage] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield ours
    for w in caught:
        if issubclass(w.category, GRTVWarning):
            ours.append(w)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    messages = [str(w.message) for w in ours]
    missing = [p for p in patterns if not any(re.search(p, m) for m in messages)]
    assert not missing, f"no GRTVWarning matching {missing}; got {messages}"
    unexpected = [m for m in messages if not any(re.search(p, m) for p in patterns)]
    assert not unexpected, f"unexpected GRTVWarnings {unexpected} (expected only {list(patterns)})"
