"""Robustness of the classical segmentation (issue 15) on the real TotalSegmentator CT
(../shared/data/totalsegmentator-example; its labels are TotalSegmentator model outputs, used as
the reference): gas under the diaphragm is never lung, landmarks that cannot be found give a
clear refusal (never a wrong organ), and a small subset of the robustness matrix of
benchmarks/bench_segment_matrix.py (patient positions incl. decubitus, crops, thick slices,
noise, no patient)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from nifti_ref import TS_LABELS, dice
from scipy import ndimage as ndi

from grtv_nb.errors import SegmentationError
from grtv_nb.segment import close_session, segment_organ


def thorax_with_colon_gas(img: xr.DataArray, lab: xr.DataArray, leak: bool = True):
    """The real CT made into a thoracic planning CT that starts in the upper abdomen, with the
    colon's gas looking like lung (as at 4 mm with partial volume) and joined to the left lung
    base through the diaphragm: the top slice (lung bases) is continued 60 mm upwards (what is
    not lung there becomes 40 HU soft tissue), so the lungs are largest above the colon, which
    reaches up under the left dome. Returns (image, labels) on the extended grid."""
    v = img.values.copy()
    L = lab.values
    rng = np.random.default_rng(0)
    colon = np.isin(L, [20]) & (v < -400)
    v[colon] = np.clip(rng.normal(-850, 60, colon.sum()), -1000, -650).astype(np.int16)
    lungs = np.isin(L, [10, 11, 12, 13, 14])
    outside = (v[-1] < -500) & ~ndi.binary_fill_holes(v[-1] > -500)
    top = np.where(lungs[-1] | outside, v[-1], np.maximum(v[-1], 40)).astype(np.int16)
    n = 20
    v2 = np.concatenate([v, np.repeat(top[None], n, axis=0)])
    z = np.concatenate([img.z.values, img.z.values[-1] + 3.0 * np.arange(1, n + 1)])
    L2 = np.concatenate([L, np.repeat(np.where(lungs[-1], L[-1], 0)[None], n, axis=0)])
    if leak:
        col2 = np.concatenate([colon, np.zeros((n,) + colon.shape[1:], bool)])
        se = np.ones((3, 9, 9), bool)
        v2[ndi.binary_dilation(np.isin(L2, [10, 11]), se) & ndi.binary_dilation(col2, se)] = -850
    coords = {"z": z, "y": img.y.values, "x": img.x.values}
    return (xr.DataArray(v2, dims=("z", "y", "x"), coords=coords, attrs={"modality": "CT"}),
            xr.DataArray(L2, dims=("z", "y", "x"), coords=coords))


def test_colon_gas_under_the_diaphragm_is_not_lung(ts):
    """Before issue 15 the left lung took 233 cc of the colon (Dice 0.647); now at most a few cc
    of the leak's slices."""
    img, lab = thorax_with_colon_gas(*ts)
    close_session()
    left = segment_organ(img, "llung")
    ref = np.isin(lab.values, [10, 11])
    colon = lab.values == 20
    vox_cc = 27.0 / 1000.0
    assert dice(left, ref) >= 0.9
    assert (left & colon).sum() * vox_cc < 20.0
    right = segment_organ(img, "rlung")
    assert dice(right, np.isin(lab.values, [12, 13, 14])) >= 0.97
    close_session()


def test_pelvis_landmark_and_pelvis_only_ct(ts):
    """The pelvis landmark is the top of the iliac crests (TotalSegmentator's hip labels 77/78
    end at z = 274.3 mm on this CT); a CT cut below the kidneys shows the pelvis only: the
    abdominal organs are refused with that reason (before issue 15 a liver and a left kidney
    were drawn there, Dice 0)."""
    from grtv_nb.segment import _common
    from grtv_nb.segment.landmarks import pelvis_top_z

    img, lab = ts
    hips = np.isin(lab.values, [77, 78]).any(axis=(1, 2))
    crest = float(img.z.values[np.nonzero(hips)[0].max()])
    close_session()
    ctx = _common.get_context(img.values, img.x.values, img.y.values, img.z.values)
    assert abs(pelvis_top_z(ctx) - crest) <= 6.0
    pelvis = img.sel(z=slice(None, 250.0))
    close_session()
    for organ in ("liver", "lkidney", "stomach"):
        with pytest.raises(SegmentationError, match="pelvis only"):
            segment_organ(pelvis, organ)
    close_session()


