"""The voxel grid of a study: physical coordinates (mm) of voxel centres and their orientation.

Convention (used everywhere in grtv_nb)
---------------------------------------
Volumes are numpy arrays indexed ``[z, y, x]``. For every axis-aligned series (all the standard
patient positions HFS, HFP, FFS, FFP, HFDL, HFDR, FFDL, FFDR, and sagittal/coronal acquisitions)
the stored DICOM pixels are permuted and flipped into the *canonical* frame: ``x`` increases
towards the patient's left, ``y`` towards posterior, ``z`` towards superior (DICOM LPS), and the
coordinates ``x``, ``y``, ``z`` are the patient coordinates (mm) of the voxel centres, always
increasing. The same patient scanned in any position therefore gives the same array.

Oblique series keep their stored order; their coordinates are then positions (mm) along the
image axes (row direction, column direction, slice normal), and ``direction`` (whose columns are
those axes in patient space) maps them to patient coordinates: ``p = direction @ (x, y, z)``.
For axis-aligned series ``direction`` is the identity.

``z`` holds each slice's own position: slice spacing need not be uniform.
"""

from __future__ import annotations

import numpy as np

from ._record import FrozenRecord
from .errors import GeometryError

_AXIS_TOL = 1e-3


def slice_weights(z: np.ndarray) -> np.ndarray:
    """Thickness (mm) each of the slices at positions ``z`` (increasing, at least 2) stands for:
    half the gaps to its neighbours, the end slices their own gap."""
    d = np.diff(np.asarray(z, dtype=np.float64))
    return 0.5 * (np.concatenate([[d[0]], d]) + np.concatenate([d, [d[-1]]]))


