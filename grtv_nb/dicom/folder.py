"""Finding DICOM files in a folder, grouping them by series and modality, and choosing the image
series, structure set and dose(s) that belong together.

Files are recognised by content, not by extension (grtv_nb's own bookkeeping files, see
:func:`grtv_nb.fileio.is_bookkeeping_name`, are ignored): a file is read only when its first bytes
look like DICOM (:func:`grtv_nb.dicom.values.looks_like_dicom`, constant time whatever its size).
Unreadable and non-DICOM files, broken or looping symbolic links are skipped with a warning naming
them; elements with an invalid VR are left out with a warning. Series are grouped by
SeriesInstanceUID, or by geometry (modality, frame of reference, orientation, matrix size, pixel
spacing) when the UID is blank or missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._lazyimports import import_pydicom
from .._record import Record
from ..errors import DicomReadError, warn
from ..fileio import is_bookkeeping_name
from .rawheader import RawHeader
from .values import looks_like_dicom, sequence_items
from .values import text as _values_text

if TYPE_CHECKING:
    import pydicom

RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
RTDOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"
RTPLAN_SOP = "1.2.840.10008.5.1.4.1.1.481.5"
_RT_CLASSES = {RTSTRUCT_SOP: "RTSTRUCT", RTDOSE_SOP: "RTDOSE", RTPLAN_SOP: "RTPLAN"}
IMAGE_MODALITIES = {"CT", "MR", "PT", "CBCT"}


def _text(ds, name: str, default: str = "") -> str:
    return _values_text(ds, name, None, default)


class DicomFile:
    """One DICOM file read without its pixel data.

    ``ds`` is the full dataset (deferred large elements). With the dicomsdl reader backend an
    image slice is first read as its header only (``hdr``: the elements grtv_nb reads, see
    :func:`grtv_nb.dicom.reader.read_image_header`); ``ds`` is then read when first used.
    """

    __slots__ = ("path", "kind", "_ds", "_hdr", "pixels_taken")

    def __init__(self, path: Path, ds: pydicom.Dataset | None, kind: str, *,
                 hdr: pydicom.Dataset | RawHeader | None = None):
        self.path = path
        self.kind = kind  # "IMAGE", "RTSTRUCT", "RTDOSE", "RTPLAN" or "OTHER"
        self._ds = ds
        self._hdr = hdr
        self.pixels_taken = False  # the image reader decoded the pixels: the full dataset drops them

    def __repr__(self) -> str:
        return f"DicomFile({str(self.path)!r}, kind={self.kind!r})"

    @property
    def ds(self) -> pydicom.Dataset:
        if self._ds is None and self.raw_header is not None:
            self._ds = self.raw_header.dataset()  # a complete raw header's dataset: the file's full read
        if self._ds is None:
            self._ds = read_header(self.path)
            if self.pixels_taken and 0x7FE00010 in self._ds:
                del self._ds[0x7FE00010]
        return self._ds

    @ds.setter
    def ds(self, value: pydicom.Dataset) -> None:
        self._ds = value

    def drop_pixels(self) -> None:
        """The pixels were decoded: the headers keep no second copy of them (nor a full dataset
        read later)."""
        self.pixels_taken = True
        for ds in (self._hdr, self._ds):
            if ds is not None and 0x7FE00010 in ds:
                del ds[0x7FE00010]

    @property
    def hdr(self) -> Any:
        """The header elements grtv_nb reads (the full dataset when there is no separate header):
        a pydicom dataset or a :class:`~grtv_nb.dicom.rawheader.RawHeader` (which answers the same
        reads, and anything else through the pydicom dataset of its elements)."""
        return self._hdr if self._hdr is not None else self.ds

    @property
    def raw_header(self) -> RawHeader | None:
        """The file's complete raw header (an RT object read by
        :func:`grtv_nb.dicom.reader.read_rt_header`), None when it was read otherwise."""
        hdr = self._hdr
        return hdr if isinstance(hdr, RawHeader) and hdr.complete else None

    @property
    def modality(self) -> str:
        return _text(self.hdr, "Modality")

    @property
    def sop_instance_uid(self) -> str:
        hdr = self.hdr
        uid = _text(hdr, "SOPInstanceUID")
        if not uid and hasattr(hdr, "file_meta"):
            uid = _text(hdr.file_meta, "MediaStorageSOPInstanceUID")
        return uid

    @property
    def frame_of_reference_uid(self) -> str:
        uid = _text(self.hdr, "FrameOfReferenceUID")
        if not uid and self.kind == "RTSTRUCT":
            for item in sequence_items(self.hdr, "ReferencedFrameOfReferenceSequence"):
                uid = _text(item, "FrameOfReferenceUID")
                if uid:
                    break
        return uid


class HeaderList(Sequence):
    """The full datasets of some files (:attr:`DicomFile.ds`), each read when first used."""

    def __init__(self, files: list[DicomFile]):
        self._files = list(files)

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [f.ds for f in self._files[i]]
        return self._files[i].ds


class ImageSeries(Record):
    """Image slices that form one series."""

    _fields = ("key", "modality", "files")

    key: str
    modality: str
    files: list[DicomFile]

    def __init__(self, key: str, modality: str, files: list[DicomFile] | None = None):
        self.key, self.modality = key, modality
        self.files = [] if files is None else files

    @property
    def series_uid(self) -> str:
        return _text(self.files[0].hdr, "SeriesInstanceUID")

    @property
    def frame_of_reference_uid(self) -> str:
        return self.files[0].frame_of_reference_uid

    @property
    def sop_uids(self) -> set[str]:
        return {f.sop_instance_uid for f in self.files}

    def describe(self) -> str:
        ds = self.files[0].ds
        desc = _text(ds, "SeriesDescription")
        uid = self.series_uid or "(no SeriesInstanceUID)"
        return f"{self.modality} series {uid} '{desc}' ({len(self.files)} slices)"


class FolderScan(Record):
    """Everything found in a folder."""

    _fields = ("folder", "series", "rtstructs", "rtdoses", "rtplans", "skipped")

    folder: Path
    series: list[ImageSeries]
    rtstructs: list[DicomFile]
    rtdoses: list[DicomFile]
    rtplans: list[DicomFile]
    skipped: list[tuple[Path, str]]

    def __init__(self, folder: Path, series: list[ImageSeries], rtstructs: list[DicomFile],
                 rtdoses: list[DicomFile], rtplans: list[DicomFile], skipped: list[tuple[Path, str]]):
        self.folder, self.series, self.rtstructs = folder, series, rtstructs
        self.rtdoses, self.rtplans, self.skipped = rtdoses, rtplans, skipped

    def describe(self) -> str:
        lines = [f"DICOM folder {self.folder}:"]
        for s in self.series:
            lines.append(f"  {s.describe()}")
        for f in self.rtstructs:
            lines.append(f"  RTSTRUCT {f.path.name} ({len(f.ds.get('StructureSetROISequence', []))} ROIs)")
        for f in self.rtdoses:
            lines.append(f"  RTDOSE {f.path.name} ({_text(f.ds, 'DoseSummationType')})")
        for f in self.rtplans:
            lines.append(f"  RTPLAN {f.path.name}")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s)")
        return "\n".join(lines)


def _classify(ds: pydicom.Dataset | RawHeader) -> str:
    sop = _text(ds, "SOPClassUID")
    if sop in _RT_CLASSES:
        return _RT_CLASSES[sop]
    mod = _text(ds, "Modality").upper()
    if mod in ("RTSTRUCT", "RTDOSE", "RTPLAN"):
        return mod
    # an image slice without Rows is still an image (read_series names the missing attribute)
    if 0x00200032 in ds and (0x7FE00010 in ds or mod in IMAGE_MODALITIES):  # ImagePositionPatient, PixelData
        return "IMAGE"
    return "OTHER"


def _entry_name(e: os.DirEntry) -> str:
    """The sort key of a listed entry: its name as the Paths of one folder compare (case-folded on
    Windows, as is)."""
    return os.path.normcase(e.name)


def _entry_is_file(e: os.DirEntry) -> bool:
    """A regular file (following symbolic links; a broken or looping link is not one), its type
    taken from the listing where it can be."""
    try:
        return e.is_file()
    except OSError:
        return False


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def read_header(path: Path) -> pydicom.Dataset:
    """Read a DICOM file through :mod:`grtv_nb.dicom.reader` (pydicom, or dicomsdl's faster parser
    giving the same dataset). Raises InvalidDicomError for non-DICOM files (decided from the first
    bytes: a large non-DICOM file is never read whole). The pixel data stays raw (undecoded) in the
    dataset; the image reader drops it once decoded."""
    from .reader import read_dataset

    ok, why = looks_like_dicom(path)
    if not ok:
        raise _invalid_dicom_error()(why)
    ds = read_dataset(path)
    _drop_unknown_vrs(ds, path)
    return ds


def drop_unknown_vrs(ds: pydicom.Dataset) -> list[int]:
    """Remove the top-level elements whose (explicit) VR is not a DICOM VR (a corrupted file:
    pydicom would raise on every later access to them, even to replace them); returns their tags."""
    import_pydicom()
    from pydicom.dataelem import RawDataElement
    from pydicom.valuerep import VR

    if not _KNOWN_VRS:
        _KNOWN_VRS.update(str(v) for v in VR)
    known = _KNOWN_VRS
    bad: list[int] = [int(tag) for tag, elem in ds._dict.items()
           if isinstance(elem, RawDataElement) and elem.VR is not None and str(elem.VR) not in known]
    for tag in bad:
        del ds[tag]
    return bad


def _invalid_dicom_error() -> type[Exception]:
    """pydicom's ``InvalidDicomError`` (imports pydicom): what :func:`read_header` raises for a file
    that is not DICOM."""
    import_pydicom()
    from pydicom.errors import InvalidDicomError

    return InvalidDicomError


def _image_header(path: Path) -> RawHeader | None:
    """:func:`grtv_nb.dicom.reader.read_image_header`, or None where the full read must decide
    (not DICOM by its first bytes, unreadable, anything but the usual image slice)."""
    from .reader import read_image_header

    try:
        return read_image_header(path)  # DICM marker and size limit checked there
    except Exception:  # the full read reports it
        return None


def _rt_header(path: Path) -> RawHeader | None:
    """:func:`grtv_nb.dicom.reader.read_rt_header` (its pydicom dataset: :func:`read_header`'s),
    or None where the full read must decide."""
    from functools import partial

    from .reader import read_rt_header

    try:
        return read_rt_header(path, partial(read_header, path))
    except Exception:  # the full read reports it
        return None


def _drop_unknown_vrs(ds: pydicom.Dataset, path: Path) -> None:
    """:func:`drop_unknown_vrs` with a warning naming the file and the tags (a value grtv_nb
    needs is then reported missing by the reader)."""
    bad = drop_unknown_vrs(ds)
    if bad:
        warn(f"{Path(path).name}: {len(bad)} element(s) with an invalid value representation were left out: "
             + ", ".join(f"({t >> 16:04X},{t & 0xFFFF:04X})" for t in bad[:5]))


_KNOWN_VRS: set[str] = set()


def scan_folder(folder: str | os.PathLike) -> FolderScan:
    """Find and group the DICOM files stored directly in ``folder``.

    Raises
    ------
    DicomReadError
        The folder does not exist, is not a folder, or holds no readable DICOM file.
    """
    folder = Path(folder)
    try:
        if not folder.exists():
            raise DicomReadError(f"rtDirPath '{folder}' does not exist (or is a broken or looping symbolic link)")
        if not folder.is_dir():
            raise DicomReadError(f"rtDirPath '{folder}' is not a folder")
        # os.scandir: the entry types come with the listing (no stat call a file, except for links);
        # in the order of their Paths
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not is_bookkeeping_name(e.name)), key=_entry_name)
    except OSError as exc:
        raise DicomReadError(f"rtDirPath '{folder}' can't be listed ({type(exc).__name__}: {exc.strerror or exc})") \
            from exc
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for e in entries:
        if _entry_is_file(e):
            paths.append(folder / e.name)
        elif e.is_symlink() and not _is_dir(folder / e.name):
            skipped.append((folder / e.name, "broken or looping symbolic link"))
    if not paths:
        raise DicomReadError(f"folder '{folder}' is empty: no DICOM files to read")
    from .reader import get_backend

    fast = get_backend() == "dicomsdl"
    files: list[DicomFile] = []
    for p in paths:
        if fast:
            hdr = _image_header(p)
            kind = _classify(hdr) if hdr is not None else ""
            if kind == "IMAGE":
                files.append(DicomFile(p, None, "IMAGE", hdr=hdr))
                continue
            if kind == "":
                ok, why = looks_like_dicom(p)
                if not ok:  # read_header's verdict, without importing pydicom for its exception
                    skipped.append((p, why))
                    continue
            if kind in ("", "RTSTRUCT", "RTDOSE", "RTPLAN"):  # an RT object read whole, raw (no pydicom dataset)
                rt = _rt_header(p)
                rt_kind = _classify(rt) if rt is not None else ""
                if rt_kind in ("RTSTRUCT", "RTDOSE", "RTPLAN"):
                    files.append(DicomFile(p, None, rt_kind, hdr=rt))
                    continue
        try:
            ds = read_header(p)
        except Exception as exc:
            if isinstance(exc, _invalid_dicom_error()):
                skipped.append((p, str(exc) if str(exc).startswith(("not a DICOM", "unreadable", "larger"))
                                or " bytes, larger" in str(exc) else "not a DICOM file"))
            else:  # truncated or corrupt file
                skipped.append((p, f"unreadable DICOM file ({type(exc).__name__}: {exc})"))
            continue
        try:
            kind = _classify(ds)
        except Exception as exc:  # an undecodable SOPClassUID/Modality/...: unusable
            skipped.append((p, f"unreadable DICOM file ({type(exc).__name__}: {exc})"))
            continue
        if kind == "OTHER":
            skipped.append((p, f"DICOM object not used (Modality '{_text(ds, 'Modality')}')"))
            continue
        files.append(DicomFile(p, ds, kind))
    bad = [(p, r) for p, r in skipped if not r.startswith("DICOM object not used")]
    if not files:
        why = "; ".join(f"{p.name}: {r}" for p, r in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        raise DicomReadError(
            f"no usable DICOM image, RTSTRUCT or RTDOSE file in '{folder}' "
            f"({len(paths)} file(s) looked at: {why}{more})"
        )
    if bad:
        names = ", ".join(f"{p.name} ({r})" for p, r in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        warn(f"skipped {len(bad)} file(s) in '{folder}': {names}{more}")
    groups: dict[str, ImageSeries] = {}
    for f in files:
        if f.kind != "IMAGE":
            continue
        hdr = f.hdr
        uid = _text(hdr, "SeriesInstanceUID")
        if uid:
            key = uid
        else:
            try:
                iop = np.round(np.asarray(hdr.get("ImageOrientationPatient", [0] * 6), float), 3)
                ps = tuple(np.round(np.asarray(hdr.get("PixelSpacing", [0, 0]), float), 4))
                geo = (tuple(iop), hdr.Rows, hdr.Columns, ps)
            except Exception:  # malformed values: grouped by their text; read_series names the bad value
                geo = tuple(_text(hdr, k) for k in ("ImageOrientationPatient", "Rows", "Columns", "PixelSpacing"))
            key = "|".join(map(str, ("nouid", f.modality, f.frame_of_reference_uid, *geo)))
        series = groups.get(key)
        if series is None:  # (not setdefault: a series object and a modality read per slice)
            series = groups[key] = ImageSeries(key, f.modality)
        series.files.append(f)
    return FolderScan(
        folder=folder,
        series=sorted(groups.values(), key=lambda s: -len(s.files)),
        rtstructs=[f for f in files if f.kind == "RTSTRUCT"],
        rtdoses=[f for f in files if f.kind == "RTDOSE"],
        rtplans=[f for f in files if f.kind == "RTPLAN"],
        skipped=skipped,
    )


def _referenced_series(rtstruct: pydicom.Dataset):
    """The RTReferencedSeriesSequence items of an RTSTRUCT (through frames of reference and
    studies)."""
    for fr in sequence_items(rtstruct, "ReferencedFrameOfReferenceSequence"):
        for st in sequence_items(fr, "RTReferencedStudySequence"):
            yield from sequence_items(st, "RTReferencedSeriesSequence")


def referenced_series_uids(rtstruct: pydicom.Dataset) -> set[str]:
    """SeriesInstanceUIDs of the image series an RTSTRUCT refers to."""
    uids = (_text(se, "SeriesInstanceUID") for se in _referenced_series(rtstruct))
    return {u for u in uids if u}


def referenced_image_uids(rtstruct: pydicom.Dataset) -> set[str]:
    """SOPInstanceUIDs of the image slices an RTSTRUCT's contours refer to."""
    uids = (_text(im, "ReferencedSOPInstanceUID") for se in _referenced_series(rtstruct)
            for im in sequence_items(se, "ContourImageSequence"))
    return {u for u in uids if u}


class Selection(Record):
    """The files chosen to form one study, with the reasons."""

    _fields = ("series", "rtstruct", "rtdoses", "rtplan", "notes")

    series: ImageSeries | None
    rtstruct: DicomFile | None
    rtdoses: list[DicomFile]
    rtplan: DicomFile | None
    notes: list[str]

    def __init__(self, series: ImageSeries | None, rtstruct: DicomFile | None, rtdoses: list[DicomFile],
                 rtplan: DicomFile | None, notes: list[str]):
        self.series, self.rtstruct, self.rtdoses, self.rtplan, self.notes = series, rtstruct, rtdoses, rtplan, notes


def _pick_path(candidates: list[DicomFile], wanted: str | os.PathLike, what: str) -> DicomFile:
    wanted_p = Path(wanted)
    for f in candidates:
        if f.path == wanted_p or f.path.name == wanted_p.name or f.sop_instance_uid == str(wanted):
            return f
    names = ", ".join(f.path.name for f in candidates) or "none"
    raise DicomReadError(f"{what} '{wanted}' is not among the {what} files of the folder ({names})")


def select(
    scan: FolderScan,
    *,
    series_uid: str | None = None,
    rtstruct: str | os.PathLike | None = None,
    rtdose: str | os.PathLike | list | None = None,
) -> Selection:
    """Choose the image series, RTSTRUCT and RTDOSE(s) that reference each other.

    Explicit choices (``series_uid``: a SeriesInstanceUID or series key; ``rtstruct``/``rtdose``:
    a file name, path or SOPInstanceUID) override the automatic choice.
    """
    notes: list[str] = []
    series = scan.series
    # --- structure set
    rs: DicomFile | None = None
    if rtstruct is not None:
        rs = _pick_path(scan.rtstructs, rtstruct, "RTSTRUCT")
    elif scan.rtstructs:
        def score(f: DicomFile) -> tuple:
            refs = referenced_series_uids(f.hdr)
            by_uid = any(s.series_uid in refs for s in series if s.series_uid)
            by_for = any(s.frame_of_reference_uid == f.frame_of_reference_uid for s in series)
            return (by_uid, by_for, _text(f.hdr, "StructureSetDate") + _text(f.hdr, "StructureSetTime"))

        ranked = sorted(scan.rtstructs, key=score, reverse=True) if len(scan.rtstructs) > 1 else scan.rtstructs
        rs = ranked[0]
        if len(ranked) > 1:
            notes.append(
                f"{len(ranked)} RTSTRUCT files found; using {rs.path.name} "
                "(it references the image series; pass rtstruct= to choose another)"
            )
    # --- image series
    chosen: ImageSeries | None = None
    if series_uid is not None:
        for s in series:
            if series_uid in (s.series_uid, s.key):
                chosen = s
        if chosen is None:
            raise DicomReadError(
                f"series_uid '{series_uid}' is not in the folder; series there: "
                + "; ".join(s.describe() for s in series)
            )
    elif series:
        chosen = series[0]
        reason = "the largest"
        if rs is not None:
            refs = referenced_series_uids(rs.hdr)
            hit = [s for s in series if s.series_uid and s.series_uid in refs]
            if not hit:  # (the slice references are read only when the series references do not decide)
                img_refs = referenced_image_uids(rs.hdr)
                hit = [s for s in series if s.sop_uids & img_refs]
            hit = hit or [s for s in series if s.frame_of_reference_uid == rs.frame_of_reference_uid]
            if hit:
                chosen, reason = hit[0], "referenced by the RTSTRUCT"
        elif scan.rtdoses:
            dfor = scan.rtdoses[0].frame_of_reference_uid
            hit = [s for s in series if s.frame_of_reference_uid == dfor]
            if hit:
                chosen, reason = hit[0], "sharing the RTDOSE's frame of reference"
        if len(series) > 1:
            notes.append(
                f"{len(series)} image series found; using {chosen.describe()} ({reason}; "
                "pass series_uid= to choose another)"
            )
    # --- doses
    ref_for = ""
    if chosen is not None:
        ref_for = chosen.frame_of_reference_uid
    elif rs is not None:
        ref_for = rs.frame_of_reference_uid
    doses: list[DicomFile] = []
    if rtdose is not None:
        wanted = rtdose if isinstance(rtdose, list | tuple) else [rtdose]
        doses = [_pick_path(scan.rtdoses, w, "RTDOSE") for w in wanted]
    elif scan.rtdoses:
        cands = [d for d in scan.rtdoses if not ref_for or not d.frame_of_reference_uid
                 or d.frame_of_reference_uid == ref_for]
        other = [d for d in scan.rtdoses if d not in cands]
        if other:
            notes.append(
                f"{len(other)} RTDOSE file(s) ignored: their frame of reference differs from the image's "
                f"({', '.join(d.path.name for d in other)})"
            )
        plan = [d for d in cands if _text(d.hdr, "DoseSummationType").upper() != "BEAM"]
        beams = [d for d in cands if _text(d.hdr, "DoseSummationType").upper() == "BEAM"]
        if plan:
            doses = [plan[0]]
            if len(plan) > 1 or beams:
                notes.append(
                    f"{len(cands)} RTDOSE files found; using {plan[0].path.name} "
                    f"(DoseSummationType {_text(plan[0].hdr, 'DoseSummationType')}; pass rtdose= to choose)"
                )
        elif beams:
            doses = beams
            if len(beams) > 1:
                plans = {_plan_uid(d.hdr) for d in beams}
                if len(plans) > 1:
                    doses = [d for d in beams if _plan_uid(d.hdr) == _plan_uid(beams[0].hdr)]
                    notes.append("RTDOSE beam doses of several plans found; using those of the first plan")
                notes.append(
                    f"summed {len(doses)} per-beam RTDOSE files of one plan into the plan dose "
                    f"({', '.join(d.path.name for d in doses)})"
                )
    plan_file = None
    if scan.rtplans:
        want = _plan_uid(doses[0].hdr) if doses else ""
        plan_file = next((p for p in scan.rtplans if p.sop_instance_uid == want), scan.rtplans[0])
    return Selection(chosen, rs, doses, plan_file, notes)


def _plan_uid(ds: pydicom.Dataset) -> str:
    for item in sequence_items(ds, "ReferencedRTPlanSequence"):
        return _text(item, "ReferencedSOPInstanceUID")
    return ""
