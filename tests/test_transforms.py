"""Resizing and resampling (grtv_nb.transforms) against scipy.ndimage.zoom, scikit-image resize
and analytical shapes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import xarray as xr
from skimage.transform import resize as sk_resize

from grtv_nb import _kernels
from grtv_nb.errors import ValidationError
from grtv_nb.transforms import (
    _axis_weights,
    _sample_separable_compiled,
    _sample_separable_numpy,
    grid_mode_indices,
    resample_to_spacing,
    resize_volume,
    sample_separable,
)

SHAPES = [((13, 17, 19), (7, 30, 11)), ((10, 64, 64), (10, 32, 32)), ((5, 9, 8), (11, 3, 8)), ((1, 6, 7), (1, 12, 5))]


def _zoom(a: np.ndarray, shape) -> np.ndarray:
    return ndi.zoom(a.astype(np.float64), [m / n for n, m in zip(a.shape, shape)], order=1, grid_mode=True,
                    mode="nearest")


@pytest.mark.parametrize("src,dst", SHAPES)
def test_resize_matches_scipy_zoom_and_skimage(src, dst):
    rng = np.random.default_rng(0)
    a = (rng.random(src) * 1000 - 300).astype(np.float32)
    ours = resize_volume(a, dst)
    assert ours.shape == dst and ours.dtype == np.float32
    ref_zoom = _zoom(a, dst)
    ref_sk = sk_resize(a.astype(np.float64), dst, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    assert ref_zoom.shape == dst
    assert np.max(np.abs(ours - ref_zoom)) < 1e-3
    assert np.max(np.abs(ours - ref_sk)) < 1e-3


@pytest.mark.parametrize("dtype,lo,hi", [(np.int16, -1024, 3071), (np.uint16, 0, 4095), (np.uint8, 0, 255)])
def test_resize_integer_rounding_vs_scipy(dtype, lo, hi):
    rng = np.random.default_rng(1)
    a = rng.integers(lo, hi, size=(9, 40, 36), endpoint=True).astype(dtype)
    ours = resize_volume(a, (9, 20, 25), dtype)
    ref = _zoom(a, (9, 20, 25))
    assert ours.dtype == dtype
    # nearest integer; only where the exact value is (within float32 rounding) a .5 tie may the
    # two nearest integers both be right
    err = np.abs(ours.astype(np.float64) - ref)
    assert err.max() <= 0.5 + 1e-3
    ties = np.abs(ref - np.floor(ref) - 0.5) < 1e-3
    assert np.all(err[~ties] < 0.5)


def test_integer_outputs_are_rounded_and_clipped():
    b = np.array([[[0.0, 1.0, 0.0, 1.0]]], dtype=np.float32)
    out = resize_volume(b, (1, 1, 8), np.int16)  # samples 0, 0.25, 0.75, ...: nearest, not truncated
    assert out.tolist() == [[[0, 0, 1, 1, 0, 0, 1, 1]]]
    # exact ties alternate with the output index parity: up at even index sums, down at odd
    c = np.array([[[0.0, 1.0, 3.0, 4.0, 6.0, 7.0]]], dtype=np.float32)
    assert resize_volume(c, (1, 1, 3), np.int16).tolist() == [[[1, 3, 7]]]  # 0.5, 3.5, 6.5
    assert resize_volume(-c, (1, 1, 3), np.int16).tolist() == [[[0, -4, -6]]]
    assert resize_volume(np.concatenate([c, c]), (2, 1, 3), np.int16).tolist() == [[[1, 3, 7]], [[0, 4, 6]]]
    big = np.full((2, 2, 2), 300.0, dtype=np.float32)
    assert np.all(resize_volume(big, (3, 3, 3), np.uint8) == 255)
    assert np.all(resize_volume(-big, (3, 3, 3), np.uint8) == 0)
    assert np.all(resize_volume(big * 1000, (3, 3, 3), np.int16) == 32767)


@pytest.mark.parametrize("dtype,value", [(np.int16, -1000), (np.uint16, 65535), (np.uint8, 255), (np.float32, 0.1)])
def test_constant_stays_constant(dtype, value):
    a = np.full((7, 33, 21), value, dtype=dtype)
    for shape in [(7, 16, 16), (14, 70, 50), (3, 5, 64)]:
        out = resize_volume(a, shape)
        assert out.dtype == dtype
        assert np.all(out == np.asarray(value, dtype=dtype))


def test_identity_resize_is_exact():
    rng = np.random.default_rng(2)
    a = rng.random((6, 11, 13)).astype(np.float32)
    assert np.array_equal(resize_volume(a, a.shape), a)


def test_sample_separable_compiled_matches_numpy_path():
    rng = np.random.default_rng(3)
    vol = rng.normal(size=(8, 9, 10)).astype(np.float32)
    iz = np.linspace(-1.5, 8.5, 13)
    iy = np.linspace(0, 8, 5)
    ix = np.array([-0.2, 0.0, 3.3, 9.0, 9.4])
    for fill in (0.0, -7.0, None):
        tables = [_axis_weights(f, n, fill is None) for f, n in zip((iz, iy, ix), vol.shape)]
        ours = _sample_separable_compiled(_kernels, vol, tables, fill, np.dtype(np.float32))
        assert np.array_equal(ours, sample_separable(vol, iz, iy, ix, fill=fill))
        ref = _sample_separable_numpy(vol, tables, fill, np.dtype(np.float32))
        np.testing.assert_allclose(ours, ref, atol=1e-5)
        ref_mc = ndi.map_coordinates(vol.astype(np.float64), np.meshgrid(iz, iy, ix, indexing="ij"), order=1,
                                     mode="nearest")
        inside = np.ones(ours.shape, bool)
        if fill is not None:
            vz, vy, vx = (t[3] for t in tables)
            inside = vz[:, None, None] & vy[None, :, None] & vx[None, None, :]
            assert np.all(ours[~inside] == np.float32(fill))
        np.testing.assert_allclose(ours[inside], ref_mc[inside], atol=1e-5)


def _random_volume(rng, dtype, shape):
    if dtype == np.float32:
        return rng.normal(0, 300, shape).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("din", [np.int16, np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("dout", [np.int16, np.uint8, np.uint16, np.float32])
def test_numpy_path_is_bit_identical_to_compiled(din, dout):
    # The NumPy path serves calls made before the compiled kernel is loaded in a process: every
    # value (integer roundings, ties, clipping, fill) must be the kernel's, bit for bit.
    rng = np.random.default_rng(np.dtype(din).num * 31 + np.dtype(dout).num)
    dout = np.dtype(dout)
    for trial in range(12):
        shape = tuple(int(n) for n in rng.integers(1, 16, 3))
        vol = _random_volume(rng, din, shape)
        if trial % 3 == 0:  # a resize (edge clamped), all three axes changed
            idx = [grid_mode_indices(n, int(m)) for n, m in zip(shape, rng.integers(1, 20, 3))]
            fill = None
        elif trial % 3 == 1:  # slices kept, rows and columns halved (the kernel's special cases)
            idx = [grid_mode_indices(n, m) for n, m in zip(shape, (shape[0], max(shape[1] // 2, 1),
                                                                   max(shape[2] // 2, 1)))]
            fill = None
        else:  # arbitrary indices, some outside: fill, rounded half away from zero for integers
            idx = [rng.uniform(-2, n + 1, int(rng.integers(1, 12))) for n in shape]
            fill = float(rng.choice([0.0, -7.5, 2.5, 1e6]))
        tables = [_axis_weights(f, n, fill is None) for f, n in zip(idx, shape)]
        ref = _sample_separable_compiled(_kernels, vol, tables, fill, dout)
        got = _sample_separable_numpy(vol, tables, fill, dout)
        assert got.dtype == ref.dtype and got.shape == ref.shape and got.flags.c_contiguous
        assert np.array_equal(got.view(np.uint8), ref.view(np.uint8)), (trial, shape, fill)


def test_numpy_path_exact_ties_and_ct_resize():
    # A 0/255 mask halved (exact .5 ties everywhere) and a CT-like int16 resize: bit-identical.
    mask = np.zeros((6, 20, 20), np.uint8)
    mask[1:5, 3:14, 5:16] = 255
    ct = np.random.default_rng(5).integers(-1024, 3000, (7, 64, 64)).astype(np.int16)
    for vol, shape in ((mask, (6, 10, 10)), (mask, (3, 7, 13)), (ct, (7, 32, 32)), (ct, (5, 48, 40))):
        tables = [_axis_weights(grid_mode_indices(n, m), n, True) for n, m in zip(vol.shape, shape)]
        ref = _sample_separable_compiled(_kernels, vol, tables, None, vol.dtype)
        assert np.array_equal(_sample_separable_numpy(vol, tables, None, vol.dtype), ref)
        assert np.array_equal(resize_volume(vol, shape), ref)


def test_numpy_path_does_not_write_into_the_input():
    vol = np.random.default_rng(6).normal(size=(3, 4, 5)).astype(np.float32)
    keep = vol.copy()
    tables = [_axis_weights(np.arange(n, dtype=float), n, False) for n in vol.shape]
    tables[2] = _axis_weights(np.array([0.0, 1.0, 9.0]), 5, False)  # one column outside: filled
    out = _sample_separable_numpy(vol, tables, -1.0, np.dtype(np.float32))
    assert np.array_equal(vol, keep) and np.all(out[:, :, 2] == -1.0)
    assert np.array_equal(out[:, :, :2], vol[:, :, :2])


def test_numpy_path_until_the_budget_then_the_kernel(monkeypatch):
    # Before any compiled kernel ran in the process, calls take the NumPy path until the process
    # has resampled _NUMPY_BUDGET_VOXELS with it; then the kernel loads and serves every later call.
    import grtv_nb.transforms as tr

    assert tr._kernels_warm() == any(getattr(v, "overloads", None) for v in vars(_kernels).values())
    calls = []
    monkeypatch.setattr(tr, "_kernels_warm", lambda: False)
    monkeypatch.setattr(tr, "_LOADED", set())
    monkeypatch.setattr(tr, "_numpy_voxels", 0)
    monkeypatch.setattr(tr, "_NUMPY_BUDGET_VOXELS", 2 * 8 * 8 * 8)
    real_np, real_k = tr._sample_separable_numpy, tr._sample_separable_compiled
    monkeypatch.setattr(tr, "_sample_separable_numpy", lambda *a: calls.append("numpy") or real_np(*a))
    monkeypatch.setattr(tr, "_sample_separable_compiled", lambda *a: calls.append("kernel") or real_k(*a))
    vol = np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16)
    outs = [resize_volume(vol, (8, 8, 8)) for _ in range(4)]
    assert calls == ["numpy", "numpy", "kernel", "kernel"]
    assert all(np.array_equal(o, outs[0]) for o in outs)
    assert (np.dtype(np.int16), np.dtype(np.int16)) in tr._LOADED
    # numba already warm (another kernel ran): a new dtype pair loads at once (tens of ms)
    monkeypatch.setattr(tr, "_kernels_warm", lambda: True)
    calls.clear()
    resize_volume(vol.astype(np.uint16), (8, 8, 8))
    assert calls == ["kernel"]


def test_grid_mode_indices_convention():
    np.testing.assert_allclose(grid_mode_indices(4, 2), [0.5, 2.5])
    np.testing.assert_allclose(grid_mode_indices(2, 4), [-0.25, 0.25, 0.75, 1.25])


def _sphere(shape, centre, radius_vox):
    z, y, x = np.indices(shape, dtype=np.float64)
    r2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    return (r2 <= radius_vox**2).astype(np.uint8) * 255


@pytest.mark.parametrize("radius_mm,new_shape", [
    (15.0, (40, 40, 40)), (13.4, (80, 40, 40)), (13.5, (56, 28, 28)), (20.0, (33, 47, 29)), (14.0, (80, 64, 64))
])
def test_mask_volume_kept_within_2_percent(radius_mm, new_shape):
    # 1 mm voxels, 80^3 grid, spheres >= 10 cc; the analytic sphere volume is the reference.
    # (80, 40, 40) is sample 3's case: slices kept, rows and columns halved.
    shape = (80, 80, 80)
    mask = _sphere(shape, (39.7, 40.2, 39.9), radius_mm)
    analytic_cc = 4.0 / 3.0 * np.pi * radius_mm**3 / 1000.0
    assert analytic_cc > 10.0
    out = resize_volume(mask, new_shape, np.uint8)
    voxel_cc = np.prod([n / m for n, m in zip(shape, new_shape)]) / 1000.0
    vol_cc = np.count_nonzero(out >= 128) * voxel_cc
    assert abs(vol_cc - analytic_cc) / analytic_cc < 0.02


def _da(values, z, y, x, name="image"):
    return xr.DataArray(values, dims=("z", "y", "x"), coords={"z": z, "y": y, "x": x}, name=name,
                        attrs={"units": "HU"})


def test_resample_to_spacing_keeps_extent_and_matches_resize():
    rng = np.random.default_rng(4)
    vals = rng.integers(-1000, 2000, size=(10, 30, 40)).astype(np.int16)
    z = 100.0 + 2.5 * np.arange(10)
    y = -50.0 + 0.8 * np.arange(30)
    x = 20.0 + 0.8 * np.arange(40)
    da = _da(vals, z, y, x)
    out = resample_to_spacing(da, (5.0, 1.6, 1.6))
    assert out.dims == ("z", "y", "x") and out.shape == (5, 15, 20) and out.dtype == np.int16
    assert out.attrs["units"] == "HU" and out.name == "image"
    for name, old in (("z", z), ("y", y), ("x", x)):
        new = out.coords[name].values
        old_step, new_step = old[1] - old[0], new[1] - new[0]
        assert np.isclose(new[0] - new_step / 2, old[0] - old_step / 2)
        assert np.isclose(new[-1] + new_step / 2, old[-1] + old_step / 2)
    np.testing.assert_array_equal(out.values, resize_volume(vals, (5, 15, 20)))


def test_resample_to_spacing_non_uniform_z_and_linear_field():
    # a field linear in physical coordinates is reproduced exactly inside the hull of the centres
    z = np.array([0.0, 2.0, 3.0, 5.0, 9.0, 10.0])
    y = np.arange(12) * 1.5
    x = np.arange(9) * 2.0
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    field = (3 * zz - 2 * yy + xx).astype(np.float32)
    out = resample_to_spacing(_da(field, z, y, x), (1.0, 1.0, 1.0))
    nz, ny, nx = (out.coords[n].values for n in ("z", "y", "x"))
    ZZ, YY, XX = np.meshgrid(nz, ny, nx, indexing="ij")
    inside = (ZZ >= z[0]) & (ZZ <= z[-1]) & (YY >= y[0]) & (YY <= y[-1]) & (XX >= x[0]) & (XX <= x[-1])
    np.testing.assert_allclose(out.values[inside], (3 * ZZ - 2 * YY + XX)[inside], atol=1e-3)


def test_resample_to_spacing_label_sphere_and_leading_dim():
    shape = (60, 60, 60)
    sphere = _sphere(shape, (29.5, 30.1, 29.8), 14.0) > 0  # 0.5 mm voxels -> r = 7 mm
    c = np.arange(60) * 0.5
    da = xr.DataArray(np.stack([sphere, ~sphere]), dims=("roi", "z", "y", "x"),
                      coords={"roi": ["a", "b"], "z": c, "y": c, "x": c})
    out = resample_to_spacing(da, (1.2, 1.2, 1.2))
    assert out.dtype == bool and out.dims == da.dims and list(out.coords["roi"].values) == ["a", "b"]
    step = [float(out.coords[n].values[1] - out.coords[n].values[0]) for n in ("z", "y", "x")]
    vol = out.values[0].sum() * np.prod(step)
    analytic = 4 / 3 * np.pi * 7.0**3
    assert abs(vol - analytic) / analytic < 0.03
    # each resampled on its own: they only overlap where the interpolated fraction is exactly 0.5
    assert np.mean(out.values[1] == out.values[0]) < 0.01


def test_resample_multi_label_uses_nearest():
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:5, 2:5, 2:5] = 3
    lab[5:7, 5:7, 5:7] = 7
    c = np.arange(8.0)
    out = resample_to_spacing(_da(lab, c, c, c), (0.5, 0.5, 0.5), is_label=True)
    assert set(np.unique(out.values)) == {0, 3, 7}


def test_resize_bad_inputs():
    a = np.zeros((4, 4, 4), np.int16)
    with pytest.raises(ValidationError, match="3D"):
        resize_volume(np.zeros((4, 4)), (2, 2, 2))
    with pytest.raises(ValidationError, match="newShape"):
        resize_volume(a, (2, 2))
    with pytest.raises(ValidationError, match="newShape"):
        resize_volume(a, (2, 0, 2))
    with pytest.raises(ValidationError, match="dataType"):
        resize_volume(a, (2, 2, 2), np.int64)
    with pytest.raises(ValidationError, match="real-valued"):
        resize_volume(np.zeros((2, 2, 2), complex), (2, 2, 2), np.float32)
    with pytest.raises(ValidationError, match="spacing"):
        resample_to_spacing(_da(a, np.arange(4.0), np.arange(4.0), np.arange(4.0)), (1, -1, 1))
    with pytest.raises(ValidationError, match="dims"):
        resample_to_spacing(xr.DataArray(a, dims=("a", "b", "c")), (1, 1, 1))
