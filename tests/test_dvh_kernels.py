"""The DVH engine's compiled kernels against independent references: the signed distance against
SciPy's exact Euclidean distance transform, the lattice dose against
:func:`grtv_nb.transforms.sample_separable` (the resampler used everywhere else), and the smaller
lattice margin (no end cap growing) against the DVH computed with the full margin."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from grtv_nb import _dvh_kernels as kern
from grtv_nb import solid
from grtv_nb.dvh import compute_roi_dvh
from grtv_nb.errors import GRTVWarning
from grtv_nb.phantom import analytic_case
from grtv_nb.transforms import sample_separable


def _random_masks(rng: np.random.Generator, n: int):
    for _ in range(n):
        ny, nx = (int(v) for v in rng.integers(2, 40, 2))
        m = rng.random((3, ny, nx)) < rng.uniform(0.05, 0.95)
        # a blob away from the edges and one touching them
        yy, xx = np.mgrid[:ny, :nx]
        m[1] = (yy - ny / 2) ** 2 + (xx - nx / 3) ** 2 < (min(ny, nx) / 3) ** 2
        m[2] = (yy < ny // 2) | (xx < 2)
        m[:, 0, 0], m[:, -1, -1] = True, False  # both kinds in every plane
        yield m


def test_signed_distance_matches_scipy_edt():
    rng = np.random.default_rng(3)
    s = 0.37
    for m in _random_masks(rng, 40):
        phi = np.empty(m.shape, np.float32)
        kern.signed_distance(m, s, phi)
        for p in range(len(m)):
            inside = ndimage.distance_transform_edt(m[p])  # inside cells: distance to the nearest outside
            outside = ndimage.distance_transform_edt(~m[p])
            want = np.where(m[p], 0.5 - inside, outside - 0.5) * s
            np.testing.assert_allclose(phi[p], want, rtol=1e-6, atol=1e-6)


def test_signed_distance_in_rect_is_the_whole_lattice_there():
    """Outside cells' distances only within a rectangle holding the region: there (and at every
    inside cell) the numbers of the whole lattice, elsewhere a cell far outside."""
    rng = np.random.default_rng(17)
    s = 0.37
    for m in _random_masks(rng, 40):
        full = np.empty(m.shape, np.float32)
        kern.signed_distance(m, s, full)
        boxes = kern.mask_boxes(m)
        rect = np.empty_like(boxes)
        for p, (r0, r1, c0, c1) in enumerate(boxes):
            rect[p] = (int(rng.integers(0, r0 + 1)), int(rng.integers(r1, m.shape[1] + 1)),
                       int(rng.integers(0, c0 + 1)), int(rng.integers(c1, m.shape[2] + 1)))
        got = np.full(m.shape, np.nan, np.float32)
        kern.signed_distance_in(m, s, got, rect)
        for p, (ra, rb, ca, cb) in enumerate(rect):
            inner = np.zeros(m.shape[1:], bool)
            inner[ra:rb, ca:cb] = True
            np.testing.assert_array_equal(got[p][inner], full[p][inner])
            assert np.all(got[p][~inner] > full[p].max() - 1e-3)  # far outside
            assert not m[p][~inner].any()


def test_lattice_dose_is_sample_separable():
    rng = np.random.default_rng(5)
    for trial in range(200):
        nz, ny, nx = (int(v) for v in rng.integers(1, 12, 3))
        d = (rng.random((nz, ny, nx)) * 60).astype(np.float32 if trial % 2 else np.float64)
        fy = np.sort(rng.uniform(-2, ny + 1, int(rng.integers(1, 30))))
        fx = np.sort(rng.uniform(-2, nx + 1, int(rng.integers(1, 30))))
        if trial % 5 == 0:
            fx = np.arange(nx, dtype=np.float64)  # columns kept
        if trial % 7 == 0 and nx >= 2:
            fx = np.arange(nx // 2) * 2.0 + 0.5  # pair means
        klo = int(rng.integers(0, nz))
        khi = int(rng.integers(klo, nz))
        want = sample_separable(d, np.arange(klo, khi + 1, dtype=np.float64), fy, fx, fill=None, dtype=np.float32)
        np.testing.assert_array_equal(kern.lattice_dose(d, klo, khi, fy, fx), want)


@pytest.mark.parametrize("shape,axis,plane_mm", [("sphere", "z", 3.0), ("sphere_small", "y", 3.0),
                                                 ("cylinder_lying", "z", 2.0), ("shell", "y", 3.0)])
def test_small_lattice_margin_same_dvh(monkeypatch, shape, axis, plane_mm):
    """Without a growing end cap the lattice keeps 2 cells of margin: same DVH as with the full margin."""
    c = analytic_case(shape, axis=axis, plane_mm=plane_mm, dose_mm=2.5, centre=(0.3, -0.6, 0.2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GRTVWarning)
        got = compute_roi_dvh(c.dose, c.dose_grid, {"r": c.contours}, between="interpolate")
        monkeypatch.setattr(solid, "_cap_room", lambda gaps, areas: True)
        full = compute_roi_dvh(c.dose, c.dose_grid, {"r": c.contours}, between="interpolate")
    np.testing.assert_allclose(got.differential.values, full.differential.values, rtol=1e-9, atol=1e-12)
    for k in ("volume_cc", "mean", "min", "max"):
        assert float(got.stats[k][0]) == pytest.approx(float(full.stats[k][0]), rel=1e-9)


def test_fill_loops_is_fill_simple_planes():
    from grtv_nb.raster import fill_simple_planes

    rng = np.random.default_rng(11)
    filled = 0
    for _ in range(60):
        ny, nx = (int(v) for v in rng.integers(5, 60, 2))
        x0, y0, s = float(rng.uniform(-20, 20)), float(rng.uniform(-20, 20)), float(rng.uniform(0.1, 1.5))
        planes = []
        for q in range(int(rng.integers(1, 5))):
            loops = []
            for _ in range(int(rng.integers(1, 3))):  # star-shaped loops, partly off the lattice at times
                n = int(rng.integers(3, 40))
                t = np.sort(rng.uniform(0, 2 * np.pi, n))
                r = rng.uniform(0.2, 1.0, n) * rng.uniform(2, 30) * s
                cx, cy = x0 + rng.uniform(-5, nx + 5) * s, y0 + rng.uniform(-5, ny + 5) * s
                loops.append(np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)]))
            planes.append((q, loops))
        want = np.zeros((len(planes), ny, nx), bool)
        fill_simple_planes(want, [(q, [np.stack([(lp[:, 0] - x0) / s, (lp[:, 1] - y0) / s], axis=1) for lp in lps])
                                  for q, lps in planes])
        got = np.zeros_like(want)
        loops = [lp for _, lps in planes for lp in lps]
        xy = np.concatenate(loops)
        first = np.concatenate([[0], np.cumsum([len(lp) for lp in loops])])
        which = np.repeat(np.arange(len(planes)), [len(lps) for _, lps in planes])
        kern.fill_loops(np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]), first, which, x0, y0, s, got)
        np.testing.assert_array_equal(got, want)
        filled += bool(want.any())
    assert filled >= 40


def test_boundary_distance_against_closed_form():
    """Distance from points to the edges of a 20 x 10 mm rectangle: min over its sides, computed here
    from the rectangle's half sizes (inside: the nearest side; outside: to the box)."""
    corners = np.array([[-10.0, -5.0], [10.0, -5.0], [10.0, 5.0], [-10.0, 5.0]])
    v = np.roll(corners, -1, axis=0) - corners
    rng = np.random.default_rng(3)
    p = rng.uniform(-15, 15, size=(200, 2))
    out = np.empty(len(p))
    kern.boundary_distance(p[:, 0].copy(), p[:, 1].copy(), corners[:, 0].copy(), corners[:, 1].copy(),
                           v[:, 0].copy(), v[:, 1].copy(), out)
    qx, qy = np.abs(p[:, 0]) - 10.0, np.abs(p[:, 1]) - 5.0
    inside = (qx <= 0) & (qy <= 0)
    want = np.where(inside, np.minimum(-qx, -qy), np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)))
    np.testing.assert_allclose(out, want, atol=1e-12)


