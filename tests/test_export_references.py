"""exportRT verified by independent readers (issue 3's judging criteria).

Every case is exported once (module-scoped) and the export is read back by:

- **grtv_nb** (``open_study``);
- **plastimatch** ``convert --xor-contours`` (C++ rasteriser, voxel-centre rule; masks read with
  SimpleITK), on the exported CT (``--referenced-ct``), on the exported RTDOSE grid when the CT is a
  single slice (``--fixed RD``), or on the exported CT read by SimpleITK/GDCM when plastimatch can't
  decode it (JPEG 2000);
- **rt-utils** ``RTStructBuilder.create_from`` (OpenCV ``fillPoly`` on vertices rounded to whole
  pixels);
- **pydicom** for the RTDOSE pixels (uint32 x DoseGridScaling, placed by IPP/IOP/PixelSpacing/
  GridFrameOffsetVector, no interpolation);
- **dciodvfy** (Debian dicom3tools) for conformance.

Cases: the phantom through the pyGRTV facade with the merge-lungs workflow of sample 2 (readGRTVRaw
of two lungs, add, clip, setNewROI "Lung", exportRT into a folder made beforehand) plus an ROI with
holes added from a mask; cerr-radiomics-phantom pat_1..4; rt-utils mock_data; dicompyler-example
(dose-grid reference); totalsegmentator example_ct_dicom (JPEG 2000, blank UIDs) with organs of its
TotalSegmentator label map added by ``Study.add_roi``; pycerr-headneck-ct with a body outline
(threshold + largest component: airway holes) added by ``Study.add_roi``.

Criteria: names, numbers, colours kept (RTROIInterpretedType kept, or ORGAN/EXTERNAL when the source
had none); Dice >= 0.99 against the mask before export for ROIs over 1 cc (grtv_nb, plastimatch);
dose voxel by voxel within one DoseGridScaling step; no dciodvfy Error on RTSTRUCT/RTDOSE, and the
exported CT has no Error its source file did not have (nor any about identifying attributes, which
the export fills).

rt-utils tolerance: rt-utils rounds every vertex to the nearest pixel centre (``np.around``) and
``cv2.fillPoly`` fills every pixel the outline passes through, so its mask differs from a
voxel-centre mask on a ring of boundary pixels. The round trip itself is checked exactly: for ROIs
read from an RTSTRUCT, rt-utils gives the same mask, voxel for voxel, from the exported RTSTRUCT as
from the source one. Against the mask before export we require ``Dice >= 1 - 0.35 * f`` where ``f``
is the fraction of the ROI's voxels on its in-plane boundary (a 3x3 erosion removes them). Measured
on the 25 ROIs over 1 cc compared here, ``(1 - Dice) / f`` is 0.105 (phantom BODY) to 0.254 (totalseg
liver), and the same for source and exported RTSTRUCTs; e.g. cerr pat_2 GTV (6.5 cc, f = 0.27): Dice
0.951, pat_1 GTV (359 cc, f = 0.066): 0.986, headneck body outline (8029 cc, f = 0.083): 0.984.

Contours of the source that lie on no image plane (phantom PTV, 1 mm off its planes; the rt-utils
MIM RTSTRUCT's z = 70 mm plane, whose CT slice is absent) are exported as they are, without a
ContourImageSequence (Type 3). rt-utils needs one on every contour: the copy given to rt-utils
references the nearest slice within half a slice spacing and leaves out the others.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pydicom
import pytest
from reference_tools import rtss_with_slice_refs
from scipy import ndimage

from grtv_nb import open_study
from grtv_nb.export import export_rt
from tests_support import shared_case

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MIN_CC = 1.0
RTUTILS_RING = 0.35  # Dice >= 1 - RTUTILS_RING * boundary fraction (see the module docstring)
# Errors of a source image file that the export must not carry over: it fills these attributes.
IDENTITY_ERRORS = re.compile(r"SOPInstanceUID|SOPClassUID|Information Object Not found|PatientID|StudyInstanceUID|"
                             r"SeriesInstanceUID|FrameOfReferenceUID")
# dciodvfy requires General Series Laterality (Type 2C) whenever it can't rule out a paired body part
# (no BodyPartExamined / ImageLaterality): every source CT here has this error. The export copies
# image slices unchanged and has no way to know laterality, so it is accepted on CT slices.
LATERALITY_ERROR = "Error - Missing attribute Type 2C Conditional Element=<Laterality> Module=<GeneralSeries>"


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def boundary_fraction(m: np.ndarray) -> float:
    inner = ndimage.binary_erosion(m, np.ones((1, 3, 3), bool))
    return float((m & ~inner).sum()) / max(int(m.sum()), 1)


# ----------------------------------------------------------------------------- placing voxels
def _axis(grid, points: np.ndarray, step: np.ndarray, what: str) -> tuple[int, np.ndarray]:
    """(canonical array axis, index per point) of voxels lying along one storage axis.

    ``points`` are the patient positions of successive voxels along that axis, ``step`` its direction.
    The axis must run along one canonical axis (axis-aligned series); every position must lie within
    0.05 mm of a voxel centre of ``grid``."""
    from reference_tools import nearest_index

    d = grid.to_canonical_points(np.asarray(step, float)[None])[0]
    b = int(np.argmax(np.abs(d)))
    assert np.all(np.abs(np.delete(d, b)) < 1e-4 * np.abs(d[b])), f"{what}: not axis-aligned"
    q = grid.to_canonical_points(np.asarray(points, float))
    coords = (grid.x, grid.y, grid.z)[b]
    return 2 - b, nearest_index(coords, q[:, b], 0.05, f"{what} ({'xyz'[b]})")


def place(arr: np.ndarray, grid, axes: list[tuple[np.ndarray, np.ndarray]], names: str) -> np.ndarray:
    """Put a 3D array whose storage axes are described by ``axes`` ((positions, direction) per
    array axis) onto the canonical ``grid`` ([z, y, x]), voxel for voxel (zeros elsewhere)."""
    maps = [_axis(grid, p, s, f"{names} axis {i}") for i, (p, s) in enumerate(axes)]
    order = [m[0] for m in maps]
    assert sorted(order) == [0, 1, 2], f"{names}: two storage axes along one canonical axis"
    inv = np.argsort(order)
    out = np.zeros(grid.shape, dtype=arr.dtype)
    out[np.ix_(*[maps[i][1] for i in inv])] = np.transpose(arr, inv)
    return out


def itk_to_grid(image, grid) -> np.ndarray:
    """A SimpleITK image -> canonical array on ``grid`` (by the physical position of its voxels)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)  # [k, j, i]
    o = np.array(image.GetOrigin())
    sp = np.array(image.GetSpacing())
    dm = np.array(image.GetDirection()).reshape(3, 3)
    axes = []
    for a in (2, 1, 0):  # array axis 0 is image index k = axis 2
        step = dm[:, a] * sp[a]
        axes.append((o + np.arange(arr.shape[2 - a])[:, None] * step, step))
    return place(arr, grid, axes, "plastimatch mask")