def test_matrix_subset_decubitus_and_crops(ts, tmp_path):
    """A subset of benchmarks/bench_segment_matrix.py: the CT written as a feet-first decubitus
    right series (rows along the patient's y) gives the same contours in physical space; on the
    right half of the trunk (image cut 20 mm left of the midline) the liver and right kidney are
    found (before issue 15 both were refused) and the left organs are refused. The rib cage's hull
    on that crop, from the right ribs and the spine only, cut the liver's anterior-medial part
    (left lobe, z > 370 mm) off along a chord: Dice 0.77 (0.86 for the full CT's liver on the
    same voxels); the liver's cage is now completed by the bone's mirror image about the midline
    where the image's edge on the patient's left cuts the trunk: 0.855."""
    from seg_matrix import position_cell

    img, lab = ts
    close_session()
    direct = {o: segment_organ(img, o) for o in ("rlung", "liver", "spinal_cord")}
    for pos in ("FFDR",):  # rows along -y, columns along -x (the other positions: bench_segment_matrix)
        cell = position_cell(img, lab, pos, tmp_path)
        assert np.array_equal(cell.image.values, img.values)
        close_session()
        for organ, m in direct.items():
            assert dice(segment_organ(cell.image, organ), m) >= 0.999, (pos, organ)
    right = img.x.values < 20.0
    half, hlab = img.isel(x=right), lab.isel(x=right)
    close_session()
    assert dice(segment_organ(half, "liver"), hlab.values == 5) >= 0.83
    assert dice(segment_organ(half, "rkidney"), hlab.values == 2) >= 0.78
    for organ in ("llung", "lkidney", "stomach"):
        with pytest.raises(SegmentationError, match="could not find"):
            segment_organ(half, organ)
    # cut on the patient's right instead (40 mm right of the midline; a quarter of the liver in
    # it): the cage is not completed there; mirrored, a liver was drawn on the stomach side (Dice 0)
    left = img.x.values > -40.0
    close_session()
    try:
        assert dice(segment_organ(img.isel(x=left), "liver"), lab.isel(x=left).values == 5) >= 0.5
    except SegmentationError:
        pass
    close_session()


def test_liver_dome_crop_finds_kidney_poles_not_spleen(ts):
    """On the CT cut at z = 370 mm (the liver dome and spleen, the upper 36 % of the left kidney)
    the spleen runs into the left kidney zone's lateral limit on nearly all its slices and was
    drawn as the left kidney (Dice 0.003); the kidneys' upper poles, cut by the image's last slice,
    were below the 40 cc floor. Now the spleen is no candidate (kidney_lateral_edge_frac) and a
    pole cut by the image's edge needs kidney_cut_cc: both poles are found. On the abdomen-only
    crop (z 280-390) a 25 cc strip of psoas cut by the last slice is not taken for the right
    kidney (kidney_min_width_mm). On that crop (no lung bases) the liver's HU was estimated over
    the whole right abdomen, whose commonest tissue (bowel, colon, kidney at 10 HU) became the
    liver: Dice 0.37, the right kidney inside it and refused; the seed zone is now the highest
    abdominal slices (liver_seed_top_mm), where the right half is liver, and the rib-cage hull
    (cut by the crop's top, above which the cage widens) no longer holds half the liver out:
    the liver's Dice is 0.82 (0.85 on the whole CT) and the right kidney is found."""
    img, lab = ts
    crop, clab = img.sel(z=slice(370.0, None)), lab.sel(z=slice(370.0, None))
    close_session()
    assert dice(segment_organ(crop, "lkidney"), clab.values == 3) >= 0.8
    assert dice(segment_organ(crop, "rkidney"), clab.values == 2) >= 0.8
    abd, alab = img.sel(z=slice(280.0, 390.0)), lab.sel(z=slice(280.0, 390.0))
    close_session()
    assert dice(segment_organ(abd, "liver"), alab.values == 5) >= 0.78
    assert dice(segment_organ(abd, "rkidney"), alab.values == 2) >= 0.7
    close_session()


