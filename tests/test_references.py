"""grtv_nb against independent references (issue 2's acceptance checks).

- ROI voxel masks vs **plastimatch** ``convert --xor-contours`` (one mask per ROI, same grid): within
  1% for ROIs over 10 cc (in practice they agree voxel for voxel).
- ROI voxel masks vs **rt-utils**: rt-utils rounds contour vertices to whole pixels and OpenCV's
  ``fillPoly`` also fills every pixel the outline touches, so its masks are larger by up to one ring
  of pixels around the outline (+3..5% for large ROIs, +10..35% for small or thin ones). We require:
  every voxel where the two differ lies within one pixel (in-plane) of our outline, ours is (almost)
  a subset of rt-utils's, and rt-utils's excess is at most the number of pixels of the outer ring.
- Phantom ROIs vs their **analytical** volumes (:func:`grtv_nb.phantom.analytic_volume_cc`).
- **dicompyler-example** (1 of 98 CT slices: the references can't rasterise on a CT grid): volumes on
  the dose grid vs dicompyler-core's published Heart volume (440.23 cc), vs the TPS's DVHSequence in
  rtdose.dcm, and vs plastimatch rasterising on the same dose grid (``--fixed rtdose.dcm``).
- The dose on the image grid vs an independent interpolation of the RTDOSE (pydicom +
  ``RegularGridInterpolator``): within 0.5% of the max dose, in several patient positions and dose
  storage orientations; and vs the analytic phantom dose (interpolation-error tolerance).

Reference tools' outputs are cached per module (plastimatch / rt-utils run once per case).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import reference_tools as rt
from scipy import ndimage

from grtv_nb import open_study
from grtv_nb.phantom import analytic_volume_cc, dose_at, write_phantom
from tests_support import shared_case

CERR = ["pat_1", "pat_2", "pat_3", "pat_4"]
BIG_CC = 10.0

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _open(folder, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_study(folder, **kw)


def _inplane(n: int) -> np.ndarray:
    st = np.zeros((3, n, n), dtype=bool)
    st[1] = True
    return st


def _crop(*masks: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    """Bounding box of the union of masks, grown by ``margin`` voxels in-plane."""
    any_ = np.zeros(masks[0].shape, dtype=bool)
    for m in masks:
        any_ |= m
    if not any_.any():
        return (slice(0, 0),) * 3
    box = []
    for ax, n in enumerate(any_.shape):
        idx = np.flatnonzero(any_.any(axis=tuple(a for a in range(3) if a != ax)))
        grow = 0 if ax == 0 else margin
        box.append(slice(max(int(idx[0]) - grow, 0), min(int(idx[-1]) + 1 + grow, n)))
    return tuple(box)


def outer_ring(mask: np.ndarray) -> int:
    """Pixels just outside the mask (8-connected, in-plane)."""
    return int((ndimage.binary_dilation(mask, _inplane(3)) & ~mask).sum())


def check_rtutils(ours: np.ndarray, ref: np.ndarray, name: str) -> dict:
    """rt-utils agreement rule (see the module docstring); returns the numbers for the report."""
    box = _crop(ours, ref)
    ours, ref = ours[box], ref[box]
    n = int(ours.sum())
    band = ndimage.binary_dilation(ours, _inplane(3)) & ~ndimage.binary_erosion(ours, _inplane(3))
    far = int(((ours ^ ref) & ~band).sum())
    missing = int((ours & ~ref).sum())
    ring = outer_ring(ours)
    excess = int(ref.sum()) - n
    assert far <= max(5, 1e-4 * n), f"{name}: {far} voxels differ from rt-utils farther than 1 pixel from the outline"
    assert missing <= max(3, 0.002 * n), f"{name}: {missing} of our {n} voxels are not in rt-utils's mask"
    assert -0.01 * n <= excess <= ring, f"{name}: rt-utils has {excess:+d} voxels vs ours {n} (outer ring {ring})"
    return {"ours": n, "rtutils": int(ref.sum()), "rel": excess / max(n, 1)}


def check_plastimatch(study, name: str, ref: np.ndarray) -> None:
    ours = study.mask(name)
    n, m = int(ours.sum()), int(ref.sum())
    vol = study.volume_cc(name)
    xor = int((ours ^ ref).sum())
    if vol > BIG_CC:
        assert abs(m - n) <= 0.01 * n, f"{name} ({vol:.1f} cc): ours {n} voxels vs plastimatch {m}"
        assert xor <= 0.01 * n, f"{name}: {xor} voxels differ from plastimatch"
    else:  # small ROIs: a few voxels either way
        assert xor <= max(10, 0.05 * n), f"{name} ({vol:.2f} cc): {xor} voxels differ from plastimatch ({n} vs {m})"


# ----------------------------------------------------------------------------- cached references


class _Refs:
    """Runs each reference tool once per case and keeps the canonical masks."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict = {}

    def _dir(self, key: str) -> Path:
        d = self.root / key.replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        return d

    def plastimatch(self, key: str, rtss: Path, ct_dir: Path | None, grid, fixed: Path | None = None,
                    tol_z: float | None = None):
        if rt.plastimatch_exe() is None:
            pytest.skip("plastimatch is not installed (pip install plastimatch)")
        pytest.importorskip("SimpleITK", reason="SimpleITK reads plastimatch's NRRD masks")
        k = ("pm", key)
        if k not in self.cache:
            self.cache[k] = rt.plastimatch_roi_masks(rtss, ct_dir, self._dir("pm_" + key), grid, fixed=fixed,
                                                     tol_z=tol_z)
        return self.cache[k]

    def rtutils(self, key: str, folder: Path, rtss: Path, grid, fix_refs: bool = False):
        pytest.importorskip("rt_utils", reason="rt-utils is a test reference")
        k = ("rtu", key)
        if k not in self.cache:
            d = self._dir("rtu_" + key)
            img = rt.image_only_folder(folder, d / "images")
            if fix_refs:
                rtss, _ = rt.rtss_with_slice_refs(rtss, img, d / "rtss.dcm")
            self.cache[k] = rt.rtutils_roi_masks(img, rtss, grid)
        return self.cache[k]


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> _Refs:
    return _Refs(tmp_path_factory.mktemp("references"))


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory, phantom_dir):
    """Phantom folders by patient position (HFS shared with the rest of the suite)."""
    root = tmp_path_factory.mktemp("phantom_positions")
    made = {"HFS": phantom_dir}

    def get(pos: str) -> Path:
        if pos not in made:
            made[pos] = write_phantom(root / pos, pos)
        return made[pos]

    return get


