"""Writers never touch what is not theirs: hostile input values never name a file, no write into
(or over) a source folder, ``overwrite`` replaces only a previous grtv_nb export, files put into a
target by others survive, temporaries of killed runs are cleaned, modes follow the umask, a full
disk leaves no partial file, clipping and ROI names are reported (grtv_nb.fileio and its users).

Kill -9 and race campaigns are in test_writer_faults.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from writer_campaign import snapshot

from grtv import GRTV_STATUS_FALIED, GRTV_STATUS_OK, pyGRTV
from grtv_nb import fileio, open_study
from grtv_nb.errors import FolderBusyError, GRTVError, GRTVWarning, ValidationError, WriteError
from grtv_nb.export import export_rt
from grtv_nb.mesh import write_mesh
from grtv_nb.rawio import read_raw, write_raw

#: slices of the small phantom these tests export (fast, and small enough for a 2 MiB disk test)
SMALL_Z = np.arange(10) * 3.0 - 13.5
EXPORT_NAME = re.compile(r"^((CT|MR|PT|IMG)_\d{4}|RS_grtv_nb|RD_grtv_nb|RP_plan)\.dcm$")


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.fixture(scope="module")
def small_phantom(tmp_path_factory) -> Path:
    from grtv_nb.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("small") / "p", z_positions=SMALL_Z)


@pytest.fixture
def patient(tmp_path, small_phantom) -> tuple[Path, Path]:
    """(work root, a patient folder inside it: root/data/pat, beside a sibling root/data/pat2)."""
    root = tmp_path / "root"
    shutil.copytree(small_phantom, root / "data" / "pat")
    shutil.copytree(small_phantom, root / "data" / "pat2")
    return root, root / "data" / "pat"


def _exported_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# ----------------------------------------------------------------------------------------------
# names never come from input values
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modality", ["../../X", "ABS", "SOURCE", "CT/../../../y", "..", "CT\\..\\z", "",
                                      "CT\nx", "C" * 300, "RS_grtv_nb"])
def test_hostile_modality_never_names_a_file(patient, modality):
    root, src = patient
    value = {"ABS": str(root / "abs" / "X"), "SOURCE": str(src)}.get(modality, modality)
    for f in sorted(src.glob("CT_*.dcm")):
        ds = pydicom.dcmread(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom: not a valid CS
            ds.Modality = value
            ds.save_as(f, enforce_file_format=True)
    before = snapshot(root, [])
    st = _quiet(open_study, src)
    assert st.has_image, "the reader must still accept the slices (their Modality is only a label)"
    out = root / "exp"
    _quiet(export_rt, st, out)
    names = _exported_names(out)
    assert all(EXPORT_NAME.match(n) for n in names), names
    prefix = "CT" if value == "CT" else "IMG"
    assert [n for n in names if n.startswith(prefix)] == [f"{prefix}_{i:04d}.dcm" for i in range(1, 11)]
    assert {"RS_grtv_nb.dcm", "RD_grtv_nb.dcm"} <= set(names)
    assert snapshot(root, [out]) == before  # nothing created or changed outside the export folder


def test_augment_prefixes_and_model_names_are_plain_file_names(tmp_path):
    from grtv_nb.augment import augment_volumes

    vol = np.zeros((4, 6, 6), np.int16)
    for bad in ("../x", str(tmp_path / "abs"), ".hidden", "a\nb", "a\\b", "x" * 300, "", "a/b"):
        with pytest.raises(ValidationError, match="fileNameList"):
            augment_volumes([vol], tmp_path / "out", times=1, names=[bad], progress=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# source folders
# ----------------------------------------------------------------------------------------------
def test_export_target_is_never_a_source_inside_one_or_holding_one(patient):
    root, src = patient
    st = _quiet(open_study, src)
    (root / "link_src").symlink_to(src, target_is_directory=True)
    (root / "link_data").symlink_to(root / "data", target_is_directory=True)
    (root / "user").mkdir()
    (root / "user" / "notes.txt").write_text("mine")
    (root / "dangling").symlink_to(root / "nowhere" / "x", target_is_directory=True)
    before = snapshot(root, [])
    cases = [  # (target, why without overwrite, why with it)
        (src, "is the folder", "is the folder"),
        (src / "sub", "lies inside", "lies inside"),
        (src / "sub" / "deeper", "lies inside", "lies inside"),
        (root / "data" / "pat2" / ".." / "pat", "is the folder", "is the folder"),
        (root / "data", "contains", "contains"),
        (root, "contains", "contains"),
        (root / "link_src", "is the folder", "is the folder"),
        (root / "link_src" / "out", "lies inside", "lies inside"),
        (root / "link_data", "contains", "contains"),
        (root / "user", "not empty", "not a grtv_nb export"),
    ]
    cases.append((root / "dangling", "missing folder", "missing folder"))
    for target, why, why_overwrite in cases:
        with pytest.raises(ValidationError, match=why):
            export_rt(st, target)
        with pytest.raises(ValidationError, match=why_overwrite):
            export_rt(st, target, overwrite=True)
    assert snapshot(root, []) == before  # the sibling patient, the user's folder: all untouched
    g = pyGRTV()
    assert _quiet(g.readRTDir, str(src)) == GRTV_STATUS_OK
    with pytest.warns(GRTVWarning, match="contains"):
        assert g.exportRT(str(root / "data"), overwrite=True) == GRTV_STATUS_FALIED
    assert snapshot(root, []) == before


def test_no_writer_writes_into_a_source_folder(patient):
    root, src = patient
    g = pyGRTV()
    assert _quiet(g.readRTDir, str(src)) == GRTV_STATUS_OK
    ct1 = src / "CT_0001.dcm"
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    os.link(ct1, elsewhere / "hardlink.dcm")
    (elsewhere / "symlink.dcm").symlink_to(ct1)
    before = snapshot(src, [])
    vol = np.zeros((4, 6, 6), np.int16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert g.exportROIMesh(1, str(ct1)) == GRTV_STATUS_FALIED
        assert g.exportROIMesh(1, str(src / "new.stl")) == GRTV_STATUS_FALIED
        assert g.writeRaw(str(ct1), vol) == GRTV_STATUS_FALIED
        assert g.writeRaw(str(src / "sub" / "x.raw"), vol) == GRTV_STATUS_FALIED
        assert g.augmentImg3D([vol], str(src), augmentTimes=1) == GRTV_STATUS_FALIED
        assert g.augmentImg3D([vol], str(src / "aug"), augmentTimes=1) == GRTV_STATUS_FALIED
    assert len([w for w in caught if "source folder" in str(w.message)]) == 6
    with pytest.raises(ValidationError, match="source folder"):
        g.study.dvh().to_csv(src / "dvh.csv")
    with pytest.raises(ValidationError, match="source folder"):
        write_mesh(g.study.mesh(1), ct1, "stl")
    # a link elsewhere is replaced as a link: the source file it pointed to is untouched
    assert g.exportROIMesh(1, str(elsewhere / "hardlink.dcm")) == GRTV_STATUS_OK
    assert g.writeRaw(str(elsewhere / "symlink.dcm"), vol) == GRTV_STATUS_OK
    assert not (elsewhere / "symlink.dcm").is_symlink()
    assert snapshot(src, []) == before


def test_protection_ends_with_the_study(tmp_path, small_phantom):
    import gc

    src = tmp_path / "p"
    shutil.copytree(small_phantom, src)
    st = _quiet(open_study, src)
    with pytest.raises(ValidationError, match="source folder"):
        write_raw(src / "x.raw", np.zeros(3, np.int16))
    del st
    gc.collect()
    write_raw(src / "x.raw", np.zeros(3, np.int16))  # no study from that folder is loaded any more
    assert (src / "x.raw").stat().st_size == 6


# ----------------------------------------------------------------------------------------------
# overwrite replaces a previous export only; nothing of others is deleted
# ----------------------------------------------------------------------------------------------
def test_overwrite_replaces_only_the_previous_export_files(patient):
    root, src = patient
    st = _quiet(open_study, src)
    out = root / "exp"
    _quiet(export_rt, st, out)
    manifest = out / fileio.MANIFEST_NAME
    listed = {f["name"] for f in __import__("json").loads(manifest.read_text())["files"]}
    assert listed == set(_exported_names(out)) and len(listed) == 12
    (out / "user.txt").write_text("added by a colleague")
    with pytest.raises(ValidationError, match="not part of its grtv_nb export.*user.txt"):
        _quiet(export_rt, st, out, overwrite=True)
    assert (out / "user.txt").read_text() == "added by a colleague"
    (out / "user.txt").unlink()
    rs = (out / "RS_grtv_nb.dcm").read_bytes()
    _quiet(export_rt, st, out, overwrite=True)
    assert (out / "RS_grtv_nb.dcm").read_bytes() != rs and set(_exported_names(out)) == listed
    # a manifest that lists paths outside the folder is refused, never followed
    victim = root / "victim.txt"
    victim.write_text("keep")
    manifest.write_text('{"format": "grtv_nb export", "version": 1, "files": [{"name": "../victim.txt"}]}')
    with pytest.raises(ValidationError, match="not a valid file name"):
        _quiet(export_rt, st, out, overwrite=True)
    assert victim.read_text() == "keep"


def test_files_put_into_the_target_during_an_export_survive(patient, monkeypatch):
    import grtv_nb.export as ex

    root, src = patient
    st = _quiet(open_study, src)
    out = root / "exp"
    real = ex._export_images

    def meanwhile(study, tmp, ps, drop=("user.txt",)):
        res = real(study, tmp, ps)
        for name in drop:
            (out / name).write_text("not grtv_nb's")
        return res

    monkeypatch.setattr(ex, "_export_images", meanwhile)
    _quiet(export_rt, st, out)
    assert (out / "user.txt").read_text() == "not grtv_nb's"
    assert "RS_grtv_nb.dcm" in _exported_names(out)
    # another program writes a file of the same name as one of ours: the export refuses to replace it
    out = root / "exp2"
    monkeypatch.setattr(ex, "_export_images", lambda s, t, p: meanwhile(s, t, p, drop=("RS_grtv_nb.dcm",)))
    with pytest.raises(ValidationError, match="appeared while the export ran"):
        _quiet(export_rt, st, out)
    out2 = out
    assert (out2 / "RS_grtv_nb.dcm").read_text() == "not grtv_nb's"
    assert sorted(os.listdir(out2)) == ["RS_grtv_nb.dcm"]  # no staging, lock or partial file left


def test_a_second_writer_on_a_locked_folder_fails_at_once(tmp_path):
    with fileio.FolderTransaction(tmp_path / "t", "target"):
        with pytest.raises(FolderBusyError, match="another grtv_nb run"):
            with fileio.replace_folder(tmp_path / "t", "exportDir"):
                pass
    assert os.listdir(tmp_path / "t") == []  # lock released and removed


# ----------------------------------------------------------------------------------------------
# temporaries of killed runs
# ----------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def test_leftovers_of_killed_runs_are_removed_and_nothing_else(tmp_path, small_phantom):
    from grtv_nb.phantom import write_phantom

    dead, host = _dead_pid(), fileio._host()
    out = tmp_path / "exp"
    _quiet(write_phantom, out, z_positions=SMALL_Z)
    stale = [f".grtv_nb-stage-{host}-{dead}-0123abcd", f".CT_0001.dcm~grtv_nb-tmp-{host}-{dead}-0123abcd"]
    kept = [f".x~grtv_nb-tmp-{host}-{os.getppid()}-0123abcd",  # a live process
            f".x~grtv_nb-tmp-ffffffff-{dead}-0123abcd"]  # another host: can't tell, left alone
    (out / stale[0]).mkdir()
    (out / stale[0] / "CT_0001.dcm").write_bytes(b"half")
    for n in stale[1:] + kept:
        (out / n).write_bytes(b"half")
    (out / fileio.LOCK_NAME).write_bytes(b"")  # a lock file a killed run left (not locked any more)
    _quiet(write_phantom, out, z_positions=SMALL_Z, overwrite=True)
    left = sorted(n for n in os.listdir(out) if n.startswith("."))
    assert left == sorted(kept + [fileio.MANIFEST_NAME])
    # the atomic file writer cleans its folder too (raw files beside a killed writeRaw's temporary)
    d = tmp_path / "raw"
    d.mkdir()
    (d / f".a.raw~grtv_nb-tmp-{host}-{dead}-0123abcd").write_bytes(b"half")
    (d / ".exp.tmp-abc").mkdir()  # not ours: kept
    write_raw(d / "b.raw", np.zeros(2, np.int16))
    assert sorted(os.listdir(d)) == [".exp.tmp-abc", "b.raw"]


# ----------------------------------------------------------------------------------------------
# permissions follow the umask
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_and_folders_follow_the_umask(tmp_path, small_phantom, mask):
    from grtv_nb.augment import augment_volumes
    from grtv_nb.phantom import write_phantom

    old = os.umask(mask)
    try:
        src = _quiet(write_phantom, tmp_path / "ph" / "p", z_positions=SMALL_Z)
        st = _quiet(open_study, src)
        _quiet(export_rt, st, tmp_path / "a" / "exp")
        write_raw(tmp_path / "b" / "c" / "v.raw", np.zeros((2, 2, 2), np.int16), header=True)
        write_mesh(st.mesh("BODY"), tmp_path / "m.stl")
        st.dvh().to_csv(tmp_path / "dvh.csv")
        augment_volumes([np.zeros((4, 6, 6), np.int16)], tmp_path / "aug" / "x", times=2, write_mhd=True,
                        progress=False)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    dirs = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert len(files) > 30 and len(dirs) >= 7
    bad = [(str(p), oct(p.stat().st_mode & 0o777)) for p in files if p.stat().st_mode & 0o777 != 0o666 & ~mask]
    bad += [(str(p), oct(p.stat().st_mode & 0o777)) for p in dirs if p.stat().st_mode & 0o777 != 0o777 & ~mask]
    assert not bad


# ----------------------------------------------------------------------------------------------
# a full disk (a 2 MiB tmpfs; needs root)
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the full-disk tests mount a small tmpfs, which needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("the full-disk tests need mount/umount to mount a small tmpfs")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0777", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path, leave: int = 0) -> None:
    """Fill ``disk`` leaving ``leave`` bytes (rounded down to blocks) free."""
    s = os.statvfs(disk)
    free = s.f_bavail * s.f_frsize
    size = max(0, free - leave) // s.f_frsize * s.f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * size)


def test_full_disk_never_leaves_a_partial_file(tiny_disk, phantom_study):
    disk = tiny_disk
    st = phantom_study  # its export (64 slices) is larger than the disk
    # an export larger than the disk: refused at the first write that does not fit; nothing left
    with pytest.raises(WriteError, match="No space left"):
        _quiet(export_rt, st, disk / "exp")
    (disk / "empty").mkdir()
    g = pyGRTV()
    g.study = st
    with pytest.warns(GRTVWarning, match="No space left"):
        assert g.exportRT(str(disk / "empty")) == GRTV_STATUS_FALIED
    assert sorted(os.listdir(disk)) == ["empty"] and os.listdir(disk / "empty") == []
    # the raw file fits, its header does not (its close fails): neither is replaced
    old = np.arange(8, dtype=np.int16).reshape(2, 2, 2)
    write_raw(disk / "v.raw", old, header=True)
    old_mhd = (disk / "v.mhd").read_bytes()
    new = np.ones((16, 16, 64), np.int16)  # 32 KiB
    _fill(disk, leave=new.nbytes)
    with pytest.raises(WriteError, match="No space left"):
        write_raw(disk / "v.raw", new, header=True)
    assert np.array_equal(read_raw(disk / "v.raw"), old) and (disk / "v.mhd").read_bytes() == old_mhd
    # mesh, CSV, single header on a full disk
    fd = os.open(disk / "filler2", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    for call in (lambda: write_mesh(st.mesh("BODY"), disk / "m.stl"),
                 lambda: st.dvh().to_csv(disk / "d.csv"),
                 lambda: write_raw(disk / "w.raw", new)):
        with pytest.raises(WriteError, match="No space left"):
            call()
    assert sorted(os.listdir(disk)) == ["empty", "filler", "filler2", "v.mhd", "v.raw"]


def test_full_disk_during_augmentation_keeps_rounds_whole(tiny_disk):
    from grtv_nb.augment import augment_volumes

    ct = np.zeros((16, 64, 64), np.int16)  # 128 KiB per round with its label
    lbl = np.zeros((16, 64, 64), np.uint8)
    lbl[4:12, 20:40, 20:40] = 255
    with pytest.raises(WriteError, match="No space left"):
        augment_volumes([ct, lbl], tiny_disk / "aug", times=40, names=["ct", "lbl"], seed=0, progress=False,
                        write_mhd=True)
    names = sorted(os.listdir(tiny_disk / "aug"))
    rounds = {int(n.split(".")[1]) for n in names}
    assert rounds and all(
        {f"{p}.{r:04d}.{e}" for p in ("ct", "lbl") for e in ("raw", "mhd")} <= set(names) for r in rounds)
    assert len(names) == 4 * len(rounds)  # nothing else: no staging folder, no partial round


# ----------------------------------------------------------------------------------------------
# clipping and names reported
# ----------------------------------------------------------------------------------------------
def test_resize_and_writeraw_report_what_they_clip(tmp_path):
    from scipy import ndimage

    rng = np.random.default_rng(3)
    vol = rng.normal(100, 120, (6, 10, 12)).astype(np.float32)
    g = pyGRTV()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert g.resizeImage3D(vol, (9, 15, 7), np.uint8)[0] == GRTV_STATUS_OK
    ref = ndimage.zoom(vol.astype(np.float64), (9 / 6, 15 / 10, 7 / 12), order=1, grid_mode=True, mode="nearest")
    expected = int(np.count_nonzero((ref <= -0.5) | (ref >= 255.5)))
    assert 20 < expected < 945
    msgs = [str(w.message) for w in caught if issubclass(w.category, GRTVWarning)]
    assert msgs == [f"resizeImage3D: {expected} of {9 * 15 * 7} values lie outside uint8's range 0..255 (or NaN) "
                    "and were clipped to it (NaN to 0)"] * 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert g.resizeImage3D(np.clip(np.nan_to_num(vol), 0, 255), (9, 15, 7), np.uint8)[0] == GRTV_STATUS_OK
        hu = np.array([-1024, -1, 0, 255, 256, 3000], np.int16)
        for _ in range(2):
            assert g.writeRaw(str(tmp_path / "x.raw"), hu, np.uint8) == GRTV_STATUS_OK
        assert g.writeRaw(str(tmp_path / "y.raw"), np.array([np.nan, 1.0, 65535.4, 65535.5]), np.uint16) == 0
        assert g.writeRaw(str(tmp_path / "z.raw"), np.array([1e39, -3.0, np.inf]), np.float32) == GRTV_STATUS_OK
    msgs = [str(w.message) for w in caught if issubclass(w.category, GRTVWarning)]
    assert msgs == ["writeRaw: 4 of 6 values lie outside uint8's range 0..255 (or NaN) and were clipped to it "
                    "(NaN to 0)"] * 2 + [
        "writeRaw: 2 of 4 values lie outside uint16's range 0..65535 (or NaN) and were clipped to it (NaN to 0)",
        "writeRaw: 1 of 3 values lie beyond float32's range and became infinite"]
    assert read_raw(tmp_path / "y.raw", shape=(4,), dtype=np.uint16).tolist() == [0, 1, 65535, 65535]


def test_check_roi_name_rule():
    from grtv_nb.validate import check_roi_name

    assert check_roi_name("  PTV 1 ") == "PTV 1"
    assert check_roi_name("右肺") == "右肺"
    assert check_roi_name("x" * 64) == "x" * 64
    for bad, why in (("a\\b", "backslash"), ("x" * 65, "65 characters"), ("a\0b", "control"), ("a\nb", "control"),
                     ("\t", "control"), ("   ", "no visible"), (None, "must be a string"), (5, "must be a string")):
        with pytest.raises(ValidationError, match=why):
            check_roi_name(bad)
    fixes = {"a\\b": "a/b", "x" * 70: "x" * 64, "Left\n\tRight": "Left Right", "\0": "ROI", "a\x7fb": "a b"}
    for bad, fixed in fixes.items():
        with pytest.warns(GRTVWarning, match="it is used as"):
            assert check_roi_name(bad, fix=True) == fixed


def test_export_repairs_names_dicom_cannot_hold(patient):
    root, src = patient
    st = _quiet(open_study, src)
    st.rois[0].name = "Left\\Right\nside"  # as a reader that kept a broken name would leave it
    st.rois[1].name = "N" * 80
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_rt(st, root / "exp")
    msgs = [str(w.message) for w in caught if issubclass(w.category, GRTVWarning)]
    assert any("backslash" in m and "'Left/Right side'" in m for m in msgs), msgs
    assert any("80 characters" in m for m in msgs), msgs
    rs = pydicom.dcmread(root / "exp" / "RS_grtv_nb.dcm")
    names = [r.ROIName for r in rs.StructureSetROISequence]
    assert names[0] == "Left/Right side" and names[1] == "N" * 64
    with pytest.raises(ValidationError, match="backslash"):
        st.add_roi("a\\b", st.mask(0), (1, 2, 3))


def test_write_errors_are_grtv_and_os_errors():
    assert issubclass(WriteError, GRTVError) and issubclass(WriteError, OSError)
    assert issubclass(FolderBusyError, WriteError)


def test_source_folders_resolve_every_file_like_realpath(tmp_path):
    # plain files share one resolve of their folder; a symlinked file counts by its target's folder
    from grtv_nb.fileio import source_folders

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "1.dcm").write_bytes(b"x")
    (b / "2.dcm").write_bytes(b"x")
    (a / "link.dcm").symlink_to(b / "2.dcm")
    (tmp_path / "alias").symlink_to(a, target_is_directory=True)
    paths = [tmp_path / "alias" / "1.dcm", a / "link.dcm", a / "missing.dcm", tmp_path / "alias", None, a / ".."]
    want: list = []
    for p in paths:
        if p is not None:
            r = p.resolve()
            d = r if r.is_dir() else r.parent
            if d not in want:
                want.append(d)
    assert source_folders(paths) == want == [a.resolve(), b.resolve(), tmp_path.resolve()]