class Grid(FrozenRecord):
    """A rectilinear voxel grid in the canonical frame.

    Attributes
    ----------
    x, y, z : ndarray of float64
        Coordinates (mm) of the voxel centres along each axis, strictly increasing.
    direction : ndarray, shape (3, 3)
        Columns are the patient-space directions of the x, y and z axes.
    frame_of_reference_uid : str
        DICOM Frame of Reference the coordinates belong to ("" if unknown).
    slice_thickness : float
        Nominal slice thickness (mm), used for contour matching on 1-slice grids.
    """

    _fields = ("x", "y", "z", "direction", "frame_of_reference_uid", "slice_thickness")
    _eq = False  # compared by identity (same_as compares geometry)

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    direction: np.ndarray
    frame_of_reference_uid: str
    slice_thickness: float

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, direction: np.ndarray | None = None,
                 frame_of_reference_uid: str = "", slice_thickness: float = 0.0):
        self._init(x=x, y=y, z=z, direction=np.eye(3) if direction is None else direction,
                   frame_of_reference_uid=frame_of_reference_uid, slice_thickness=slice_thickness)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.z), len(self.y), len(self.x))

    @property
    def dx(self) -> float:
        return _step(self.x)

    @property
    def dy(self) -> float:
        return _step(self.y)

    @property
    def dz(self) -> float:
        """Median slice spacing (mm); the slice thickness for a 1-slice grid."""
        if len(self.z) > 1:
            return median(np.diff(self.z))
        return float(self.slice_thickness or 1.0)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(dz, dy, dx) in mm; dz is the median slice spacing."""
        return (self.dz, self.dy, self.dx)

    @property
    def axis_aligned(self) -> bool:
        return bool(np.allclose(self.direction, np.eye(3), atol=_AXIS_TOL))

    @property
    def uniform_z(self) -> bool:
        if len(self.z) < 3:
            return True
        d = np.diff(self.z)
        return bool(np.all(np.abs(d - d[0]) < 1e-3 * max(abs(d[0]), 1.0)))

    def slice_weights(self) -> np.ndarray:
        """Thickness (mm) each slice stands for: half the gaps to its neighbours (ends: own gap)."""
        if len(self.z) == 1:
            return np.array([self.dz])
        return slice_weights(self.z)

    def voxel_volumes_cc(self) -> np.ndarray:
        """Per-slice voxel volume in cc (shape (nz,))."""
        return self.slice_weights() * self.dx * self.dy / 1000.0

    def to_canonical_points(self, points: np.ndarray) -> np.ndarray:
        """Patient coordinates (N, 3) -> grid-frame coordinates (N, 3) as (x, y, z)."""
        return np.asarray(points, dtype=np.float64) @ self.direction

    def to_patient_points(self, xyz: np.ndarray) -> np.ndarray:
        """Grid-frame coordinates (N, 3) -> patient coordinates (N, 3)."""
        return np.asarray(xyz, dtype=np.float64) @ self.direction.T

    def continuous_index(self, axis: str, coords: np.ndarray) -> np.ndarray:
        """Fractional voxel index of coordinates along one axis (linear between centres,
        extrapolated linearly outside)."""
        c = {"x": self.x, "y": self.y, "z": self.z}[axis]
        coords = np.asarray(coords, dtype=np.float64)
        if len(c) == 1:
            step = {"x": self.dx, "y": self.dy, "z": self.dz}[axis]
            return (coords - c[0]) / step
        if axis in ("x", "y") or self.uniform_z:
            return (coords - c[0]) / (c[1] - c[0])
        idx = np.interp(coords, c, np.arange(len(c), dtype=np.float64))
        lo, hi = coords < c[0], coords > c[-1]
        idx[lo] = (coords[lo] - c[0]) / (c[1] - c[0])
        idx[hi] = len(c) - 1 + (coords[hi] - c[-1]) / (c[-1] - c[-2])
        return idx

    def same_as(self, other: Grid, tol: float = 1e-3) -> bool:
        return (
            self.shape == other.shape
            and np.allclose(self.x, other.x, atol=tol)
            and np.allclose(self.y, other.y, atol=tol)
            and np.allclose(self.z, other.z, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    def describe(self) -> str:
        nz, ny, nx = self.shape
        s = f"{nx}x{ny}x{nz} voxels, {self.dx:.3g} x {self.dy:.3g} x {self.dz:.3g} mm"
        if not self.uniform_z:
            s += " (non-uniform slice spacing)"
        if not self.axis_aligned:
            s += " (oblique)"
        return s


def _step(c: np.ndarray) -> float:
    return float(c[1] - c[0]) if len(c) > 1 else 1.0


def median(values) -> float:
    """The median of finite values (at least one), the number ``np.median`` gives: the middle value,
    or the mean of the two middle ones. ``np.median`` imports ``numpy.ma`` on its first call
    (~15 ms of a fresh process's first read)."""
    srt = np.sort(np.asarray(values, dtype=np.float64).ravel())
    mid = len(srt) // 2
    return float(srt[mid] if len(srt) % 2 else (srt[mid - 1] + srt[mid]) / 2.0)


class StorageLayout(FrozenRecord):
    """How a stored stack (slices sorted along the normal, rows, columns) maps onto the
    canonical frame: ``canonical = np.flip(stack.transpose(perm), flips)``."""

    _fields = ("perm", "flips")

    perm: tuple[int, int, int]
    flips: tuple[int, ...]

    def __init__(self, perm: tuple[int, int, int], flips: tuple[int, ...]):
        self._init(perm=perm, flips=flips)

    def to_canonical(self, stack: np.ndarray) -> np.ndarray:
        out = stack.transpose(self.perm)
        if self.flips:
            out = np.flip(out, self.flips)
        return np.ascontiguousarray(out)

    def to_storage(self, canonical: np.ndarray) -> np.ndarray:
        out = np.flip(canonical, self.flips) if self.flips else canonical
        return np.ascontiguousarray(out.transpose(np.argsort(self.perm)))


def grid_from_planes(
    positions: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing: tuple[float, float],
    rows: int,
    cols: int,
    *,
    frame_of_reference_uid: str = "",
    slice_thickness: float = 0.0,
) -> tuple[Grid, StorageLayout]:
    """Build the canonical grid of a stack of parallel planes.

    Parameters
    ----------
    positions : (nz, 3) array
        ImagePositionPatient of each plane, already sorted along the plane normal.
    orientation : (6,) array
        ImageOrientationPatient (row direction then column direction).
    pixel_spacing : (row spacing, column spacing)
        DICOM PixelSpacing (mm): distance between rows, then between columns.
    rows, cols : int
        Pixel matrix size.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    iop = np.asarray(orientation, dtype=np.float64)
    u, v = iop[:3], iop[3:]
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    if abs(float(u @ v)) > 1e-3:
        raise GeometryError(f"ImageOrientationPatient {list(iop)} is not orthogonal")
    n = np.cross(u, v)
    dy, dx = float(pixel_spacing[0]), float(pixel_spacing[1])
    if dx <= 0 or dy <= 0:
        raise GeometryError(f"PixelSpacing {pixel_spacing} must be positive")
    s = positions @ n
    dirs = np.stack([n, v, u])  # storage axes: slice, row, column
    steps = [None, dy, dx]
    aligned = all(np.max(np.abs(d)) > 1 - _AXIS_TOL for d in dirs)
    if aligned:
        paxes = [int(np.argmax(np.abs(d))) for d in dirs]
        if sorted(paxes) != [0, 1, 2]:
            raise GeometryError(f"ImageOrientationPatient {list(iop)} is degenerate")
        signs = [float(np.sign(d[k])) for d, k in zip(dirs, paxes)]
        coords = [
            positions[:, paxes[0]].copy(),
            positions[0, paxes[1]] + np.arange(rows) * dy * signs[1],
            positions[0, paxes[2]] + np.arange(cols) * dx * signs[2],
        ]
        # canonical axis c (0=z,1=y,2=x) is patient axis 2-c
        perm = tuple(paxes.index(2 - c) for c in range(3))
        flips = tuple(c for c in range(3) if signs[perm[c]] < 0)
        canon = [coords[perm[c]] for c in range(3)]
        canon = [cc[::-1].copy() if c in flips else cc for c, cc in enumerate(canon)]
        direction = np.eye(3)
        layout = StorageLayout(perm, flips)  # type: ignore[arg-type]
        zc, yc, xc = canon
    else:
        xc = positions[0] @ u + np.arange(cols) * dx
        yc = positions[0] @ v + np.arange(rows) * dy
        zc = s.copy()
        direction = np.stack([u, v, n], axis=1)
        layout = StorageLayout((0, 1, 2), ())
    del steps
    grid = Grid(
        x=np.asarray(xc, dtype=np.float64),
        y=np.asarray(yc, dtype=np.float64),
        z=np.asarray(zc, dtype=np.float64),
        direction=direction,
        frame_of_reference_uid=frame_of_reference_uid,
        slice_thickness=float(slice_thickness or 0.0),
    )
    return grid, layout


def resample_onto(values: np.ndarray, src: Grid, dst: Grid, *, fill: float = 0.0) -> np.ndarray:
    """Linearly interpolate ``values`` (on ``src``) at the voxel centres of ``dst``.

    Voxel centres of ``dst`` outside the hull of ``src``'s voxel centres take ``fill``. When both
    grids share their axes (the usual case) this is a separable trilinear interpolation; otherwise
    every target centre is mapped through patient space and sampled with
    ``scipy.ndimage.map_coordinates(order=1)``.
    """
    from .transforms import sample_separable

    if np.allclose(src.direction, dst.direction, atol=_AXIS_TOL):
        iz = src.continuous_index("z", dst.z)
        iy = src.continuous_index("y", dst.y)
        ix = src.continuous_index("x", dst.x)
        return sample_separable(values, iz, iy, ix, fill=fill, dtype=np.float32)
    from scipy.ndimage import map_coordinates

    out = np.empty(dst.shape, dtype=np.float32)
    yy, xx = np.meshgrid(dst.y, dst.x, indexing="ij")
    for k, zk in enumerate(dst.z):
        pts = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, zk)], axis=1)
        q = src.to_canonical_points(dst.to_patient_points(pts))
        idx = np.stack([
            src.continuous_index("z", q[:, 2]),
            src.continuous_index("y", q[:, 1]),
            src.continuous_index("x", q[:, 0]),
        ])
        out[k] = map_coordinates(values, idx, order=1, mode="constant", cval=fill).reshape(xx.shape)
    return out
