"""Random 3D data augmentation for deep learning (the original's ``augmentImg3D``): one random
rotation + smooth deformation per round, applied identically to an image and its label volumes,
written as raw files (+ MetaImage headers).

Transform model
---------------
Index space is ``[z, y, x]``; ``c = ((nz-1)/2, (ny-1)/2, (nx-1)/2)`` is the volume centre. The
output voxel ``p`` takes the input value at ::

    s(p) = A (p - c) + c + d(p)

* ``A = S^-1 R^T S``: the volume content is rotated by ``R = Rz(gz) Ry(gy) Rx(gx)`` (right-hand
  rotations about the canonical x, y, z axes through the centre, angles in degrees drawn
  uniformly in ``[-rotate_range_deg, +rotate_range_deg]``), in physical space: ``S`` scales
  indices by the voxel size (``spacing``; isotropic when not given).
* ``d(p)`` is a smooth random displacement: a uniform cubic B-spline on a coarse control grid of
  ``control_points`` (default 7) points per axis spanning the volume, each control vector drawn
  uniformly in the ball of radius ``deform_rate`` in the normalised space where every axis runs
  from -1 (outer edge of the first voxel) to +1 (outer edge of the last), so a normalised
  displacement ``u`` is ``u * n / 2`` voxels along an axis of ``n`` voxels. B-spline weights are
  non-negative and sum to one, so ``|d(p)|`` (Euclidean, normalised) never exceeds
  ``deform_rate``: the bound is exact, not statistical.

Rotation and deformation are composed into ONE warp, sampled once per volume (no double
interpolation). Intensity volumes are interpolated linearly; a position more than half a voxel
outside the volume (beyond its physical extent) takes the fill value (-1000 for CT-like int16
volumes whose minimum is <= -500, else 0), one within half a voxel of the border the edge value.
Label volumes (uint8 with only 0 and 255, bool, or listed in ``labels``) stay strictly binary: a
volume with one non-zero value ``v`` is interpolated linearly and set to ``v`` where the result is
>= v/2 (the boundary of the linearly interpolated 0/1 mask thresholded at 0.5), 0 elsewhere and
outside the volume; a label volume with several values takes the nearest voxel. Labels are only
computed inside the output box that can receive their (dilated) bounding box, and output tiles
whose input region is uniform (all 0 or all inside) are filled without sampling. The loops are
compiled (:mod:`grtv_nb._kernels`) and run on numba's thread count; a process's first rounds (a budget
of voxels, see :mod:`grtv_nb._numpy_kernels`) run instead on a bit-identical
NumPy twin, which needs no kernel load or compilation (:func:`load_kernels` loads them ahead).
Files are written by a background thread while the next volume is warped. Memory: one output buffer per input volume
(reused every round) plus small scratch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _numpy_kernels
from .errors import ValidationError
from .fileio import FolderTransaction, check_file_name, check_outside_sources, write_error
from .rawio import RAW_DTYPES, mhd_header_text, write_array

#: dtypes augment_volumes accepts (bool label volumes are written as uint8 0/1)
AUGMENT_DTYPES = tuple(RAW_DTYPES) + (np.dtype(np.bool_),)


# --------------------------------------------------------------------------------------------
# the transform


def _rot(axis: int, deg: float) -> np.ndarray:
    """Right-hand rotation matrix about canonical axis 0=x, 1=y, 2=z (acts on (x, y, z))."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m = np.eye(3)
    m[i, i] = c
    m[j, j] = c
    m[i, j] = -s
    m[j, i] = s
    return m


