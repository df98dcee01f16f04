"""The Dataset as the model: ``ds.rt`` (grtv_nb.accessor) on a study's Dataset, and the round
trip of that Dataset through zarr and netCDF, reopened with xarray alone, keeping every
coordinate, attribute and ROI mask, with ``ds.rt`` giving the numbers the study gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import grtv_nb.accessor  # noqa: F401  (registers ds.rt)
from grtv_nb.accessor import grid_of, roi_position
from grtv_nb.dvh import compute_dvh
from grtv_nb.errors import ValidationError
from grtv_nb.geometry import Grid
from grtv_nb.study import Study

pytest.importorskip("zarr", reason="zarr is needed for the zarr round trip (pip install zarr)")
pytest.importorskip("netCDF4", reason="netCDF4 is needed for the netCDF round trip (pip install netCDF4)")


def _write_and_reopen(ds: xr.Dataset, tmp_path, fmt: str) -> xr.Dataset:
    """Write with xarray's own writer and reopen with xarray alone (nothing of grtv_nb involved)."""
    if fmt.startswith("zarr"):
        path = tmp_path / "study.zarr"
        with warnings.catch_warnings():  # zarr 3: consolidated metadata is not in the v3 spec yet
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            if fmt == "zarr-per-roi":  # one ROI's mask in memory at a time (Dask), one zarr chunk per ROI
                ds.rt.to_zarr(path)
            else:
                ds.to_zarr(path)
        back = xr.open_zarr(path)  # Dask-backed
        if fmt == "zarr-per-roi":
            assert back["masks"].encoding["chunks"][0] == 1
        return back
    path = tmp_path / "study.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return xr.load_dataset(path, engine="netcdf4")


