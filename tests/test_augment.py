"""Augmentation (grtv_nb.augment): analytical rotations, the deformation bound, alignment of image
and labels, file names/sizes, reproducibility and bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi

from grtv_nb.augment import (
    Transform,
    apply_transform,
    augment_volumes,
    draw_transforms,
    random_transform,
)
from grtv_nb.errors import ValidationError
from grtv_nb.rawio import read_mhd, read_raw

SHAPE = (24, 48, 40)


def _phantom(shape=SHAPE):
    """CT-like int16 volume (air, soft tissue body, a dense 'bone' box) with two uint8 masks."""
    nz, ny, nx = shape
    z, y, x = np.indices(shape)
    body = (((y - ny / 2) / (ny * 0.42)) ** 2 + ((x - nx / 2) / (nx * 0.42)) ** 2) <= 1
    bone = (abs(z - nz / 2) < nz * 0.25) & (abs(y - ny * 0.55) < ny * 0.12) & (abs(x - nx * 0.45) < nx * 0.15)
    ct = np.full(shape, -1000, np.int16)
    ct[body] = 40
    ct[bone] = 700
    return ct, body.astype(np.uint8) * 255, bone.astype(np.uint8) * 255


def _dice(a, b):
    a, b = a > 0, b > 0
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _rot_xyz(axis, deg):
    """Independent right-hand rotation matrix acting on (x, y, z)."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.mark.parametrize("axis,deg,spacing", [("z", 20.0, (1, 1, 1)), ("x", -15.0, (1, 1, 1)),
                                               ("y", 12.0, (2.0, 1.0, 1.0)), ("z", 30.0, (3.0, 0.8, 1.2))])
def test_known_rotation_of_a_box_matches_the_analytic_box(axis, deg, spacing):
    shape = (40, 64, 64)
    sp = np.array(spacing, float)  # (dz, dy, dx)
    # analytic box, in mm about the volume centre: half sizes (x, y, z)
    # half sizes on voxel edges (even shape: edges at multiples of the spacing from the centre), so
    # the digitised box is exactly the analytic one
    half = np.round(np.array([16.0, 12.0, 12.0]) / sp[::-1]) * sp[::-1]
    centre = (np.array(shape) - 1) / 2
    z, y, x = np.indices(shape).astype(float)
    pos = np.stack([(x - centre[2]) * sp[2], (y - centre[1]) * sp[1], (z - centre[0]) * sp[0]], axis=-1)
    box = np.all(np.abs(pos) <= half, axis=-1)
    rot = _rot_xyz(axis, deg)
    expected = np.all(np.abs(pos @ rot) <= half, axis=-1)  # p inside the rotated box iff R^T p in box
    angles = {"x": (deg, 0, 0), "y": (0, deg, 0), "z": (0, 0, deg)}[axis]
    t = Transform(shape=shape, angles_deg=angles, spacing=tuple(spacing))
    (out,) = apply_transform([box.astype(np.uint8) * 255], t)
    assert set(np.unique(out)) <= {0, 255}
    assert _dice(out, expected) >= 0.97
    assert _dice(out, box) < 0.97  # it did rotate


def test_rotation_agrees_with_scipy_affine_transform():
    rng = np.random.default_rng(5)
    vol = ndi.gaussian_filter(rng.normal(size=(20, 30, 26)), 2).astype(np.float32)
    t = Transform(shape=vol.shape, angles_deg=(4.0, -3.0, 7.0), spacing=(2.5, 0.9, 1.1))
    (ours,) = apply_transform([vol], t, fill_values=[np.nan])
    c = t.centre
    ref = ndi.affine_transform(vol.astype(np.float64), t.matrix, offset=c - t.matrix @ c, order=1,
                               mode="constant", cval=np.nan)
    both = np.isfinite(ours) & np.isfinite(ref)
    assert both.mean() > 0.8
    np.testing.assert_allclose(ours[both], ref[both], atol=1e-4)


def test_identity_gives_input_back_exactly(tmp_path):
    ct, body, bone = _phantom()
    f32 = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    paths = augment_volumes([ct, body, bone, f32], tmp_path, times=2, rotate=False, deform=True, deform_rate=0.0,
                            seed=1, progress=False)
    for i, p in enumerate(paths):
        ref = [ct, body, bone, f32][i % 4]
        assert np.array_equal(read_raw(p), ref)
    # and through the warp kernel itself (not the identity short cut): zero angles + zero field
    t = Transform(shape=SHAPE, angles_deg=(0.0, 0.0, 0.0), control=np.zeros((5, 5, 5, 3)))
    t_kernel = Transform(shape=SHAPE, angles_deg=(0.0, 0.0, 0.0), control=np.full((5, 5, 5, 3), 1e-300))
    assert t.is_identity and not t_kernel.is_identity
    for v, o in zip([ct, body, f32], apply_transform([ct, body, f32], t_kernel)):
        assert np.array_equal(o, v)


