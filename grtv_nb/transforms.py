"""Resampling of volumes: separable linear sampling at fractional indices (the one resampler of
grtv_nb, used for dose-onto-image interpolation and for resizing), and volume resizing.

Conventions
-----------
Volumes are indexed ``[z, y, x]``. A fractional index ``f`` along an axis of length ``n`` samples
linearly between voxel centres ``floor(f)`` and ``floor(f)+1``; samples with ``f`` outside
``[0, n-1]`` take ``fill`` (or the edge value when ``fill`` is None).
"""

from __future__ import annotations

import numpy as np

from .errors import ValidationError

_SUPPORTED = (np.uint8, np.int16, np.uint16, np.float32)


def _axis_weights(f: np.ndarray, n: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    f = np.asarray(f, dtype=np.float64)
    eps = 1e-6
    valid = (f >= -eps) & (f <= n - 1 + eps)
    fc = np.clip(f, 0, n - 1)
    i0 = np.floor(fc).astype(np.intp)
    i0 = np.minimum(i0, max(n - 2, 0))
    w = fc - i0
    if n == 1:
        i0[:] = 0
        w[:] = 0.0
    i1 = np.minimum(i0 + 1, n - 1)
    if clamp:
        valid[:] = True
    return i0, i1, w.astype(np.float32), valid


def sample_separable(
    volume: np.ndarray,
    iz: np.ndarray,
    iy: np.ndarray,
    ix: np.ndarray,
    *,
    fill: float | None = 0.0,
    dtype: np.dtype | type | None = np.float32,
) -> np.ndarray:
    """Sample a 3D volume on the tensor grid of fractional indices ``iz x iy x ix`` (trilinear).

    Parameters
    ----------
    volume : ndarray, shape (nz, ny, nx)
    iz, iy, ix : 1D arrays
        Fractional indices along each axis (see module docstring).
    fill : float or None
        Value for samples outside the volume; None clamps to the edge.
    dtype : dtype
        Output dtype. Integer outputs are rounded (half away from zero) and clipped to the range.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValidationError(f"volume must be 3D, got shape {vol.shape}")
    out = vol.astype(np.float32, copy=False)
    valid_axes = []
    for axis, f in enumerate((iz, iy, ix)):
        i0, i1, w, valid = _axis_weights(f, vol.shape[axis], clamp=fill is None)
        a = np.take(out, i0, axis=axis)
        b = np.take(out, i1, axis=axis)
        shape = [1, 1, 1]
        shape[axis] = -1
        out = a + (b - a) * w.reshape(shape)
        valid_axes.append(valid)
    if fill is not None:
        vz, vy, vx = valid_axes
        if not (vz.all() and vy.all() and vx.all()):
            mask = vz[:, None, None] & vy[None, :, None] & vx[None, None, :]
            out = np.where(mask, out, np.float32(fill))
    return _cast(out, np.dtype(dtype) if dtype is not None else np.dtype(np.float32))


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype, copy=False)


def grid_mode_indices(n_in: int, n_out: int) -> np.ndarray:
    """Fractional input indices of the output voxel centres when a length ``n_in`` axis is resized
    to ``n_out`` keeping its physical extent (``scipy.ndimage.zoom(grid_mode=True)`` /
    ``skimage.transform.resize``): ``f = (o + 0.5) * n_in / n_out - 0.5``."""
    o = np.arange(n_out, dtype=np.float64)
    return (o + 0.5) * (n_in / n_out) - 0.5


def resize_volume(
    volume: np.ndarray, shape: tuple[int, int, int], dtype: np.dtype | type | None = None
) -> np.ndarray:
    """Resize a 3D volume to ``shape`` by trilinear interpolation, keeping its physical extent.

    Output voxel centres map onto the input as in ``scipy.ndimage.zoom(..., grid_mode=True)``;
    samples beyond the outermost input centres take the edge value, so a constant stays constant.
    Integer outputs are rounded and clipped to the dtype's range.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValidationError(f"img3d_in must be a 3D array, got shape {vol.shape}")
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValidationError(f"newShape must be 3 positive ints, got {shape!r}")
    dtype = np.dtype(dtype) if dtype is not None else vol.dtype
    if dtype.type not in _SUPPORTED:
        raise ValidationError(f"dataType {dtype} is not supported (uint8, int16, uint16, float32)")
    idx = [grid_mode_indices(n, int(m)) for n, m in zip(vol.shape, shape)]
    return sample_separable(vol, *idx, fill=None, dtype=dtype)