# ----------------------------------------------------------------------------- reference tools
def plastimatch_masks(rs: Path, out_dir: Path, grid, *, ct_dir: Path | None = None,
                      fixed: Path | None = None) -> dict[str, np.ndarray]:
    import SimpleITK as sitk
    from reference_tools import plastimatch_convert_cmd

    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = plastimatch_convert_cmd(rs, ct_dir, out_dir, xor=True, fixed=fixed)
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"plastimatch failed: {res.stdout[-1500:]}{res.stderr[-1500:]}"
    masks = {}
    for line in (out_dir / "ss.txt").read_text().splitlines():
        parts = line.split("|", 2)
        if len(parts) != 3:
            continue
        name = parts[2].strip()
        for fname in (name, re.sub(r"[^A-Za-z0-9_.+-]", "_", name)):
            path = out_dir / "prefix" / f"{fname}.nrrd"
            if path.exists():
                masks[name] = itk_to_grid(sitk.ReadImage(str(path)), grid) > 0
                break
    return masks


def sitk_series_nrrd(folder: Path, dest: Path) -> Path:
    """The CT series of ``folder`` read by SimpleITK (GDCM decodes JPEG 2000) and written as NRRD:
    a geometry plastimatch can rasterise on when it can't decode the CT itself."""
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    sitk.WriteImage(r.Execute(), str(dest))
    return dest