def test_inradius_against_closed_form():
    """The end caps' inradius search against the largest inscribed circle known in closed form: a
    regular 720-gon of circumradius 12 mm (its apothem 12 cos(pi/720)), a 20 x 6 mm rectangle (3 mm
    anywhere on its mid-line), and an annulus 4..9 mm (holes: 2.5 mm, the ring's half width), from
    starts some s / 2 off the best points (the search starts at the deepest lattice cell and moves at
    most s), each within the search's last steps (s / 8)."""
    s = 0.5
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    poly = np.stack([12 * np.cos(t) + 0.3, 12 * np.sin(t) - 0.2], axis=1)
    rect = np.array([[-10.0, -3.0], [10.0, -3.0], [10.0, 3.0], [-10.0, 3.0]])
    inner = np.stack([4 * np.cos(t[::-1]), 4 * np.sin(t[::-1])], axis=1)
    outer = np.stack([9 * np.cos(t), 9 * np.sin(t)], axis=1)
    for loops, start, want in (([poly], (0.5, -0.05), 12 * np.cos(np.pi / 720)), ([rect], (4.0, -0.2), 3.0),
                               ([outer, inner], (6.3, 0.3), 2.5)):
        xy = np.concatenate(loops)
        first = np.cumsum([0] + [len(lp) for lp in loops]).astype(np.int64)
        got = kern.inradius(xy[:, 0].copy(), xy[:, 1].copy(), first, start[0], start[1], s)
        assert want - s / 8 <= got <= want + 1e-9


