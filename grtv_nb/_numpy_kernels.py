"""NumPy kernels: the twin of the augmentation warp (:func:`grtv_nb._kernels.warp`), bit-identical to
it, and the scan that classifies label volumes (:func:`label_scan`).

A process's first augmentation rounds run here instead of in the compiled kernel: loading that
kernel costs ~1 s even from numba's on-disk cache and 10-30 s when the cache is empty (a new
install, a fresh container), while NumPy warps a 60 x 256 x 256 volume in ~0.3 s of CPU (the
kernel: ~0.12 s). Past a budget of warped voxels in a process (rent-or-buy: about the voxels whose
extra NumPy time equals the kernel's load, :data:`NUMPY_BUDGET_CACHED` when its machine code is
on disk, :data:`NUMPY_BUDGET_UNCACHED` when it would compile), or once any compiled kernel has run
in the process, the compiled kernel serves (see :func:`use_numpy`).

Bit-identical means: the same IEEE operations in the same order as the kernel (float64 positions
and displacement sums accumulated term by term in the kernel's order, float32 interpolation
``a + (b - a) * t``, the same clamps and rounding). Terms the kernel skips because their B-spline
weight is zero add an exact zero here. ``tests/test_augment.py`` compares both on random
transforms, dtypes and label modes. Private: call :mod:`grtv_nb.augment`.
"""

from __future__ import annotations

import numpy as np

from . import _numba_cache

#: Voxels a process warps with NumPy before it loads the compiled kernel from numba's cache
#: (NumPy costs ~45 ns a voxel more than the kernel; the load ~1 s).
NUMPY_BUDGET_CACHED = 24_000_000
#: The same when the kernel is not in the cache and would compile (~15 s on 2 cores).
NUMPY_BUDGET_UNCACHED = 320_000_000
_numpy_voxels = 0  # voxels warped by NumPy in this process so far


def use_numpy(n_voxels: int) -> bool:
    """Whether this warp of ``n_voxels`` output voxels runs on NumPy (and charge it to the budget)."""
    global _numpy_voxels
    if _numba_cache.kernels_warm():
        return False
    budget = NUMPY_BUDGET_CACHED if _numba_cache.kernel_cached("_kernels", "warp") else NUMPY_BUDGET_UNCACHED
    if _numpy_voxels + n_voxels > budget:
        return False
    _numpy_voxels += n_voxels
    return True


def label_scan(vol: np.ndarray) -> tuple[int, float, np.ndarray]:
    """(number of distinct non-zero values, capped at 2; the first non-zero value in C order;
    bounding box ``z0, z1, y0, y1, x0, x1`` of the non-zero voxels, half-open, zeros if none)."""
    box = np.zeros(6, np.int64)
    nonzero = vol != 0
    zs = np.flatnonzero(nonzero.any(axis=(1, 2)))
    if zs.size == 0:
        return 0, 0.0, box
    ys = np.flatnonzero(nonzero.any(axis=(0, 2)))
    xs = np.flatnonzero(nonzero.any(axis=(0, 1)))
    box[:] = (zs[0], zs[-1] + 1, ys[0], ys[-1] + 1, xs[0], xs[-1] + 1)
    flat = vol.reshape(-1)
    value = float(flat[int(np.argmax(nonzero.reshape(-1)))])
    multi = bool(np.any(nonzero & (vol != vol.dtype.type(value))))
    return (2 if multi else 1), value, box


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray, one: np.float32) -> np.ndarray:
    """The kernel's ``a + (b - a) * t if t < 1 else b`` (float32)."""
    r = a + (b - a) * t
    at_end = t >= one
    if at_end.any():
        r[at_end] = b[at_end]
    return r


def warp(vol, out, m, c, ctrl, bzi, bzw, byi, byw, bxt, has_def, box, mode, thr, on_val, fill,
         is_int, lo, hi, proto, threads: int = 1) -> None:
    """:func:`grtv_nb._kernels.warp` over the whole ``box`` (same arguments, without the tile range
    and the block flags, which only skip work), one output slice at a time, the slices shared out
    over ``threads`` threads (NumPy releases the GIL in its loops).

    ``proto`` (the kernel's scratch dtype) is not needed: every dtype the kernel reads through an
    int32 scratch converts to float32 exactly, the others are rounded once either way.
    """
    z0b, z1b, y0b, y1b, x0b, x1b = (int(b) for b in box)
    if z1b <= z0b or y1b <= y0b or x1b <= x0b:
        return
    args = (vol, out, m, c, ctrl, bzi, bzw, byi, byw, bxt, has_def, (y0b, y1b, x0b, x1b), mode, thr, on_val,
            fill, is_int, lo, hi)
    threads = max(1, min(int(threads), z1b - z0b))
    if threads == 1:
        _warp_slices(range(z0b, z1b), *args)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grtv-warp-numpy") as pool:
        for f in [pool.submit(_warp_slices, range(z0b + k, z1b, threads), *args) for k in range(threads)]:
            f.result()