def test_stomach_on_abdomen_only_crop(ts):
    """On abdomen-only crops through the upper abdomen (z 280-390 and 330-390: no lung bases,
    46 % of the stomach in the image) the stomach was refused: the rib-cage hull of its region,
    built from the bone within 40 mm of each slice, lost the ribs above the image's top and held
    the whole stomach out (2,128 of its 2,247 voxels; the region then held small bowel), and the
    fluid route was not tried without the lung bases. The hull is now completed there below the
    abdominal wall, and the fluid route starts from the piece cut by the image's top: found, all
    of it stomach, Dice >= 0.35 (0.39; the full CT's stomach on the same voxels 0.28: both miss the
    antrum, outside the rib cage)."""
    img, lab = ts
    for lo, hi in ((280.0, 390.0), (330.0, 390.0)):
        crop, clab = img.sel(z=slice(lo, hi)), lab.sel(z=slice(lo, hi))
        close_session()
        m = segment_organ(crop, "stomach")
        ref = clab.values == 6
        assert dice(m, ref) >= 0.35
        assert (m & ~ref).sum() <= 0.1 * m.sum()
    close_session()


def test_liver_on_crop_far_below_the_dome_is_not_joined_to_back_muscle(ts):
    """A CT cut at z 250-360 mm (its top 67 mm below the liver dome, 13 % of the liver in it):
    without lung bases the liver's seed is the right side of the top 40 mm, there the liver's tip,
    the right kidney and the back muscles, all near 50 HU on this plain CT; the first histogram
    peak's candidate joined them (18 % of it behind the canal beside the spine): a wrong liver
    (Dice 0.20) holding the right kidney, which was then refused. A candidate with more than 2 %
    of its voxels there is now rejected and the next peak tried: liver Dice >= 0.7 (0.76), right
    kidney >= 0.75 (0.78)."""
    img, lab = ts
    crop, clab = img.sel(z=slice(250.0, 360.0)), lab.sel(z=slice(250.0, 360.0))
    close_session()
    assert dice(segment_organ(crop, "liver"), clab.values == 5) >= 0.7
    assert dice(segment_organ(crop, "rkidney"), clab.values == 2) >= 0.75
    close_session()


def test_no_patient_and_one_slice_are_refused():
    """Air only: no body, no organ. A water cylinder: a body (the phantom), no organ. One slice:
    refused for every organ with the reason."""
    c = np.arange(-150.0, 150.0, 2.0)
    coords = {"z": np.arange(20) * 3.0, "y": c, "x": c}
    air = xr.DataArray(np.full((20, len(c), len(c)), -1000, np.int16), dims=("z", "y", "x"), coords=coords,
                       attrs={"modality": "CT"})
    yy, xx = np.meshgrid(c, c, indexing="ij")
    water = air.copy(data=np.repeat(np.where(xx**2 + yy**2 <= 100.0**2, 0, -1000)[None], 20, axis=0).astype(np.int16))
    close_session()
    with pytest.raises(SegmentationError, match="no patient"):
        segment_organ(air, "body")
    close_session()
    body = segment_organ(water, "body")
    assert body.sum() == pytest.approx((xx**2 + yy**2 <= 100.0**2).sum() * 20, rel=0.02)
    for organ in ("llung", "rlung", "spinal_cord", "liver", "lkidney", "stomach"):
        with pytest.raises(SegmentationError, match="could not find"):
            segment_organ(water, organ)
    one = air.isel(z=[0])
    with pytest.raises(SegmentationError, match="1 slice"):
        segment_organ(one, "liver")
    close_session()


def test_canal_on_thick_slabs_and_in_noise(ts):
    """A thick-slice or noisy CT shows no closed bony ring on every level: on 5 mm slabs of the
    real CT the rings stop for 30 mm (z 271-301) and the lumbar canal was dropped from the track
    (coverage of the cord 0.59); with 40 HU noise the upper thoracic part (0.85). One vertebral
    level without a ring now stays in the track (canal_gap_mm): both cover at least 93 % of the
    cord (0.99 on the plain CT). In the noise (estimated 46 HU) the track still held pieces of
    the canal broken up by it (0.948); slices brought down to noise_target_hu by a median
    filter: the issue's goal, 95 %."""
    from seg_matrix import reslice_z

    img, lab = ts
    cord = np.isin(lab.values, [79])
    thick, tlab = reslice_z(img, lab, 5.0)
    rng = np.random.default_rng(1)
    noisy = img.copy(data=np.clip(img.values + rng.normal(0, 40, img.shape), -1024, 3000).astype(np.int16))
    for image, ref, least in ((thick, tlab.values == 79, 0.93), (noisy, cord, 0.95)):
        close_session()
        m = segment_organ(image, "spinal_cord")
        assert (m & ref).sum() / ref.sum() >= least
    close_session()