def rtutils_ready(rs_path: Path, image_dir: Path, out: Path) -> tuple[Path, list[str]]:
    """Copy of an RTSTRUCT rt-utils can read: every contour references the image slice nearest to
    its plane (recomputed: a source's references may name slices not present), contours farther
    than half a slice spacing are left out (rt-utils matches contours to slices by reference only).
    Returns (path, names of ROIs left with contours)."""
    out, _ = rtss_with_slice_refs(rs_path, image_dir, out, replace=True)
    rs = pydicom.dcmread(out, stop_before_pixels=True)
    names = {int(r.ROINumber): str(r.ROIName) for r in rs.StructureSetROISequence}
    return out, [names[int(i.ReferencedROINumber)] for i in rs.ROIContourSequence if "ContourSequence" in i]


@dataclass
class RtUtils:
    """rt-utils masks as it returns them ([row, column, slice] in its slice order) and their
    placement on a canonical grid."""

    masks: dict[str, np.ndarray]
    series: list
    roi_names: list[str]

    def on_grid(self, name: str, grid) -> tuple[np.ndarray, np.ndarray]:
        """(mask, region) on ``grid``: rt-utils allocates (Columns, Rows, slices), so on a
        non-square image only rows and columns below min(Rows, Columns) hold data (region)."""
        first = self.series[0]
        iop = np.array([float(v) for v in first.ImageOrientationPatient])
        u, v = iop[:3], iop[3:]
        ps_row, ps_col = (float(x) for x in first.PixelSpacing)
        ipp = np.array([[float(x) for x in s.ImagePositionPatient] for s in self.series])
        side = min(int(first.Rows), int(first.Columns))
        n = np.cross(u, v)
        axes = [(ipp[0] + np.arange(side)[:, None] * ps_row * v, ps_row * v),
                (ipp[0] + np.arange(side)[:, None] * ps_col * u, ps_col * u),
                (ipp[0] + ((ipp - ipp[0]) @ n)[:, None] * n, n)]
        m = self.masks[name][:side, :side]
        region = place(np.ones(m.shape, bool), grid, axes, "rt-utils region")
        return place(m, grid, axes, f"rt-utils mask {name}"), region


