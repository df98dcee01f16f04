"""Surface meshes of ROI masks: extraction (closed, outward-oriented triangle meshes in patient mm),
mesh volume, and binary STL / PLY writers.

Method
------
The mask is cropped to its bounding box padded by one empty voxel on every side (so the surface is
always closed) and contoured at the iso-level 0.5 between voxel centres: VTK's flying-edges
(``vtkFlyingEdges3D``) when ``vtk`` is importable, else scikit-image's Lewiner marching cubes. The
surface therefore passes half-way between inside and outside voxel centres. Vertices are computed
in fractional voxel indices and mapped to patient coordinates through the grid's coordinate arrays
(linear between voxel centres, so non-uniform slice spacing is honoured; linear extrapolation
beyond the first/last slice) and then through ``grid.direction`` (oblique grids). Faces are
oriented so that normals (right-hand rule on ``(v0, v1, v2)``) point outwards, i.e. the signed
volume is positive.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GRTVError, ValidationError, warn
from .geometry import Grid


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh.

    Attributes
    ----------
    vertices : ndarray float32 (N, 3)
        Vertex positions in patient coordinates (mm).
    faces : ndarray int32 (M, 3)
        Vertex indices of each triangle, counter-clockwise seen from outside (outward normals).
    """

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def n_faces(self) -> int:
        return int(len(self.faces))

    @property
    def is_empty(self) -> bool:
        return self.n_faces == 0

    def volume_cc(self) -> float:
        """Enclosed volume (cc) by the signed tetrahedron sum (positive for outward normals)."""
        return mesh_volume_mm3(self.vertices, self.faces) / 1000.0

    def area_mm2(self) -> float:
        v = self.vertices.astype(np.float64)
        f = self.faces
        return float(0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum())

    def normals(self) -> np.ndarray:
        """Unit face normals (M, 3), float32."""
        v = self.vertices.astype(np.float64)
        f = self.faces
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        ln = np.linalg.norm(n, axis=1, keepdims=True)
        ln[ln == 0] = 1.0
        return (n / ln).astype(np.float32)

    def to_pyvista(self):
        """The mesh as a ``pyvista.PolyData`` (pyvista imported lazily)."""
        import pyvista as pv

        faces = np.hstack([np.full((self.n_faces, 1), 3, np.int64), self.faces.astype(np.int64)]).ravel()
        return pv.PolyData(self.vertices.astype(np.float32), faces)

    def __repr__(self) -> str:
        return f"<Mesh {self.n_vertices} vertices, {self.n_faces} triangles>"