def test_thick_slab_weights_are_the_slices_overlap():
    """seg_matrix.z_weights (the matrix's resampled cells and their reference): a 5 mm slab made
    of 3 mm slices weighs each slice by the length of its extent inside the slab (analytical:
    slab [0, 5] mm over slices centred at 0, 3, 6 mm, each +-1.5 mm: 1.5, 3 and 0.5 mm of 5;
    slab [5, 10]: 2.5 and 2.5 mm), and a thinner grid interpolates linearly."""
    from seg_matrix import z_weights

    z = np.arange(0.0, 31.0, 3.0)
    nz, w = z_weights(z, 5.0)
    assert np.allclose(nz[:2], [2.5, 7.5])
    assert np.allclose(w[0, :3], [0.3, 0.6, 0.1]) and np.allclose(w[1, 2:4], [0.5, 0.5])
    assert np.allclose(w.sum(axis=1), 1.0)
    nz, w = z_weights(z, 1.0)
    assert np.allclose(w[1, :2], [2 / 3, 1 / 3]) and np.allclose(w @ z, nz)


def test_lungs_on_thick_slabs_and_thin_slices(ts):
    """5 mm slabs of the real CT: the top slab cuts the left lung's anterolateral costophrenic
    recess (8.6 cc, under lung_min_cc) off its base; it was dropped (left lung Dice 0.757 against
    the overlap-weighted reference) and now joins the lung (0.924). 1 mm slices (the 2 mm working
    grid): the working mask mapped back took the union of two working slices on every other
    image slice (0.931 / 0.940); the edge is now drawn on the image grid (0.938 / 0.948)."""
    from seg_matrix import reslice_z, z_weights

    img, lab = ts
    for step, least in ((5.0, {"llung": 0.91, "rlung": 0.92}), (1.0, {"llung": 0.935, "rlung": 0.945})):
        image, _ = reslice_z(img, lab, step)
        w = z_weights(img.z.values, step)[1]
        close_session()
        for organ, lo in least.items():
            ref = np.tensordot(w, np.isin(lab.values, TS_LABELS[organ]).astype(float), axes=(1, 0)) >= 0.5 - 1e-6
            assert dice(segment_organ(image, organ), ref) >= lo, (step, organ)
    close_session()


def test_canal_continues_along_its_curve_through_the_image_end(ts):
    """A pelvis-only CT (z <= 250 mm) ends in the lumbar lordosis, where the canal moves 30 mm
    forwards in 40 mm; its last closed ring is at z 232, and the track, extended to the image's
    top at that ring's y, drew the canal in the laminae behind it on the top slices (coverage of
    the cord 0.83; the whole CT's 0.98). It is now continued at its slope: >= 0.95."""
    img, lab = ts
    crop, clab = img.sel(z=slice(None, 250.0)), lab.sel(z=slice(None, 250.0))
    close_session()
    cord = clab.values == 79
    m = segment_organ(crop, "spinal_cord")
    assert (m & cord).sum() / cord.sum() >= 0.95
    close_session()


def test_no_stomach_drawn_on_abdominal_crops_without_it(ts):
    """Abdomen-only crops below the stomach (no lungs in the image, no stomach voxel in the
    reference, or 15 % of it: z 250-360): the stomach is refused. The fluid route (the soft-tissue
    mass left of the midline) chosen as with the lung bases took small bowel on every such crop
    (z 200-300, 260-330: 4,400 and 2,500 voxels of small bowel, none of stomach); without the lung
    bases it now needs the image's top in the stomach bed (the left kidney's upper half) and its
    first piece cut by the image's top over a section wider than a bowel loop (z 250-360: a 4 cm2
    loop of jejunum)."""
    img, lab = ts
    for lo, hi in ((200.0, 300.0), (260.0, 330.0), (250.0, 360.0)):
        crop, clab = img.sel(z=slice(lo, hi)), lab.sel(z=slice(lo, hi))
        assert (clab.values == 6).sum() < 0.2 * (lab.values == 6).sum()
        close_session()
        with pytest.raises(SegmentationError, match="could not find"):
            segment_organ(crop, "stomach")
    close_session()


