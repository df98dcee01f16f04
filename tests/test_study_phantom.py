"""Reading the phantom patient: ROI volumes against the analytical shapes, holes, contours between
slices, the 8 patient positions, non-uniform slice spacing, the dose grid, the xarray model."""

import warnings

import numpy as np
import pytest

from grtv_nb import open_study
from grtv_nb.phantom import (
    CANAL_R,
    PATIENT_POSITIONS,
    ROI_ORDER,
    SPINE_CENTRE,
    analytic_volume_cc,
    dose_at,
    roi_contours,
    write_phantom,
)


def _open(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_study(folder)


def test_roi_volumes_match_analytic_shapes(phantom_study):
    for name, _, _ in ROI_ORDER:
        a = analytic_volume_cc(name)
        v = phantom_study.volume_cc(name)
        assert abs(v - a) / a < 0.01, (name, v, a)  # every phantom ROI is over 10 cc


def test_spine_has_a_hole_where_the_canal_is(phantom_study):
    st = phantom_study
    spine, canal = st.mask("Spine"), st.mask("SpinalCanal")
    assert canal.sum() > 0
    assert not (spine & canal).any()
    iz = st.grid.shape[0] // 2
    ix = int(np.argmin(np.abs(st.grid.x - SPINE_CENTRE[0])))
    iy = int(np.argmin(np.abs(st.grid.y - SPINE_CENTRE[1])))
    assert not spine[iz, iy, ix] and canal[iz, iy, ix]
    assert st.ds["image"].values[iz, iy, ix] == 15  # CSF in the canal


def test_contours_between_slices_are_matched_to_the_nearest_slice(phantom_study):
    st = phantom_study
    loops = roi_contours(st.grid.z)["PTV"]
    planes = {round(float(lp[0, 2]), 3) for lp in loops}
    assert not planes & {round(float(z), 3) for z in st.grid.z}  # no PTV contour on a slice plane
    filled = np.flatnonzero(st.mask("PTV").any(axis=(1, 2)))
    assert len(filled) == len(planes)


def test_image_values_are_hu_int16(phantom_study):
    img = phantom_study.ds["image"]
    assert img.dtype == np.int16
    assert img.min() == -1000 and img.max() == 700
    assert phantom_study.ds["dose"].dtype == np.float32


def test_xarray_selection_and_lazy_masks(phantom_study):
    ds = phantom_study.ds
    sl = ds.sel(z=0.0, method="nearest")
    assert sl["image"].shape == (len(ds.y), len(ds.x))
    crop = ds.isel(x=slice(10, 50), y=slice(5, 40))
    assert crop["masks"].shape[2:] == (35, 40)
    m = ds["masks"].sel(roi="Lung_L")
    assert int(m.sum()) == phantom_study.voxel_count("Lung_L")
    one = ds["masks"].isel(roi=0, z=32).values
    assert one.shape == (len(ds.y), len(ds.x)) and one.dtype == bool
    assert np.array_equal(one, phantom_study.mask(0)[32])
    # packed cache stays far below one byte per voxel per ROI
    nvox = np.prod(phantom_study.grid.shape)
    for i in range(len(phantom_study.rois)):
        phantom_study.mask(i)
    assert phantom_study.store.nbytes < 0.05 * nvox * len(phantom_study.rois)


def test_masks_are_not_rasterised_until_used(phantom_dir):
    st = _open(phantom_dir)
    assert not any(st.store.is_cached(i) for i in range(len(st.rois)))
    _ = st.ds  # building the Dataset does not rasterise
    assert not any(st.store.is_cached(i) for i in range(len(st.rois)))
    _ = st.ds["masks"].isel(roi=3, z=10).values
    assert st.store.is_cached(3) and not st.store.is_cached(2)


@pytest.mark.parametrize("position", [p for p in PATIENT_POSITIONS if p != "HFS"])
def test_every_patient_position_gives_the_same_patient(tmp_path, phantom_study, position):
    st = _open(write_phantom(tmp_path / position, position))
    ref = phantom_study
    assert st.grid.same_as(ref.grid)
    assert np.array_equal(st.ds["image"].values, ref.ds["image"].values)
    for name, _, _ in ROI_ORDER:
        assert st.voxel_count(name) == ref.voxel_count(name), name
    p = dict(x=70.0, y=5.0, z=49.5)
    assert float(st.ds["dose"].sel(p, method="nearest")) == pytest.approx(
        float(ref.ds["dose"].sel(p, method="nearest")), abs=1e-4)
    assert st.attrs["patient_position"] == position


def test_non_uniform_slice_spacing_keeps_every_contour_plane(tmp_path):
    rng = np.random.default_rng(1)
    gaps = rng.choice([1.5, 2.0, 3.0, 5.0], size=59)
    z = np.concatenate([[0.0], np.cumsum(gaps)])
    z -= z.mean()
    st = _open(write_phantom(tmp_path / "nu", z_positions=z))
    assert np.allclose(st.grid.z, np.sort(z), atol=1e-3)
    for name in ("Liver", "Lung_L", "Stomach"):
        planes = {round(float(lp[0, 2]), 3) for lp in roi_contours(z)[name]}
        filled = np.flatnonzero(st.mask(name).any(axis=(1, 2)))
        assert len(filled) == len(planes), name
        a = analytic_volume_cc(name, z)
        assert abs(st.volume_cc(name) - a) / a < 0.01


def test_dose_on_image_grid_follows_the_analytic_plan(phantom_study):
    st = phantom_study
    d = st.ds["dose"]
    # points well inside the dose grid (4 mm), away from the body edge and the penumbra
    pts = [(70.0, 5.0, 49.5), (60.0, 0.0, 40.5), (0.0, 0.0, 49.5), (-50.0, 20.0, 10.5)]
    for x, y, z in pts:
        got = float(d.sel(x=x, y=y, z=z, method="nearest"))
        xx, yy, zz = (float(d.x.sel(x=x, method="nearest")), float(d.y.sel(y=y, method="nearest")),
                      float(d.z.sel(z=z, method="nearest")))
        want = float(dose_at(xx, yy, zz))
        assert abs(got - want) < 0.02 * 60, (x, y, z, got, want)
    # zero outside the dose grid (which starts at z = -80.2 mm)
    assert float(d.sel(z=slice(None, -82)).max()) == 0.0


def test_canal_radius_constant_used():
    assert CANAL_R > 0