def bspline_table(n: int, control_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubic B-spline evaluation table for an axis of ``n`` voxels and ``control_points`` controls.

    Voxel ``i`` sits at normalised ``u = (2 i + 1) / n - 1``; the spline parameter
    ``t = (u + 1) / 2 * (control_points - 3)`` runs over ``[0, control_points - 3]``. Returns the
    first control index ``j`` (int64, shape (n,)) and the 4 weights of controls ``j .. j+3``
    (float64, shape (n, 4)); weights are >= 0 and sum to 1.
    """
    k = int(control_points)
    u = (2.0 * np.arange(n) + 1.0) / n - 1.0
    t = (u + 1.0) / 2.0 * (k - 3)
    j = np.clip(np.floor(t), 0, k - 4).astype(np.int64)
    f = t - j
    w = np.stack([
        (1 - f) ** 3 / 6.0,
        (3 * f**3 - 6 * f**2 + 4) / 6.0,
        (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6.0,
        f**3 / 6.0,
    ], axis=1)
    return j, w


@dataclass(frozen=True, eq=False)
class Transform:
    """One augmentation transform of a volume of ``shape`` (see the module docstring).

    Attributes
    ----------
    shape : (nz, ny, nx)
    angles_deg : (gx, gy, gz)
        Rotation of the content about the x, y and z axes, degrees.
    spacing : (dz, dy, dx)
        Voxel size used to rotate in physical space.
    control : ndarray (K, K, K, 3) or None
        B-spline control vectors, normalised units, components in (z, y, x) order; None: no
        deformation.
    """

    shape: tuple[int, int, int]
    angles_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    control: np.ndarray | None = None

    @property
    def rotation(self) -> np.ndarray:
        """R (3x3, acting on physical (x, y, z) offsets): how the content is rotated."""
        gx, gy, gz = self.angles_deg
        return _rot(2, gz) @ _rot(1, gy) @ _rot(0, gx)

    @property
    def matrix(self) -> np.ndarray:
        """A (3x3, index space, (z, y, x) order): ``s = A (p - c) + c + d(p)``."""
        sxyz = np.array(self.spacing[::-1], dtype=np.float64)
        a_xyz = (self.rotation.T * sxyz[None, :]) / sxyz[:, None]
        return a_xyz[::-1, ::-1].copy()

    @property
    def centre(self) -> np.ndarray:
        return (np.asarray(self.shape, dtype=np.float64) - 1.0) / 2.0

    @property
    def is_identity(self) -> bool:
        no_rot = all(a == 0 for a in self.angles_deg)
        no_def = self.control is None or not np.any(self.control)
        return no_rot and no_def

    def _voxel_control(self) -> np.ndarray:
        """Control vectors in voxels (z, y, x components), float64 C-contiguous."""
        half = np.asarray(self.shape, dtype=np.float64) / 2.0
        return np.ascontiguousarray(self.control * half, dtype=np.float64)

    def _tables(self):
        k = self.control.shape[0]
        return [bspline_table(n, k) for n in self.shape]

    def displacement_field(self, normalized: bool = True) -> np.ndarray:
        """Dense displacement ``d(p)``, shape (3, nz, ny, nx) float32, components (z, y, x).

        ``normalized``: in the -1..1 space (else in voxels). Zeros without deformation. Meant
        for inspection and tests (it is 3 float32 copies of the volume); the warp itself never
        builds it.
        """
        out = np.zeros((3,) + tuple(self.shape), dtype=np.float32)
        if self.control is None:
            return out
        (jz, wz), (jy, wy), (jx, wx) = self._tables()
        k = self.control.shape[0]

        def basis(j, w):
            b = np.zeros((len(j), k))
            for m in range(4):
                b[np.arange(len(j)), j + m] = w[:, m]
            return b

        bz, by, bx = basis(jz, wz), basis(jy, wy), basis(jx, wx)
        half = np.asarray(self.shape, dtype=np.float64) / 2.0
        for d in range(3):
            f = np.einsum("zk,kji->zji", bz, self.control[..., d])
            f = np.einsum("yj,zji->zyi", by, f)
            f = np.einsum("xi,zyi->zyx", bx, f)
            out[d] = f if normalized else f * half[d]
        return out

    def reach_voxels(self) -> np.ndarray:
        """Bound of ``|d|`` along z, y, x in voxels (B-spline weights are a convex combination, so
        the largest control component bounds each component of the field)."""
        if self.control is None:
            return np.zeros(3)
        return np.abs(self.control).reshape(-1, 3).max(axis=0) * np.asarray(self.shape, dtype=np.float64) / 2.0

    def source_box(self, box: Sequence[int]) -> tuple[int, int, int, int, int, int]:
        """Output index box (half-open, clipped to the volume) outside which no output voxel can
        sample input box ``box = (z0, z1, y0, y1, x0, x1)`` (half-open); used to skip empty
        label regions."""
        lo = np.array([box[0], box[2], box[4]], dtype=np.float64) - 1.0
        hi = np.array([box[1], box[3], box[5]], dtype=np.float64)  # last voxel + 1
        reach = self.reach_voxels()
        lo, hi = lo - reach, hi + reach
        c = self.centre
        inv = np.linalg.inv(self.matrix)
        corners = np.array([[a, b, e] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                            for e in (lo[2], hi[2])])
        pts = (corners - c) @ inv.T + c
        p0 = np.floor(pts.min(axis=0)) - 1
        p1 = np.ceil(pts.max(axis=0)) + 2
        n = np.asarray(self.shape)
        p0 = np.clip(p0, 0, n).astype(int)
        p1 = np.clip(p1, 0, n).astype(int)
        return (int(p0[0]), int(p1[0]), int(p0[1]), int(p1[1]), int(p0[2]), int(p1[2]))


def random_transform(
    shape: Sequence[int],
    rng: np.random.Generator | int | None = None,
    *,
    rotate: bool = True,
    rotate_range_deg: float = 2.5,
    deform: bool = False,
    deform_rate: float = 0.25,
    spacing: Sequence[float] | None = None,
    control_points: int = 7,
) -> Transform:
    """Draw one :class:`Transform` (see the module docstring for the model).

    ``rng`` is a numpy Generator or a seed. Draw order (fixed, so seeds reproduce): the three
    angles (x, y, z) when ``rotate``, then the control vectors when ``deform``.
    """
    rng = np.random.default_rng(rng)
    shape = tuple(int(s) for s in shape)
    angles = (0.0, 0.0, 0.0)
    if rotate:
        r = float(rotate_range_deg)
        angles = tuple(float(a) for a in rng.uniform(-r, r, size=3))
    control = None
    if deform:
        k = int(control_points)
        if k < 4:
            raise ValidationError(f"control_points must be >= 4, got {control_points}")
        v = rng.normal(size=(k, k, k, 3))
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
        norm[norm == 0] = 1.0
        radius = float(deform_rate) * rng.uniform(size=(k, k, k, 1)) ** (1.0 / 3.0)
        control = v / norm * radius
    sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0, 1.0)
    return Transform(shape=shape, angles_deg=angles, spacing=sp, control=control)  # type: ignore[arg-type]


def draw_transforms(
    shape: Sequence[int],
    times: int,
    seed: int | np.random.Generator | None = None,
    **kwargs,
) -> list[Transform]:
    """The ``times`` transforms :func:`augment_volumes` uses for ``seed`` (same kwargs)."""
    rng = np.random.default_rng(seed)
    return [random_transform(shape, rng, **kwargs) for _ in range(int(times))]


# --------------------------------------------------------------------------------------------
# applying it


@dataclass
class _VolumeSpec:
    mode: int  # 0 linear, 1 binary label, 2 nearest label
    fill: float
    on_val: float
    box: tuple[int, int, int, int, int, int] | None  # input non-zero box of labels (None: full)
    blocks: np.ndarray | None = None  # labels: _kernels.block_flags of the volume


def _classify(vol: np.ndarray, is_label: bool | None, fill: float | None) -> _VolumeSpec:
    dt = vol.dtype
    scan_vol = vol.view(np.uint8) if dt == np.bool_ else vol
    scan = None
    if is_label is None:
        is_label = dt == np.bool_
        if dt == np.uint8:
            scan = _numpy_kernels.label_scan(scan_vol)
            is_label = scan[0] == 0 or (scan[0] == 1 and scan[1] == 255)
    if is_label:
        ndist, value, box = scan if scan is not None else _numpy_kernels.label_scan(scan_vol)
        if ndist == 0:
            return _VolumeSpec(1, 0.0, 0.0, (0, 0, 0, 0, 0, 0))
        return _VolumeSpec(1 if ndist == 1 else 2, 0.0, float(value), tuple(int(b) for b in box))
    if fill is None:
        fill = 0.0
        if dt == np.int16 and vol.size and int(vol.min()) <= -500:
            fill = -1000.0
    return _VolumeSpec(0, float(fill), 0.0, None)


def _warp_into(vol: np.ndarray, out: np.ndarray, t: Transform, spec: _VolumeSpec, compiled: bool | None = None) -> None:
    """Warp ``vol`` into ``out``; ``compiled``: None chooses NumPy or the compiled kernel by
    :func:`grtv_nb._numpy_kernels.use_numpy`, True/False forces one."""
    full = (0, vol.shape[0], 0, vol.shape[1], 0, vol.shape[2])
    if spec.box is None:
        box = full
    else:
        out.fill(0)
        if spec.box[1] <= spec.box[0]:
            return
        box = t.source_box(spec.box)
    if t.is_identity:
        sl = (slice(box[0], box[1]), slice(box[2], box[3]), slice(box[4], box[5]))
        out[sl] = vol[sl]
        return
    dt = out.dtype
    kvol = vol.view(np.uint8) if vol.dtype == np.bool_ else vol
    kout = out.view(np.uint8) if dt == np.bool_ else out
    is_int = bool(np.issubdtype(kout.dtype, np.integer))
    lo, hi = (float(np.iinfo(kout.dtype).min), float(np.iinfo(kout.dtype).max)) if is_int else (-np.inf, np.inf)
    if t.control is not None:
        ctrl = t._voxel_control()
        (bzi, bzw), (byi, byw), (bxi, bxw) = t._tables()
        bxt = np.zeros((ctrl.shape[2], vol.shape[2]))
        for m in range(4):
            bxt[bxi + m, np.arange(vol.shape[2])] = bxw[:, m]
        has_def = True
    else:
        ctrl = np.zeros((4, 4, 4, 3))
        bzi = byi = np.zeros(1, np.int64)
        bzw = byw = np.zeros((1, 4))
        bxt = np.zeros((4, 1))
        has_def = False
    args = (kvol, kout, np.ascontiguousarray(t.matrix), t.centre, ctrl, bzi, bzw, byi, byw, bxt, has_def,
            np.asarray(box, dtype=np.int64), spec.mode, spec.on_val / 2.0, spec.on_val,
            spec.fill, is_int, lo, hi, _scratch_proto(kvol.dtype))
    n_out = (box[1] - box[0]) * (box[3] - box[2]) * (box[5] - box[4])
    if compiled is False or (compiled is None and _numpy_kernels.use_numpy(n_out)):
        # the process's first rounds: no kernel load (see grtv_nb._numpy_kernels)
        _numpy_kernels.warp(*args, threads=min(os.cpu_count() or 1, 8))
        return
    from . import _kernels as k

    if spec.mode != 0 and spec.blocks is None:
        spec.blocks = k.block_flags(kvol)
    args += (spec.blocks if spec.blocks is not None else np.zeros((0, 0, 0), np.uint8), t.reach_voxels())
    ntiles = k.warp_tiles(box)
    pool, nthreads = _pool()
    if nthreads == 1 or ntiles < 64:
        k.warp(*args, 0, ntiles)
        return
    # contiguous chunks (z varies fastest within them: cache reuse), handed out dynamically
    chunk = max(16, ntiles // (8 * nthreads))
    futures = [pool.submit(k.warp, *args, s, min(s + chunk, ntiles)) for s in range(0, ntiles, chunk)]
    for f in futures:
        f.result()


def load_kernels(dtypes: Sequence[np.dtype | type] = (np.int16, np.uint8, np.float32)) -> None:
    """Load (or compile) the compiled warp kernels for volumes of ``dtypes`` in this process, with
    and without deformation, for intensity and binary-label volumes (``grtv-nb warmup`` calls it;
    before, a process's first rounds run on NumPy, see :mod:`grtv_nb._numpy_kernels`)."""
    shape = (4, 6, 5)
    for dt in dtypes:
        vol = np.zeros(shape, dtype=dt)
        vol[1:3, 2:4, 1:4] = 255 if np.dtype(dt) == np.uint8 else 7
        spec = _classify(vol, None, None)
        for deform in (False, True):
            t = random_transform(shape, 0, deform=deform)
            _warp_into(vol, np.empty_like(vol), t, spec, compiled=True)


_POOL = None


def _pool():
    """A lazily created thread pool for the warp kernel (it releases the GIL), sized like numba's."""
    global _POOL
    import numba

    n = max(1, int(numba.get_num_threads()))
    if _POOL is None or _POOL[1] != n:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = (ThreadPoolExecutor(max_workers=n, thread_name_prefix="grtv-warp"), n)
    return _POOL


def _scratch_proto(dtype: np.dtype) -> np.ndarray:
    small_int = dtype.kind in "iu" and dtype.itemsize <= 2 or dtype == np.int32
    return np.empty(0, np.int32 if small_int else np.float32)


def apply_transform(
    volumes: Sequence[np.ndarray],
    transform: Transform,
    *,
    labels: Sequence[int] | None = None,
    fill_values: Sequence[float | None] | None = None,
) -> list[np.ndarray]:
    """Warp each volume with ``transform`` (same rules as :func:`augment_volumes`); returns new
    arrays of the input dtypes."""
    vols = _check_volumes(volumes)
    if tuple(transform.shape) != vols[0].shape:
        raise ValidationError(f"transform shape {transform.shape} differs from the volumes' {vols[0].shape}")
    specs = _specs(vols, labels, fill_values)
    outs = []
    for v, s in zip(vols, specs):
        o = np.empty_like(v)
        _warp_into(v, o, transform, s)
        outs.append(o)
    return outs


# --------------------------------------------------------------------------------------------
# validation


def _check_volumes(volumes) -> list[np.ndarray]:
    if isinstance(volumes, np.ndarray) or not isinstance(volumes, Sequence) or len(volumes) == 0:
        raise ValidationError("imageList/volumes must be a non-empty list of 3D numpy arrays")
    vols = []
    for i, v in enumerate(volumes):
        if not isinstance(v, np.ndarray):
            raise ValidationError(f"imageList[{i}] is a {type(v).__name__}, not a numpy array")
        if v.ndim != 3:
            raise ValidationError(f"imageList[{i}] must be a 3D array [z, y, x], got shape {v.shape}")
        if v.dtype.newbyteorder("=") not in AUGMENT_DTYPES:
            names = ", ".join(str(d) for d in AUGMENT_DTYPES)
            raise ValidationError(f"imageList[{i}] has unsupported dtype {v.dtype} (supported: {names})")
        if min(v.shape) < 1:
            raise ValidationError(f"imageList[{i}] is empty (shape {v.shape})")
        if v.shape != volumes[0].shape:
            raise ValidationError(
                f"imageList volumes must all have the same shape: imageList[0] is {volumes[0].shape}, "
                f"imageList[{i}] is {v.shape}"
            )
        vols.append(np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("=")))
    return vols


def _specs(vols, labels, fill_values) -> list[_VolumeSpec]:
    n = len(vols)
    label_set: set[int] = set()
    if labels is not None:
        try:
            label_set = {int(i) for i in labels}
        except (TypeError, ValueError):
            raise ValidationError(f"labels must be indices into the volume list, got {labels!r}") from None
        bad = [i for i in label_set if not -n <= i < n]
        if bad:
            raise ValidationError(f"labels has indices {bad} outside the volume list (length {n})")
        label_set = {i % n for i in label_set}
    if fill_values is not None:
        fill_values = list(fill_values)
        if len(fill_values) != n:
            raise ValidationError(f"fill_values has {len(fill_values)} entries for {n} volumes")
    specs = []
    for i, v in enumerate(vols):
        fill = fill_values[i] if fill_values is not None else None
        if fill is not None:
            try:
                fill = float(fill)
            except (TypeError, ValueError):
                raise ValidationError(f"fill_values[{i}] must be a number or None, got {fill!r}") from None
        specs.append(_classify(v, True if i in label_set else None, fill))
    return specs


def _check_names(names, n: int) -> list[str]:
    if names is None or (isinstance(names, Sequence) and not isinstance(names, str) and len(names) == 0):
        return [f"img_{i:04d}" for i in range(n)]
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ValidationError(f"fileNameList/names must be a list of {n} strings, got {names!r}")
    if len(names) != n:
        raise ValidationError(f"fileNameList/names has {len(names)} names for {n} volumes in imageList")
    out = []
    for i, s in enumerate(names):
        check_file_name(s, f"fileNameList[{i}]")
        check_file_name(f"{s}.0001.raw", f"fileNameList[{i}]")  # the longest name it makes fits too
        out.append(s)
    if len(set(out)) != len(out):
        raise ValidationError(f"fileNameList has duplicate names: {out}")
    return out


# --------------------------------------------------------------------------------------------
# the public entry point


def augment_volumes(
    volumes: Sequence[np.ndarray],
    out_dir: str | os.PathLike,
    times: int = 5,
    names: Sequence[str] | None = None,
    rotate: bool = True,
    rotate_range_deg: float = 2.5,
    deform: bool = False,
    deform_rate: float = 0.25,
    seed: int | np.random.Generator | None = None,
    labels: Sequence[int] | None = None,
    fill_values: Sequence[float | None] | None = None,
    write_mhd: bool = True,
    spacing: Sequence[float] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write ``times`` randomly rotated/deformed copies of aligned volumes (``augmentImg3D``).

    Parameters
    ----------
    volumes : list of ndarray (nz, ny, nx)
        Same shape; dtypes uint8, int8, int16, uint16, int32, uint32, float32, float64, bool.
        E.g. ``[ct, body, lung]``. Every round applies ONE random transform to all of them.
    out_dir : path
        Output folder, created if missing (an existing file there is an error).
    times : int
        Number of rounds (>= 0).
    names : list of str, optional
        File prefixes, one per volume (default ``img_0000``, ``img_0001``, ...).
    rotate, rotate_range_deg : bool, float
        Rotate about x, y and z by angles uniform in ``[-rotate_range_deg, rotate_range_deg]``.
    deform, deform_rate : bool, float
        Smooth random deformation with Euclidean displacement <= ``deform_rate`` in the -1..1
        normalised space (see the module docstring).
    seed : int or Generator, optional
        Makes a run reproducible; :func:`draw_transforms` with the same seed and options returns
        the transforms used.
    labels : list of int, optional
        Indices of volumes to treat as labels, in addition to the automatically detected ones
        (bool volumes, uint8 volumes holding only 0 and 255).
    fill_values : list of float or None, optional
        Per-volume value for samples from outside the input (None entries: automatic, -1000
        for int16 volumes with minimum <= -500, else 0; labels always 0).
    write_mhd : bool
        Write a MetaImage header ``<prefix>.<NNNN>.mhd`` beside each raw file.
    spacing : (dz, dy, dx), optional
        Voxel size (mm): rotations are done in physical space and the headers carry it.
    progress : bool
        Show a tqdm progress bar over rounds.

    Returns
    -------
    list of Path
        The raw files written, round by round, in volume order within a round:
        ``out_dir / f"{prefix}.{round:04d}.raw"`` with round = 1 .. times. Each file holds the
        volume's voxels in its own dtype (bool as uint8 0/1), C order, little-endian.

    Raises
    ------
    ValidationError
        On bad arguments (a name prefix must be a plain file name: no path separator, control
        character or leading dot), or an ``out_dir`` inside a folder a loaded study was read
        from; before anything is written.
    FolderBusyError
        Another run writes into ``out_dir``.
    WriteError
        The disk refused a write; the rounds committed before stay, the failed one is absent.

    Notes
    -----
    Each round appears whole or not at all, even if the process is killed: its files (raw and
    headers of every volume) are written into a staging folder inside ``out_dir`` and moved into
    place under a journal (:class:`grtv_nb.fileio.FolderTransaction`); the next run into the same
    folder finishes a round a killed run was moving and removes its staging folder. Existing
    files with the same names are replaced. Files and folders get the umask's permissions.
    """
    vols = _check_volumes(volumes)
    shape = vols[0].shape
    if isinstance(times, bool) or not isinstance(times, (int, np.integer)):
        raise ValidationError(f"augmentTimes/times must be an int >= 0, got {times!r}")
    if times < 0:
        raise ValidationError(f"augmentTimes/times must be >= 0, got {times}")
    prefixes = _check_names(names, len(vols))
    for name, val in (("rotateAngRange/rotate_range_deg", rotate_range_deg),
                      ("deformRate/deform_rate", deform_rate)):
        try:
            ok = np.isfinite(float(val)) and float(val) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValidationError(f"{name} must be a number >= 0, got {val!r}")
    if spacing is not None:
        try:
            sp = tuple(float(s) for s in spacing)
        except (TypeError, ValueError):
            sp = ()
        if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
            raise ValidationError(f"spacing must be 3 positive numbers (dz, dy, dx), got {spacing!r}")
        spacing = sp
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise ValidationError(f"outputDirectory/out_dir {str(out)!r} is a file, not a folder")
    check_outside_sources(out, "outputDirectory/out_dir")
    specs = _specs(vols, labels, fill_values)
    transforms = draw_transforms(shape, times, seed, rotate=rotate, rotate_range_deg=rotate_range_deg,
                                 deform=deform, deform_rate=deform_rate, spacing=spacing)

    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    # One output buffer per volume, reused every round (memory: one copy of the inputs). Files are
    # written into the folder's staging area by a background thread while the next volume is
    # warped (the warp and the write both release the GIL); a buffer is only refilled once its
    # previous write has finished. After a round's files, the same thread commits the round (its
    # files moved into place under the folder's journal), so a round appears whole or not at all.
    bufs = [np.empty_like(v) for v in vols]
    pending: list = [None] * len(vols)
    written: list[Path] = []
    with FolderTransaction(out, "outputDirectory/out_dir") as tx, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="grtv-augment-write") as pool:
        stage = tx.stage()

        def save(raw_name: str, buf: np.ndarray) -> None:
            path = stage / raw_name
            try:
                _write_le(path, buf)
                if write_mhd:
                    mhd = path.with_suffix(".mhd")
                    mhd.write_text(mhd_header_text(shape, buf.dtype, spacing=spacing, raw_name=raw_name),
                                   encoding="ascii")
            except BaseException as exc:
                for p in (path, path.with_suffix(".mhd")):
                    p.unlink(missing_ok=True)
                err = write_error(exc, "augmented volume", out / raw_name)
                if err is exc:
                    raise
                raise err from exc

        def commit(saves: list, names: list[str]) -> None:
            for f in saves:
                f.result()  # a failed write: the round is not committed
            tx.commit(names)

        commits: list = []
        try:
            for r, t in enumerate(tqdm(transforms, desc="augment", unit="round", disable=not progress), start=1):
                for c in commits:
                    if c.done():
                        c.result()
                saves, names = [], []
                for i, (v, buf, spec, prefix) in enumerate(zip(vols, bufs, specs, prefixes)):
                    if pending[i] is not None:
                        pending[i].result()
                    _warp_into(v, buf, t, spec)
                    raw_name = f"{prefix}.{r:04d}.raw"
                    pending[i] = pool.submit(save, raw_name, buf)
                    saves.append(pending[i])
                    names += [raw_name, raw_name[:-4] + ".mhd"] if write_mhd else [raw_name]
                commits.append(pool.submit(commit, saves, names))
                written += [out / f"{prefix}.{r:04d}.raw" for prefix in prefixes]
            for c in commits:
                c.result()
        except BaseException:
            for f in [*pending, *commits]:
                if f is not None:
                    f.cancel()
            raise
    return written


def _write_le(path: Path, arr: np.ndarray) -> None:
    """Raw write of a C-contiguous native array (bool as uint8), little-endian, into the staging
    area (made final by the round's commit)."""
    a = arr.view(np.uint8) if arr.dtype == np.bool_ else arr
    if a.dtype.byteorder == ">":  # pragma: no cover - big-endian hosts
        a = a.astype(a.dtype.newbyteorder("<"))
    with open(path, "wb") as f:
        _tofile(a.reshape(-1), f)


_tofile = write_array  # module-level so tests can simulate a failing disk
