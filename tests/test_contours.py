"""Mask -> planar contours (grtv_nb.contours): loops with holes that rasterise back to the mask, with
the project's rasteriser and with an independent one (matplotlib point-in-polygon, as dicompyler-core)."""

from __future__ import annotations

import numpy as np
import pytest

from grtv_nb.contours import PlanarContour, contour_points, mask_to_contours, slice_loops
from grtv_nb.errors import ValidationError
from grtv_nb.geometry import Grid


def _grid(nonuniform: bool = True) -> Grid:
    x = np.arange(-50.0, 50.0, 0.9765625)
    y = np.arange(-60.0, 40.0, 0.9765625)
    if nonuniform:
        z = np.concatenate([np.arange(-30.0, 0.0, 2.5), np.arange(0.0, 30.1, 1.25)])
    else:
        z = np.arange(-30.0, 30.1, 2.0)
    return Grid(x=x, y=y, z=z)


def _coords(grid):
    return np.meshgrid(grid.z, grid.y, grid.x, indexing="ij")


def _torus(grid: Grid) -> np.ndarray:
    zz, yy, xx = _coords(grid)
    return (np.sqrt(xx**2 + (yy + 10) ** 2) - 25.0) ** 2 + zz**2 <= 10.0**2


def _blobs(grid: Grid) -> np.ndarray:
    """Several blobs: two touching spheres, a cube with a cavity holding an island, a thin bar,
    diagonal-touching voxels, and noise."""
    zz, yy, xx = _coords(grid)
    m = ((xx + 25) ** 2 + (yy + 30) ** 2 + zz**2 <= 12**2) | ((xx + 10) ** 2 + (yy + 30) ** 2 + zz**2 <= 9**2)
    cube = (np.abs(xx - 25) <= 14) & (np.abs(yy - 10) <= 14) & (np.abs(zz) <= 14)
    cavity = (np.abs(xx - 25) <= 8) & (np.abs(yy - 10) <= 8) & (np.abs(zz) <= 8)
    island = (np.abs(xx - 25) <= 3) & (np.abs(yy - 10) <= 3) & (np.abs(zz) <= 3)
    m |= cube & ~cavity | island
    m |= (np.abs(xx - 30) <= 1.0) & (yy > -50) & (yy < -20) & (np.abs(zz) <= 10)  # thin bar
    rng = np.random.default_rng(7)
    noise = rng.random(m.shape) < 0.002
    m |= noise
    # checkerboard patch: only diagonal contacts
    k = np.searchsorted(grid.z, 0.0)
    m[k, 5:15, 5:15] = np.add.outer(np.arange(10), np.arange(10)) % 2 == 0
    return m


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _mpl_rasterize(contours: list[PlanarContour], grid: Grid) -> np.ndarray:
    """Independent rasteriser: matplotlib Path.contains_points on voxel centres, loops XORed
    (dicompyler-core's method)."""
    from matplotlib.path import Path as MplPath

    out = np.zeros(grid.shape, bool)
    yy, xx = np.meshgrid(grid.y, grid.x, indexing="ij")
    centres = np.column_stack([xx.ravel(), yy.ravel()])
    for c in contours:
        inside = MplPath(c.points[:, :2]).contains_points(centres).reshape(xx.shape)
        out[c.slice_index] ^= inside
    return out


def _rasterize_roi():
    try:
        from grtv_nb.raster import rasterize_roi
    except ImportError:
        pytest.skip("grtv_nb.raster.rasterize_roi not available yet")
    return rasterize_roi


@pytest.mark.parametrize("which", ["torus", "blobs"])
@pytest.mark.parametrize("nonuniform", [False, True])
def test_round_trip_with_project_rasteriser(which, nonuniform):
    grid = _grid(nonuniform)
    mask = _torus(grid) if which == "torus" else _blobs(grid)
    cs = mask_to_contours(mask, grid)
    back = _rasterize_roi()(contour_points(cs), grid)
    assert _dice(back, mask) >= 0.99
    assert np.array_equal(back, mask)  # exact: voxel centres are never near a loop