def test_constant_volume_stays_constant():
    for dtype, value in ((np.float32, 3.25), (np.int16, 40)):
        vol = np.full(SHAPE, value, dtype)
        t = random_transform(SHAPE, 3, rotate_range_deg=10, deform=True, deform_rate=0.2)
        (out,) = apply_transform([vol], t, fill_values=[value])
        assert np.all(out == vol)


@pytest.mark.parametrize("rate,seed", [(0.05, 0), (0.25, 1), (0.4, 2)])
def test_displacement_never_exceeds_deform_rate(rate, seed):
    shape = (20, 36, 28)
    t = random_transform(shape, seed, rotate=False, deform=True, deform_rate=rate)
    field = t.displacement_field(normalized=True)
    norm = np.sqrt((field.astype(np.float64) ** 2).sum(axis=0))
    assert norm.max() <= rate + 1e-6
    assert norm.max() > 0.3 * rate  # and it does deform
    # measured on a deformed grid: warp the index ramps, read back where each voxel came from
    ramps = [np.broadcast_to(np.arange(n, dtype=np.float32).reshape([-1 if a == i else 1 for a in range(3)]),
                             shape).copy() for i, n in enumerate(shape)]
    warped = apply_transform(ramps, t, fill_values=[np.nan] * 3)
    idx = np.indices(shape).astype(np.float64)
    disp_vox = np.stack(warped).astype(np.float64) - idx
    inside = np.all(np.isfinite(disp_vox), axis=0)
    for a in range(3):  # clamped positions within half a voxel of the border are not measurable
        inside &= (np.stack(warped)[a] > 0) & (np.stack(warped)[a] < shape[a] - 1)
    assert inside.mean() > 0.5
    disp_norm = disp_vox * (2.0 / np.array(shape, float))[:, None, None, None]
    measured = np.sqrt((disp_norm**2).sum(axis=0))[inside]
    assert measured.max() <= rate + 1e-4
    np.testing.assert_allclose(disp_norm[:, inside], field[:, inside], atol=1e-4)


def test_ct_and_masks_stay_aligned(tmp_path):
    ct, body, bone = _phantom((40, 96, 80))
    paths = augment_volumes([ct, body, bone], tmp_path, times=3, names=["ct", "body", "bone"], rotate=True,
                            rotate_range_deg=8.0, deform=True, deform_rate=0.1, seed=7, progress=False)
    for r in range(3):
        a_ct, a_body, a_bone = (read_raw(p) for p in paths[3 * r:3 * r + 3])
        assert a_ct.dtype == np.int16 and a_body.dtype == np.uint8
        assert set(np.unique(a_body)) <= {0, 255} and set(np.unique(a_bone)) <= {0, 255}
        assert not np.array_equal(a_bone, bone)
        # the mask still covers the same HU structure
        inside = a_ct[a_bone > 0]
        assert np.mean(inside > 300) > 0.95
        assert np.mean(a_bone[a_ct >= 700] > 0) > 0.95
        assert abs(np.count_nonzero(a_bone) / np.count_nonzero(bone) - 1) < 0.1
        body_hu = a_ct[(a_body > 0) & (a_bone == 0)]
        assert np.mean(body_hu > -500) > 0.97
        # out-of-volume samples of a CT take air
        assert a_ct.min() == -1000


def test_file_names_sizes_and_headers(tmp_path):
    ct, body, bone = _phantom()
    out = tmp_path / "new" / "aug"
    paths = augment_volumes([ct, body, bone], out, times=3, seed=3, progress=False, spacing=(2.5, 0.9, 0.9))
    names = sorted(p.name for p in out.iterdir())
    expected = sorted(f"img_{i:04d}.{r:04d}.{ext}" for i in range(3) for r in (1, 2, 3) for ext in ("raw", "mhd"))
    assert names == expected
    assert [p.name for p in paths] == [f"img_{i:04d}.{r:04d}.raw" for r in (1, 2, 3) for i in range(3)]
    for p, v in zip(paths, [ct, body, bone] * 3):
        assert p.stat().st_size == v.size * v.dtype.itemsize
        hdr = read_mhd(p.with_suffix(".mhd"))
        assert hdr["shape"] == v.shape and hdr["dtype"] == v.dtype and hdr["data_file"] == p
        assert hdr["spacing"] == (2.5, 0.9, 0.9)
    named = augment_volumes([ct, body], tmp_path / "named", times=1, names=["ct", "body"], write_mhd=False,
                            progress=False)
    assert sorted(p.name for p in (tmp_path / "named").iterdir()) == ["body.0001.raw", "ct.0001.raw"]
    assert [p.name for p in named] == ["ct.0001.raw", "body.0001.raw"]