def _warp_slices(zs, vol, out, m, c, ctrl, bzi, bzw, byi, byw, bxt, has_def, rect, mode, thr, on_val, fill,
                 is_int, lo, hi) -> None:
    nz, ny, nx = vol.shape
    cy, cx = ctrl.shape[1], ctrl.shape[2]
    flat = vol.reshape(-1)
    y0b, y1b, x0b, x1b = rect
    f32 = np.float32
    thr32, on32, fill32, lo32, hi32, half, one32 = (f32(v) for v in (thr, on_val, fill, lo, hi, 0.5, 1.0))
    lz, ly, lx = max(nz - 2, 0), max(ny - 2, 0), max(nx - 2, 0)
    oz = nx * ny if nz > 1 else 0
    oy = nx if ny > 1 else 0
    ox = 1 if nx > 1 else 0
    cc = (float(c[0]), float(c[1]), float(c[2]))
    ys = np.arange(y0b, y1b)
    xs = np.arange(x0b, x1b)
    py = (ys - cc[1])[:, None]
    px = (xs - cc[2])[None, :]
    w = x1b - x0b
    if has_def:
        j0 = byi[ys]
        wy = [byw[ys, k][:, None] for k in range(4)]
        bx = bxt[:, x0b:x1b]
        used = np.flatnonzero(np.any(bx != 0.0, axis=1))
        irange = range(int(used[0]), int(used[-1]) + 1) if used.size else range(0)
    for z in zs:
        pz = z - cc[0]
        if has_def:
            k0 = int(bzi[z])
            slab = np.zeros((cy, cx, 3))
            for k in range(4):
                slab += bzw[z, k] * ctrl[k0 + k]
            acc = np.zeros((3, cy, w))
            for i in irange:
                acc += slab[:, i, :].T[:, :, None] * bx[i][None, None, :]
            dd = [wy[0] * a[j0] + wy[1] * a[j0 + 1] + wy[2] * a[j0 + 2] + wy[3] * a[j0 + 3] for a in acc]
        else:
            dd = [0.0, 0.0, 0.0]
        pos = []
        for r in range(3):
            base_r = m[r][0] * pz + m[r][1] * py + cc[r]
            pos.append(base_r + m[r][2] * px + dd[r])
        sz, sy, sx = pos
        ok = (sz >= -0.5) & (sy >= -0.5) & (sx >= -0.5) & (sz <= nz - 0.5) & (sy <= ny - 0.5) & (sx <= nx - 0.5)
        sz = np.minimum(np.maximum(sz, 0.0), nz - 1.0)
        sy = np.minimum(np.maximum(sy, 0.0), ny - 1.0)
        sx = np.minimum(np.maximum(sx, 0.0), nx - 1.0)
        if mode == 2:
            sz, sy, sx = np.floor(sz + 0.5), np.floor(sy + 0.5), np.floor(sx + 0.5)
        iz = np.minimum(sz.astype(np.int64), lz)
        iy = np.minimum(sy.astype(np.int64), ly)
        ix = np.minimum(sx.astype(np.int64), lx)
        tz = (sz - iz).astype(f32)
        ty = (sy - iy).astype(f32)
        tx = (sx - ix).astype(f32)
        b = iz * (nx * ny)
        b += iy * nx
        b += ix
        if mode == 2:
            b += np.where(tz > 0, oz, 0)
            b += np.where(ty > 0, oy, 0)
            b += np.where(tx > 0, ox, 0)
            res = flat[b].astype(f32)
        else:
            v = [flat[b + (oz * (k >> 2) + oy * ((k >> 1) & 1) + ox * (k & 1))].astype(f32) for k in range(8)]
            e0 = _lerp(_lerp(v[0], v[1], tx, one32), _lerp(v[2], v[3], tx, one32), ty, one32)
            e1 = _lerp(_lerp(v[4], v[5], tx, one32), _lerp(v[6], v[7], tx, one32), ty, one32)
            res = _lerp(e0, e1, tz, one32)
        if not ok.all():
            res[~ok] = fill32
        if mode == 1:
            res = np.where(res >= thr32, on32, f32(0.0))
        dst = out[z, y0b:y1b, x0b:x1b]
        if is_int:
            res[res != res] = 0.0
            np.clip(res, lo32, hi32, out=res)
            res = np.where(res >= 0, res + half, res - half)
            dst[...] = res.astype(out.dtype)
        else:
            dst[...] = res
