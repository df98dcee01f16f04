"""Importing pydicom without the eager import it makes of a package grtv_nb never needs.

pydicom (3.x) imports ``requests`` when it is imported (``pydicom.data.download``, which fetches
pydicom's own test files and falls back on :mod:`urllib` without it): ~0.2 s of a fresh process's
first read, a tenth of its whole first ``readRTDir``. :func:`import_pydicom` imports pydicom with
``requests`` hidden (``sys.modules["requests"] = None`` for the duration), then unhides it: pydicom
downloads with :mod:`urllib`, and everyone else imports ``requests`` as usual. Nothing changes
when pydicom or ``requests`` is already imported. grtv_nb imports pydicom only when it needs it
(see :mod:`grtv_nb.dicom.rawheader`), always after calling it.
"""

from __future__ import annotations

import sys


def import_pydicom() -> None:
    """Import pydicom (once) without letting it import ``requests``."""
    if "pydicom" in sys.modules:
        return
    if "requests" in sys.modules:
        import pydicom  # noqa: F401
        return
    sys.modules["requests"] = None  # type: ignore[assignment]  # import requests -> ImportError
    try:
        import pydicom  # noqa: F401,F811
    finally:
        if "requests" in sys.modules and sys.modules["requests"] is None:
            del sys.modules["requests"]