# ----------------------------------------------------------------------------- real patients


def _cerr(shared_data, pat):
    folder = shared_case(shared_data, f"cerr-radiomics-phantom/{pat}")
    rtss = next(folder.glob("DCM_RS_*.dcm"))
    return folder, rtss


@pytest.mark.parametrize("pat", CERR)
def test_cerr_gtv_vs_plastimatch(shared_data, refs, pat):
    folder, rtss = _cerr(shared_data, pat)
    study = _open(folder)
    masks = refs.plastimatch(pat, rtss, folder, study.grid)
    assert set(study.roi_names) == set(masks)
    for name in study.roi_names:
        check_plastimatch(study, name, masks[name])


@pytest.mark.parametrize("pat", CERR)
def test_cerr_gtv_vs_rtutils(shared_data, refs, pat):
    folder, rtss = _cerr(shared_data, pat)
    study = _open(folder)
    # CERR writes no per-contour ContourImageSequence, which rt-utils needs to place a contour
    masks, region = refs.rtutils(pat, folder, rtss, study.grid, fix_refs=True)
    for name in study.roi_names:
        ours = study.mask(name)
        assert (ours & ~region).sum() == 0, "the GTV reaches columns rt-utils can't represent (non-square image)"
        res = check_rtutils(ours, masks[name], f"{pat} {name}")
        # large GTVs: rt-utils's rounding makes them a few % larger, never smaller
        if study.volume_cc(name) > 100:
            assert 0.0 <= res["rel"] <= 0.08, res


def test_rtutils_mock_data(shared_data, refs):
    """rt-utils's own mock patient: 2 CT slices, the MIM RTSTRUCT (4 small ROIs on z = 60, 65, 70 mm;
    z = 70 has no CT slice). Its other RTSTRUCT, rt.dcm, names a frame of reference that is not the
    CT's: grtv_nb refuses to rasterise it (warning, empty mask) where rt-utils ignores the frame."""
    folder = shared_case(shared_data, "rt-utils-testdata/tests/mock_data")
    rtss = folder / "invalid_reference_rt.dcm"
    study = _open(folder, rtstruct=rtss.name)
    masks, region = refs.rtutils("mock", folder, rtss, study.grid)
    assert study.roi_names == ["ROI-1", "ROI-2", "ROI-3", "ROI-4"]
    for name in study.roi_names:
        ours = study.mask(name)
        assert ours.sum() > 0 and (ours & ~region).sum() == 0
        check_rtutils(ours, masks[name], f"mock {name}")
    other = _open(folder, rtstruct="rt.dcm")
    assert other.voxel_count("ROI-1") == 0