def mesh_volume_mm3(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume (mm^3) enclosed by a closed triangle mesh (divergence theorem)."""
    if len(faces) == 0:
        return 0.0
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    # translate to the centroid to limit round-off
    o = v.mean(axis=0)
    a, b, c = a - o, b - o, c - o
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def index_to_coord(coords: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Map fractional indices to coordinates: linear between centres, extrapolated outside."""
    c = np.asarray(coords, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    n = len(c)
    if n == 1:
        return c[0] + f  # caller scales single-slice steps
    out = np.interp(f, np.arange(n, dtype=np.float64), c)
    lo, hi = f < 0, f > n - 1
    out[lo] = c[0] + f[lo] * (c[1] - c[0])
    out[hi] = c[-1] + (f[hi] - (n - 1)) * (c[-1] - c[-2])
    return out


def _contour_vtk(
    vol: np.ndarray, origin: tuple[float, float, float], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Flying edges at 0.5 on a (z, y, x) uint8 volume; vertices (x, y, z) float32 with
    ``origin + index * spacing``, faces int32."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D

    nz, ny, nx = vol.shape
    img = vtkImageData()
    img.SetDimensions(nx, ny, nz)
    img.SetOrigin(*origin)
    img.SetSpacing(*spacing)
    arr = numpy_to_vtk(vol.ravel(), deep=False)
    img.GetPointData().SetScalars(arr)
    fe = vtkFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, 0.5)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.InterpolateAttributesOff()
    fe.Update()
    out = fe.GetOutput()
    if out.GetNumberOfPoints() == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    pts = vtk_to_numpy(out.GetPoints().GetData())
    polys = out.GetPolys()
    try:
        faces = vtk_to_numpy(polys.GetConnectivityArray()).reshape(-1, 3)
    except AttributeError:  # pragma: no cover - VTK < 9
        faces = vtk_to_numpy(polys.GetData()).reshape(-1, 4)[:, 1:]
    del arr
    return np.array(pts, dtype=np.float32), faces.astype(np.int32)


def _contour_skimage(
    vol: np.ndarray, origin: tuple[float, float, float], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Lewiner marching cubes at 0.5; same conventions as :func:`_contour_vtk`."""
    from skimage.measure import marching_cubes

    verts, faces, _, _ = marching_cubes(vol.astype(np.float32), level=0.5, allow_degenerate=False)
    xyz = verts[:, ::-1].astype(np.float64) * np.asarray(spacing) + np.asarray(origin)
    return xyz.astype(np.float32), faces.astype(np.int32)


_FLIPS: dict[bool, bool] = {}


def _backend_flips(use_vtk: bool) -> bool:
    """Whether a backend's triangles face inwards in index space (found once on a small cube)."""
    if use_vtk not in _FLIPS:
        cube = np.zeros((5, 5, 5), np.uint8)
        cube[1:4, 1:4, 1:4] = 1
        fn = _contour_vtk if use_vtk else _contour_skimage
        v, f = fn(cube, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        _FLIPS[use_vtk] = mesh_volume_mm3(v, f) < 0
    return _FLIPS[use_vtk]


def mask_to_mesh(mask: np.ndarray, grid: Grid, *, backend: str = "auto", name: str = "mask") -> Mesh:
    """Closed, outward-oriented triangle mesh (patient mm) of a boolean mask on ``grid``.

    Parameters
    ----------
    mask : ndarray bool (z, y, x)
        The structure; integer masks count nonzero voxels as inside.
    grid : Grid
        The mask's grid (non-uniform z and oblique directions are honoured).
    backend : {"auto", "vtk", "skimage"}
        Contouring algorithm (see the module docstring); ``"auto"`` uses VTK when importable.
    name : str
        Used in messages.

    Returns
    -------
    Mesh
        Empty (0 vertices) for an empty mask, with a warning.
    """
    from .validate import as_bool_mask

    m = as_bool_mask(mask, grid.shape, name)
    if backend not in ("auto", "vtk", "skimage"):
        raise ValidationError(f"backend must be 'auto', 'vtk' or 'skimage', got {backend!r}")
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    if len(zs) == 0:
        warn(f"{name} is empty: its mesh has no triangles")
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    sub = m[z0:z1]
    proj = sub.any(axis=0)
    ys = np.flatnonzero(proj.any(axis=1))
    xs = np.flatnonzero(proj.any(axis=0))
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    nzm, nym, nxm = m.shape
    if z0 >= 1 and y0 >= 1 and x0 >= 1 and z1 < nzm and y1 < nym and x1 < nxm:
        # the one-voxel empty margin exists in the mask: crop (no copy when the crop is contiguous)
        box = np.ascontiguousarray(m[z0 - 1 : z1 + 1, y0 - 1 : y1 + 1, x0 - 1 : x1 + 1]).view(np.uint8)
    else:
        box = np.zeros((z1 - z0 + 2, y1 - y0 + 2, x1 - x0 + 2), dtype=np.uint8)
        box[1:-1, 1:-1, 1:-1] = sub[:, y0:y1, x0:x1]

    use_vtk = backend == "vtk"
    if backend == "auto":
        try:
            import vtkmodules.vtkFiltersCore  # noqa: F401

            use_vtk = True
        except ImportError:
            use_vtk = False
    # VTK/skimage place vertices at origin + index * spacing: exact for x, y (uniform in-plane)
    # and for evenly spaced slices; otherwise z is mapped through the slice positions afterwards.
    nz = len(grid.z)
    zstep = float(grid.z[-1] - grid.z[0]) / (nz - 1) if nz > 1 else grid.dz
    even_z = nz == 1 or float(np.abs(grid.z - (grid.z[0] + zstep * np.arange(nz))).max()) < 1e-4
    origin = (
        float(grid.x[0] + (x0 - 1) * grid.dx),
        float(grid.y[0] + (y0 - 1) * grid.dy),
        float(grid.z[0] + (z0 - 1) * zstep) if even_z else float(z0 - 1),
    )
    spacing = (grid.dx, grid.dy, zstep if even_z else 1.0)
    fn = _contour_vtk if use_vtk else _contour_skimage
    xyz, faces = fn(box, origin, spacing)
    if len(faces) == 0:
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    if not even_z:
        xyz[:, 2] = index_to_coord(grid.z, xyz[:, 2])
    if not grid.axis_aligned:
        xyz = grid.to_patient_points(xyz).astype(np.float32)
    # The contouring backends emit a fixed winding for "inside = high values" in index space; the
    # index -> patient map is increasing along each axis, so only det(direction) can flip it.
    flip = _backend_flips(use_vtk) != (float(np.linalg.det(grid.direction)) < 0)
    if flip:
        faces = faces[:, ::-1]
    return Mesh(np.ascontiguousarray(xyz, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int32))


# ----------------------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------------------
def _atomic_write(path: str | os.PathLike, data: bytes | list[bytes]) -> Path:
    from .fileio import write_bytes_atomic

    return write_bytes_atomic(path, data, "mesh path")


def _check_mesh(mesh: Mesh) -> None:
    if not isinstance(mesh, Mesh):
        raise ValidationError(f"mesh must be a grtv_nb.mesh.Mesh, got {type(mesh).__name__}")
    if mesh.is_empty:
        raise GRTVError("cannot write an empty mesh (the structure has no voxels)")


def write_stl(mesh: Mesh, path: str | os.PathLike, *, header: str = "grtv_nb") -> Path:
    """Write a binary STL (little-endian; facet normals outward; coordinates in mm), atomically."""
    _check_mesh(mesh)
    v = mesh.vertices.astype(np.float32)
    f = mesh.faces
    rec = np.zeros(len(f), dtype=np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")]))
    rec["n"] = mesh.normals()
    rec["v"] = v[f]
    head = header.encode("ascii", "replace")[:80].ljust(80, b" ")
    if head.lower().startswith(b"solid"):
        head = b"grtv_nb " + head[:72]
    return _atomic_write(path, [head, struct.pack("<I", len(f)), rec.tobytes()])


def write_ply(mesh: Mesh, path: str | os.PathLike, *, comment: str = "grtv_nb mesh, units mm") -> Path:
    """Write a binary little-endian PLY (float32 vertices, uchar-count int32 faces), atomically."""
    _check_mesh(mesh)
    v = np.ascontiguousarray(mesh.vertices, dtype="<f4")
    f = mesh.faces
    rec = np.zeros(len(f), dtype=np.dtype([("n", "u1"), ("i", "<i4", (3,))]))
    rec["n"] = 3
    rec["i"] = f
    comment = comment.replace("\n", " ")
    head = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment {comment}\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii", "replace")
    return _atomic_write(path, [head, v.tobytes(), rec.tobytes()])


def write_mesh(mesh: Mesh, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write ``mesh`` as STL or PLY; ``fmt`` ("stl"/"ply") defaults to the file extension."""
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    if fmt == "stl":
        return write_stl(mesh, path)
    if fmt == "ply":
        return write_ply(mesh, path)
    raise ValidationError(f"mesh format must be 'stl' or 'ply', got {fmt!r} (path {str(path)!r})")
