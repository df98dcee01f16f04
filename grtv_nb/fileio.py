"""Writing files and folders safely: the one atomic file writer of grtv_nb, the folder transaction
every multi-file writer uses (DICOM-RT exports, augmentation rounds, the phantom, saved models),
file-name checks and the guard that keeps writers out of the folders studies were read from.

Rules every writer follows through this module
----------------------------------------------
- **Atomic files.** Data goes to a temporary file beside the target
  (``.<name>~grtv_nb-tmp-<host>-<pid>-<token>``); it is flushed and closed, and only then renamed
  over the final name. A failed write, flush or close removes the temporary and raises
  :class:`~grtv_nb.errors.WriteError`: a final name never holds a partial file.
- **Umask.** Files are created with mode ``0o666`` and folders with ``0o777``, both minus the
  process umask (never ``mkstemp``/``mkdtemp``, whose 0600/0700 ignore it).
- **Temporaries of killed runs** are recognised by that name pattern (and ``.grtv_nb-stage-*``
  staging folders) and removed by the next write into the same folder, once the process that
  made them (same host, from the pid in the name) is gone. Nothing else is ever removed.
- **Folder transactions** (:class:`FolderTransaction`): an exclusive lock on the folder
  (``.grtv_nb.lock``, ``flock``; a second writer fails at once with
  :class:`~grtv_nb.errors.FolderBusyError`), files staged in ``.grtv_nb-stage-*`` inside it and
  moved into place under a journal (``.grtv_nb-journal.json``). A run killed while moving is
  rolled forward by the next run; one killed before leaves only its staging folder, which the
  next run removes: a commit appears whole or not at all.
- **Replacing a folder** (:func:`replace_folder`): the folder's manifest
  (``.grtv_nb-export.json``, moved in last) lists the files of a grtv_nb export; ``overwrite``
  replaces only a folder holding such a manifest and nothing but the files it lists. Files that
  another process puts into the folder are never deleted.
- **Source folders** (:func:`protect_folders`): while a study read from a folder is alive, no
  writer of this module writes into that folder (resolved paths; symlinks, bind mounts and case
  folding caught by comparing device/inode of the folder and of every existing ancestor).

Crash safety here is about the process dying (exceptions, ``kill -9``), not power loss: files and
folders are not fsynced (an fsync per file made an export of 64 CT slices 2-4 times slower).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from .errors import FolderBusyError, GRTVError, ValidationError, WriteError


def _log():
    """This module's logger (``logging`` is imported on first use: a study's reading never logs)."""
    import logging

    return logging.getLogger(__name__)


@functools.cache
def _host() -> str:
    """This host's tag in temporary names (8 hex digits of the host name's SHA-1), computed on first use
    (``hashlib`` and ``socket`` are not imported by reading a study)."""
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


#: name of the lock file a folder transaction holds (removed when it ends)
LOCK_NAME = ".grtv_nb.lock"
#: name of the journal of a commit in progress
JOURNAL_NAME = ".grtv_nb-journal.json"
#: name of the manifest of a grtv_nb export folder (moved in last)
MANIFEST_NAME = ".grtv_nb-export.json"
#: format marker and version inside the manifest and journal
MANIFEST_FORMAT = "grtv_nb export"
JOURNAL_FORMAT = "grtv_nb journal"
FORMAT_VERSION = 1

#: longest file name (UTF-8 bytes) a writer accepts: leaves room for the temporary's suffix
MAX_NAME_BYTES = 200
#: bytes of the final name kept in a temporary's name
_TMP_BASE_BYTES = 100
#: attempts to take a lock whose file was removed by the holder between open and flock
_LOCK_ATTEMPTS = 20
#: files created by writers: 0o666 minus the umask
_FILE_MODE = 0o666

# patterns compiled on first use (re's cache): a study's reading, which imports this module, never uses them
_TMP_RE = r"~grtv_nb-tmp-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}\Z"
_STAGE_RE = r"\A\.grtv_nb-stage-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}\Z"
_CONTROL = r"[\x00-\x1f\x7f]"


# ----------------------------------------------------------------------------------------------
# names
# ----------------------------------------------------------------------------------------------
def check_file_name(name: object, what: str = "file name") -> str:
    """A single file-name component safe to write: a non-empty ``str`` without path separators
    (``/``, ``\\``), control characters (NUL, newline...), a leading dot (hidden files and the
    names of this module's temporaries), ``..``, and at most :data:`MAX_NAME_BYTES` UTF-8 bytes.

    Raises
    ------
    ValidationError
        Naming ``what`` and the offending value.
    """
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{what} must be a non-empty string, got {name!r}")
    bad = ""
    if "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        bad = "a path separator"
    elif re.search(_CONTROL, name):
        bad = "a control character"
    elif name.startswith("."):
        bad = "a leading dot"
    else:
        try:
            if len(name.encode("utf-8")) > MAX_NAME_BYTES:
                bad = f"more than {MAX_NAME_BYTES} bytes"
        except UnicodeEncodeError:
            bad = "characters that cannot be encoded"
    if bad:
        raise ValidationError(f"{what} {name!r} is not a valid file name: it has {bad}")
    return name


def _tmp_name(final_name: str) -> str:
    import secrets

    base = final_name.encode("utf-8", "replace")[:_TMP_BASE_BYTES].decode("utf-8", "ignore")
    return f".{base}~grtv_nb-tmp-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # pragma: no cover - os.kill would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # EPERM: another user's live process; no such pid number: not ours
        return True
    return True


def _stale(name: str) -> bool:
    """Whether ``name`` is a temporary or staging folder of this module whose process is gone."""
    m = re.search(_TMP_RE, name) if name.startswith(".") else None
    m = m or re.match(_STAGE_RE, name)
    return m is not None and m.group(1) == _host() and not _pid_alive(int(m.group(2)))


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary files or staging folders."""
    return name.startswith(".") and bool(re.search(_TMP_RE, name) or re.match(_STAGE_RE, name))


def is_bookkeeping_name(name: str) -> bool:
    """Whether ``name`` is one of this module's own files (lock, journal, manifest, temporaries,
    staging folders): readers skip them."""
    return name in (LOCK_NAME, JOURNAL_NAME, MANIFEST_NAME) or is_temporary_name(name)


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Remove the temporaries (and staging folders) that killed runs left in ``folder``: only
    names of this module's pattern, only when the process that made them is gone. Returns how
    many were removed."""
    import shutil

    folder = Path(folder)
    n = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        if not _stale(e.name):
            continue
        try:
            if re.match(_STAGE_RE, e.name) and e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            elif not e.is_dir(follow_symlinks=False):
                os.unlink(e.path)
            else:
                continue
        except OSError as exc:  # pragma: no cover - best effort
            _log().info("could not remove stale temporary %s: %s", e.path, exc)
            continue
        _log().info("removed %s, left by a killed grtv_nb run", e.path)
        n += 1
    return n


_CLEANED: set[str] = set()


def _clean_once(folder: Path) -> None:
    """:func:`remove_stale_temps` on the first write into ``folder`` in this process (a folder
    holding many files is not listed again at every write)."""
    key = os.path.realpath(folder)
    if key not in _CLEANED:
        _CLEANED.add(key)
        remove_stale_temps(folder)


# ----------------------------------------------------------------------------------------------
# the folders studies were read from
# ----------------------------------------------------------------------------------------------
_PROTECTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _file_id(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def source_folders(paths: Iterable[str | os.PathLike | None]) -> list[Path]:
    """Resolved folders of ``paths`` (files count by their folder; ``None`` entries skipped)."""
    out: list[Path] = []
    seen: set[Path] = set()
    # resolved folder of each plain file's folder, by the folder's path text (one resolve per
    # folder; the files of a study share a few folders: no Path object a file)
    parents: dict[str, Path] = {}
    for p in paths:
        if p is None:
            continue
        s = os.fspath(p)
        try:
            mode = os.lstat(s).st_mode  # one call answers is_symlink() and, for anything else, is_dir()
        except (OSError, ValueError, TypeError):
            mode = 0
        name = os.path.basename(s) if isinstance(s, str) else ""
        if stat.S_ISLNK(mode) or stat.S_ISDIR(mode) or name in ("", ".", ".."):
            q = Path(p).resolve()
            d = q if q.is_dir() else q.parent
        else:  # a plain file (or nothing): its real folder is its folder's
            parent = os.path.dirname(s) or "."
            known = parents.get(parent)
            d = known if known is not None else parents.setdefault(parent, Path(parent).resolve())
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def protect_folders(owner: object, paths: Iterable[str | os.PathLike | None]) -> None:
    """While ``owner`` (a study) is alive, refuse every write into the folders of ``paths``."""
    _PROTECTED[owner] = [(d, _file_id(d)) for d in source_folders(paths)]


def protected_folders() -> list[tuple[Path, tuple[int, int] | None]]:
    """``(folder, (st_dev, st_ino))`` of every folder a live study was read from."""
    out: list[tuple[Path, tuple[int, int] | None]] = []
    for folders in list(_PROTECTED.values()):
        out.extend(f for f in folders if f not in out)
    return out


def _ancestors(path: Path) -> Iterator[tuple[Path, tuple[int, int] | None]]:
    """``path`` and its ancestors that exist, with their device/inode."""
    for a in (path, *path.parents):
        fid = _file_id(a)
        if fid is not None:
            yield a, fid


def check_outside_sources(target: str | os.PathLike, what: str, *, contains: bool = False,
                          extra: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse a ``target`` that is, or lies inside, a folder a live study was read from (or one of
    the folders of ``extra``); with ``contains``, also one that contains such a folder. Returns
    the resolved target."""
    target = Path(os.path.abspath(os.fspath(target)))
    resolved = target.resolve()
    folders = protected_folders() + [(d, _file_id(d)) for d in source_folders(extra)]
    if not folders:
        return resolved
    up = list(_ancestors(target)) + list(_ancestors(resolved))
    up_ids = {fid for _, fid in up}
    for folder, fid in folders:
        if folder == resolved or (fid is not None and fid == _file_id(target)):
            raise ValidationError(f"{what} '{target}' is the folder a study was read from ('{folder}'); "
                                  "grtv_nb never writes into a source folder")
        if resolved.is_relative_to(folder) or (fid is not None and fid in up_ids):
            raise ValidationError(f"{what} '{target}' lies inside '{folder}', a folder a study was read from; "
                                  "grtv_nb never writes into a source folder")
        if contains:
            tid = _file_id(resolved)
            if folder.is_relative_to(resolved) or (tid is not None and tid in {i for _, i in _ancestors(folder)}):
                raise ValidationError(f"{what} '{target}' contains '{folder}', a folder a study was read from; "
                                      "choose a folder outside the study's folders")
    return resolved


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents (0o777 minus the umask); returns those created,
    outermost first."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    created = []
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not d.is_dir():
                raise ValidationError(f"'{d}' exists and is not a folder") from None
            continue
        created.append(d)
    return created


def _remove_empty(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        try:
            os.rmdir(d)
        except OSError:
            break


def check_file_target(path: str | os.PathLike, what: str = "path", *, create_parent: bool = False) -> Path:
    """Validate a target file path: a path (not a folder), outside every source folder, its
    parent folder existing (or created when ``create_parent``)."""
    if not isinstance(path, str | os.PathLike):
        raise ValidationError(f"{what} must be a file path, got {type(path).__name__}")
    path = Path(os.fspath(path))
    if not path.name or path.is_dir():
        raise ValidationError(f"{what} {str(path)!r} is a folder; give a file name")
    if re.search(_CONTROL, str(path)):
        raise ValidationError(f"{what} {str(path)!r} contains a control character")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ValidationError(f"{what} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    check_outside_sources(parent, f"the folder of {what}")
    if not parent.exists() and not create_parent:
        raise ValidationError(f"folder {str(parent)!r} of {what} does not exist")
    return path


def write_error(exc: BaseException, what: str, path: Path) -> BaseException:
    """``exc`` as a :class:`~grtv_nb.errors.WriteError` naming ``what`` and ``path`` when it is a
    plain OSError (full disk, permissions...); any other exception unchanged."""
    if isinstance(exc, OSError) and not isinstance(exc, GRTVError):
        err = WriteError(f"cannot write {what} '{path}': {exc.strerror or exc}"
                         + (f" ({exc})" if exc.strerror and str(exc) != exc.strerror else ""))
        err.errno = exc.errno
        return err
    return exc


def _new_file(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _FILE_MODE)
    os.close(fd)


@contextmanager
def atomic_paths(paths: list[str | os.PathLike], what: str = "path", *,
                 create_parent: bool = False) -> Iterator[list[Path]]:
    """Yield one new empty temporary file beside each of ``paths`` (checked with
    :func:`check_file_target`); when the block ends without error each is renamed onto its path
    (in order), otherwise all are removed, and so are the folders created for them. The caller
    writes and closes the temporaries inside the block (a failed close must raise there)."""
    targets = [check_file_target(p, what, create_parent=create_parent) for p in paths]
    created: list[Path] = []
    tmps: list[Path] = []
    current = targets[0] if targets else Path(".")
    try:
        for p in targets:
            current = p
            if create_parent:
                created += _make_dirs(p.parent)
            _clean_once(p.parent)
            t = p.parent / _tmp_name(p.name)
            _new_file(t)
            tmps.append(t)
        yield tmps
        for t, p in zip(tmps, targets):
            current = p
            os.replace(t, p)
    except BaseException as exc:
        for t in tmps:
            with contextlib.suppress(OSError):
                os.unlink(t)
        _remove_empty(created)
        err = write_error(exc, what, current)
        if err is exc:
            raise
        raise err from exc


@contextmanager
def atomic_path(path: str | os.PathLike, what: str = "path", *, create_parent: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (an empty file with the umask's mode) to write;
    on success it is renamed onto ``path``, on error removed (see the module rules)."""
    with atomic_paths([path], what, create_parent=create_parent) as (tmp,):
        yield tmp


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", what: str = "path", *, create_parent: bool = False,
                **kwargs):
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` when the block ends
    without error (a failed write or close leaves ``path`` as it was)."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes new files: mode must start with 'w', got {mode!r}")
    with atomic_path(path, what, create_parent=create_parent) as tmp:
        fh = open(tmp, mode, **kwargs)  # noqa: SIM115 - closed below, errors included
        try:
            yield fh
        except BaseException:
            with contextlib.suppress(OSError):
                fh.close()
            raise
        fh.close()  # flush errors (full disk) surface here, before the rename


def write_bytes_atomic(path: str | os.PathLike, data: bytes | list[bytes], what: str = "path", *,
                       create_parent: bool = False) -> Path:
    """Write bytes (or a list of byte chunks) to ``path`` atomically."""
    with atomic_open(path, "wb", what, create_parent=create_parent) as fh:
        for chunk in data if isinstance(data, list) else [data]:
            fh.write(chunk)
    return Path(path)


# ----------------------------------------------------------------------------------------------
# folders
# ----------------------------------------------------------------------------------------------
def _lock_folder(folder: Path, what: str) -> int:
    """Take the exclusive lock of ``folder`` (non-blocking); returns the lock's descriptor."""
    lock = folder / LOCK_NAME
    busy = FolderBusyError(f"{what} '{folder}' is being written by another grtv_nb run (it holds "
                           f"'{LOCK_NAME}'); wait for it to finish or choose another folder")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: an exclusive lock file, removed at the end
        try:
            return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except FileExistsError:
            raise busy from None
    for _ in range(_LOCK_ATTEMPTS):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy from None
        st = os.fstat(fd)
        if _file_id(lock) == (st.st_dev, st.st_ino):
            return fd
        os.close(fd)  # the holder removed the lock file between our open and flock: take the new one
    raise busy


def _unlock_folder(folder: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(folder / LOCK_NAME)  # while still locked: a waiter re-checks the inode
    os.close(fd)


def _read_json(path: Path, fmt: str, what: str) -> dict:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{what}: cannot read '{path}' ({exc}); remove it if it is not from grtv_nb") from None
    if not isinstance(data, dict) or data.get("format") != fmt or data.get("version") != FORMAT_VERSION:
        raise ValidationError(f"{what}: '{path}' is not a {fmt} (version {FORMAT_VERSION}) file")
    return data


def _name_list(data: dict, key: str, path: Path, what: str) -> list[str]:
    names = data.get(key, [])
    if not isinstance(names, list):
        raise ValidationError(f"{what}: '{path}' has a bad '{key}' list")
    out = []
    for n in names:
        if isinstance(n, dict):
            n = n.get("name")
        try:
            out.append(n if n == MANIFEST_NAME else check_file_name(n, f"a name listed in '{path}'"))
        except ValidationError as exc:
            raise ValidationError(f"{what}: {exc}") from None
    return out


class FolderTransaction:
    """Exclusive, crash-safe writing of files into one folder (see the module rules).

    Use as a context manager: entering creates the folder if needed (and its parents), takes
    its lock (:class:`~grtv_nb.errors.FolderBusyError` if another run holds it) and recovers a
    killed run (journal rolled forward, stale temporaries and staging folders removed). Write
    files into :meth:`stage` by validated names, then :meth:`commit` them (as many times as
    needed). Leaving removes the staging folder and the lock; after an error, the folders this
    transaction created are removed again when empty.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder"):
        self.folder = Path(folder)
        self.what = what
        self._created: list[Path] = []
        self._stage: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> FolderTransaction:
        if self.folder.exists() and not self.folder.is_dir():
            raise ValidationError(f"{self.what} '{self.folder}' is a file, not a folder")
        try:
            self._created = _make_dirs(self.folder)
        except OSError as exc:
            raise write_error(exc, self.what, self.folder) from exc
        try:
            self._fd = _lock_folder(self.folder, self.what)
            self.recover()
        except BaseException as exc:
            self._leave(failed=True)
            err = write_error(exc, self.what, self.folder)
            if err is exc:
                raise
            raise err from exc
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._leave(failed=exc_type is not None)

    def _leave(self, failed: bool) -> None:
        import shutil

        try:
            if self._stage is not None:
                shutil.rmtree(self._stage, ignore_errors=True)
                self._stage = None
        finally:
            if self._fd is not None:
                _unlock_folder(self.folder, self._fd)
                self._fd = None
            if failed:
                _remove_empty(self._created)

    # ------------------------------------------------------------------
    def stage(self) -> Path:
        """The staging folder (created on first use) inside the target folder."""
        import secrets

        if self._stage is None:
            st = self.folder / f".grtv_nb-stage-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
            os.mkdir(st)
            self._stage = st
        return self._stage

    def existing(self) -> list[str]:
        """Names in the folder, without the lock, the journal and this module's temporaries."""
        return sorted(n for n in os.listdir(self.folder)
                      if n not in (LOCK_NAME, JOURNAL_NAME) and not is_temporary_name(n))

    def commit(self, names: list[str], remove: Iterable[str] = ()) -> None:
        """Move the staged files ``names`` into the folder (in order; existing files of those names
        are replaced) and delete the files ``remove`` (only names directly in the folder), under
        the journal: after a kill the next transaction finishes the commit."""
        import json

        stage = self.stage()
        names = [n if n == MANIFEST_NAME else check_file_name(n, "staged file") for n in names]
        remove = [check_file_name(n, "file to remove") for n in remove]
        for n in names:
            p = stage / n
            if not p.is_file() or p.is_symlink():
                raise GRTVError(f"internal: staged file '{p}' is missing")
        journal = {"format": JOURNAL_FORMAT, "version": FORMAT_VERSION, "stage": stage.name,
                   "move": names, "remove": remove}
        with atomic_paths([self.folder / JOURNAL_NAME], "journal") as (tmp,):
            tmp.write_text(json.dumps(journal), encoding="utf-8")
        self._roll_forward(stage, names, remove)

    def _roll_forward(self, stage: Path, names: list[str], remove: list[str]) -> None:
        for n in remove:
            p = self.folder / n
            if p.is_symlink() or p.is_file():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
        for n in names:
            src = stage / n
            if src.is_file():
                os.replace(src, self.folder / n)
        os.unlink(self.folder / JOURNAL_NAME)

    def recover(self) -> None:
        """Finish a commit a killed run left (its journal), remove stale temporaries."""
        import shutil

        jpath = self.folder / JOURNAL_NAME
        if jpath.exists():
            data = _read_json(jpath, JOURNAL_FORMAT, self.what)
            stage_name = data.get("stage")
            if not isinstance(stage_name, str) or not re.match(_STAGE_RE, stage_name):
                raise ValidationError(f"{self.what}: journal '{jpath}' names a bad staging folder {stage_name!r}")
            names = _name_list(data, "move", jpath, self.what)
            remove = _name_list(data, "remove", jpath, self.what)
            stage = self.folder / stage_name
            _log().info("finishing the commit of a killed grtv_nb run in %s", self.folder)
            self._roll_forward(stage, names, remove)
            if stage.is_dir() and not stage.is_symlink():
                shutil.rmtree(stage, ignore_errors=True)
        remove_stale_temps(self.folder)


def _manifest_files(folder: Path, what: str) -> list[str] | None:
    p = folder / MANIFEST_NAME
    if not (p.is_file() and not p.is_symlink()):
        return None
    data = _read_json(p, MANIFEST_FORMAT, what)
    return _name_list(data, "files", p, what)


def _classify(tx: FolderTransaction, overwrite: bool) -> list[str]:
    """The files of the previous export in the folder (to replace), or an error."""
    entries = tx.existing()
    if not entries:
        return []
    old = _manifest_files(tx.folder, tx.what)
    if not overwrite:
        kind = "a previous grtv_nb export" if old is not None else f"{len(entries)} entries"
        raise ValidationError(f"{tx.what} '{tx.folder}' is not empty (it holds {kind}); "
                              "pass overwrite=True to replace a previous grtv_nb export, or choose an empty folder")
    if old is None:
        raise ValidationError(
            f"{tx.what} '{tx.folder}' is not empty and is not a grtv_nb export (no {MANIFEST_NAME}); overwrite=True "
            "replaces only a previous grtv_nb export: choose a new or empty folder")
    foreign = [n for n in entries if n not in old and n != MANIFEST_NAME]
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise ValidationError(
            f"{tx.what} '{tx.folder}' holds {len(foreign)} entries that are not part of its grtv_nb export ({shown}); "
            "overwrite=True replaces only the files of a previous export: move them away first")
    return old


@contextmanager
def replace_folder(target: str | os.PathLike, what: str = "folder", *, overwrite: bool = False,
                   kind: str = "export", sources: Iterable[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Write a new set of files as the whole content of the folder ``target``.

    Yields the staging folder: write the files there, by validated names (no sub-folders). When
    the block ends without error they are committed with a manifest listing them (moved in
    last); the previous export's files not in the new set are deleted. ``target`` must be
    missing or empty, or (with ``overwrite``) hold a previous grtv_nb export and nothing else.
    It may not be, lie inside or contain a folder a live study was read from, nor one of the
    folders of ``sources``.

    Raises
    ------
    ValidationError
        Bad target (checked before anything is written).
    FolderBusyError
        Another run writes into ``target``.
    WriteError
        The disk refused a write; ``target`` is left as it was.
    """
    import json

    if not isinstance(target, str | os.PathLike):
        raise ValidationError(f"{what} must be a folder path, got {type(target).__name__}")
    path = Path(os.fsdecode(os.fspath(target)))
    if re.search(_CONTROL, str(path)):
        raise ValidationError(f"{what} {str(path)!r} contains a control character")
    if path.exists() and not path.is_dir():
        raise ValidationError(f"{what} '{path}' is a file, not a folder")
    if path.is_symlink() and not path.exists():
        raise ValidationError(f"{what} '{path}' is a symbolic link to a missing folder; give a real folder")
    resolved = check_outside_sources(path, what, contains=True, extra=sources)
    if path.is_dir() and not (path / JOURNAL_NAME).exists():  # refuse early, before the lock file is made
        _classify(cast(FolderTransaction, _Peek(resolved, what)), overwrite)  # _Peek: read-only stand-in
    try:
        with FolderTransaction(resolved, what) as tx:
            old = _classify(tx, overwrite)
            stage = tx.stage()
            yield stage
            names = sorted(os.listdir(stage))
            for n in names:
                check_file_name(n, "exported file")
                if not (stage / n).is_file():
                    raise GRTVError(f"internal: '{stage / n}' is not a file; exports hold files only")
            clash = [n for n in names if n not in old and os.path.lexists(resolved / n)]
            if clash:
                raise ValidationError(f"{what} '{resolved}': {', '.join(clash[:5])} appeared while the export ran "
                                      "(another program writes there); nothing was replaced")
            manifest = {"format": MANIFEST_FORMAT, "version": FORMAT_VERSION, "kind": kind,
                        "files": [{"name": n, "size": (stage / n).stat().st_size} for n in names]}
            fd = os.open(stage / MANIFEST_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(manifest, fh, indent=1)
            tx.commit(names + [MANIFEST_NAME], remove=[n for n in old if n not in names])
    except OSError as exc:
        err = write_error(exc, what, resolved)
        if err is exc:
            raise
        raise err from exc


class _Peek:
    """A read-only stand-in for a transaction, to classify a folder before locking it."""

    def __init__(self, folder: Path, what: str):
        self.folder, self.what = folder, what

    existing = FolderTransaction.existing