def test_dicompyler_volumes_on_dose_grid(shared_data, refs):
    folder = shared_case(shared_data, "dicompyler-example/example_data")
    study = _open(folder)
    assert study.attrs["reference_grid"] == "dose" and not study.has_image
    # dicompyler-core's own test (tests/test_dvhcalc.py): Heart 440.23 cc from contours + dose grid
    assert study.volume_cc("Heart") == pytest.approx(440.23, rel=0.02)
    # the TPS's DVHs embedded in rtdose.dcm (first cumulative bin = ROI volume)
    tps = rt.dvh_sequence_volumes(folder / "rtdose.dcm")
    assert len(tps) == 9
    for r in study.rois:
        vol = study.volume_cc(r.name)
        if r.number not in tps or vol <= BIG_CC or r.name == "BODY":
            # BODY: the TPS reports 13944 cc, 6.3% below the volume of the exported contours
            # (14882 cc here, on the dose grid or a larger grid alike; plastimatch agrees with us
            # within one voxel below, and dicompyler-core 0.5.6's get_dvh gives 14882.1 cc): the
            # TPS's body volume is not reproducible from the contours.
            continue
        tol = 0.02 if vol > 50 else 0.03  # 10-50 cc: ~700-3500 voxels of 2.5x2.5x3 mm
        assert vol == pytest.approx(tps[r.number], rel=tol), (r.name, vol, tps[r.number])
    # plastimatch rasterising the same contours on the dose grid
    masks = refs.plastimatch("dicompyler", folder / "rtss.dcm", None, study.grid, fixed=folder / "rtdose.dcm")
    for r in study.rois:
        if r.name in masks:
            check_plastimatch(study, r.name, masks[r.name])
        else:  # plastimatch leaves out ROIs without contours
            assert study.voxel_count(r.name) == 0, r.name


# ----------------------------------------------------------------------------- phantom


def test_phantom_rois_vs_references(phantoms, refs):
    folder = phantoms("HFS")
    study = _open(folder)
    pm = refs.plastimatch("phantom_HFS", folder / "RS_phantom.dcm", folder, study.grid)
    ru, region = refs.rtutils("phantom_HFS", folder, folder / "RS_phantom.dcm", study.grid, fix_refs=True)
    assert set(pm) == set(study.roi_names)
    for name in study.roi_names:
        check_plastimatch(study, name, pm[name])
        ours = study.mask(name)
        # non-square image (144 rows x 192 columns): rt-utils keeps only 144 columns
        check_rtutils(ours & region, ru[name], f"phantom {name}")
        ana = analytic_volume_cc(name)
        vol = study.volume_cc(name)
        assert vol == pytest.approx(ana, rel=0.01), (name, vol, ana)  # every phantom ROI is over 10 cc
    # the Spine ring keeps its hole: no Spine voxel inside the canal
    assert not (study.mask("Spine") & study.mask("SpinalCanal")).any()
    assert not (pm["Spine"] & pm["SpinalCanal"]).any()


@pytest.mark.parametrize("pos", ["FFP", "HFDL"])
def test_phantom_positions_vs_plastimatch(phantoms, refs, phantom_study, pos):
    folder = phantoms(pos)
    study = _open(folder)
    pm = refs.plastimatch(f"phantom_{pos}", folder / "RS_phantom.dcm", folder, study.grid)
    for name in study.roi_names:
        check_plastimatch(study, name, pm[name])
        assert study.voxel_count(name) == phantom_study.voxel_count(name), name


NONUNIFORM_Z = np.concatenate([np.arange(-94.5, -30, 3.0), np.arange(-30, 30, 2.0), np.arange(30, 96, 5.0)])


def test_nonuniform_spacing_keeps_every_plane(tmp_path, refs):
    """CT with 3, 2 and 5 mm gaps: every contour plane lands on its own slice. rt-utils places
    contours by their referenced slice UID (immune to spacing); plastimatch resamples the CT to a
    uniform 2 mm grid and puts each plane on a nearest slice (mapped back to our nearest slice)."""
    folder = write_phantom(tmp_path / "nonuniform", z_positions=NONUNIFORM_Z)
    study = _open(folder)
    assert not study.grid.uniform_z and len(study.grid.z) == len(NONUNIFORM_Z)
    rs = folder / "RS_phantom.dcm"
    ru, region = refs.rtutils("nonuniform", folder, rs, study.grid, fix_refs=True)
    pm = refs.plastimatch("nonuniform", rs, folder, study.grid, tol_z=2.5)
    for name in study.roi_names:
        ours = study.mask(name)
        planes = ours.any(axis=(1, 2))
        assert (planes == ru[name].any(axis=(1, 2))).all(), f"{name}: contour planes differ from rt-utils"
        check_rtutils(ours & region, ru[name], f"nonuniform {name}")
        check_plastimatch(study, name, pm[name])
        assert study.volume_cc(name) == pytest.approx(analytic_volume_cc(name, NONUNIFORM_Z), rel=0.01), name