@pytest.mark.parametrize("which", ["torus", "blobs"])
def test_round_trip_with_independent_rasteriser(which):
    grid = _grid(True)
    mask = _torus(grid) if which == "torus" else _blobs(grid)
    cs = mask_to_contours(mask, grid)
    back = _mpl_rasterize(cs, grid)
    assert np.array_equal(back, mask)


def test_torus_holes_orientation_and_planes():
    grid = _grid(True)
    mask = _torus(grid)
    cs = mask_to_contours(mask, grid)
    for c in cs:
        assert c.points.shape[1] == 3 and len(c.points) >= 3
        assert np.allclose(c.points[:, 2], grid.z[c.slice_index])
        x, y = c.points[:, 0], c.points[:, 1]
        area = 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
        assert (area < 0) == c.is_hole  # outer CCW (positive), holes CW
        assert not np.array_equal(c.points[0], c.points[-1])
    slices = {}
    for c in cs:
        slices.setdefault(c.slice_index, []).append(c.is_hole)
    # through the torus' middle: one outer boundary and one hole per slice
    k = int(np.argmin(np.abs(grid.z)))
    assert sorted(slices[k]) == [False, True]
    # near the top of the tube the cross-section is one annulus too; the hole is centred on the axis
    holes = [c for c in cs if c.is_hole and c.slice_index == k]
    centre = holes[0].points[:, :2].mean(axis=0)
    assert np.allclose(centre, [0.0, -10.0], atol=1.0)
    # outer boundary ~ circle of radius 35, hole ~ radius 15 (area within 3 %)
    outer = [c for c in cs if not c.is_hole and c.slice_index == k][0]
    assert outer.area_mm2() == pytest.approx(np.pi * 35**2, rel=0.03)
    assert holes[0].area_mm2() == pytest.approx(np.pi * 15**2, rel=0.03)


def test_simplification_keeps_corners_only():
    plane = np.zeros((20, 20), bool)
    plane[3:15, 4:12] = True  # rectangle: 8 vertices (corners cut at 45 degrees)
    loops = slice_loops(plane)
    assert len(loops) == 1 and len(loops[0][0]) == 8 and not loops[0][1]
    raw = slice_loops(plane, simplify=False)
    assert len(raw[0][0]) > 30
    tri = np.tril(np.ones((30, 30), bool))  # 45-degree staircase -> a triangle-ish polygon
    assert len(slice_loops(tri)[0][0]) <= 6


def test_oblique_grid_and_bad_input():
    base = _grid(False)
    t = np.deg2rad(20)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    grid = Grid(x=base.x, y=base.y, z=base.z, direction=rot)
    mask = _torus(base)
    cs = mask_to_contours(mask, grid)
    # points are patient coordinates: back in the grid frame they lie on the slice planes
    for c in cs[:20]:
        q = grid.to_canonical_points(c.points)
        assert np.allclose(q[:, 2], grid.z[c.slice_index])
    try:
        from grtv_nb.raster import rasterize_roi
    except ImportError:
        rasterize_roi = None
    if rasterize_roi is not None:
        assert np.array_equal(rasterize_roi(contour_points(cs), grid), mask)
    assert mask_to_contours(np.zeros(grid.shape, bool), grid) == []
    with pytest.raises(ValidationError, match="shape"):
        mask_to_contours(mask[:3], grid)
    with pytest.raises(ValidationError, match="boolean"):
        mask_to_contours(mask.astype(np.float64), grid)
    u8 = mask_to_contours(mask.astype(np.uint8) * 255, grid)
    assert len(u8) == len(cs)


@pytest.mark.parametrize("which", ["torus", "blobs"])
def test_keyhole_encoding_rasterises_the_same(which):
    grid = _grid(True)
    mask = _torus(grid) if which == "torus" else _blobs(grid)
    sep = mask_to_contours(mask, grid)
    kh = mask_to_contours(mask, grid, keyhole=True)
    assert not any(c.is_hole for c in kh)
    assert len(kh) == sum(not c.is_hole for c in sep)
    assert np.array_equal(_mpl_rasterize(kh, grid), mask)
    try:
        from grtv_nb.raster import rasterize_roi
    except ImportError:
        return
    assert np.array_equal(rasterize_roi(contour_points(kh), grid), mask)


