"""Atomic file writing, shared by every writer of grtv_nb: data goes to a temporary file in the
target's folder, which is renamed over the final name only once it is complete, so a crash never
leaves a half-written file under the final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ValidationError


def check_file_target(path: str | os.PathLike, what: str = "path", *, create_parent: bool = False) -> Path:
    """Validate a target file path: not a folder, parent folder existing (or created)."""
    path = Path(path)
    if path.is_dir():
        raise ValidationError(f"{what} {str(path)!r} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        if create_parent:
            parent.mkdir(parents=True, exist_ok=True)
        else:
            raise ValidationError(f"folder {str(parent)!r} of {what} does not exist")
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, what: str = "path", *, create_parent: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed."""
    path = check_file_target(path, what, create_parent=create_parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", what: str = "path", *, create_parent: bool = False,
                **kwargs):
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` when the block ends
    without error."""
    with atomic_path(path, what, create_parent=create_parent) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_bytes_atomic(path: str | os.PathLike, data: bytes | list[bytes], what: str = "path") -> Path:
    """Write bytes (or a list of byte chunks) to ``path`` atomically."""
    with atomic_open(path, "wb", what) as fh:
        for chunk in data if isinstance(data, list) else [data]:
            fh.write(chunk)
    return Path(path)