def _same_value(a, b) -> bool:
    """Equal values whatever the container (a tuple is written back as a list or an array)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and (a.size == 0 or np.array_equal(a, b))


def _values(v: xr.DataArray) -> np.ndarray:
    """Values with strings as Python str (zarr gives numpy StringDType, netCDF fixed-width, the study object)."""
    vals = np.asarray(v.values)
    if vals.dtype.kind in "OUT":
        return np.array([str(v) for v in vals.reshape(-1)], dtype=object).reshape(vals.shape)
    return vals


def _assert_same_dataset(before: xr.Dataset, after: xr.Dataset) -> None:
    assert set(after.variables) == set(before.variables)
    assert dict(after.sizes) == dict(before.sizes)
    for name, var in before.variables.items():
        got = after.variables[name]
        assert got.dims == var.dims, name
        want = _values(before[name])
        assert got.dtype.kind == want.dtype.kind or want.dtype == object, (name, got.dtype, want.dtype)
        if want.dtype != object:
            assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
        assert np.array_equal(_values(after[name]), want), f"{name} differs after the round trip"
        assert set(got.attrs) == set(var.attrs), name
        for k in var.attrs:
            assert _same_value(var.attrs[k], got.attrs[k]), (name, k, var.attrs[k], got.attrs[k])
    assert set(after.attrs) == set(before.attrs)
    for k, v in before.attrs.items():
        if k != "notes":  # see test_notes_survive_every_container
            assert _same_value(v, after.attrs[k]), (k, v, after.attrs[k])
    assert after.rt.notes == before.rt.notes


@pytest.mark.parametrize("fmt", ["zarr", "zarr-per-roi", "netcdf"])
def test_phantom_study_round_trip(phantom_study, tmp_path, fmt):
    st = phantom_study
    ds = st.ds
    assert ds.sizes["roi"] >= 5 and "image" in ds and "dose" in ds
    back = _write_and_reopen(ds, tmp_path, fmt)
    _assert_same_dataset(ds, back)
    # every ROI mask exactly, against the study's own masks
    for i, name in enumerate(st.roi_names):
        assert np.array_equal(back.rt.mask(name).values, st.mask(i)), name
    # ds.rt on the reopened Dataset gives the study's geometry and numbers
    assert back.rt.grid.same_as(st.grid, tol=0.0)
    assert back.rt.grid.frame_of_reference_uid == st.grid.frame_of_reference_uid
    assert back.rt.spacing == st.grid.spacing == tuple(ds.attrs["spacing"])
    assert np.array_equal(back.rt.direction, np.eye(3))
    assert back.rt.modality == "CT" == back.rt.image.attrs["modality"]
    assert back.rt.roi_names == st.roi_names
    assert back["roi_color"].values.tolist() == [list(r.color) for r in st.rois]
    assert back["roi_number"].values.tolist() == [r.number for r in st.rois]
    for name in st.roi_names:  # the mask's volume: voxels weighted by their slice's thickness
        assert back.rt.volume_cc(name) == pytest.approx(_mask_volume_cc(st.mask(name), st.grid), rel=1e-12, abs=1e-12)
    names = [n for n in st.roi_names if st.mask(n).any()][:3]
    mine = back.rt.dvh(names)
    theirs = compute_dvh(st.ds["dose"].values, st.grid, {n: st.mask(n) for n in names}, roi_names=names)
    assert mine.roi_names == theirs.roi_names == names
    assert np.array_equal(mine.cumulative.values, theirs.cumulative.values)
    for stat in ("volume_cc", "mean", "max", "D95"):
        np.testing.assert_array_equal(mine.stats[stat].values, theirs.stats[stat].values)


def test_accessor_on_the_live_study(phantom_study):
    """ds.rt on st.ds itself (lazy masks) agrees with the study; default DVH ROIs are the non-empty ones."""
    st = phantom_study
    ds = st.ds
    name = st.roi_names[1]
    m = ds.rt.mask(name)
    assert m.dims == ("z", "y", "x") and m.dtype == bool and str(m.coords["roi"].values) == name
    assert np.array_equal(m.values, st.mask(name))
    assert ds.rt.mask(name.upper()).equals(m)  # case-insensitive as Study.roi_index
    assert ds.rt.roi_index(1) == st.roi_index(1) == 1
    res = ds.rt.dvh()
    assert res.roi_names == [n for n in st.roi_names if st.mask(n).any()]
    assert ds.rt.image.dims == ("z", "y", "x") and ds.rt.dose.attrs["units"] == "Gy"
    assert ds["image"].rt.grid.same_as(st.grid, tol=0.0)
    assert ds["dose"].rt.spacing == st.grid.spacing


def _mask_volume_cc(mask: np.ndarray, grid: Grid) -> float:
    return float((mask.sum(axis=(1, 2)) * grid.voxel_volumes_cc()).sum())


def _oblique_grid(z: np.ndarray) -> Grid:
    a = np.deg2rad(20.0)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    return Grid(x=np.arange(12) * 1.5 - 8.0, y=np.arange(10) * 2.0 + 3.0, z=z, direction=rot,
                frame_of_reference_uid="1.2.3.4", slice_thickness=2.5)


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_dose_only_oblique_non_uniform_study_round_trip(tmp_path, fmt):
    """A study without image (the dose grid is the reference), oblique, with non-uniform slices and
    an ROI added from a mask: orientation, slice positions and volumes survive; notes of one entry too."""
    z = np.array([0.0, 2.5, 5.0, 10.0, 12.5, 20.0])
    grid = _oblique_grid(z)
    zz, yy, xx = np.meshgrid(np.arange(6), np.arange(10), np.arange(12), indexing="ij")
    dose = (0.5 * zz + 0.1 * yy + 0.05 * xx).astype(np.float32)
    st = Study(grid, dose=dose, attrs={"modality": "", "frame_of_reference_uid": "1.2.3.4",
                                       "slice_thickness": 2.5, "notes": ["only the dose was read"]})
    box = (zz >= 1) & (zz <= 4) & (yy >= 2) & (yy < 7) & (xx >= 3) & (xx < 9)
    st.add_roi("Box", box, (10, 20, 30))
    ds = st.ds
    assert "image" not in ds
    back = _write_and_reopen(ds, tmp_path, fmt)
    _assert_same_dataset(ds, back)
    assert back.rt.notes == ["only the dose was read"]
    g = back.rt.grid
    assert g.same_as(grid, tol=0.0) and not g.axis_aligned
    assert np.array_equal(g.direction, grid.direction)
    assert back["dose"].rt.grid.same_as(grid, tol=0.0)  # the dose alone carries its orientation
    assert np.array_equal(back["dose"].rt.direction, grid.direction)
    assert np.array_equal(g.z, z) and g.slice_thickness == 2.5
    assert back.rt.volume_cc("Box") == pytest.approx(st.volume_cc("Box"), rel=1e-12)
    # analytical: 4 slices of 5 x 6 voxels of 1.5 x 2 mm; slice weights (half-gaps) 2.5, 3.75, 3.75, 5 mm
    assert back.rt.volume_cc("Box") == pytest.approx(30 * 1.5 * 2.0 * (2.5 + 3.75 + 3.75 + 5.0) / 1000.0, rel=1e-12)
    assert np.array_equal(back.rt.mask("Box").values, box)
    np.testing.assert_array_equal(back.rt.dvh().cumulative.values,
                                  compute_dvh(dose, grid, {"Box": box}).cumulative.values)


def test_add_roi_and_mesh_on_a_reopened_dataset(phantom_study, tmp_path):
    """ds.rt.add_roi returns a new Dataset with one more ROI (numbered, typed, coloured) and leaves
    the Dataset as it was; the new ROI survives a round trip; ds.rt.mesh is mask_to_mesh's mesh."""
    st = phantom_study
    back = _write_and_reopen(st.ds, tmp_path, "netcdf")
    lungs = back.rt.mask("Lung_L") | back.rt.mask("Lung_R")
    new = back.rt.add_roi("Lungs", lungs, (255, 255, 0))
    assert back.rt.roi_names == st.roi_names  # unchanged
    assert new.rt.roi_names == [*st.roi_names, "Lungs"]
    assert int(new["roi_number"].values[-1]) == max(r.number for r in st.rois) + 1
    assert str(new["roi_type"].values[-1]) == "ORGAN" and new["roi_color"].values[-1].tolist() == [255, 255, 0]
    assert np.array_equal(new.rt.mask("Lungs").values, st.mask("Lung_L") | st.mask("Lung_R"))
    for i, name in enumerate(st.roi_names):  # the others untouched
        assert np.array_equal(new.rt.mask(name).values, st.mask(i))
    assert new.rt.volume_cc("Lungs") == pytest.approx(back.rt.volume_cc("Lung_L") + back.rt.volume_cc("Lung_R"))
    assert new.rt.grid.same_as(st.grid, tol=0.0) and new.attrs == back.attrs
    again = _write_and_reopen(new, tmp_path / "again", "zarr")
    assert np.array_equal(again.rt.mask("Lungs").values, new.rt.mask("Lungs").values)
    assert str(new.rt.add_roi("Body2", lungs)["roi_type"].values[-1]) == "ORGAN"
    assert str(new.rt.add_roi("External", lungs)["roi_type"].values[-1]) == "EXTERNAL"
    with pytest.raises(ValidationError, match="already used"):
        new.rt.add_roi("Lungs", lungs)
    with pytest.raises(ValidationError, match="has shape"):
        new.rt.add_roi("Small", lungs.values[:, :10])
    with pytest.raises(ValidationError):
        new.rt.add_roi("Bad colour", lungs, (300, 0, 0))
    with pytest.raises(ValidationError):
        new.rt.add_roi("", lungs)


