"""Seeded mutation fuzzing of the DICOM-RT readers (used by tests/test_fuzz.py and
tools/fuzz_campaign.py).

A case copies one base folder (real data from ../shared/data, or the phantom), applies one
mutation to one file (bit flips, truncation, tag deletion, value replacement with NaN / inf /
huge / negative / empty / non-numeric / wrong count / wrong VR, huge declared sizes, junk files,
symbolic-link loops) and opens the copy with :func:`grtv_nb.open_study`, then reads everything a
user would (image, dose, every mask, the DVH). Each case ends in one class:

- ``same``: opened, and equal to the unmutated reference (required for *neutral* mutations, those
  that touch no geometry, pixel, dose or contour value);
- ``changed``: opened with other values (a non-neutral mutation), every value finite and plausible;
- ``refused``: one of grtv_nb's errors, naming the mutated file or the folder;
- failures: ``crash`` (a foreign exception), ``unnamed`` (our error without the file's name),
  ``wrong`` (a neutral mutation changed a result, or a non-finite / implausible value), ``hang``
  (over the time limit);
- ``skipped``: the mutation itself could not be applied (a harness problem, not a reader outcome).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import tempfile
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FAILURES = ("crash", "unnamed", "wrong", "hang")
#: seconds one case may take before it counts as a hang
CASE_TIMEOUT_S = 60
#: the largest plausible dose (Gy) in an opened study (grtv_nb.dicom.values.MAX_DOSE_GY)
MAX_DOSE_GY = 1.0e4

# tags whose change must not change any result (identity, descriptions, dates)
NEUTRAL_KEYWORDS = ["PatientName", "PatientID", "StudyDescription", "SeriesDescription", "InstitutionName",
                    "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "Manufacturer",
                    "StationName", "OperatorsName", "PatientBirthDate", "InstanceCreationTime"]
# tags the readers use (geometry, pixels, dose, structure references)
VALUE_KEYWORDS = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
                  "RescaleSlope", "RescaleIntercept", "SliceThickness", "BitsAllocated", "BitsStored",
                  "PixelRepresentation", "SamplesPerPixel", "NumberOfFrames", "DoseGridScaling",
                  "GridFrameOffsetVector", "DoseUnits", "SOPClassUID", "Modality", "SeriesInstanceUID",
                  "FrameOfReferenceUID", "SpecificCharacterSet", "SOPInstanceUID", "PixelData",
                  "DoseSummationType", "PhotometricInterpretation"]
NESTED_KEYWORDS = ["ROINumber", "ReferencedROINumber", "ContourData", "ROIName", "ContourGeometricType",
                   "ROIDisplayColor", "NumberOfContourPoints", "ReferencedFrameOfReferenceUID",
                   "RTROIInterpretedType", "StructureSetROISequence", "ROIContourSequence", "ContourSequence"]
BAD_VALUES = ["nan", "NaN\\NaN\\NaN", "inf", "-inf", "1e300", "-1e300", "1e30", "-1", "0", "", "abc", "\x00",
              "1\\2", "1\\2\\3\\4\\5\\6\\7", "65535", "4294967295", "2147483648", "-2147483649", "1e20",
              "0\\0\\0\\0\\0\\0", "1\\0\\0\\1\\0\\0", "\\\\", "ISO_IR 999", "1.5"]


@dataclass
class Mutation:
    kind: str
    file: str  # name of the mutated file ('' for folder-level mutations)
    detail: str
    neutral: bool = False


@dataclass
class Outcome:
    cls: str
    mutation: Mutation
    message: str = ""


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.counts[o.cls] += 1
        if o.cls in FAILURES:
            self.failures.append(o)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        order = ["same", "changed", "refused", *FAILURES, "skipped"]
        return f"{self.total} inputs: " + ", ".join(f"{k} {self.counts.get(k, 0)}" for k in order)


# ------------------------------------------------------------------ bases
def base_folders(shared_data: Path | None, phantom_dir: Path | None, *, large: bool = False) -> list[Path]:
    """The folders mutated: the phantom and small real data sets (``large`` adds bigger ones)."""
    out = []
    if phantom_dir is not None:
        out.append(Path(phantom_dir))
    if shared_data is not None and Path(shared_data).is_dir():
        rel = ["rt-utils-testdata/tests/mock_data", "pydicom-rt-testfiles", "rt-utils-testdata/tests/oriented_data"]
        if large:
            rel += ["dicompyler-example/example_data", "cerr-radiomics-phantom/pat_1",
                    "totalsegmentator-example/example_ct_dicom"]
        out += [Path(shared_data) / r for r in rel if (Path(shared_data) / r).is_dir()]
    return out


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in (".md", ".txt", ".tsv"))


# ------------------------------------------------------------------ results
def snapshot(study) -> dict:
    """What a user reads from a study, in comparable form."""
    snap = {"grid": tuple(np.round(a, 6).tobytes() for a in (study.grid.x, study.grid.y, study.grid.z)),
            "names": tuple(study.roi_names)}
    if study.has_image:
        snap["image"] = hashlib.sha1(np.ascontiguousarray(study.ds["image"].values).tobytes()).hexdigest()
    if study.has_dose:
        d = study.ds["dose"].values
        snap["dose"] = (float(d.sum()), float(d.max()))
    snap["voxels"] = tuple(study.voxel_count(i) for i in range(len(study.rois)))
    if study.has_dose and any(r.fillable for r in study.rois):
        dvh = study.dvh()
        snap["dvh"] = np.round(np.asarray(dvh.stats["mean"].values, dtype=float), 6).tobytes()
    return snap


def implausible(study) -> str:
    """'' when every value of the study is finite and plausible, else what is wrong."""
    g = study.grid
    for name, a in (("x", g.x), ("y", g.y), ("z", g.z)):
        if not np.isfinite(a).all():
            return f"non-finite {name} coordinates"
        if a.size > 1 and not (np.diff(a) > 0).all():
            return f"{name} coordinates not increasing"
    if study.has_image:
        im = study.ds["image"].values
        if im.dtype.kind == "f" and not np.isfinite(im).all():
            return "non-finite image values"
    if study.has_dose:
        d = study.ds["dose"].values
        if not np.isfinite(d).all():
            return "non-finite dose"
        if d.size and (d.min() < 0 or d.max() > MAX_DOSE_GY):
            return f"dose out of range ({d.min():g}..{d.max():g} Gy)"
    for r in study.rois:
        for c in r.contours:
            if not np.isfinite(c).all():
                return f"non-finite contour of ROI {r.name!r}"
    return ""


def open_quietly(folder: Path):
    from grtv_nb import open_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = open_study(folder)
        snap = snapshot(st)
        # what else a user reads: the summary table and the first slice's tags (getImageDcmTags)
        st.summary()
        if st.image_headers:
            from grtv_nb.dicom.tags import dataset_to_dict

            dataset_to_dict(st.image_headers[0])
    return st, snap


# ------------------------------------------------------------------ mutations
def _flip_bits(data: bytearray, rng: random.Random) -> str:
    n = rng.choice([1, 2, 4, 8, 32])
    header_end = min(len(data), 2048)
    spots = []
    for _ in range(n):
        # mostly in the header (where the values are), sometimes anywhere
        i = rng.randrange(header_end) if rng.random() < 0.8 or len(data) <= header_end else rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
        spots.append(i)
    return f"{n} bit(s) flipped at {spots[:4]}"


def _candidates(ds) -> list[tuple[tuple, str]]:
    """(path to a dataset, keyword) pairs present in ``ds``; a path is a tuple of (sequence
    keyword, item index) steps from the top."""
    cands = [((), kw) for kw in VALUE_KEYWORDS + ["StructureSetROISequence", "ROIContourSequence"] if kw in ds]
    for seq_kw in ("StructureSetROISequence", "ROIContourSequence", "RTROIObservationsSequence"):
        for i, item in enumerate(ds.get(seq_kw, [])):
            cands += [(((seq_kw, i),), kw) for kw in NESTED_KEYWORDS if kw in item]
            for j, c in enumerate(item.get("ContourSequence", [])[:3]):
                cands += [(((seq_kw, i), ("ContourSequence", j)), kw)
                          for kw in ("ContourData", "ContourGeometricType", "NumberOfContourPoints") if kw in c]
    return cands


def _resolve(ds, path: tuple):
    for seq_kw, i in path:
        seq = ds.get(seq_kw, None)
        if seq is None or len(seq) <= i:
            return None
        ds = seq[i]
    return ds


def _pydicom_mutation(paths: list[Path], rng: random.Random) -> tuple[str, bool] | None:
    """Delete or replace one element (top level or nested) in each of ``paths`` (the same change
    in every file: e.g. one slice, or every slice of a series); returns (detail, neutral)."""
    import pydicom
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement

    try:
        first = pydicom.dcmread(paths[0], force=True)
    except Exception:
        return None
    if rng.random() < 0.2:
        present = [kw for kw in NEUTRAL_KEYWORDS if kw in first]
        if not present:
            return None
        where, kw = (), rng.choice(present)
    else:
        cands = _candidates(first)
        if not cands:
            return None
        where, kw = rng.choice(cands)
    neutral = kw in NEUTRAL_KEYWORDS
    tag = tag_for_keyword(kw)
    op = rng.random()
    if op < 0.3:
        elem, detail = None, f"deleted {kw}"
    elif op < 0.85 or kw.endswith("Sequence") or kw == "PixelData":
        val = rng.choice(BAD_VALUES)
        vr = "LO" if kw.endswith("Sequence") or kw == "PixelData" else dictionary_VR(tag)
        if vr in ("US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "AT"):
            vr = rng.choice(["DS", "LO", "IS"])  # a wrong VR carrying the text
        elem, detail = DataElement(tag, vr, val, already_converted=True), f"{kw} replaced by {vr} {val!r}"
    else:  # binary wrong VR: the value's bytes reinterpreted
        raw = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\xc0\x7f", b"\x00" * 8, b"\xff" * 6, b"\x01"])
        vr = rng.choice(["OB", "UN", "FD", "UL"])
        elem, detail = DataElement(tag, vr, raw, already_converted=True), f"{kw} replaced by {vr} {raw!r}"
    done = 0
    for path in paths:
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:
            continue
        target = _resolve(ds, where)
        if target is None or kw not in target:
            continue
        if elem is None:
            del target[kw]
        else:
            target[kw] = elem
        original = path.read_bytes()
        path.unlink()
        try:
            ds.save_as(path, enforce_file_format=False)
        except Exception:  # pydicom can't write that value: this file stays as it was
            path.unlink(missing_ok=True)
            path.write_bytes(original)
            continue
        done += 1
    if not done:
        return None
    where_txt = "/".join(f"{k}[{i}]" for k, i in where)
    return f"{detail}{' in ' + where_txt if where_txt else ''} ({done} file(s))", neutral


def _huge_length(data: bytearray, rng: random.Random) -> str:
    """Set the 32-bit length of an explicit-VR OB/OW/SQ/UN/UT element (or a 16-bit one) to a huge
    value."""
    for vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        i = data.find(vr + b"\x00\x00", 132)
        if i > 0 and rng.random() < 0.5:
            data[i + 4:i + 8] = rng.choice([b"\xf0\xff\xff\xff", b"\x00\x00\x00\x80", b"\xff\xff\xff\x0f"])
            return f"length of {vr.decode()} element at {i} made huge"
    i = rng.randrange(132, max(133, min(len(data) - 8, 4096)))
    data[i:i + 4] = b"\xf0\xff\xff\xff"
    return f"4 bytes at {i} set to 0xfffffff0"


def mutate(folder: Path, rng: random.Random) -> Mutation:
    """Apply one random mutation to a copy of a base folder (in place)."""
    files = dicom_files(folder)
    kind = rng.choices(["bitflip", "truncate", "tag", "tag", "tag", "huge", "junk", "size"],
                       weights=[3, 2, 4, 4, 4, 1, 1, 1])[0]
    if kind == "junk":
        sub = rng.choice(["zeros", "random", "dicm_junk", "symlink_loop", "subfolder", "empty", "text"])
        p = folder / f"junk_{sub}"
        if sub == "zeros":
            with open(p, "wb") as fh:
                fh.truncate(rng.choice([1, 200, 5 * 2**20]))
        elif sub == "random":
            p.write_bytes(rng.randbytes(rng.choice([10, 300, 70000])))
        elif sub == "dicm_junk":
            p.write_bytes(b"\0" * 128 + b"DICM" + rng.randbytes(rng.choice([3, 100, 5000])))
        elif sub == "symlink_loop":
            os.symlink(folder / "junk_loop_b", folder / "junk_loop_a")
            os.symlink(folder / "junk_loop_a", folder / "junk_loop_b")
        elif sub == "subfolder":
            (folder / "sub").mkdir()
            (folder / "sub" / "x.dcm").write_bytes(b"junk")
        elif sub == "empty":
            p.write_bytes(b"")
        else:
            p.write_text("not dicom\n" * 100)
        return Mutation("junk", "", sub, neutral=True)
    f = rng.choice(files)
    if kind == "tag":
        # one file, or the same change in every file of the folder (all slices of the series)
        every = rng.random() < 0.25
        r = _pydicom_mutation(files if every else [f], rng)
        if r is not None:
            return Mutation("tag", "" if every else f.name, r[0], neutral=r[1])
        kind = "bitflip"
    data = bytearray(f.read_bytes())
    if kind == "bitflip":
        detail = _flip_bits(data, rng)
    elif kind == "truncate":
        cut = rng.choice([0, 1, 64, 131, 132, 200, int(len(data) * rng.random()), len(data) - 1])
        cut = max(0, min(cut, len(data) - 1))
        del data[cut:]
        detail = f"truncated to {cut} of {len(data)} bytes"
    elif kind == "huge":
        detail = _huge_length(data, rng)
    else:  # declared sizes
        import pydicom

        try:
            ds = pydicom.dcmread(f, force=True)
            kw, val = rng.choice([("Rows", 65535), ("Columns", 65535), ("NumberOfFrames", "65535"),
                                  ("NumberOfFrames", "0"), ("Rows", 0), ("BitsAllocated", 64), ("Columns", 1)])
            if kw in ds or kw != "NumberOfFrames":
                setattr(ds, kw, val)
            f.unlink()
            ds.save_as(f, enforce_file_format=False)
            return Mutation("size", f.name, f"{kw} = {val}")
        except Exception:
            detail = _flip_bits(data, rng)
    f.unlink()
    f.write_bytes(bytes(data))
    return Mutation(kind, f.name, detail)


# ------------------------------------------------------------------ one case
class _Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hang


def run_case(base: Path, reference: dict, rng: random.Random, workdir: Path,
             timeout_s: int = CASE_TIMEOUT_S) -> Outcome:
    """Copy ``base``, mutate it, open it and classify the outcome."""
    from grtv_nb.errors import GRTVError

    case = Path(tempfile.mkdtemp(dir=workdir))
    folder = case / base.name
    shutil.copytree(base, folder, symlinks=True)
    for p in folder.iterdir():
        p.chmod(0o644) if p.is_file() else None
    try:
        m = mutate(folder, rng)
    except Exception as exc:  # a mutation that could not be written: not a reader outcome
        shutil.rmtree(case, ignore_errors=True)
        return Outcome("skipped", Mutation("none", "", f"mutation failed: {type(exc).__name__}: {exc}"), "")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    try:
        try:
            study, snap = open_quietly(folder)
        except _Hang:
            return Outcome("hang", m, f"over {timeout_s} s")
        except GRTVError as exc:
            msg = str(exc)
            # the mutated file, or (a change in every file, a junk file) any file of the folder, or the folder
            names = [m.file] if m.file else [p.name for p in folder.iterdir()]
            named = any(n and n in msg for n in names) or folder.name in msg or str(folder) in msg
            return Outcome("refused" if named else "unnamed", m, f"{type(exc).__name__}: {msg}"[:400])
        except Exception as exc:
            tb = traceback.format_exception(exc)[-3:]
            return Outcome("crash", m, f"{type(exc).__name__}: {exc} | {''.join(tb)}"[:1200])
        finally:
            signal.alarm(0)
        bad = implausible(study)
        if bad:
            return Outcome("wrong", m, bad)
        if snap == reference:
            return Outcome("same", m)
        if m.neutral:
            diff = [k for k in set(snap) | set(reference) if snap.get(k) != reference.get(k)]
            return Outcome("wrong", m, f"neutral mutation changed {diff}")
        return Outcome("changed", m)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        shutil.rmtree(case, ignore_errors=True)


def campaign(bases: list[Path], n: int, seed: int, workdir: Path, *, log=None,
             deadline: float | None = None) -> Tally:
    """``n`` cases spread over ``bases`` (round robin), seeded; no new case starts after
    ``deadline`` (a ``time.monotonic()`` value)."""
    import time

    rng = random.Random(seed)
    refs = {}
    for b in bases:
        refs[b] = open_quietly(b)[1]
    tally = Tally()
    for i in range(n):
        if deadline is not None and time.monotonic() > deadline:
            break
        b = bases[i % len(bases)]
        o = run_case(b, refs[b], random.Random(rng.getrandbits(64)), workdir)
        tally.add(o)
        if log is not None:
            log(i, b, o)
    return tally
