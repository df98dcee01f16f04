"""DVH engine (grtv_nb.dvh): analytical phantoms with closed-form DVHs, and the dicompyler-core
example patient against dicompyler-core's published figures and plastimatch run live."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grtv_nb.dvh import DVHResult, compute_dvh, compute_dvh_on_dose_grid
from grtv_nb.errors import ValidationError
from grtv_nb.geometry import Grid, grid_from_planes

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DICOMPYLER = DATA / "dicompyler-example" / "example_data"
PLASTIMATCH = Path(sys.executable).parent / "plastimatch"


# ------------------------------------------------------------------------------------------------
# analytical phantoms
# ------------------------------------------------------------------------------------------------
def _nonuniform_z(n: int, z0: float = -40.0) -> np.ndarray:
    steps = np.where(np.arange(n - 1) % 2 == 0, 1.0, 1.5)  # alternating 1.0 / 1.5 mm slices
    return z0 + np.concatenate([[0.0], np.cumsum(steps)])


def _sphere_case(axis: str):
    """Sphere R=25 mm centred at 0, 1 mm in-plane, non-uniform z; dose = 10 + 0.2 * coord Gy."""
    c = np.arange(-30.0, 30.0 + 1e-9, 1.0)
    z = _nonuniform_z(53, -31.25)
    grid = Grid(x=c, y=c, z=z)
    zz, yy, xx = np.meshgrid(z, c, c, indexing="ij")
    r = 25.0
    mask = xx**2 + yy**2 + zz**2 <= r**2
    coord = {"x": xx, "z": zz}[axis]
    dose = (10.0 + 0.2 * coord).astype(np.float32)
    return grid, dose, mask, r


def _sphere_cum(d: np.ndarray, r: float) -> np.ndarray:
    """Closed form: volume (cc) of the sphere with 10 + 0.2 * s >= d, s the gradient axis."""
    s = np.clip((np.asarray(d) - 10.0) / 0.2, -r, r)
    return np.pi * (r**2 * (r - s) - (r**3 - s**3) / 3.0) / 1000.0


@pytest.mark.parametrize("axis", ["x", "z"])
def test_sphere_gradient_closed_form(axis):
    grid, dose, mask, r = _sphere_case(axis)
    res = compute_dvh(dose, grid, {"sphere": mask}, dose_cc=(10.0,), volume_gy=(12.1,))
    exact_v = 4.0 / 3.0 * np.pi * r**3 / 1000.0
    st = res.stats.sel(roi="sphere")
    assert float(st["volume_cc"]) == pytest.approx(exact_v, rel=0.01)
    assert float(st["mean"]) == pytest.approx(10.0, rel=0.01)
    assert float(st["D50"]) == pytest.approx(10.0, abs=0.05)
    # D98 / D95 / D2 from the closed form (solve cum(d) = x% V)
    dd = np.linspace(5.0, 15.0, 20001)
    cum = _sphere_cum(dd, r)
    for x in (98, 95, 2):
        ref = float(np.interp(-x / 100.0 * exact_v, -cum, dd))
        assert float(st[f"D{x}"]) == pytest.approx(ref, abs=0.1), x
    ref10 = float(np.interp(-10.0, -cum, dd))
    assert float(st["D10cc"]) == pytest.approx(ref10, abs=0.1)
    assert float(st["V12.1Gy_cc"]) == pytest.approx(float(_sphere_cum(12.1, r)), rel=0.02)
    # the cumulative curve at the doses of the voxel-slab boundaries (mid-way between voxel centres
    # along the gradient, where the voxelised phantom and the closed form coincide) within 1%
    c = {"x": grid.x, "z": grid.z}[axis]
    d_mid = 10.0 + 0.2 * 0.5 * (c[1:] + c[:-1])
    d_mid = d_mid[(d_mid > 5.0) & (d_mid < 15.0)]
    curve = np.interp(d_mid, res.dose, res.cumulative.sel(roi="sphere").values)
    assert np.abs(curve - _sphere_cum(d_mid, r)).max() < 0.01 * exact_v
    # min / max from the voxels, not from the histogram
    inside = dose[mask]
    assert float(st["min"]) == pytest.approx(float(inside.min()), abs=1e-6)
    assert float(st["max"]) == pytest.approx(float(inside.max()), abs=1e-6)


def test_box_gradient_nonuniform_z():
    """Box between slice mid-planes, dose gradient along z: volume exact, Dmean and DVH closed form."""
    x = np.arange(-10.0, 10.0 + 1e-9, 0.5)
    z = _nonuniform_z(61, 0.0)
    grid = Grid(x=x, y=x, z=z)
    mask = np.zeros(grid.shape, bool)
    k0, k1 = 5, 55
    mask[k0 : k1 + 1, 4:-4, 4:-4] = True
    zlo = 0.5 * (z[k0 - 1] + z[k0])
    zhi = 0.5 * (z[k1] + z[k1 + 1])
    area = (len(x) - 8) * 0.5 * (len(x) - 8) * 0.5  # mm^2
    exact_v = area * (zhi - zlo) / 1000.0
    dose = np.broadcast_to((2.0 + 0.05 * z)[:, None, None], grid.shape).astype(np.float32)
    res = compute_dvh(dose, grid, mask, roi_names=["box"], prescription_gy=4.0, volume_pct_rx=(80.0,))
    st = res.stats.sel(roi="box")
    assert float(st["volume_cc"]) == pytest.approx(exact_v, rel=1e-9)
    assert float(st["mean"]) == pytest.approx(2.0 + 0.05 * (zlo + zhi) / 2, rel=0.01)
    # V(>= d) = area * (zhi - z(d)); 80% of 4 Gy = 3.2 Gy -> z = 24 mm
    assert float(st["V80%Rx_cc"]) == pytest.approx(area * (zhi - 24.0) / 1000.0, rel=0.02)
    assert float(st["V80%Rx_pct"]) == pytest.approx(100 * (zhi - 24.0) / (zhi - zlo), rel=0.02)
    assert float(st["D50"]) == pytest.approx(2.0 + 0.05 * (zlo + zhi) / 2, abs=0.05)


def test_supersampling_resolves_dose_within_voxels():
    """Coarse 4 mm voxels with an in-plane gradient: the supersampled DVH (bilinear dose at sub-voxel
    centres, mask copied to the sub-voxels) is closer to the closed form; volume is unchanged."""
    x = np.arange(-38.0, 38.1, 4.0)  # voxel edges at multiples of 4 mm +- 2
    grid = Grid(x=x, y=x, z=np.arange(0.0, 12.0, 3.0))
    mask = np.zeros(grid.shape, bool)
    mask[:, 5:-5, 5:-5] = True  # x from -20 to 20 mm (10 voxels)
    dose = np.broadcast_to(5.0 + 0.1 * x[None, None, :], grid.shape).astype(np.float32)
    lo, hi = x[5] - 2.0, x[-6] + 2.0

    def closed(d):
        return np.clip((hi - (d - 5.0) / 0.1) / (hi - lo), 0, 1) * 100.0

    devs = {}
    for ss in (1, 4):
        r = compute_dvh(dose, grid, {"box": mask}, supersample=ss)
        assert float(r.volume_cc.values[0]) == pytest.approx(mask.sum() * 4 * 4 * 3 / 1000.0)
        assert float(r.stats["mean"].values[0]) == pytest.approx(5.0, abs=1e-4)
        devs[ss] = np.abs(r.cumulative_pct.values[0] - closed(r.dose)).max()
    assert devs[4] < devs[1] / 3
    assert devs[4] < 4.0


def test_result_objects(tmp_path):
    grid, dose, mask, _ = _sphere_case("x")
    empty = np.zeros_like(mask)
    masks = np.stack([mask, empty])
    res = compute_dvh(dose, grid, masks, roi_names=["sphere", "empty"], bin_width=0.005)
    assert isinstance(res, DVHResult)
    assert res.cumulative.dims == ("roi", "dose")
    assert res.roi_names == ["sphere", "empty"]
    assert res.bin_width == 0.005
    assert np.allclose(np.diff(res.dose), 0.005)
    cum = res.cumulative.values
    assert cum[0, 0] == pytest.approx(float(res.volume_cc.values[0]))
    assert cum[0, -1] == 0.0 and np.all(np.diff(cum[0]) <= 1e-12)
    assert res.cumulative_pct.values[0, 0] == pytest.approx(100.0)
    assert float(res.differential.values[0].sum()) == pytest.approx(float(res.volume_cc.values[0]))
    # empty ROI: zero volume, NaN statistics
    assert float(res.volume_cc.values[1]) == 0.0
    assert np.isnan(float(res.stats["mean"].values[1]))
    assert float(res.dose_at_volume(50).values[0]) == pytest.approx(10.0, abs=0.05)
    assert float(res.volume_at_dose(0.0, relative=True).values[0]) == pytest.approx(100.0)
    one = res["sphere"]
    assert one.roi_names == ["sphere"]
    # CSV
    p = res.to_csv(tmp_path / "dvh.csv")
    rows = list(csv.reader(p.open()))
    assert rows[0][0] == "dose_gy" and rows[0][1].startswith("sphere")
    assert len(rows) == len(res.dose) + 1
    assert float(rows[1][1]) == pytest.approx(float(res.volume_cc.values[0]), rel=1e-5)
    res.stats_to_csv(tmp_path / "stats.csv")
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]
    ds = res.to_dataset()
    assert "cumulative_cc" in ds and "D95" in ds
    # plotting (one call draws all ROIs)
    import matplotlib

    matplotlib.use("Agg")
    ax = res.plot()
    assert len(ax.lines) == 2
    res.cumulative.plot.line(x="dose")


def test_mask_sources_and_bad_input():
    grid, dose, mask, _ = _sphere_case("x")
    ref = compute_dvh(dose, grid, {"a": mask})
    via_callable = compute_dvh(dose, grid, lambda n: mask, roi_names=["a"])
    via_uint8 = compute_dvh(dose, grid, [("a", mask.astype(np.uint8) * 255)])
    for r in (via_callable, via_uint8):
        assert np.allclose(r.cumulative.values, ref.cumulative.values)
    import xarray as xr

    da = xr.DataArray(mask[None], dims=("roi", "z", "y", "x"), coords={"roi": ["a"]})
    assert np.allclose(compute_dvh(dose, grid, da).cumulative.values, ref.cumulative.values)
    with pytest.raises(ValidationError, match="shape"):
        compute_dvh(dose, grid, {"a": mask[:-1]})
    bad = dose.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        compute_dvh(bad, grid, {"a": mask})
    with pytest.raises(ValidationError, match="negative"):
        compute_dvh(dose - 100, grid, {"a": mask})
    with pytest.raises(ValidationError, match="bin_width"):
        compute_dvh(dose, grid, {"a": mask}, bin_width=0.5)
    with pytest.raises(ValidationError, match="roi_names"):
        compute_dvh(dose, grid, lambda n: mask)
    with pytest.raises(ValidationError, match="boolean"):
        compute_dvh(dose, grid, {"a": mask.astype(float)})
    with pytest.raises(ValidationError, match="prescription"):
        compute_dvh(dose, grid, {"a": mask}, volume_pct_rx=(95,))


# ------------------------------------------------------------------------------------------------
# dicompyler-core example patient (dose grid 194 x 129 x 98)
# ------------------------------------------------------------------------------------------------
def _need_data():
    if not (DICOMPYLER / "rtdose.dcm").exists():
        pytest.skip(f"test data not found: {DICOMPYLER} (see ../shared/data/README.md)")


@pytest.fixture(scope="module")
def dose_grid():
    """The RTDOSE read directly with pydicom (independent of grtv_nb's reader)."""
    _need_data()
    import pydicom

    ds = pydicom.dcmread(DICOMPYLER / "rtdose.dcm")
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    n = np.cross(iop[:3], iop[3:])
    pos = ipp[None] + np.array(ds.GridFrameOffsetVector, float)[:, None] * n[None]
    grid, layout = grid_from_planes(pos, iop, ds.PixelSpacing, ds.Rows, ds.Columns)
    dose = layout.to_canonical(ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling))
    return dose.astype(np.float32), grid


