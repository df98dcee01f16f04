"""Surface meshes (grtv_nb.mesh): closed, outward-oriented, volume vs the voxel volume, non-uniform
z and oblique grids, STL/PLY files read back by trimesh and pyvista (VTK)."""

from __future__ import annotations

import numpy as np
import pytest

from grtv_nb.errors import GRTVError, GRTVWarning, ValidationError
from grtv_nb.geometry import Grid
from grtv_nb.mesh import Mesh, mask_to_mesh, mesh_volume_mm3, write_mesh, write_ply, write_stl


def _grid(nonuniform: bool = False) -> Grid:
    c = np.arange(-40.0, 40.0 + 1e-9, 1.25)
    if nonuniform:
        steps = np.where(np.arange(40) % 3 == 0, 3.0, 1.5)  # 1.5 / 1.5 / 3 mm slices
        z = -45.0 + np.concatenate([[0.0], np.cumsum(steps)])
    else:
        z = np.arange(-40.0, 40.0 + 1e-9, 2.0)
    return Grid(x=c, y=c - 5.0, z=z)


def _coords(grid: Grid):
    return np.meshgrid(grid.z, grid.y, grid.x, indexing="ij")


def _sphere(grid: Grid, r: float = 28.0) -> np.ndarray:
    zz, yy, xx = _coords(grid)
    return xx**2 + (yy + 5.0) ** 2 + zz**2 <= r**2


def _torus(grid: Grid, big: float = 22.0, small: float = 9.0) -> np.ndarray:
    zz, yy, xx = _coords(grid)
    return (np.sqrt(xx**2 + (yy + 5.0) ** 2) - big) ** 2 + zz**2 <= small**2


def _voxel_volume_cc(mask: np.ndarray, grid: Grid) -> float:
    return float((mask.sum(axis=(1, 2)) * grid.voxel_volumes_cc()).sum())


def _check_closed_oriented(mesh: Mesh) -> None:
    f = mesh.faces.astype(np.int64)
    n = int(f.max()) + 1
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    _, counts = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_counts=True)
    assert np.all(counts == 2), "every edge must be shared by exactly two triangles"
    # consistent orientation: each directed edge appears once (its twin runs the other way)
    assert len(np.unique(a * n + b)) == len(a)
    assert mesh.volume_cc() > 0  # outward normals


@pytest.mark.parametrize("nonuniform", [False, True])
@pytest.mark.parametrize("shape", ["sphere", "torus"])
@pytest.mark.parametrize("backend", ["vtk", "skimage"])
def test_closed_oriented_and_volume(shape, nonuniform, backend):
    grid = _grid(nonuniform)
    mask = _sphere(grid) if shape == "sphere" else _torus(grid)
    vox = _voxel_volume_cc(mask, grid)
    assert vox > 10.0
    mesh = mask_to_mesh(mask, grid, backend=backend)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    assert mesh.vertices.shape[1] == 3 and mesh.faces.shape[1] == 3
    _check_closed_oriented(mesh)
    assert mesh.volume_cc() == pytest.approx(vox, rel=0.03)
    # closed-form volume of the continuous shape (looser: voxelisation)
    exact = 4 / 3 * np.pi * 28.0**3 / 1000 if shape == "sphere" else 2 * np.pi**2 * 22.0 * 9.0**2 / 1000
    assert mesh.volume_cc() == pytest.approx(exact, rel=0.08 if nonuniform else 0.04)
    # vertices in patient mm, at the shape's extent (within a voxel); the shape is centred at y = -5
    v = mesh.vertices.astype(np.float64)
    rout = 28.0 if shape == "sphere" else 31.0
    assert np.abs(v[:, 0].min() + rout) < 1.25 and np.abs(v[:, 0].max() - rout) < 1.25
    assert np.abs(v[:, 1].min() - (-5.0 - rout)) < 1.25 and np.abs(v[:, 1].max() - (-5.0 + rout)) < 1.25
    # Euler characteristic: sphere 2, torus 0
    nv, nf = mesh.n_vertices, mesh.n_faces
    ne = 3 * nf // 2
    assert nv - ne + nf == (2 if shape == "sphere" else 0)


def test_backends_agree_and_edge_of_grid():
    grid = _grid(True)
    mask = np.zeros(grid.shape, bool)
    mask[:12, 20:50, 10:40] = True  # touches the first slice: surface extrapolated half a gap out
    a = mask_to_mesh(mask, grid, backend="vtk")
    b = mask_to_mesh(mask, grid, backend="skimage")
    _check_closed_oriented(a)
    _check_closed_oriented(b)
    assert a.volume_cc() == pytest.approx(b.volume_cc(), rel=1e-3)
    # a box mask: exact voxel volume except for the chamfered edges and corners
    assert a.volume_cc() == pytest.approx(_voxel_volume_cc(mask, grid), rel=0.05)
    zmin = grid.z[0] - 0.5 * (grid.z[1] - grid.z[0])
    assert float(a.vertices[:, 2].min()) == pytest.approx(zmin, abs=1e-4)
    zmax = 0.5 * (grid.z[11] + grid.z[12])
    assert float(a.vertices[:, 2].max()) == pytest.approx(zmax, abs=1e-4)


def test_oblique_grid_rotates_the_mesh():
    grid = _grid()
    mask = _sphere(grid, 20.0)
    plain = mask_to_mesh(mask, grid)
    t = np.deg2rad(30)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    ob = Grid(x=grid.x, y=grid.y, z=grid.z, direction=rot)
    m = mask_to_mesh(mask, ob)
    _check_closed_oriented(m)
    assert np.allclose(m.vertices, plain.vertices @ rot.T.astype(np.float32), atol=1e-3)