def test_crops_through_or_past_the_spine_draw_no_wrong_organ(ts):
    """Images whose left or right edge runs through or past the spinal canal (x < 0, x < -20,
    x > 0 mm; the cord lies at x = 1 mm) have no canal on the abdominal slices, and a ring of the
    iliac wing (z 94-205 mm, 70 mm off the midline) was tracked as the canal instead: the midline
    moved there and the kidneys (x < 0), the right kidney (x < -20), the liver, left kidney and
    stomach (x > 0) were drawn with Dice 0. Now each abdominal organ is either refused or found
    with Dice >= 0.5 against the reference (past the spine, x < -20: the organs of the right side
    found from a midline placed from the body, the left side's refused, naming the side; an edge
    through the canal, x < 0 and x > 0, finds the canal at the edge: tests/
    test_segment_crops.py); the crop 40 mm right of the midline (x > -40) keeps the left kidney
    and stomach, and the right half of the trunk (x < 20) its liver (0.855) and right kidney
    (0.818)."""
    img, lab = ts
    x = img.x.values
    refs = {"liver": [5], "lkidney": [3], "rkidney": [2], "stomach": [6]}
    found = {}
    for name, keep in (("x<0", x < 0.0), ("x<-20", x < -20.0), ("x>0", x > 0.0), ("x>-40", x > -40.0),
                       ("x<20", x < 20.0)):
        crop, clab = img.isel(x=keep), lab.isel(x=keep)
        close_session()
        for organ, ids in refs.items():
            try:
                m = segment_organ(crop, organ)
            except SegmentationError as e:
                if name == "x<-20":
                    assert "holds the patient's right side" in str(e), (name, organ, str(e))
                continue
            d = dice(m, np.isin(clab.values, ids))
            assert d >= 0.5, (name, organ, d)
            found[name, organ] = d
    assert found[("x>-40", "lkidney")] >= 0.8 and found[("x>-40", "stomach")] >= 0.5
    assert found[("x<20", "liver")] >= 0.85 and found[("x<20", "rkidney")] >= 0.81
    close_session()


@pytest.fixture(scope="module")
def matrix_full(ts):
    """The full CT's predictions, the reference of every matrix cell's Delta."""
    from seg_matrix import Cell, FullRun, segment_all

    img, lab = ts
    return FullRun(Cell("full CT (NIfTI)", img, lab), segment_all(img)[0])


def test_matrix_covers_what_the_issue_lists():
    """The robustness matrix holds every kind of cell issue 15 lists: thorax only, abdomen only,
    thorax + abdomen, a few slices of each organ, 1-5 mm slices, noise, a tumour in each lung, the
    8 patient positions."""
    from seg_matrix import CELL_NAMES, FEW_SLICES, POSITIONS

    names = set(CELL_NAMES)
    assert {f"position {p}" for p in POSITIONS} <= names and len(POSITIONS) == 8
    for word in ("thorax only", "abdomen only", "thorax + abdomen", "noise", "tumour in the right lung",
                 "tumour in the left lung"):
        assert any(word in n for n in names), word
    assert {f"{s} mm slices" for s in (1, 2, 4, 5)} <= names
    assert {n.split(" (")[0] for n in names if n.startswith("5 slices of")} == {f"5 slices of {o}" for o in FEW_SLICES}
    assert set(FEW_SLICES) == {"lungs", "spinal_cord", "liver", "lkidney", "rkidney", "stomach"}


@pytest.mark.parametrize("name", __import__("seg_matrix").CELL_NAMES[1:])
def test_matrix_cell(ts, matrix_full, tmp_path, name):
    """One cell of the robustness matrix (tests/seg_matrix.py, printed by
    benchmarks/bench_segment_matrix.py): every organ is found when at least 20 % of its reference
    is in the image, never drawn where it is not (Dice >= 0.3), and its Dice on the part in the
    image is within 0.03 of the full CT's prediction's Dice on that same part. The pairs that do
    not meet this yet are listed, with why, in seg_matrix.KNOWN: exactly those must fail (a
    regression and a fix both show)."""
    from seg_matrix import KNOWN, build_cells, evaluate, segment_all

    cells = build_cells(tmp_path, want=lambda n: n == name)
    if len(cells) < 2:
        pytest.skip(f"{name}: its data is absent")
    cell = cells[1]
    res = evaluate(cell, segment_all(cell.image)[0], matrix_full)
    failing = {o: r for o, r in res.items() if r.fails}
    known = {o for (c, o) in KNOWN if c == name}
    new = {o: r for o, r in failing.items() if o not in known}
    fixed = known - set(failing)
    assert not new, f"{name}: new failures {new}"
    assert not fixed, f"{name}: {sorted(fixed)} now meet the goal: remove them from seg_matrix.KNOWN"