@pytest.fixture(scope="module")
def contours():
    _need_data()
    import pydicom

    rs = pydicom.dcmread(DICOMPYLER / "rtss.dcm")
    try:  # grtv_nb's reader parses ContourData from the raw bytes (pydicom's DS objects are slow)
        from grtv_nb.dicom.rtstruct import read_rois

        return {r.name: r.contours for r in read_rois(rs)}
    except ImportError:
        names = {r.ROINumber: r.ROIName for r in rs.StructureSetROISequence}
        out = {}
        for rc in rs.ROIContourSequence:
            out[names[rc.ReferencedROINumber]] = [
                np.array(c.ContourData, float).reshape(-1, 3) for c in getattr(rc, "ContourSequence", [])
            ]
        return out


def _read_mha(path: Path) -> tuple[np.ndarray, dict]:
    """Minimal MetaImage reader for plastimatch's uncompressed ss-img (bit-packed uchar channels)."""
    raw = path.read_bytes()
    end = raw.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    hdr = dict(line.split(" = ", 1) for line in raw[:end].decode().strip().splitlines())
    assert hdr.get("CompressedData", "False") == "False" and hdr["ElementType"] == "MET_UCHAR"
    nx, ny, nz = (int(v) for v in hdr["DimSize"].split())
    nch = int(hdr.get("ElementNumberOfChannels", "1"))
    arr = np.frombuffer(raw[end:], dtype=np.uint8).reshape(nz, ny, nx, nch)
    return arr, hdr