def test_mesh_of_a_dataset_roi():
    from grtv_nb.mesh import mask_to_mesh

    grid = _oblique_grid(np.array([0.0, 2.5, 5.0, 10.0, 12.5, 20.0]))
    zz, yy, xx = np.meshgrid(np.arange(6), np.arange(10), np.arange(12), indexing="ij")
    box = (zz >= 1) & (zz <= 4) & (yy >= 2) & (yy < 7) & (xx >= 3) & (xx < 9)
    ds = Study(grid, dose=np.zeros(grid.shape, np.float32)).ds.rt.add_roi("Box", box)
    mesh, want = ds.rt.mesh("Box"), mask_to_mesh(box, grid)
    assert len(mesh.faces) > 0
    assert np.array_equal(mesh.vertices, want.vertices) and np.array_equal(mesh.faces, want.faces)


@pytest.mark.parametrize("notes", [[], ["one"], ["one", "two"]])
def test_notes_survive_every_container(tmp_path, notes):
    """netCDF gives back an empty list as an empty float array and a one-string list as a string;
    ds.rt.notes reads them all as the list written."""
    ds = xr.Dataset(coords={"z": [0.0, 1.0], "y": [0.0], "x": [0.0]}, attrs={"notes": notes})
    ds.to_netcdf(tmp_path / "n.nc", engine="netcdf4")
    assert xr.load_dataset(tmp_path / "n.nc", engine="netcdf4").rt.notes == notes
    assert ds.rt.notes == notes


def test_roi_position_and_errors():
    names = ["BODY", "Heart", "heart"]
    assert roi_position(names, "heart") == 2  # exact match first
    assert roi_position(names, "HEART") == 1
    assert roi_position(names, np.int64(0)) == 0
    with pytest.raises(ValidationError, match="out of range"):
        roi_position(names, 3)
    with pytest.raises(ValidationError, match="no ROI named 'Lung'; ROIs: BODY, Heart, heart"):
        roi_position(names, "Lung")


def test_grid_of_refuses_what_is_not_a_study_grid():
    with pytest.raises(ValidationError, match="missing: z"):
        grid_of(xr.Dataset(coords={"y": [0.0], "x": [0.0]}))
    with pytest.raises(ValidationError, match="'x' must be 1-D, finite and strictly increasing"):
        grid_of(xr.Dataset(coords={"z": [0.0], "y": [0.0], "x": [1.0, 0.0]}))
    with pytest.raises(ValidationError, match="9 finite numbers"):
        grid_of(xr.Dataset(coords={"z": [0.0], "y": [0.0], "x": [0.0]}, attrs={"direction": [1.0, 0.0]}))
    with pytest.raises(ValidationError, match="no 'dose' variable"):
        xr.Dataset(coords={"z": [0.0], "y": [0.0], "x": [0.0]}).rt.dvh()
