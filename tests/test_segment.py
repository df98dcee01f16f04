"""Classical automatic segmentation (grtv_nb.segment) against independent references:
TotalSegmentator label maps (../shared/data/totalsegmentator-example, model outputs, not manual),
``plastimatch segment`` body outlines (+ scipy hole filling), the phantom's analytical ROIs, and
the bad-input contract (MR, 1 slice, unknown organ, organ absent).

Goals of issue 5 and where they stand is printed by benchmarks/bench_segment.py; the thresholds
here are the values reached (with a small margin), so a regression fails."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from nifti_ref import (
    TS,
    dice,
    read_ct_folder,
    ts_dicom_ct,
    ts_dicom_labels,
    ts_reference,
)
from scipy import ndimage as ndi

from grtv_nb.errors import GRTVError, GRTVWarning, SegmentationError
from grtv_nb.segment import SUPPORTED_ORGANS, close_session, segment_organ
from tests_support import shared_case


@pytest.fixture(scope="module")
def ts_dicom(shared_data):
    pytest.importorskip("nibabel")
    return ts_dicom_ct(), ts_dicom_labels()


@pytest.fixture(scope="module")
def head_ct(shared_data):
    return read_ct_folder(shared_data / "pycerr-headneck-ct" / "head_and_neck" / "pt_1")


def _cc(mask: np.ndarray, img: xr.DataArray) -> float:
    dz = np.gradient(img.z.values)
    return float((mask.sum(axis=(1, 2)) * dz).sum() * float(img.x[1] - img.x[0]) * float(img.y[1] - img.y[0]) / 1000)


# ------------------------------------------------------------------------------ bad input


def _tiny_ct(nz=4, value=-1000):
    a = np.full((nz, 16, 16), value, np.int16)
    return xr.DataArray(
        a, dims=("z", "y", "x"),
        coords={"z": np.arange(nz) * 3.0, "y": np.arange(16) * 2.0, "x": np.arange(16) * 2.0},
        attrs={"modality": "CT"},
    )


def test_supported_organs_and_unknown_name():
    assert SUPPORTED_ORGANS == ("body", "llung", "rlung", "spinal_cord", "liver", "lkidney", "rkidney", "stomach")
    with pytest.raises(SegmentationError) as ei:
        segment_organ(_tiny_ct(), "pancreas")
    msg = str(ei.value)
    assert "pancreas" in msg and all(o in msg for o in SUPPORTED_ORGANS)
    assert isinstance(ei.value, GRTVError)


def test_mr_is_refused(shared_data):
    pytest.importorskip("nibabel")
    from nifti_ref import load_nifti_lps

    mr = load_nifti_lps(TS / "example_mr_sm.nii.gz", dtype=np.int16)
    mr.attrs["modality"] = "MR"
    with pytest.raises(SegmentationError, match="CT"):
        segment_organ(mr, "liver")


def test_one_slice_and_not_an_image_are_refused():
    with pytest.raises(SegmentationError, match="1 slice"):
        segment_organ(_tiny_ct(nz=1), "body")
    with pytest.raises(SegmentationError, match="DataArray"):
        segment_organ(np.zeros((4, 16, 16), np.int16), "body")


def test_empty_ct_has_no_body():
    with pytest.raises(SegmentationError, match="body"):
        segment_organ(_tiny_ct(nz=4), "body")


def test_aliases_and_case():
    from grtv_nb.segment import normalise_organ

    assert normalise_organ("Lung_L") == "llung"
    assert normalise_organ("Kidney_R") == "rkidney"
    assert normalise_organ("SpinalCanal") == "spinal_cord"
    assert normalise_organ(" LIVER ") == "liver"


# ------------------------------------------------------------------------------ real CT


def _plastimatch_body(img):
    from plastimatch_ref import plastimatch_body

    ref = plastimatch_body(img.values, img.x.values, img.y.values, img.z.values, fill_holes=False)
    if ref is None:
        pytest.skip("plastimatch not installed")
    return np.stack([ndi.binary_fill_holes(r) for r in ref])


def test_body_matches_plastimatch(ts, ts_dicom):
    """The trunk (the body without the arms: the organ methods' landmark) against ``plastimatch
    segment``, which keeps only the trunk; the body ROI adds the arms (the contrast CT's two
    arms, one lying apart and one against the trunk, whose humeri TotalSegmentator labels), as a
    clinical external contour does."""
    from grtv_nb.segment import _common
    from grtv_nb.segment.body import body_work

    for img, goal in ((ts[0], 0.97), (ts_dicom[0], 0.97)):
        close_session()
        body = segment_organ(img, "body")
        assert body.dtype == bool and body.shape == img.shape
        ctx = _common.get_context(img.values, img.x.values, img.y.values, img.z.values)
        trunk = ctx.grid.to_image(body_work(ctx))
        assert dice(trunk, _plastimatch_body(img)) >= goal
        assert (trunk & ~body).sum() <= 0.001 * trunk.sum()
    humerus = np.isin(ts_dicom[1].values, [69, 70])
    assert humerus.sum() > 0
    assert (body & humerus).sum() >= 0.95 * humerus.sum()
    lab, n = ndi.label(body & ~trunk)
    vox_cc = float(np.prod([img[a][1] - img[a][0] for a in "xyz"])) / 1000.0
    for i in range(1, n + 1):
        piece = lab == i
        if piece.sum() * vox_cc >= 20.0:
            assert (piece & humerus).any()  # every added piece of any size is an arm
    close_session()


def test_body_matches_a_clinical_external_contour(shared_data):
    """The BODY ROI of the dicompyler-core patient (a clinical external contour, drawn by its
    planning system) on the one CT slice that comes with it: the neck, the shoulder and the
    raised arm lying apart are body, the couch is not. Segmentation needs a volume, so the slice
    is given twice (2 slices, 3 mm apart); the reference is the BODY polygon of that plane drawn
    with scikit-image (voxel centres inside)."""
    from reference_tools import clinical_body_case

    img, ref = clinical_body_case(shared_case(shared_data, "dicompyler-example/example_data"))
    assert ref.sum() > 10000
    body = segment_organ(img, "body")
    assert dice(body[0], ref) >= 0.97
    close_session()


def _trunk_and_arm(seam_mm: float):
    """Analytical CT (1 mm in-plane, 3 mm slices): an elliptical trunk (40 HU, semi-axes 150 x 100
    mm) and an arm (a 45 mm disk of 40 HU round a 12 mm humerus of 1000 HU) lying against its
    right side, separated from it by an air gap of ``seam_mm`` (0: pressed together)."""
    n = 420
    c = (np.arange(n) - n / 2 + 0.5) * 1.0
    yy, xx = np.meshgrid(c, c, indexing="ij")
    trunk = (xx / 150.0) ** 2 + (yy / 100.0) ** 2 <= 1.0
    ax = -150.0 - seam_mm - 45.0
    arm = (xx - ax) ** 2 + yy**2 <= 45.0**2
    sl = np.where(trunk | arm, 40, -1000).astype(np.int16)
    sl[(xx - ax) ** 2 + yy**2 <= 12.0**2] = 1000
    vol = np.repeat(sl[None], 12, axis=0)
    img = xr.DataArray(vol, dims=("z", "y", "x"), coords={"z": np.arange(12) * 3.0, "y": c, "x": c},
                       attrs={"modality": "CT"})
    return img, np.repeat(trunk[None], 12, axis=0), np.repeat(arm[None], 12, axis=0)


def test_body_keeps_an_arm_but_the_trunk_landmark_does_not():
    from grtv_nb.segment import _common
    from grtv_nb.segment.body import body_work

    for seam in (1.0, -0.5):  # a 1 mm air seam (finer than the 2 mm working grid), or pressed together
        img, trunk, arm = _trunk_and_arm(seam)
        close_session()
        body = segment_organ(img, "body")
        assert dice(body, trunk | arm) >= 0.99, seam
        if seam > 0:
            ctx = _common.get_context(img.values, img.x.values, img.y.values, img.z.values)
            landmark = ctx.grid.to_image(body_work(ctx))
            assert dice(landmark, trunk) >= 0.99
            assert (landmark & arm).sum() <= 0.02 * arm.sum()


def test_lungs_match_totalsegmentator(ts):
    img, lab = ts
    left = segment_organ(img, "llung")
    right = segment_organ(img, "rlung")
    assert dice(left, ts_reference(lab, "llung")) >= 0.94
    assert dice(right, ts_reference(lab, "rlung")) >= 0.94
    assert not (left & right).any()
    # left = the patient's left = larger x
    xs = img.x.values
    assert xs[np.nonzero(left)[2]].mean() > xs[np.nonzero(right)[2]].mean()


def test_spinal_canal_covers_the_cord(ts, ts_dicom):
    for img, lab in (ts, ts_dicom):
        canal = segment_organ(img, "spinal_cord")
        ref = ts_reference(lab, "spinal_cord")
        cover = (canal & ref).sum() / ref.sum()
        assert cover >= 0.95
        # plausible volume: larger than the cord (the canal holds CSF and fat), not absurdly so
        assert ref.sum() <= canal.sum() <= 2.5 * ref.sum()


def test_liver_matches_totalsegmentator(ts, ts_dicom):
    assert dice(segment_organ(ts[0], "liver"), ts_reference(ts[1], "liver")) >= 0.84  # plain CT
    assert dice(segment_organ(ts_dicom[0], "liver"), ts_reference(ts_dicom[1], "liver")) >= 0.85  # contrast


def test_kidneys_match_totalsegmentator(ts):
    img, lab = ts
    for organ in ("lkidney", "rkidney"):
        assert dice(segment_organ(img, organ), ts_reference(lab, organ)) >= 0.78, organ


def test_kidney_pieces_cut_narrow_necks_only():
    """The kidney candidate's split (issue 15) on analytic shapes, 3 mm voxels: two balls of radius
    24 and 15 mm (a kidney and a bowel loop) joined by a rod of radius 6 mm are two organs (neck/depth
    0.4 of the thinner); a bean (two balls of radius 21 mm, centres 24 mm apart: a kidney's poles)
    and the same two balls joined by a rod of radius 12 mm (0.8) are one."""
    from grtv_nb.segment.abdomen import _kidney_pieces

    sp = (3.0, 3.0, 3.0)
    zz, yy, xx = np.meshgrid(*(np.arange(40) * 3.0 - 60.0,) * 3, indexing="ij")

    def ball(cx, r):
        return (xx - cx) ** 2 + yy**2 + zz**2 <= r**2

    def rod(x0, x1, r):
        return (xx >= x0) & (xx <= x1) & (yy**2 + zz**2 <= r**2)

    kidney, loop = ball(-24.0, 24.0), ball(33.0, 15.0)
    lab, n = _kidney_pieces(kidney | loop | rod(-24.0, 33.0, 6.0), sp)
    assert n == 2
    assert len(np.unique(lab[kidney & ~rod(-60.0, 60.0, 7.0)])) == 1
    assert lab[ball(-24.0, 3.0)].min() != lab[ball(33.0, 3.0)].max()
    assert _kidney_pieces(ball(-12.0, 21.0) | ball(12.0, 21.0), sp)[1] == 1
    assert _kidney_pieces(kidney | loop | rod(-24.0, 33.0, 12.0), sp)[1] == 1
    assert _kidney_pieces(np.zeros((5, 5, 5), bool), sp)[1] == 0


def test_stomach_with_gas(ts_dicom):
    img, lab = ts_dicom
    assert dice(segment_organ(img, "stomach"), ts_reference(lab, "stomach")) >= 0.65


def test_stomach_without_gas(ts):
    # plain CT, collapsed fluid-filled stomach (~3 cc of gas in bubbles) next to a gas-filled colon
    # splenic flexure: the colon's gas is refused (fat and stool around it), the fluid route finds
    # the fundus and body; the antrum under the abdominal wall is missed (Dice 0.654; 0.627 with one
    # median canal y for the region's back instead of the canal's y slice by slice)
    img, lab = ts
    st = segment_organ(img, "stomach")
    ref = ts_reference(lab, "stomach")
    assert dice(st, ref) >= 0.64
    colon = np.isin(lab.values, [20])
    assert (st & colon).sum() <= 0.05 * st.sum()
    # cut below the lung bases (z <= 385 mm, 39 % of the stomach in the image), the left dome is
    # not in the image: the fluid route starts from the piece cut by the image's top (before issue
    # 15's matrix: refused, the rib-cage hull cut by the image's top held the stomach out)
    crop = img.sel(z=slice(None, 385.0))
    close_session()
    st = segment_organ(crop, "stomach")
    ref = ts_reference(lab.sel(z=slice(None, 385.0)), "stomach")
    assert dice(st, ref) >= 0.4
    assert (st & ~ref).sum() <= 0.1 * st.sum()
    close_session()


def test_absent_organs_are_reported(ts_dicom, head_ct):
    # the 20-slice upper-abdomen CT holds no kidneys (TotalSegmentator finds none either)
    with pytest.raises(SegmentationError, match="kidney"):
        segment_organ(ts_dicom[0], "lkidney")
    # a head-and-neck CT: body and canal yes, no liver, no stomach
    body = segment_organ(head_ct, "body")
    assert 1500 < _cc(body, head_ct) < 8000
    canal = segment_organ(head_ct, "spinal_cord")
    assert 5.0 < _cc(canal, head_ct) < 60.0  # C1-C7 (+ foramen magnum), about 4 cm2 x 14 cm
    for organ in ("liver", "stomach", "rkidney"):
        with pytest.raises(SegmentationError, match="could not find"):
            segment_organ(head_ct, organ)
    close_session()


# ------------------------------------------------------------------------------ phantom


PHANTOM_ROI = {
    "body": "BODY", "llung": "Lung_L", "rlung": "Lung_R", "spinal_cord": "SpinalCanal",
    "liver": "Liver", "lkidney": "Kidney_L", "rkidney": "Kidney_R",
}


def test_phantom_organs(phantom_study):
    img = phantom_study.image
    for organ, roi in PHANTOM_ROI.items():
        m = segment_organ(img, organ)
        assert dice(m, phantom_study.mask(roi)) >= 0.9, organ
    # the stomach is found from its gas (its wall touches muscle of the same HU in the phantom)
    st = segment_organ(img, "stomach")
    assert (st & phantom_study.mask("Stomach")).sum() >= 0.9 * phantom_study.mask("Stomach").sum()


def test_phantom_same_contours_in_another_position(phantom_study, tmp_path):
    from grtv_nb import open_study
    from grtv_nb.phantom import write_phantom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = open_study(write_phantom(tmp_path / "ffp", "FFP"))
    a, b = phantom_study.image, other.image
    assert np.allclose(a.x, b.x) and np.allclose(a.y, b.y) and np.allclose(a.z, b.z)
    for organ in ("llung", "rlung", "liver", "spinal_cord"):
        assert dice(segment_organ(a, organ), segment_organ(b, organ)) >= 0.999, organ


def test_phantom_non_uniform_slices(tmp_path):
    from grtv_nb import open_study
    from grtv_nb.phantom import write_phantom

    z = np.concatenate([np.arange(-94.0, -10.0, 5.0), np.arange(-10.0, 40.0, 2.0), np.arange(40.0, 95.0, 4.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = open_study(write_phantom(tmp_path / "nu", z_positions=z))
    img = st.image
    assert not np.allclose(np.diff(img.z.values), np.diff(img.z.values)[0])
    for organ, roi in (("body", "BODY"), ("llung", "Lung_L"), ("spinal_cord", "SpinalCanal"), ("liver", "Liver")):
        assert dice(segment_organ(img, organ), st.mask(roi)) >= 0.9, organ


def test_touching_lungs_are_split_and_airways_removed(phantom_study):
    """The phantom with an anterior junction (lung tissue joining both lungs) and a trachea that
    divides into main bronchi entering each lung."""
    img = phantom_study.image.copy(deep=True)
    v = img.values
    X = img.x.values[None, None, :]
    Y = img.y.values[None, :, None]
    Z = img.z.values[:, None, None]
    bridge = (np.abs(X) <= 45) & (Y >= -45) & (Y <= -25) & (Z >= 40) & (Z <= 80)
    v[bridge] = -820
    trachea = ((X**2 + (Y + 10) ** 2) <= 81) & (Z >= 70)
    bronchi = np.zeros_like(trachea)
    for side in (-1, 1):
        for zc in np.arange(55.0, 71.0):
            cx = side * 35.0 * (70.0 - zc) / 15.0
            bronchi |= (((X - cx) ** 2 + (Y + 10) ** 2) <= 49) & (np.abs(Z - zc) <= 1.5)
    v[trachea | bronchi] = -1000
    left = segment_organ(img, "llung")
    right = segment_organ(img, "rlung")
    # each lung keeps its own side (the junction is shared between them)
    assert dice(left, phantom_study.mask("Lung_L")) >= 0.95
    assert dice(right, phantom_study.mask("Lung_R")) >= 0.95
    assert not (left & right).any()
    assert not (trachea & (left | right)).any()
    assert abs(int((bridge & left).sum()) - int((bridge & right).sum())) <= 0.2 * bridge.sum()
    close_session()


@pytest.mark.parametrize("case, side", [("pat_1", "right"), ("pat_2", "right"), ("pat_3", "left"), ("pat_4", "left")])
def test_cropped_field_of_view_one_hemithorax(shared_data, case, side):
    """The CERR radiomics CTs are cropped to one hemithorax around a lung tumour (the body runs off
    the image; the midline is near one edge). The DICOM geometry says which side each shows: its
    x range lies mostly right (x < 0) or left of the table centre. The lung must get that side's
    name, the other lung must be reported absent, and the spinal canal must be the one in the
    vertebra at the medial edge (within 30 mm of the table centre), not a gap between ribs and
    scapula in the middle of the image."""
    folder = shared_data / "cerr-radiomics-phantom" / case
    if not folder.is_dir():
        pytest.skip(f"cerr-radiomics-phantom/{case} not found")
    img = read_ct_folder(folder, "DCM_IMG_*")
    assert (float(img.x.mean()) > 0) == (side == "left")  # the reference: the image geometry
    close_session()
    lung = segment_organ(img, "llung" if side == "left" else "rlung")
    assert _cc(lung, img) > 200.0
    with pytest.raises(SegmentationError, match=f"{'right' if side == 'left' else 'left'} lung"):
        segment_organ(img, "rlung" if side == "left" else "llung")
    canal = segment_organ(img, "spinal_cord")
    xs = img.x.values[np.nonzero(canal)[2]]
    assert abs(float(np.median(xs))) < 30.0
    assert canal.any(axis=(1, 2)).mean() >= 0.8  # followed over most slices


@pytest.mark.parametrize("case", ["pat_1", "pat_2", "pat_3", "pat_4"])
def test_cropped_lung_cts_abdominal_organs(shared_data, case):
    """The CERR lung CTs (one hemithorax each) hold no abdominal organ, but for the lung bases'
    slices of pat_1 (the right liver lobe, 70-75 HU, from the image's bottom at z -100 mm up to
    about -50 mm, where a 359 cc lung tumour, the RTSTRUCT's GTV-1 at z -49 to 26 mm, sits on the
    dome; read by eye) and of pat_4 (the left dome, whose top is the soft tissue ringed by lung at
    z -494.5 mm, over the spleen and the liver's left lobe, with the heart on it). Whatever is
    drawn must be there: the liver on pat_1, nothing on pat_2 and pat_3 (their lungs reach the
    image's bottom), and on pat_4 no stomach in the heart (11 cc were drawn there at z -494 to
    -470 mm, above the dome). Not checked here: the liver drawn on pat_1 also holds the
    tumour's lower part (z -49 to -10 mm, liver-like HU)."""
    folder = shared_data / "cerr-radiomics-phantom" / case
    if not folder.is_dir():
        pytest.skip(f"cerr-radiomics-phantom/{case} not found")
    img = read_ct_folder(folder, "DCM_IMG_*")
    close_session()
    for organ in ("liver", "lkidney", "rkidney", "stomach"):
        if case == "pat_1" and organ == "liver":
            m = segment_organ(img, organ)
            zs = img.z.values[m.any(axis=(1, 2))]
            assert _cc(m, img) > 300.0 and zs.min() < -90.0 and zs.max() < 0.0
            continue
        try:
            m = segment_organ(img, organ)
        except SegmentationError:
            continue
        assert case == "pat_4", (case, organ)  # pat_4: under its left dome only
        assert img.z.values[m.any(axis=(1, 2))].max() < -494.5, organ
    close_session()


def test_real_ct_same_contours_in_every_position(ts, tmp_path):
    """The real abdominal CT written (by pydicom, see nifti_ref.write_image_series) as a head-first
    supine, feet-first supine, head-first prone and feet-first prone series, each with its own
    stored row/column directions: opened with open_study, every organ comes out the same in
    physical space (and the same as segmenting the NIfTI volume directly)."""
    from nifti_ref import write_image_series

    from grtv_nb import open_study

    img = ts[0]
    direct = {}
    for organ in SUPPORTED_ORGANS:
        close_session()
        direct[organ] = segment_organ(img, organ)
    for pos in ("HFS", "FFS", "HFP", "FFP"):
        st = open_study(write_image_series(img, tmp_path / pos, position=pos))
        image = st.ds["image"]
        assert np.array_equal(image.values, img.values)
        assert all(np.allclose(image[a].values, img[a].values, atol=1e-3) for a in "xyz")
        close_session()
        for organ in SUPPORTED_ORGANS:
            m = segment_organ(image, organ)
            assert dice(m, direct[organ]) >= 0.999, (pos, organ)


def _rot_z(deg: float) -> tuple:
    a = np.radians(deg)
    return tuple(np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).ravel())


def test_oblique_images(phantom_study, shared_data):
    """An oblique image (attrs["direction"], as study.image carries it) is segmented along its
    axes with a warning when it is within 30 degrees of the patient's axes, and refused beyond
    (the anatomy's left/right would not follow its axes: e.g. a prone oblique series stored
    with x to the patient's right)."""
    img = phantom_study.image
    close_session()
    with pytest.warns(GRTVWarning, match="oblique image.*10 degrees"):
        body = segment_organ(img.assign_attrs(direction=_rot_z(10.0)), "body")
    assert dice(body, phantom_study.mask("BODY")) >= 0.95
    for d in (_rot_z(40.0), tuple(np.diag([-1.0, -1.0, 1.0]).ravel())):
        with pytest.raises(SegmentationError, match="oblique image.*degrees off"):
            segment_organ(img.assign_attrs(direction=d), "llung")
    # a real oblique series keeps its direction on study.image
    from grtv_nb import open_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = open_study(shared_case(shared_data, "rt-utils-testdata/tests/oriented_data"))
    assert not st.grid.axis_aligned
    assert np.allclose(np.reshape(st.image.attrs["direction"], (3, 3)), st.grid.direction)
    assert "direction" not in phantom_study.image.attrs


def test_morphology_in_mm_equals_the_distance_transform_definition():
    """dilate_mm / erode_mm (structuring element in the mask's widened bounding box, issue 15's
    speed-up) give the masks of their definition by scipy's Euclidean distance transform (within
    the radius of the mask / farther than the radius from the background, the image border not
    eroding), for small and large radii, in 3D and in-plane, on an anisotropic grid."""
    from grtv_nb.segment._common import dilate_mm, erode_mm

    rng = np.random.default_rng(3)
    m = ndi.gaussian_filter(rng.random((30, 50, 60)), 3) > 0.5
    m[:, :, :5] = True  # touches the image border: the border must not erode
    sp = (3.2, 2.0, 1.5)
    for radius in (2.0, 4.0, 10.0, 25.0):
        for planar in (False, True):
            samp = (1e6 if planar else sp[0], sp[1], sp[2])
            want_d = ndi.distance_transform_edt(~m, sampling=samp) <= radius + 1e-6
            want_e = ndi.distance_transform_edt(m, sampling=samp) > radius + 1e-6
            assert np.array_equal(dilate_mm(m, radius, sp, planar), want_d), (radius, planar)
            assert np.array_equal(erode_mm(m, radius, sp, planar), want_e), (radius, planar)
    assert not dilate_mm(np.zeros((3, 4, 5), bool), 5.0, sp).any()


def test_label_medians_equal_scipy():
    """label_medians (sorting only the labelled voxels) returns scipy.ndimage.median's values,
    even and odd counts, float and integer images."""
    from grtv_nb.segment._common import label_medians

    rng = np.random.default_rng(4)
    lab, n = ndi.label(rng.random((20, 30, 30)) > 0.6)
    idx = np.arange(1, n + 1)[::3]
    for vals in (rng.normal(0, 100, lab.shape).astype(np.float32),
                 rng.integers(-1000, 1000, lab.shape).astype(np.int16)):
        assert np.array_equal(label_medians(vals, lab, idx), np.asarray(ndi.median(vals, lab, idx)))


def test_noise_estimate_and_median_size_meet_their_definitions():
    """noise_sd (MAD of the Laplacian in soft tissue) recovers the standard deviation of white
    Gaussian noise added to a phantom of water, fat and bone in air (within 10 %, edges between the
    tissues included); denoise_size's median filter brings that noise to noise_target_hu or below
    (measured), and leaves images at or below the target alone (size 1: the same array)."""
    from grtv_nb.segment._common import denoise, denoise_size, get_context, noise_sd
    from grtv_nb.segment.params import PARAMS as P

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[-64:64, -64:64].astype(float)
    sl = np.full(yy.shape, -1000.0)
    sl[(yy / 50) ** 2 + (xx / 60) ** 2 <= 1] = 40.0
    sl[(yy - 20) ** 2 + (xx + 25) ** 2 <= 15**2] = -100.0
    sl[(yy + 20) ** 2 + (xx - 20) ** 2 <= 8**2] = 800.0
    c = np.arange(128, dtype=float)
    for sd in (5.0, 20.0, 40.0, 80.0, 150.0):
        hu = np.repeat(sl[None], 12, axis=0) + rng.normal(0.0, sd, (12, 128, 128))
        close_session()
        ctx = get_context(hu.astype(np.float32), c, c, 3.0 * np.arange(12))
        est = noise_sd(ctx)
        assert abs(est - sd) <= 0.1 * sd, (sd, est)
        size = denoise_size(est)
        if sd <= 0.9 * P.noise_target_hu:
            assert size == 1 and denoise(hu, size) is hu
            continue
        assert size >= 3 and size % 2 == 1
        flat = rng.normal(0.0, sd, (300, 300)).astype(np.float32)
        assert float(denoise(flat, size)[8:-8, 8:-8].std()) <= P.noise_target_hu * (est / sd), (sd, size)
    close_session()