def test_single_slice_and_empty():
    grid = Grid(x=np.arange(20.0), y=np.arange(20.0), z=np.array([5.0]), slice_thickness=3.0)
    mask = np.zeros(grid.shape, bool)
    mask[0, 5:15, 5:15] = True
    mesh = mask_to_mesh(mask, grid)
    _check_closed_oriented(mesh)
    assert float(mesh.vertices[:, 2].min()) == pytest.approx(3.5)
    assert float(mesh.vertices[:, 2].max()) == pytest.approx(6.5)
    with pytest.warns(GRTVWarning, match="empty"):
        empty = mask_to_mesh(np.zeros(grid.shape, bool), grid, name="ROI 'x'")
    assert empty.is_empty
    with pytest.raises(GRTVError, match="empty"):
        write_stl(empty, "/tmp/never-written.stl")
    with pytest.raises(ValidationError, match="shape"):
        mask_to_mesh(mask[:, :5], grid)
    with pytest.raises(ValidationError, match="boolean"):
        mask_to_mesh(mask.astype(np.float32), grid)


def test_signed_volume_of_a_cube():
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
    f = np.array(
        [
            [0, 2, 1],
            [0, 3, 2],
            [4, 5, 6],
            [4, 6, 7],
            [0, 1, 5],
            [0, 5, 4],
            [1, 2, 6],
            [1, 6, 5],
            [2, 3, 7],
            [2, 7, 6],
            [3, 0, 4],
            [3, 4, 7],
        ]
    )
    assert mesh_volume_mm3(v * 10, f) == pytest.approx(1000.0)
    assert mesh_volume_mm3(v * 10, f[:, ::-1]) == pytest.approx(-1000.0)


@pytest.mark.parametrize("fmt", ["stl", "ply"])
def test_files_load_in_trimesh_and_pyvista(tmp_path, fmt):
    trimesh = pytest.importorskip("trimesh")
    pv = pytest.importorskip("pyvista")
    grid = _grid(True)
    mesh = mask_to_mesh(_torus(grid), grid)
    path = write_mesh(mesh, tmp_path / f"torus.{fmt}")
    assert path.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    tm = trimesh.load(path, process=False)
    pm = pv.read(path)
    if fmt == "ply":
        assert len(tm.vertices) == mesh.n_vertices == pm.n_points
        assert np.allclose(tm.vertices, mesh.vertices, atol=1e-5)
        assert np.array_equal(np.asarray(tm.faces), mesh.faces)
    else:  # STL stores three corners per facet; readers may or may not merge them
        assert len(tm.vertices) == 3 * mesh.n_faces
        merged = trimesh.load(path)  # merges duplicate corners
        assert len(merged.vertices) == mesh.n_vertices
        assert pm.n_points in (mesh.n_vertices, 3 * mesh.n_faces)
        assert np.allclose(np.asarray(tm.face_normals), mesh.normals(), atol=1e-4)
    assert len(tm.faces) == mesh.n_faces == pm.n_cells
    assert tm.volume / 1000 == pytest.approx(mesh.volume_cc(), rel=1e-4)
    assert tm.is_watertight if fmt == "ply" else True
    assert abs(pm.volume / 1000 - mesh.volume_cc()) < 1e-3 * mesh.volume_cc()


def test_writers_refuse_bad_paths(tmp_path):
    grid = _grid()
    mesh = mask_to_mesh(_sphere(grid, 10.0), grid)
    with pytest.raises(ValidationError, match="folder"):
        write_ply(mesh, tmp_path)
    with pytest.raises(ValidationError, match="does not exist"):
        write_stl(mesh, tmp_path / "nope" / "a.stl")
    with pytest.raises(ValidationError, match="format"):
        write_mesh(mesh, tmp_path / "a.obj")
    p = write_stl(mesh, tmp_path / "a.stl")
    data = p.read_bytes()
    assert not data[:80].lower().startswith(b"solid")
    assert len(data) == 84 + 50 * mesh.n_faces


def test_real_structures_volume_and_closure():
    """Clinical ROIs of the dicompyler-core example (rasterised on its dose grid): every ROI over
    10 cc gives a closed, outward mesh whose volume is within 3 % of the voxel volume."""
    import warnings
    from pathlib import Path

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicompyler-example" / "example_data"
    if not (data / "rtss.dcm").exists():
        pytest.skip(f"test data not found: {data}")
    try:
        from grtv_nb.dicom.rtstruct import read_rois
        from grtv_nb.raster import rasterize_roi
    except ImportError:
        pytest.skip("grtv_nb.raster / grtv_nb.dicom.rtstruct not available")
    import pydicom

    from grtv_nb.geometry import grid_from_planes

    ds = pydicom.dcmread(data / "rtdose.dcm", stop_before_pixels=True)
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    pos = ipp[None] + np.array(ds.GridFrameOffsetVector, float)[:, None] * np.cross(iop[:3], iop[3:])[None]
    grid, _ = grid_from_planes(pos, iop, ds.PixelSpacing, ds.Rows, ds.Columns)
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for roi in read_rois(pydicom.dcmread(data / "rtss.dcm")):
            if not roi.contours:
                continue
            mask = rasterize_roi(roi.contours, grid)
            vox = _voxel_volume_cc(mask, grid)
            if vox < 10.0:
                continue
            mesh = mask_to_mesh(mask, grid)
            _check_closed_oriented(mesh)
            assert mesh.volume_cc() == pytest.approx(vox, rel=0.03), roi.name
            checked += 1
    assert checked >= 5