def test_seed_reproduces_and_draw_transforms_gives_the_rounds(tmp_path):
    ct, body, _ = _phantom()
    kw = dict(times=2, rotate=True, rotate_range_deg=5, deform=True, deform_rate=0.1, progress=False)
    a = augment_volumes([ct, body], tmp_path / "a", seed=11, **kw)
    b = augment_volumes([ct, body], tmp_path / "b", seed=11, **kw)
    c = augment_volumes([ct, body], tmp_path / "c", seed=12, **kw)
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(a, b))
    assert a[0].read_bytes() != c[0].read_bytes()
    ts = draw_transforms(SHAPE, 2, 11, rotate=True, rotate_range_deg=5, deform=True, deform_rate=0.1)
    for r, t in enumerate(ts):
        assert all(abs(g) <= 5 for g in t.angles_deg)
        ref_ct, ref_body = apply_transform([ct, body], t)
        assert np.array_equal(read_raw(a[2 * r]), ref_ct)
        assert np.array_equal(read_raw(a[2 * r + 1]), ref_body)


def test_label_block_skipping_changes_nothing(monkeypatch):
    # labels skip output tiles whose input region is uniform: same result as sampling every voxel
    import grtv_nb.augment as aug

    monkeypatch.setattr(aug._numpy_kernels, "use_numpy", lambda n: False)  # the compiled kernel
    _, body, bone = _phantom((30, 80, 72))
    for seed in range(3):
        t = random_transform(body.shape, seed, rotate_range_deg=10, deform=True, deform_rate=0.15)
        for m in (body, bone):
            spec = aug._specs([m], None, None)[0]
            assert spec.mode == 1
            fast, slow = np.empty_like(m), np.empty_like(m)
            aug._warp_into(m, fast, t, spec)
            assert spec.blocks is not None and spec.blocks.size > 0
            spec.blocks = np.zeros((0, 0, 0), np.uint8)  # no block flags: every voxel sampled
            spec.box = (0, m.shape[0], 0, m.shape[1], 0, m.shape[2])
            aug._warp_into(m, slow, t, spec)
            assert np.array_equal(fast, slow)


def _volumes_of_every_kind(shape, rng):
    """An int16 CT, a binary uint8 mask, a bool mask, a multi-label uint8, a float32 dose, uint16,
    int32 and float64 volumes, all of ``shape``."""
    zz, yy, xx = np.indices(shape)
    c = [(n - 1) / 2 for n in shape]
    r2 = ((zz - c[0]) / max(shape[0] / 3, 1)) ** 2 + ((yy - c[1]) / (shape[1] / 3)) ** 2
    r2 = r2 + ((xx - c[2]) / (shape[2] / 3)) ** 2
    ct = (rng.normal(0, 300, shape) - 600 * (r2 > 1)).astype(np.int16)
    mask = np.where(r2 < 0.6, 255, 0).astype(np.uint8)
    labels = (np.clip(np.floor(r2 * 3), 0, 3)).astype(np.uint8)
    return [ct, mask, mask > 0, labels, rng.uniform(0, 70, shape).astype(np.float32),
            rng.integers(0, 4000, shape).astype(np.uint16), rng.integers(-70000, 70000, shape).astype(np.int32),
            rng.normal(0, 1e3, shape)]