def test_cells_inside_length_against_closed_form():
    """Length of the gap where the signed distance, linear from one plane to the other, is <= 0: a
    cell inside both planes holds the whole gap L, one inside a only (phi -1 -> +3) the first L / 4,
    one inside b only (phi +1 -> -1) the last L / 2; cells outside both hold nothing."""
    phi = np.full((2, 6, 7), 5.0, np.float32)
    phi[0, 1:3, 1:4] = -1.0  # plane a inside: rows 1-2, cols 1-3
    phi[1, 1:3, 1:3] = -2.0  # both inside: rows 1-2, cols 1-2 (4 cells)
    phi[1, 1:3, 3] = 3.0  # a only (2 cells)
    phi[1, 4, 2:5] = -1.0  # b only (3 cells), a there +1
    phi[0, 4, 2:5] = 1.0
    box = kern.inside_boxes(phi)
    out = np.empty(1)
    L = 2.5
    kern.cells_inside_length(phi, box, np.array([0]), np.array([1]), np.array([L]), out)
    assert out[0] == pytest.approx(4 * L + 2 * L / 4 + 3 * L / 2, rel=1e-12)


def test_ramps_histogram_is_the_numpy_formula():
    """The compiled histogram from the ramps, value for value the NumPy expression it replaces."""
    rng = np.random.default_rng(13)
    for trial in range(200):
        n = int(rng.integers(1, 300))
        A, B, P = rng.normal(size=n + 1), rng.normal(size=n + 1) * 50, rng.random(n)
        top = int(rng.integers(1, n + 1))
        scale = 1.0 if trial % 2 else float(rng.uniform(0.5, 2.0))
        G = np.arange(top + 1) * np.cumsum(A[:top + 1]) - np.cumsum(B[:top + 1])
        want = np.zeros(n)
        want[:top] = (np.diff(G) + P[:top]) * scale if scale != 1.0 else np.diff(G) + P[:top]
        got = np.full(n, np.nan)
        kern.ramps_histogram(A, B, P, top, scale, got)
        np.testing.assert_array_equal(got, want)


def test_ranks_le_is_searchsorted_on_the_sorted_values():
    """The linear-time ranks of float32 values (ties, signed zeros, both signs), value for value
    NumPy's count of values <= each one."""
    rng = np.random.default_rng(19)
    for trial in range(300):
        n = int(rng.integers(0, 600))
        x = (rng.integers(-60, 60, n) * rng.choice([0.1, 0.37, 1e-3, 1e5])).astype(np.float32)
        if trial % 3 == 0:
            x = rng.normal(size=n).astype(np.float32)
        if trial % 5 == 0 and n:
            x[::7] = -0.0
        want = np.searchsorted(np.sort(x), x, side="right").astype(np.float64)
        np.testing.assert_array_equal(kern.ranks_le(x), want)
        np.testing.assert_array_equal(solid._ranks_le(x.astype(np.float64)), want)