def test_keyhole_several_holes_and_island():
    plane = np.zeros((40, 40), bool)
    plane[2:38, 2:38] = True
    plane[5:12, 5:30] = False  # hole 1
    plane[20:30, 8:14] = False  # hole 2
    plane[20:30, 20:33] = False  # hole 3 with an island holding a hole
    plane[22:28, 23:30] = True
    plane[24:26, 25:27] = False
    plane[15, 34] = False  # one-voxel hole
    loops = slice_loops(plane)
    assert sum(h for _, h in loops) == 5
    from grtv_nb.contours import keyhole_loops

    merged = keyhole_loops(loops)
    assert len(merged) == 2  # outer + island
    g = Grid(x=np.arange(40.0), y=np.arange(40.0), z=np.array([0.0]), slice_thickness=1.0)
    cs = [PlanarContour(np.column_stack([lp, np.zeros(len(lp))]), 0, False) for lp in merged]
    assert np.array_equal(_mpl_rasterize(cs, g)[0], plane)


def _dicompyler_masks():
    """ROI masks of the dicompyler-core example patient rasterised on its dose grid (RTSTRUCT and
    RTDOSE geometry read with pydicom)."""
    from pathlib import Path

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicompyler-example" / "example_data"
    if not (data / "rtss.dcm").exists():
        pytest.skip(f"test data not found: {data}")
    import pydicom

    from grtv_nb.geometry import grid_from_planes

    ds = pydicom.dcmread(data / "rtdose.dcm", stop_before_pixels=True)
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    n = np.cross(iop[:3], iop[3:])
    pos = ipp[None] + np.array(ds.GridFrameOffsetVector, float)[:, None] * n[None]
    grid, _ = grid_from_planes(pos, iop, ds.PixelSpacing, ds.Rows, ds.Columns)
    from grtv_nb.dicom.rtstruct import read_rois  # fast ContourData parsing (input only)

    rasterize_roi = _rasterize_roi()
    rois = read_rois(pydicom.dcmread(data / "rtss.dcm"))
    masks = {r.name: rasterize_roi(r.contours, grid) for r in rois if r.contours}
    return masks, grid


def test_round_trip_real_structures():
    """Clinical ROIs (several loops per plane, concavities): mask -> contours -> mask is exact, with
    separate holes and with keyholes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masks, grid = _dicompyler_masks()
    rasterize_roi = _rasterize_roi()
    vv = grid.voxel_volumes_cc()
    checked = 0
    for name, mask in masks.items():
        if float((mask.sum(axis=(1, 2)) * vv).sum()) < 1.0:
            continue
        for keyhole in (False, True):
            back = rasterize_roi(contour_points(mask_to_contours(mask, grid, keyhole=keyhole)), grid)
            assert _dice(back, mask) >= 0.99, name
            assert np.array_equal(back, mask), name
        checked += 1
    assert checked >= 6


def test_same_loops_as_scikit_image():
    """The vectorised marching squares gives the loops of skimage.measure.find_contours
    (level 0.5, fully_connected='high') on every slice: same vertices, same signed areas."""
    from skimage.measure import find_contours

    grid = _grid(True)
    mask = _blobs(grid)
    ours, ref = [], []
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        for lp, _ in slice_loops(mask[k], simplify=False):
            ours.append((int(k), lp))
        pad = np.pad(mask[k].astype(np.float64), 1)
        for rc in find_contours(pad, 0.5, fully_connected="high"):
            ref.append((int(k), np.column_stack([rc[:-1, 1] - 1, rc[:-1, 0] - 1])))

    def canon(loops):
        out = []
        for k, lp in loops:
            area = 0.5 * (np.dot(lp[:, 0], np.roll(lp[:, 1], -1)) - np.dot(np.roll(lp[:, 0], -1), lp[:, 1]))
            pts = np.round(lp[np.lexsort((lp[:, 1], lp[:, 0]))], 6)
            out.append((k, round(abs(area), 6), pts.tobytes()))
        return sorted(out)

    assert len(ours) == len(ref) > 100
    assert canon(ours) == canon(ref)