@pytest.mark.parametrize("shape", [(9, 37, 150), (1, 20, 17), (12, 1, 40), (7, 300, 5)])
def test_numpy_warp_is_bit_identical_to_the_compiled_kernel(monkeypatch, shape):
    # a process's first rounds run on NumPy (no kernel load): they must give exactly the kernel's
    # values, for every dtype, label mode, rotation and deformation (tiles span several rows/columns)
    import grtv_nb.augment as aug

    rng = np.random.default_rng(sum(shape))
    vols = _volumes_of_every_kind(shape, rng)
    specs = aug._specs(vols, [3], None)
    assert [s.mode for s in specs[:4]] == [0, 1, 1, 2]
    for seed in range(4):
        t = random_transform(shape, seed, rotate_range_deg=12, deform=seed % 2 == 1, deform_rate=0.2,
                             spacing=(2.5, 0.9, 1.1) if seed > 1 else None)
        for v, spec in zip(vols, specs):
            got = {}
            for numpy_path in (True, False):
                monkeypatch.setattr(aug._numpy_kernels, "use_numpy", lambda n, p=numpy_path: p)
                got[numpy_path] = np.empty_like(v)
                aug._warp_into(v, got[numpy_path], t, spec)
            assert got[True].dtype == v.dtype
            assert np.array_equal(got[True], got[False], equal_nan=True), (v.dtype, seed)


def test_first_rounds_of_a_process_run_on_numpy_within_a_budget(monkeypatch):
    # before any compiled kernel has run, warps take the NumPy path until the budget is spent
    import grtv_nb._numba_cache as nc
    from grtv_nb import _numpy_kernels as nk

    monkeypatch.setattr(nc, "kernels_warm", lambda: False)
    monkeypatch.setattr(nk, "_numpy_voxels", 0)
    monkeypatch.setattr(nk, "NUMPY_BUDGET_CACHED", 1000)
    monkeypatch.setattr(nk, "NUMPY_BUDGET_UNCACHED", 1000)
    assert nk.use_numpy(600) and not nk.use_numpy(600) and nk.use_numpy(400) and not nk.use_numpy(1)
    monkeypatch.setattr(nk, "_numpy_voxels", 0)
    monkeypatch.setattr(nc, "kernels_warm", lambda: True)
    assert not nk.use_numpy(10)
    # a kernel that would compile (not in numba's cache) is worth more NumPy work than one to load
    monkeypatch.setattr(nc, "kernels_warm", lambda: False)
    monkeypatch.setattr(nk, "NUMPY_BUDGET_UNCACHED", 5000)
    for cached, budget in ((True, 1000), (False, 5000)):
        monkeypatch.setattr(nc, "kernel_cached", lambda module, name, c=cached: c)
        monkeypatch.setattr(nk, "_numpy_voxels", 0)
        assert nk.use_numpy(budget) and not nk.use_numpy(1)


def test_kernel_cached_finds_numba_index_files(tmp_path, monkeypatch):
    from grtv_nb._numba_cache import kernel_cached

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not kernel_cached("_kernels", "warp")
    (tmp_path / "grtv_nb_0123").mkdir()
    (tmp_path / "grtv_nb_0123" / "_kernels.warp-196.py311.nbi").write_bytes(b"")
    assert kernel_cached("_kernels", "warp") and not kernel_cached("_kernels", "separable")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.int32])
def test_label_scan(dtype):
    from grtv_nb._numpy_kernels import label_scan

    v = np.zeros((5, 6, 7), dtype)
    assert label_scan(v)[0] == 0 and not label_scan(v)[2].any()
    v[1, 2, 3] = 9
    v[3, 4, 1] = 9
    n, val, box = label_scan(v)
    assert (n, val, list(box)) == (1, 9.0, [1, 4, 2, 5, 1, 4])
    v[2, 0, 6] = 4
    n, val, box = label_scan(v)
    assert (n, val, list(box)) == (2, 9.0, [1, 4, 0, 5, 1, 7])


def test_labels_argument_and_fill_values():
    rng = np.random.default_rng(4)
    shape = (16, 24, 24)
    soft = np.zeros(shape, np.uint8)
    soft[4:12, 6:18, 6:18] = 7  # a label with another value: given in labels
    multi = soft.copy()
    multi[8:12, 6:12, 6:12] = 3  # several values: nearest
    noisy = rng.integers(0, 200, shape).astype(np.uint8)  # uint8 intensity: interpolated
    t = random_transform(shape, 0, rotate_range_deg=10, deform=True, deform_rate=0.1)
    o_soft, o_multi, o_noisy = apply_transform([soft, multi, noisy], t, labels=[0, 1])
    assert set(np.unique(o_soft)) <= {0, 7}
    assert set(np.unique(o_multi)) <= {0, 3, 7}
    assert len(np.unique(o_noisy)) > 10
    ct = np.full(shape, 20, np.int16)  # not CT-like (min > -500): fill 0
    (o,) = apply_transform([ct], Transform(shape=shape, angles_deg=(0, 0, 30)))
    assert o.min() == 0
    (o,) = apply_transform([ct], Transform(shape=shape, angles_deg=(0, 0, 30)), fill_values=[-5])
    assert o.min() == -5