def rtutils_read(image_dir: Path, rs: Path, names: list[str]) -> RtUtils:
    import rt_utils.rtstruct_builder as builder
    from rt_utils import RTStructBuilder

    if not hasattr(builder, "warnings"):  # rt-utils 1.2.7 calls warnings.warn without importing it
        builder.warnings = warnings
    rt = _quiet(RTStructBuilder.create_from, dicom_series_path=str(image_dir), rt_struct_path=str(rs),
                warn_only=True)
    return RtUtils({n: _quiet(rt.get_roi_mask_by_name, n) for n in names}, rt.series_data, rt.get_roi_names())


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    lines = (r.stdout + r.stderr).splitlines()
    return ([ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")])


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    name: str
    study: object  # the study as exported (the masks below are its masks before export)
    out: Path
    work: Path
    source_rs: Path | None
    source_files: dict[str, Path]  # SOPInstanceUID -> source image file
    before: dict[str, np.ndarray]
    volume: dict[str, float]
    added: set[str] = field(default_factory=set)
    pm_geometry: str = "ct"  # "ct" | "dose" | "sitk"

    @cached_property
    def reread(self):
        return _quiet(open_study, self.out)

    @cached_property
    def image_dir(self) -> Path:
        from reference_tools import image_only_folder

        return image_only_folder(self.out, self.work / "images")

    def file(self, prefix: str) -> Path:
        return next(self.out.glob(f"{prefix}_*.dcm"))

    @cached_property
    def plastimatch(self) -> dict[str, np.ndarray]:
        rs, grid = self.file("RS"), self.study.grid
        if self.pm_geometry == "dose":
            return plastimatch_masks(rs, self.work / "pm", grid, fixed=self.file("RD"))
        if self.pm_geometry == "sitk":
            fixed = sitk_series_nrrd(self.out, self.work / "ct.nrrd")
            return plastimatch_masks(rs, self.work / "pm", grid, fixed=fixed)
        return plastimatch_masks(rs, self.work / "pm", grid, ct_dir=self.image_dir)

    def rtutils(self, which: str) -> tuple[RtUtils, list[str]]:
        key = f"_ru_{which}"
        if key not in self.__dict__:
            rs = self.file("RS") if which == "export" else self.source_rs
            ready, names = rtutils_ready(rs, self.image_dir, self.work / f"rs_{which}_rtutils.dcm")
            self.__dict__[key] = (rtutils_read(self.image_dir, ready, names), names)
        return self.__dict__[key]


CASES = ["phantom", "cerr_pat_1", "cerr_pat_2", "cerr_pat_3", "cerr_pat_4", "rtutils_mock", "dicompyler",
         "totalseg", "headneck"]
REAL = {
    "cerr_pat_1": "cerr-radiomics-phantom/pat_1", "cerr_pat_2": "cerr-radiomics-phantom/pat_2",
    "cerr_pat_3": "cerr-radiomics-phantom/pat_3", "cerr_pat_4": "cerr-radiomics-phantom/pat_4",
    "rtutils_mock": "rt-utils-testdata/tests/mock_data", "dicompyler": "dicompyler-example/example_data",
    "totalseg": "totalsegmentator-example/example_ct_dicom", "headneck": "pycerr-headneck-ct/head_and_neck/pt_1",
}
TOTALSEG_LABELS = {"liver": 5, "spleen": 1, "kidney_left": 3, "aorta": 52, "spinal_cord": 79}  # kidney_left: empty here


def _phantom_via_facade(phantom_dir: Path, out: Path):
    """Sample 2's merge-lungs workflow with the phantom's lung masks (no auto-segmentation)."""
    from grtv import GRTV_STATUS_OK, pyGRTV

    g = pyGRTV()
    assert _quiet(g.readRTDir, str(phantom_dir)) == GRTV_STATUS_OK
    rois: list = []
    assert g.getROIList(rois) == GRTV_STATUS_OK
    idx = {r["roi_name"]: int(r["roi_index"]) for r in rois}
    ret1, right = g.readGRTVRaw(g.GRTV_DATA_TYPE_ROI, dataID=idx["Lung_R"])
    ret2, left = g.readGRTVRaw(g.GRTV_DATA_TYPE_ROI, dataID=idx["Lung_L"])
    assert ret1 == ret2 == GRTV_STATUS_OK
    roi_new = np.clip(right.astype("int") + left.astype("int"), 0, 255).astype("uint8")
    assert g.setNewROI(roi_new, "Lung", (255, 255, 0)) == GRTV_STATUS_OK
    st = g.study
    # an ROI with holes on many planes (the lungs cut out of the body), traced from its mask
    st.add_roi("Body-Lungs", st.mask("BODY") & ~(roi_new >= 128), (10, 20, 30))
    out.mkdir()  # sample 2 makes the folder, then exports into it
    assert _quiet(g.exportRT, str(out)) == GRTV_STATUS_OK, g.lastError
    return st, roi_new


def _build(name: str, shared_data: Path | None, phantom_dir: Path, work: Path) -> Case:
    out = work / "export"
    added: set[str] = set()
    pm_geometry = "ct"
    if name == "phantom":
        st, _ = _phantom_via_facade(phantom_dir, out)
        added = {"Lung", "Body-Lungs"}
    else:
        src = shared_case(shared_data, REAL[name])
        st = _quiet(open_study, src)
        if name == "totalseg":
            sitk = pytest.importorskip("SimpleITK")

            seg = sitk.ReadImage(str(shared_case(shared_data, "totalsegmentator-example/example_seg_dicom.nii.gz")))
            labels = itk_to_grid(seg, st.grid)
            for organ, lab in TOTALSEG_LABELS.items():
                _quiet(st.add_roi, organ, labels == lab)
                added.add(organ)
            pm_geometry = "sitk"  # plastimatch can't decode its JPEG 2000 slices
        elif name == "headneck":
            img = st.ds["image"].values
            lab, _ = ndimage.label(img > -300)
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            st.add_roi("Body", lab == sizes.argmax(), (0, 255, 0), roi_type="EXTERNAL")
            added = {"Body"}
        elif name == "dicompyler":
            pm_geometry = "dose"
        _quiet(export_rt, st, out)
    source_files = {}
    for f in st.source.get("image_files") or []:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        uid = str(ds.get("SOPInstanceUID", "") or "") or str(ds.file_meta.MediaStorageSOPInstanceUID)
        source_files[uid] = Path(f)
    before = {r.name: st.mask(i) for i, r in enumerate(st.rois)}
    volume = {r.name: st.volume_cc(i) for i, r in enumerate(st.rois)}
    return Case(name, st, out, work, st.source.get("rtstruct"), source_files, before, volume, added, pm_geometry)


_BUILT: dict[str, Case] = {}  # each case is exported once per session (several fixtures use it)


def _case(name: str, request, tmp_path_factory, phantom_dir) -> Case:
    if name not in _BUILT:
        shared = None if name == "phantom" else request.getfixturevalue("shared_data")
        _BUILT[name] = _build(name, shared, phantom_dir, tmp_path_factory.mktemp(name))
    return _BUILT[name]


@pytest.fixture(scope="module", params=CASES)
def case(request, tmp_path_factory, phantom_dir) -> Case:
    return _case(request.param, request, tmp_path_factory, phantom_dir)


def _big(case: Case) -> list[str]:
    return [n for n, v in case.volume.items() if v > MIN_CC]


# ----------------------------------------------------------------------------- tests
def test_reread_by_grtv_nb(case):
    st, st2 = case.study, case.reread
    assert st2.roi_names == st.roi_names
    for r, r2 in zip(st.rois, st2.rois):
        assert (r2.number, r2.color) == (r.number, r.color), r.name
        assert r2.roi_type == (r.roi_type or ("EXTERNAL" if r.name.upper() == "BODY" else "ORGAN")), r.name
    for name in _big(case):
        assert dice(case.before[name], st2.mask(name)) >= 0.99, name
    if st.has_image:
        assert np.array_equal(st.ds["image"].values, st2.ds["image"].values)
    assert st2.has_dose == st.has_dose


def test_reread_by_plastimatch(case):
    pytest.importorskip("SimpleITK")
    from reference_tools import plastimatch_exe

    if plastimatch_exe() is None:
        pytest.skip("plastimatch is not installed")
    pm = case.plastimatch
    for name in _big(case):
        assert name in pm, f"plastimatch did not write '{name}'"
        assert dice(case.before[name], pm[name]) >= 0.99, name


def test_reread_by_rtutils(case):
    pytest.importorskip("rt_utils")
    ru, names = case.rtutils("export")
    assert ru.roi_names == case.study.roi_names
    read = [n for n in names if n not in case.added]
    if read and case.source_rs is not None:
        # the round trip as rt-utils sees it: the same mask from the source and the exported RTSTRUCT
        ru_src, _ = case.rtutils("source")
        for n in read:
            assert np.array_equal(ru.masks[n], ru_src.masks[n]), n
    if case.name == "dicompyler":
        return  # its single CT slice is not on the study (dose) grid: nothing to compare voxel by voxel
    grid = case.study.grid
    for n in names:
        if case.volume[n] <= MIN_CC:
            continue
        mask, region = ru.on_grid(n, grid)
        ours = case.before[n] & region
        f = boundary_fraction(ours)
        assert dice(ours, mask & region) >= 1 - RTUTILS_RING * f, (n, f)


def _rd_on_grid(path: Path, grid) -> tuple[np.ndarray, float]:
    """The RTDOSE's stored dose (Gy, float64) placed voxel for voxel on ``grid``, and its step."""
    ds = pydicom.dcmread(path)
    scaling = float(ds.DoseGridScaling)
    ipp = np.array([float(x) for x in ds.ImagePositionPatient])
    iop = np.array([float(x) for x in ds.ImageOrientationPatient])
    u, v = iop[:3], iop[3:]
    n = np.cross(u, v)
    dr, dc = (float(x) for x in ds.PixelSpacing)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    off = np.array([float(x) for x in ds.GridFrameOffsetVector]) if frames > 1 else np.zeros(1)
    assert off[0] == 0, "exports write GridFrameOffsetVector in the relative form"
    arr = ds.pixel_array.reshape(frames, int(ds.Rows), int(ds.Columns)).astype(np.float64) * scaling
    axes = [(ipp + off[:, None] * n, n), (ipp + np.arange(arr.shape[1])[:, None] * dr * v, v),
            (ipp + np.arange(arr.shape[2])[:, None] * dc * u, u)]
    assert ds.pixel_array.dtype == np.uint32
    return place(arr, grid, axes, "RTDOSE"), scaling


@pytest.mark.parametrize("name", ["phantom", "dicompyler"])  # the cases with a dose
def test_dose_voxel_by_voxel(name, request, tmp_path_factory, phantom_dir):
    case = _case(name, request, tmp_path_factory, phantom_dir)
    st = case.study
    rd, step = _rd_on_grid(case.file("RD"), st.grid)
    before = st.ds["dose"].values.astype(np.float64)
    assert np.abs(rd - before).max() <= step * (1 + 1e-6)
    assert np.abs(case.reread.ds["dose"].values - before).max() <= step * (1 + 1e-6) + 1e-6


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) is not installed")
def test_dciodvfy(case):
    for prefix in ("RS", "RD"):
        files = list(case.out.glob(f"{prefix}_*.dcm"))
        assert files or prefix == "RD"
        for f in files:
            errors, _ = dciodvfy(f)
            assert not errors, f"{f.name}: {errors[:5]}"
    ct = sorted(case.out.glob("CT_*.dcm"))[0]
    uid = str(pydicom.dcmread(ct, stop_before_pixels=True).SOPInstanceUID)
    src_errors = set(dciodvfy(case.source_files[uid])[0]) if uid in case.source_files else set()
    allowed = {e for e in src_errors if not IDENTITY_ERRORS.search(e)} | {LATERALITY_ERROR}
    errors = set(dciodvfy(ct)[0])
    assert errors <= allowed, f"{ct.name}: new errors {sorted(errors - allowed)}"


def test_references_identity_and_strict_rules(case):
    """Frame of reference / study / series / image references consistent across the export,
    patient identity filled, decimal strings <= 16 characters, >= 3 points per contour, every ROI
    typed, no reference to a plan that isn't exported, new UIDs for new objects, image files copied
    unchanged unless an identifying attribute had to be filled."""
    cts = {f: pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(case.out.glob("CT_*.dcm"))}
    rs = pydicom.dcmread(case.file("RS"))
    rds = [pydicom.dcmread(f, stop_before_pixels=True) for f in case.out.glob("RD_*.dcm")]
    plans = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in case.out.glob("RP_*.dcm")}
    ct0 = next(iter(cts.values()))
    for_uid, study_uid = str(ct0.FrameOfReferenceUID), str(ct0.StudyInstanceUID)
    for ds in [*cts.values(), rs, *rds]:
        assert str(ds.PatientName).strip() and str(ds.PatientID).strip()
        assert (str(ds.PatientID), str(ds.StudyInstanceUID)) == (str(ct0.PatientID), study_uid)
        assert str(ds.FrameOfReferenceUID) == for_uid
    fr = rs.ReferencedFrameOfReferenceSequence[0]
    assert str(fr.FrameOfReferenceUID) == for_uid
    assert all(str(r.ReferencedFrameOfReferenceUID) == for_uid for r in rs.StructureSetROISequence)
    se = fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert str(se.SeriesInstanceUID) == str(ct0.SeriesInstanceUID)
    images = {str(d.SOPInstanceUID): str(d.SOPClassUID) for d in cts.values()}
    for f, d in cts.items():
        ident = (str(d.SOPClassUID), str(d.SOPInstanceUID))
        assert ident[0].startswith("1.2.840.10008.5.1.4.1.1.") and ident[1], f.name
        assert ident == (str(d.file_meta.MediaStorageSOPClassUID), str(d.file_meta.MediaStorageSOPInstanceUID))
    assert {str(i.ReferencedSOPInstanceUID) for i in se.ContourImageSequence} == set(images)
    for i in se.ContourImageSequence:
        assert str(i.ReferencedSOPClassUID) == images[str(i.ReferencedSOPInstanceUID)]
    for item in rs.ROIContourSequence:
        for c in item.get("ContourSequence", []):
            vals = c.ContourData
            assert int(c.NumberOfContourPoints) >= 3 and len(vals) == 3 * int(c.NumberOfContourPoints)
            assert max(len(str(v)) for v in vals) <= 16
            for ref in c.get("ContourImageSequence", []):
                assert images.get(str(ref.ReferencedSOPInstanceUID)) == str(ref.ReferencedSOPClassUID)
    assert all(str(o.get("RTROIInterpretedType", "")).strip() for o in rs.RTROIObservationsSequence)
    new_uids = [str(rs.SOPInstanceUID)] + [str(d.SOPInstanceUID) for d in rds]
    assert not set(new_uids) & (set(images) | set(case.source_files)) and len(set(new_uids)) == len(new_uids)
    if case.source_rs is not None:
        assert str(rs.SOPInstanceUID) != str(pydicom.dcmread(case.source_rs, stop_before_pixels=True).SOPInstanceUID)
    for rd in rds:
        for ref in rd.get("ReferencedRTPlanSequence", []):
            assert str(ref.ReferencedSOPInstanceUID) in plans, "RTDOSE refers to a plan that is not exported"
    for f, ds in cts.items():
        src = case.source_files[str(ds.SOPInstanceUID)]
        if case.name != "totalseg":  # its slices have blank UIDs/patient: rewritten with them filled
            assert f.read_bytes() == src.read_bytes(), f.name


