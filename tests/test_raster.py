"""The rasteriser's rules: voxel-centre inclusion with half-open edges, holes by nesting, overlap and
duplicate handling, plane matching by position."""

import numpy as np
import pytest

from grtv_nb.errors import GRTVWarning
from grtv_nb.geometry import Grid
from grtv_nb.raster import fill_plane, match_planes, rasterize_roi, region_area


def square(a, b):
    return np.array([[a, a], [b, a], [b, b], [a, b]], float)


def test_square_counts_voxel_centres_half_open():
    m = fill_plane([square(2, 7)], (10, 10))
    # centres 2..6 inside (2 <= c < 7): 5 x 5
    assert m.sum() == 25
    assert m[2:7, 2:7].all()


def test_abutting_contours_never_share_a_voxel():
    left = np.array([[0, 0], [5, 0], [5, 6], [0, 6]], float)
    right = np.array([[5, 0], [9, 0], [9, 6], [5, 6]], float)
    a, b = fill_plane([left], (8, 10)), fill_plane([right], (8, 10))
    assert not (a & b).any()
    assert (a | b)[0:6, 0:9].all()


def test_inner_loop_is_a_hole_and_island_in_hole_is_filled():
    m = fill_plane([square(1, 9), square(3, 7), square(4, 6)], (10, 10))
    assert m[1, 1] and not m[3, 3] and m[5, 5]
    assert m.sum() == 64 - 16 + 4


def test_partial_overlap_is_union_with_warning():
    with pytest.warns(GRTVWarning, match="partly overlapping"):
        m = fill_plane([square(1, 5), square(3, 8)], (10, 10), label="x")
    assert m.sum() == 16 + 25 - 4  # union, not XOR


def test_duplicate_loop_counted_once():
    with pytest.warns(GRTVWarning, match="duplicated"):
        m = fill_plane([square(1, 5), square(1, 5)], (10, 10), label="x")
    assert m.sum() == 16


def test_plane_matching_nearest_within_half_spacing_nonuniform():
    g = Grid(np.arange(4.0), np.arange(4.0), np.array([0.0, 2.0, 3.0, 7.0]))
    k = match_planes(np.array([0.9, 1.1, 2.4, 2.6, 4.9, 5.1, 8.9, 9.1, -1.1]), g)
    assert k.tolist() == [0, 1, 1, 2, 2, 3, 3, -1, -1]


def test_rasterize_roi_warns_for_short_and_outside_contours():
    g = Grid(np.arange(10.0), np.arange(10.0), np.array([0.0, 3.0]), slice_thickness=3)
    ok = np.array([[1, 1, 0], [6, 1, 0], [6, 6, 0], [1, 6, 0]], float)
    short = np.array([[1, 1, 3], [2, 2, 3]], float)
    far = ok + [0, 0, 30]
    with pytest.warns(GRTVWarning) as rec:
        m = rasterize_roi([ok, short, far], g, label="ROI 'x'")
    msgs = " ".join(str(w.message) for w in rec)
    assert "fewer than 3 points" in msgs and "outside the image slices" in msgs
    # the plane at z=0 stands for the slab half-way to its neighbour at z=30 (slabs, not nearest
    # slice within half a slice spacing), so the slice at z=3 shows it too
    assert m[0].sum() == 25 and m[1].sum() == 25


def test_circle_area_converges():
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    r = 40.3
    loop = np.stack([50 + r * np.cos(t), 50 + r * np.sin(t)], 1)
    m = fill_plane([loop], (100, 100))
    assert abs(m.sum() / (np.pi * r * r) - 1) < 0.005


def _sq3(a, b, z):
    return np.array([[a, a, z], [b, a, z], [b, b, z], [a, b, z]], float)


def test_contour_planes_finer_than_slices_are_never_xored():
    # 1 mm contour planes on a 3 mm grid (a Pinnacle/RayStation export without CT): each slice shows
    # the one plane whose slab holds its centre; the old nearest-plane matching XORed 3 planes.
    g = Grid(np.arange(12.0), np.arange(12.0), np.array([0.0, 3.0, 6.0, 9.0]))
    loops = [_sq3(2, 8, z) for z in np.arange(0.0, 9.5, 1.0)]
    m = rasterize_roi(loops, g)
    assert [int(v) for v in m.sum(axis=(1, 2))] == [36, 36, 36, 36]


def test_overlapping_loops_warn_once_per_roi():
    g = Grid(np.arange(12.0), np.arange(12.0), np.arange(0.0, 30.0, 1.0))
    loops = [c for z in range(30) for c in (_sq3(1, 5, z), _sq3(3, 8, z))]
    with pytest.warns(GRTVWarning) as rec:
        m = rasterize_roi(loops, g, label="ROI 'x'")
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1 and "30 plane(s)" in msgs[0] and "partly overlapping" in msgs[0]
    assert int(m[0].sum()) == 16 + 25 - 4


def test_region_area_is_exact_with_holes_and_none_for_overlaps():
    assert region_area([square(1, 9), square(3, 7), square(4, 6)]) == pytest.approx(64 - 16 + 4)
    assert region_area([square(0, 2), square(5, 6)]) == pytest.approx(5)
    assert region_area([square(1, 5), square(3, 8)]) is None


def test_plane_slabs_end_caps_gaps_and_nonuniform_runs():
    from grtv_nb.planes import group_planes

    def slabs(zs, **kw):
        return [(s.z0, s.z1) for s in group_planes([_sq3(0, 1, z) for z in zs], **kw).slabs]

    # half a plane spacing beyond the end planes ("auto" = "half"), midpoints between planes
    assert slabs([0, 2, 4]) == [(-1, 1), (1, 3), (3, 5)]
    assert slabs([0, 2, 4], end_cap="none") == [(0, 1), (1, 3), (3, 4)]
    # a non-uniform series contoured on every slice is one run, whatever its gaps
    assert slabs([0, 3, 5, 10], ref_z=[0, 3, 5, 10]) == [(-1.5, 1.5), (1.5, 4), (4, 7.5), (7.5, 12.5)]
    # a wide gap that skips reference slices splits the ROI into pieces, each capped
    assert slabs([0, 2, 4, 20, 22], ref_z=np.arange(0, 23, 2.0)) == [(-1, 1), (1, 3), (3, 5), (19, 21), (21, 23)]
    # planes finer than the reference grid (1 mm contours, 3 mm dose planes): never broken
    assert len(slabs(np.arange(0, 10.0), ref_z=np.arange(-1.5, 12, 3.0))) == 10
    with pytest.raises(Exception, match="end_cap"):
        group_planes([_sq3(0, 1, 0)], end_cap="round")


def test_loop_boxes_are_each_loops_extent():
    """raster.loop_boxes (all loops at once) against each loop's min/max taken alone."""
    from grtv_nb.raster import boxes_overlap, loop_boxes

    rng = np.random.default_rng(7)
    loops = [rng.normal(size=(int(n), 2)) * 10 + rng.normal(size=2) * 50 for n in rng.integers(1, 40, size=25)]
    want = np.array([[lp[:, 0].min(), lp[:, 0].max(), lp[:, 1].min(), lp[:, 1].max()] for lp in loops])
    np.testing.assert_array_equal(loop_boxes(loops), want)
    # two unit squares: overlapping boxes only when shifted by less than their width
    sq = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert boxes_overlap([sq, sq + 0.5]) and not boxes_overlap([sq, sq + 1.5])
    assert boxes_overlap([sq, sq + 1.5], loop_boxes([sq, sq])) is True  # given boxes are used as given