# ----------------------------------------------------------------------------- dose


def _dose_folder(src: Path, dst: Path, **kw) -> Path:
    """CT of ``src`` (symlinks) + its RTDOSE rewritten with other storage axes."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.glob("CT_*.dcm"):
        os.symlink(p, dst / p.name)
    rt.rewrite_dose_orientation(src / "RD_phantom.dcm", dst / "RD_rewritten.dcm", **kw)
    return dst


DOSE_CASES = {
    "HFS": ("HFS", None),
    "FFP": ("FFP", None),
    "HFDL": ("HFDL", None),
    # the same dose stored with reversed columns (frame normal -z), relative offsets
    "FFP-dose-cols-flipped": ("FFP", dict(flip_rows=False, flip_cols=True, reverse_frames=False)),
    # reversed rows, columns and frames, GridFrameOffsetVector in its absolute (z) form
    "HFDL-dose-all-flipped-absolute": ("HFDL", dict(flip_rows=True, flip_cols=True, reverse_frames=True,
                                                  absolute_offsets=True)),
}


@pytest.fixture(scope="module")
def dose_case(phantoms, tmp_path_factory):
    cache = {}

    def get(case: str):
        if case not in cache:
            pos, rewrite = DOSE_CASES[case]
            folder = phantoms(pos)
            rd = folder / "RD_phantom.dcm"
            if rewrite is not None:
                folder = _dose_folder(folder, tmp_path_factory.mktemp("dose") / case, **rewrite)
                rd = folder / "RD_rewritten.dcm"
            study = _open(folder)
            cache[case] = (study, rt.DoseReference(rd))
        return cache[case]

    return get


@pytest.mark.parametrize("case", list(DOSE_CASES))
def test_dose_vs_independent_interpolation(dose_case, case):
    study, ref = dose_case(case)
    ours = study.ds["dose"].values
    expected = ref.on_grid(study.grid)
    assert ours.shape == study.grid.shape and ours.dtype == np.float32
    err = np.abs(ours - expected).max()
    assert err <= 0.005 * ref.max, f"{case}: max |ours - reference| = {err:.4f} Gy ({100 * err / ref.max:.3f}% of max)"
    # the dose grid does not cover the whole image: zero outside it, non-zero inside the body
    assert (expected == 0).any() and (ours[expected == 0] == 0).all()


def test_dose_vs_analytic(dose_case):
    """Against the analytic dose at CT voxel centres at least one dose voxel inside the dose grid
    and 8 mm inside the body (the analytic dose steps to 0 at the skin). Linear interpolation on
    a 4 mm grid errs by up to h^2/8 * max|D''| per axis: with the 4 mm erf penumbra that is ~2-3% of
    the max dose per axis where three field edges cross, so the max tolerance is 10%; the
    99th percentile must stay under 3% and the mean under 0.5%; inside the PTV under 1%."""
    from grtv_nb.phantom import BODY_AB, ELLIPSOIDS

    study, ref = dose_case("HFS")
    g = study.grid
    pts = rt.grid_points(g)
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    body = (x / (BODY_AB[0] - 8)) ** 2 + (y / (BODY_AB[1] - 8)) ** 2 <= 1
    sel = ref.inside(pts.reshape(-1, 3), margin_mm=4.0).reshape(g.shape) & body
    assert sel.sum() > 100_000
    dmax = float(dose_at(np.array(ELLIPSOIDS["PTV"][0][0]), np.array(ELLIPSOIDS["PTV"][0][1]),
                         np.array(ELLIPSOIDS["PTV"][0][2])))
    err = np.abs(study.ds["dose"].values - dose_at(x, y, z))[sel] / dmax
    assert err.max() < 0.10 and np.percentile(err, 99) < 0.03 and err.mean() < 0.005, (
        err.max(), np.percentile(err, 99), err.mean())
    c, s, _ = ELLIPSOIDS["PTV"]
    core = ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= (0.75 * s[0]) ** 2) & sel
    assert core.sum() > 100
    assert (np.abs(study.ds["dose"].values - dose_at(x, y, z))[core] / dmax).max() < 0.01