def test_bad_inputs(tmp_path):
    ct, body, _ = _phantom()
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match=r"imageList\[1\].*3D"):
        augment_volumes([ct, body[0]], out, progress=False)
    with pytest.raises(ValidationError, match="same shape"):
        augment_volumes([ct, body[:, :-1]], out, progress=False)
    with pytest.raises(ValidationError, match="dtype"):
        augment_volumes([ct.astype(np.int64)], out, progress=False)
    with pytest.raises(ValidationError, match="dtype"):
        augment_volumes([ct.astype(np.complex64)], out, progress=False)
    with pytest.raises(ValidationError, match="augmentTimes"):
        augment_volumes([ct], out, times=-1, progress=False)
    with pytest.raises(ValidationError, match="fileNameList"):
        augment_volumes([ct, body], out, names=["ct"], progress=False)
    with pytest.raises(ValidationError, match="non-empty list"):
        augment_volumes([], out, progress=False)
    with pytest.raises(ValidationError, match="deformRate"):
        augment_volumes([ct], out, deform=True, deform_rate=-0.1, progress=False)
    assert not out.exists()  # nothing was created by a refused call
    a_file = tmp_path / "file.txt"
    a_file.write_text("user data")
    with pytest.raises(ValidationError, match="is a file"):
        augment_volumes([ct], a_file, progress=False)
    assert a_file.read_text() == "user data"


def test_zero_times_and_progress_bar(tmp_path, capsys):
    ct, _, _ = _phantom()
    assert augment_volumes([ct], tmp_path / "zero", times=0, progress=False) == []
    paths = augment_volumes([ct], tmp_path / "bar", times=2, seed=0, progress=True)
    assert len(paths) == 2
    err = capsys.readouterr().err
    assert "augment" in err and "2/2" in err


def test_no_partial_file_under_a_final_name(tmp_path, monkeypatch):
    import grtv_nb.augment as aug

    ct, body, _ = _phantom()
    calls = {"n": 0}
    real = np.ndarray.tofile

    def failing_tofile(arr, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            real(arr[: arr.size // 2], f)
            raise OSError("disk full")
        return real(arr, f, *a, **k)

    monkeypatch.setattr(aug, "_tofile", failing_tofile)
    with pytest.raises(OSError, match="disk full"):
        augment_volumes([ct, body], tmp_path, times=3, write_mhd=False, progress=False)
    names = sorted(p.name for p in Path(tmp_path).iterdir())
    # round 1 whole; round 2 (its image written, its label failing) absent; no partial or temporary file
    assert names == ["img_0000.0001.raw", "img_0001.0001.raw"]


def test_sample4_on_the_phantom_keeps_ct_and_rois_aligned(phantom_study, tmp_path):
    # sample 4's call on a real DICOM-RT study (the phantom): CT + BODY + Lung_L, 3 deg, 0.05
    ct = np.asarray(phantom_study.image.values)
    body = phantom_study.mask("BODY").astype(np.uint8) * 255
    lung = phantom_study.mask("Lung_L").astype(np.uint8) * 255
    sp = phantom_study.grid.spacing
    paths = augment_volumes([ct, body, lung], tmp_path, times=2, names=["ct", "body", "llung"], rotate=True,
                            rotate_range_deg=3.0, deform=True, deform_rate=0.05, seed=4, spacing=sp,
                            progress=False)
    assert [p.name for p in paths] == ["ct.0001.raw", "body.0001.raw", "llung.0001.raw",
                                       "ct.0002.raw", "body.0002.raw", "llung.0002.raw"]
    lung_before = np.mean(ct[lung > 0] < -500)
    body_before = np.mean(ct[body > 0] > -500)  # the body holds the lungs too
    for r in range(2):
        a_ct, a_body, a_lung = (read_raw(p) for p in paths[3 * r:3 * r + 3])
        assert a_ct.shape == ct.shape and a_ct.dtype == ct.dtype
        assert set(np.unique(a_lung)) <= {0, 255}
        assert abs(np.count_nonzero(a_lung) / np.count_nonzero(lung) - 1) < 0.1
        # the lung mask still covers lung HU, the body mask the patient
        assert np.mean(a_ct[a_lung > 0] < -500) > min(0.95, lung_before - 0.02)
        assert np.mean(a_ct[a_body > 0] > -500) > body_before - 0.03
        assert np.mean(a_ct[a_body == 0] < -900) > 0.95