@pytest.fixture(scope="module")
def plastimatch_dvh(tmp_path_factory):
    """plastimatch convert (RTSTRUCT -> ss-img on the dose grid) and plastimatch dvh (1 cGy bins)."""
    _need_data()
    if not PLASTIMATCH.exists() and shutil.which("plastimatch") is None:
        pytest.skip("plastimatch binary not found (pip install plastimatch)")
    exe = str(PLASTIMATCH) if PLASTIMATCH.exists() else shutil.which("plastimatch")
    tmp = tmp_path_factory.mktemp("pm")
    subprocess.run(
        [
            exe,
            "convert",
            "--input",
            str(DICOMPYLER / "rtss.dcm"),
            "--fixed",
            str(DICOMPYLER / "rtdose.dcm"),
            "--output-ss-img",
            str(tmp / "ss.mha"),
            "--output-ss-list",
            str(tmp / "ss.txt"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            exe,
            "dvh",
            "--input-ss-img",
            str(tmp / "ss.mha"),
            "--input-ss-list",
            str(tmp / "ss.txt"),
            "--input-dose",
            str(DICOMPYLER / "rtdose.dcm"),
            "--output-csv",
            str(tmp / "dvh.csv"),
            "--normalization",
            "vox",
            "--bin-width",
            "0.01",
            "--num-bins",
            "1600",
        ],
        check=True,
        capture_output=True,
    )
    rows = list(csv.reader((tmp / "dvh.csv").open()))
    names = [h.strip() for h in rows[0][1:]]
    table = np.array([[float(v) for v in r[: len(names) + 1]] for r in rows[1:] if r])
    edges, counts = table[:, 0], table[:, 1:]
    voxel_cc = 2.5 * 2.5 * 3.0 / 1000.0
    ref = {}
    for i, n in enumerate(names):
        c = counts[:, i]
        if c[0] <= 0:
            continue
        w = edges[1] - edges[0]
        ref[n] = {
            "volume": c[0] * voxel_cc,
            "mean": float(w * c[1:].sum() / c[0]),  # integral of the cumulative fraction
            "max": float(edges[np.flatnonzero(c > 0)[-1]] + w / 2),
        }
    bits = {}
    for line in (tmp / "ss.txt").read_text().splitlines():
        b, _, name = line.split("|")
        if int(b) >= 0:
            bits[name] = int(b)
    img, _ = _read_mha(tmp / "ss.mha")
    masks = {n: ((img[..., b // 8] >> (b % 8)) & 1).astype(bool) for n, b in bits.items()}
    return ref, masks


def test_engine_matches_plastimatch_on_its_masks(dose_grid, plastimatch_dvh):
    """Same masks (plastimatch's rasterisation) -> our histogram/statistics vs plastimatch dvh."""
    dose, grid = dose_grid
    ref, masks = plastimatch_dvh
    res = compute_dvh(dose, grid, masks)
    checked = 0
    for name, r in ref.items():
        if r["volume"] < 10.0:
            continue
        st = res.stats.sel(roi=name)
        assert float(st["volume_cc"]) == pytest.approx(r["volume"], rel=1e-6), name
        assert float(st["mean"]) == pytest.approx(r["mean"], rel=0.02, abs=0.006), name
        assert float(st["max"]) == pytest.approx(r["max"], rel=0.02), name
        checked += 1
    assert checked >= 5


def _rasterize():
    try:
        from grtv_nb.raster import rasterize_roi
    except ImportError:
        pytest.skip("grtv_nb.raster.rasterize_roi not available yet")
    return rasterize_roi


def test_dose_grid_dvh_matches_dicompyler_published(dose_grid, contours):
    """dicompyler-core's own test figures for ROI 5 Heart: 440.23 cc, Dmax 3.10 Gy, Dmean 0.6475 Gy."""
    dose, grid = dose_grid
    rast = _rasterize()
    res = compute_dvh_on_dose_grid(dose, grid, {"Heart": contours["Heart"]}, rasterize=rast)
    st = res.stats.sel(roi="Heart")
    assert float(st["volume_cc"]) == pytest.approx(440.23, rel=0.02)
    assert float(st["max"]) == pytest.approx(3.10, rel=0.02)
    assert float(st["mean"]) == pytest.approx(0.6475, rel=0.02)


def test_dose_grid_dvh_matches_plastimatch(dose_grid, contours, plastimatch_dvh):
    """Our rasteriser + engine vs plastimatch's rasteriser + dvh, ROIs over 10 cc."""
    dose, grid = dose_grid
    ref, _ = plastimatch_dvh
    res = compute_dvh_on_dose_grid(dose, grid, contours, rasterize=_rasterize())
    checked = 0
    for name, r in ref.items():
        if r["volume"] < 10.0:
            continue
        st = res.stats.sel(roi=name)
        assert float(st["volume_cc"]) == pytest.approx(r["volume"], rel=0.02), name
        assert float(st["mean"]) == pytest.approx(r["mean"], rel=0.02, abs=0.006), name
        assert float(st["max"]) == pytest.approx(r["max"], rel=0.02), name
        checked += 1
    assert checked >= 5
    # the supersampled variant keeps the same totals within 2 %
    ss = compute_dvh_on_dose_grid(dose, grid, {"Heart": contours["Heart"]}, rasterize=_rasterize(), supersample=2)
    assert float(ss.stats["volume_cc"].values[0]) == pytest.approx(440.23, rel=0.02)
    assert float(ss.stats["mean"].values[0]) == pytest.approx(0.6475, rel=0.02)