# ----------------------------------------------------------------------------- specific cases
@pytest.fixture(scope="module")
def phantom_case(request, tmp_path_factory, phantom_dir) -> Case:
    return _case("phantom", request, tmp_path_factory, phantom_dir)


def test_merge_lungs_workflow_round_trips(phantom_case):
    """Sample 2 with masks: the merged "Lung" comes back whole, as the union of the two lungs, and
    reads back through the facade as the 0/255 volume given to setNewROI."""
    from grtv import GRTV_STATUS_OK, pyGRTV

    case = phantom_case
    union = case.before["Lung_L"] | case.before["Lung_R"]
    assert np.array_equal(case.before["Lung"], union)
    lung = case.reread.rois[case.reread.roi_index("Lung")]
    assert (lung.color, lung.number, lung.roi_type) == ((255, 255, 0), 11, "ORGAN")
    assert np.array_equal(case.reread.mask("Lung"), union)
    g = pyGRTV()
    assert _quiet(g.readRTDir, str(case.out)) == GRTV_STATUS_OK
    rois: list = []
    g.getROIList(rois)
    i = next(int(r["roi_index"]) for r in rois if r["roi_name"] == "Lung")
    ret, vol = g.readGRTVRaw(g.GRTV_DATA_TYPE_ROI, dataID=i)
    assert ret == GRTV_STATUS_OK and np.array_equal(vol >= 128, union)
    # the lungs' holes-free union plus the body with the lungs cut out tile the body exactly
    assert np.array_equal(case.reread.mask("Body-Lungs") | case.reread.mask("Lung"), case.before["BODY"] | union)


@pytest.fixture(scope="module")
def dicompyler_exports(request, shared_data, tmp_path_factory, phantom_dir):
    case = _case("dicompyler", request, tmp_path_factory, phantom_dir)
    src = shared_case(shared_data, "dicompyler-example/example_data")
    out = {"image": case.out, "original": _quiet(export_rt, case.study, case.work / "original", dose_grid="original")}
    return src, case.study, out


def test_dicompyler_export_contents(dicompyler_exports):
    """The dose-grid reference case (1 of 98 CT slices): the export holds that CT slice unchanged, an
    RTSTRUCT with the 10 ROIs and all their source contours (the one on the CT plane referencing the
    slice), and an RTDOSE on the source dose grid (here the study grid) equal to the source dose
    within one step; read back, the dose grid is again the reference and Heart is dicompyler-core's
    published 440.23 cc."""
    src, st, out = dicompyler_exports
    exp = out["image"]
    assert sorted(p.name.split("_")[0] for p in exp.iterdir()) == [".grtv", "CT", "RD", "RS"]  # + manifest
    ct = next(exp.glob("CT_*.dcm"))
    assert ct.read_bytes() == (src / "ct.0.dcm").read_bytes()
    src_rs = pydicom.dcmread(src / "rtss.dcm")
    rs = pydicom.dcmread(next(exp.glob("RS_*.dcm")))
    counts = {int(r.ReferencedROINumber): len(r.get("ContourSequence", [])) for r in src_rs.ROIContourSequence}
    assert {int(r.ReferencedROINumber): len(r.get("ContourSequence", [])) for r in rs.ROIContourSequence} == counts
    ct_uid = str(pydicom.dcmread(ct, stop_before_pixels=True).SOPInstanceUID)
    refs = [str(i.ReferencedSOPInstanceUID) for r in rs.ROIContourSequence for c in r.get("ContourSequence", [])
            for i in c.get("ContourImageSequence", [])]
    assert refs and set(refs) == {ct_uid}
    src_rd, new_rd = pydicom.dcmread(src / "rtdose.dcm"), pydicom.dcmread(next(exp.glob("RD_*.dcm")))
    for kw in ("Rows", "Columns", "NumberOfFrames"):
        assert int(new_rd[kw].value) == int(src_rd[kw].value), kw
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "GridFrameOffsetVector"):
        assert np.allclose([float(x) for x in new_rd[kw].value], [float(x) for x in src_rd[kw].value], atol=1e-4), kw
    a = src_rd.pixel_array.astype(np.float64) * float(src_rd.DoseGridScaling)
    b = new_rd.pixel_array.astype(np.float64) * float(new_rd.DoseGridScaling)
    # float32 on the way (study dose) + the new quantisation: within one new step
    assert np.abs(a - b).max() <= float(new_rd.DoseGridScaling) * (1 + 1e-6) + float(a.max()) * 2**-24
    st2 = _quiet(open_study, exp)
    assert st2.attrs["reference_grid"] == "dose" and st2.grid.shape == st.grid.shape
    assert st2.volume_cc("Heart") == pytest.approx(440.23, rel=0.01)


def test_dicompyler_original_grid_exports_a_consistent_plan(dicompyler_exports):
    _, _, out = dicompyler_exports
    exp = out["original"]
    rd = pydicom.dcmread(next(exp.glob("RD_*.dcm")), stop_before_pixels=True)
    rp = pydicom.dcmread(next(exp.glob("RP_*.dcm")), stop_before_pixels=True)
    rs = pydicom.dcmread(next(exp.glob("RS_*.dcm")), stop_before_pixels=True)
    assert str(rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID) == str(rp.SOPInstanceUID)
    ref = [str(i.ReferencedSOPInstanceUID) for i in rp.get("ReferencedStructureSetSequence", [])]
    assert ref == [str(rs.SOPInstanceUID)]
    if shutil.which("dciodvfy"):
        for f in exp.glob("R[DPS]_*.dcm"):
            assert not dciodvfy(f)[0], f.name


def test_roi_names_round_trip_or_are_refused(shared_data, tmp_path):
    """A name in Japanese (the original API's users) comes back unchanged from grtv_nb and plastimatch;
    names DICOM can't hold (ROIName is an LO: at most 64 characters, no backslash) are refused when
    the ROI is added, not written broken."""
    from grtv_nb.errors import ValidationError

    st = _quiet(open_study, shared_case(shared_data, "cerr-radiomics-phantom/pat_2"))
    gtv = st.mask(0)
    refused = []
    for bad in ("X" * 65, "left\\right"):
        try:
            st.add_roi(bad, gtv, (1, 2, 3))
        except ValidationError:
            refused.append(bad)
    st.add_roi("右肺", gtv, (0, 255, 0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_rt(st, tmp_path / "o")
    lossy = [str(w.message) for w in caught if "Failed to encode" in str(w.message)]
    assert not lossy, lossy
    assert len(refused) == 2
    st2 = _quiet(open_study, tmp_path / "o")
    assert st2.roi_names == st.roi_names
    assert np.array_equal(st2.mask("右肺"), gtv)
    from reference_tools import plastimatch_exe

    if plastimatch_exe() is not None:
        pytest.importorskip("SimpleITK")
        pm = plastimatch_masks(next((tmp_path / "o").glob("RS_*.dcm")), tmp_path / "pm", st.grid,
                               ct_dir=shared_case(shared_data, "cerr-radiomics-phantom/pat_2"))
        assert set(pm) == set(st.roi_names)
    if shutil.which("dciodvfy"):
        assert not dciodvfy(next((tmp_path / "o").glob("RS_*.dcm")))[0]


def test_body_added_through_setnewroi_is_external(shared_data, tmp_path):
    """The issue's rule "every ROI typed, the body as EXTERNAL" also for a body outline given as a
    0/255 volume to setNewROI (other added ROIs are ORGAN)."""
    from grtv import GRTV_STATUS_OK, pyGRTV

    src = shared_case(shared_data, "cerr-radiomics-phantom/pat_2")
    g = pyGRTV()
    assert _quiet(g.readRTDir, str(src)) == GRTV_STATUS_OK
    ret, img = g.readGRTVRaw(g.GRTV_DATA_TYPE_IMAGE)
    body = np.where(img > -300, 255, 0).astype(np.uint8)
    assert g.setNewROI(body, "BODY", (0, 200, 0)) == GRTV_STATUS_OK
    assert g.setNewROI(body, "Soft tissue", (0, 0, 200)) == GRTV_STATUS_OK
    assert _quiet(g.exportRT, str(tmp_path / "o")) == GRTV_STATUS_OK
    rs = pydicom.dcmread(next((tmp_path / "o").glob("RS_*.dcm")), stop_before_pixels=True)
    names = {int(r.ROINumber): str(r.ROIName) for r in rs.StructureSetROISequence}
    types = {names[int(o.ReferencedROINumber)]: str(o.RTROIInterpretedType) for o in rs.RTROIObservationsSequence}
    assert types == {"GTV-1": "ORGAN", "BODY": "EXTERNAL", "Soft tissue": "ORGAN"}
