"""Benchmark: DVH engine (grtv_nb.dvh) beside dicompyler-core and plastimatch on the dicompyler-core
example patient (10 ROIs, dose grid 194 x 129 x 98), and mesh extraction (grtv_nb.mesh) beside
scikit-image marching cubes and VTK flying edges (pyvista ``contour``) on the ROI bounding box.

dicompyler-core 0.5.6 does not import with pydicom 3, so it runs in its own virtualenv
(``.bench/dcvenv``, created on first run: ``python3 -m venv`` + ``pip install dicompyler-core
'pydicom<3' numpy``). plastimatch is the binary of the PyPI wheel (``.venv/bin/plastimatch``).

Run: ``.venv/bin/python benchmarks/bench_dvh_mesh.py`` (or ``make bench``). Prints tables of
timings, ratios and agreement; exits 0 even when a reference tool is missing (its rows say n/a).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dicompyler-example" / "example_data"
DCVENV = ROOT / ".bench" / "dcvenv"
PLASTIMATCH = Path(sys.executable).parent / "plastimatch"

DC_SCRIPT = r"""
import json, sys, time
import pydicom
from dicompylercore import dvhcalc
rs_path, dose_path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
rs = pydicom.dcmread(rs_path)
rd = pydicom.dcmread(dose_path)
t_read = time.perf_counter() - t0
rois = [(int(r.ROINumber), str(r.ROIName)) for r in rs.StructureSetROISequence]
out = {}
t0 = time.perf_counter()
for num, name in rois:
    d = dvhcalc.get_dvh(rs, rd, num)
    if d.volume > 0:
        out[name] = {"volume": float(d.volume), "mean": float(d.mean), "max": float(d.max), "min": float(d.min)}
    else:
        out[name] = None
t_dvh = time.perf_counter() - t0
print(json.dumps({"read_s": t_read, "dvh_s": t_dvh, "rois": out}))
"""


def _best(fn, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def ensure_dcvenv() -> Path | None:
    py = DCVENV / "bin" / "python"
    if py.exists():
        return py
    print(f"creating {DCVENV} for dicompyler-core (one-off) ...", flush=True)
    try:
        DCVENV.parent.mkdir(exist_ok=True)
        subprocess.run(["python3", "-m", "venv", str(DCVENV)], check=True, capture_output=True)
        subprocess.run(
            [str(DCVENV / "bin" / "pip"), "install", "-q", "dicompyler-core", "pydicom<3", "numpy"],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"  could not create the dicompyler-core environment: {exc}")
        return None
    return py


def run_dicompyler() -> dict | None:
    py = ensure_dcvenv()
    if py is None:
        return None
    best = None
    for _ in range(2):
        t0 = time.perf_counter()
        r = subprocess.run(
            [str(py), "-c", DC_SCRIPT, str(DATA / "rtss.dcm"), str(DATA / "rtdose.dcm")],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print("dicompyler-core failed:", r.stderr[-2000:])
            return None
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["wall_s"] = wall
        if best is None or res["dvh_s"] < best["dvh_s"]:
            best = res
    return best


def run_plastimatch() -> dict | None:
    exe = str(PLASTIMATCH) if PLASTIMATCH.exists() else shutil.which("plastimatch")
    if not exe:
        return None
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(
                [exe, "convert", "--input", str(DATA / "rtss.dcm"), "--fixed", str(DATA / "rtdose.dcm"),
                 "--output-ss-img", str(t / "ss.mha"), "--output-ss-list", str(t / "ss.txt")],
                check=True, capture_output=True,
            )  # fmt: skip
            t1 = time.perf_counter()
            subprocess.run(
                [exe, "dvh", "--input-ss-img", str(t / "ss.mha"), "--input-ss-list", str(t / "ss.txt"),
                 "--input-dose", str(DATA / "rtdose.dcm"), "--output-csv", str(t / "dvh.csv"),
                 "--normalization", "vox", "--bin-width", "0.01", "--num-bins", "1600"],
                check=True, capture_output=True,
            )  # fmt: skip
            t2 = time.perf_counter()
            if best is None or t2 - t0 < best["total_s"]:
                best = {"convert_s": t1 - t0, "dvh_s": t2 - t1, "total_s": t2 - t0}
        rows = [r.split(",") for r in (t / "dvh.csv").read_text().splitlines() if r.strip()]
    names = [h.strip() for h in rows[0][1:]]
    table = np.array([[float(v) for v in r[: len(names) + 1]] for r in rows[1:]])
    edges, counts = table[:, 0], table[:, 1:]
    w = edges[1] - edges[0]
    rois = {}
    for i, n in enumerate(names):
        c = counts[:, i]
        if c[0] <= 0:
            rois[n] = None
            continue
        rois[n] = {
            "volume": c[0] * 2.5 * 2.5 * 3.0 / 1000.0,
            "mean": float(w * c[1:].sum() / c[0]),
            "max": float(edges[np.flatnonzero(c > 0)[-1]] + w / 2),
        }
    best["rois"] = rois
    return best


def read_inputs():
    """RTDOSE and RTSTRUCT with grtv_nb's readers (the timed path reads them again itself)."""
    from grtv_nb.dicom.folder import DicomFile, read_header
    from grtv_nb.dicom.rtdose import read_dose
    from grtv_nb.dicom.rtstruct import read_rois

    dv = read_dose(DicomFile(DATA / "rtdose.dcm", read_header(DATA / "rtdose.dcm"), "RTDOSE"))
    rois = read_rois(read_header(DATA / "rtss.dcm"))
    return dv.array, dv.grid, {r.name: r.contours for r in rois}


def bench_dvh() -> None:
    import warnings

    from grtv_nb.dvh import compute_dvh, compute_dvh_on_dose_grid
    from grtv_nb.raster import rasterize_roi

    print(f"\n## DVH, dicompyler-core example patient ({DATA})")
    if not (DATA / "rtdose.dcm").exists():
        print("data not found: skipped")
        return
    warnings.simplefilter("ignore")
    compute_dvh_on_dose_grid(*read_inputs())  # warm-up (imports)
    t_e2e = _best(lambda: compute_dvh_on_dose_grid(*read_inputs()), 3)
    dose, grid, contours = read_inputs()
    t_compute = _best(lambda: compute_dvh_on_dose_grid(dose, grid, contours), 5)
    masks = {k: rasterize_roi(v, grid) for k, v in contours.items()}
    t_engine = _best(lambda: compute_dvh(dose, grid, masks), 5)
    t_ss2 = _best(lambda: compute_dvh_on_dose_grid(dose, grid, contours, supersample=2), 2)
    ours = compute_dvh_on_dose_grid(dose, grid, contours)
    print(f"dose grid {grid.shape[2]}x{grid.shape[1]}x{grid.shape[0]}, {len(contours)} ROIs, bins 0.01 Gy")

    dc = run_dicompyler()
    pm = run_plastimatch()

    rows = [
        ("grtv_nb: read RTDOSE+RTSTRUCT, rasterise, DVH", t_e2e),
        ("grtv_nb: rasterise + DVH (in memory)", t_compute),
        ("grtv_nb: DVH engine only (masks given)", t_engine),
        ("grtv_nb: rasterise + DVH, supersample=2", t_ss2),
    ]
    if dc:
        rows += [
            ("dicompyler-core get_dvh x ROIs (datasets read once)", dc["dvh_s"]),
            ("dicompyler-core incl. pydicom read", dc["dvh_s"] + dc["read_s"]),
        ]
    if pm:
        rows += [
            ("plastimatch convert + dvh", pm["total_s"]),
            ("plastimatch dvh only", pm["dvh_s"]),
        ]
    print(f"\n{'what':55s} {'time (s)':>9s} {'dc/this':>8s} {'pm/this':>8s}")
    for name, t in rows:
        r_dc = f"{dc['dvh_s'] / t:8.1f}" if dc else "     n/a"
        r_pm = f"{pm['total_s'] / t:8.1f}" if pm else "     n/a"
        print(f"{name:55s} {t:9.4f} {r_dc} {r_pm}")
    if dc:
        print(f"speed-up vs dicompyler-core (end to end vs get_dvh): {dc['dvh_s'] / t_e2e:.1f}x (goal >= 20x)")
    if pm:
        print(f"speed-up vs plastimatch (end to end vs convert+dvh): {pm['total_s'] / t_e2e:.1f}x (goal > 1x)")

    print(f"\n{'ROI':16s} {'vol cc':>9s} {'dVol dc%':>8s} {'dVol pm%':>8s} {'mean Gy':>8s} {'dMean dc%':>9s}"
          f" {'dMean pm%':>9s} {'max Gy':>7s} {'dMax dc%':>8s} {'dMax pm%':>8s}")  # fmt: skip
    st = ours.stats

    def pct(a, b):
        return f"{100 * (a - b) / b:+.2f}" if b else "n/a"

    for i, name in enumerate(ours.roi_names):
        v = float(st["volume_cc"].values[i])
        if v == 0:
            print(f"{name:16s} {'empty':>9s}")
            continue
        mn, mx = float(st["mean"].values[i]), float(st["max"].values[i])
        d = (dc or {}).get("rois", {}).get(name) if dc else None
        p = (pm or {}).get("rois", {}).get(name) if pm else None
        cells = []
        for key, val in (("volume", v), ("mean", mn), ("max", mx)):
            cells.append(pct(val, d[key]) if d else "n/a")
            cells.append(pct(val, p[key]) if p else "n/a")
        flag = "" if v >= 10 else "  (<10 cc)"
        print(f"{name:16s} {v:9.2f} {cells[0]:>8s} {cells[1]:>8s} {mn:8.4f} {cells[2]:>9s} {cells[3]:>9s}"
              f" {mx:7.3f} {cells[4]:>8s} {cells[5]:>8s}{flag}")  # fmt: skip


def _bbox(m: np.ndarray) -> np.ndarray:
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    sub = m[zs[0] : zs[-1] + 1]
    p = sub.any(axis=0)
    ys, xs = np.flatnonzero(p.any(axis=1)), np.flatnonzero(p.any(axis=0))
    box = np.zeros((sub.shape[0] + 2, ys[-1] - ys[0] + 3, xs[-1] - xs[0] + 3), np.uint8)
    box[1:-1, 1:-1, 1:-1] = sub[:, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
    return box


def bench_mesh() -> None:
    import pyvista as pv
    from skimage.measure import marching_cubes

    from grtv_nb.geometry import Grid
    from grtv_nb.mesh import mask_to_mesh

    print("\n## Mesh extraction (times in ms; the references get the ROI bbox padded by 1 voxel, ready made)")
    cases = []
    x = np.arange(512) * 0.9765625 - 250.0
    z = np.arange(120) * 2.5
    g = Grid(x=x, y=x, z=z)
    zz, yy, xx = np.meshgrid(z - 150.0, x, x, indexing="ij")
    ell = (xx / 80.0) ** 2 + (yy / 60.0) ** 2 + (zz / 60.0) ** 2 <= 1.0
    cases.append(("ellipsoid on 512x512x120 CT grid", ell, g))
    if (DATA / "rtdose.dcm").exists():
        from grtv_nb.raster import rasterize_roi

        _, grid, contours = read_inputs()
        for n in ("Lt Lung", "Heart", "BODY"):
            cases.append((f"{n} on the dicompyler dose grid", rasterize_roi(contours[n], grid), grid))
    print("ours = grtv_nb.mesh.mask_to_mesh from the full mask (finds the bbox itself); ours@bbox = same on")
    print("the ready-made bbox; FE = pyvista ImageData.contour(method='flying_edges'); sk = skimage marching_cubes")
    print(f"{'case':40s} {'cc':>8s} {'tris':>7s} {'ours':>7s} {'ours@bbox':>9s} {'FE':>7s} {'sk':>8s}"
          f" {'FE/ours@bbox':>12s} {'sk/ours@bbox':>12s} {'mesh/vox vol':>12s}")  # fmt: skip
    for name, m, grid in cases:
        box = _bbox(m)
        img = pv.ImageData(dimensions=box.shape[::-1])
        img.point_data["m"] = box.ravel()
        boxf = box.astype(np.float32)
        mesh = mask_to_mesh(m, grid)
        vox = float((m.sum(axis=(1, 2)) * grid.voxel_volumes_cc()).sum())
        t_ours = _best(lambda m=m, grid=grid: mask_to_mesh(m, grid), 7)
        # ours on the same ready-made bbox (what the references get)
        bgrid = Grid(x=np.arange(box.shape[2], dtype=float), y=np.arange(box.shape[1], dtype=float),
                     z=np.arange(box.shape[0], dtype=float))  # fmt: skip
        bmask = box.view(bool)
        t_ours_box = _best(lambda b=bmask, g=bgrid: mask_to_mesh(b, g), 7)
        t_fe = _best(lambda img=img: img.contour([0.5], method="flying_edges"), 7)
        t_sk = _best(lambda b=boxf: marching_cubes(b, 0.5), 5)
        print(f"{name:40s} {vox:8.1f} {mesh.n_faces:7d} {1e3 * t_ours:7.2f} {1e3 * t_ours_box:9.2f}"
              f" {1e3 * t_fe:7.2f} {1e3 * t_sk:8.2f} {t_fe / t_ours_box:12.2f} {t_sk / t_ours_box:12.2f}"
              f" {mesh.volume_cc() / vox:12.4f}")  # fmt: skip


def bench_contours() -> None:
    from skimage.measure import find_contours

    from grtv_nb.contours import mask_to_contours
    from grtv_nb.geometry import Grid

    print("\n## Mask -> planar contours (ms); reference: skimage find_contours slice by slice on the bbox")
    x = np.arange(512) * 0.9765625 - 250.0
    z = np.arange(150) * 2.0
    g = Grid(x=x, y=x, z=z)
    zz, yy, xx = np.meshgrid(z - 150.0, x, x, indexing="ij", sparse=True)
    body = np.broadcast_to((xx / 200) ** 2 + (yy / 140) ** 2 * (1 + 0.1 * np.sin(zz / 10)) <= 1, g.shape).copy()
    cases = [("body-like ellipse, 512x512x150 CT grid", body, g)]
    if (DATA / "rtdose.dcm").exists():
        from grtv_nb.raster import rasterize_roi

        _, grid, contours = read_inputs()
        cases.append(("BODY on the dicompyler dose grid", rasterize_roi(contours["BODY"], grid), grid))

    def sk(m):
        box = np.pad(_bbox(m)[1:-1].astype(np.float32), ((0, 0), (0, 0), (0, 0)))
        return [find_contours(p, 0.5, fully_connected="high") for p in box]

    print(f"{'case':40s} {'loops':>6s} {'points':>7s} {'ours':>8s} {'skimage':>8s} {'sk/ours':>8s}")
    for name, m, grid in cases:
        cs = mask_to_contours(m, grid)
        t_ours = _best(lambda m=m, grid=grid: mask_to_contours(m, grid), 3)
        t_sk = _best(lambda m=m: sk(m), 3)
        npts = sum(len(c.points) for c in cs)
        print(f"{name:40s} {len(cs):6d} {npts:7d} {1e3 * t_ours:8.1f} {1e3 * t_sk:8.1f} {t_sk / t_ours:8.2f}")


def main() -> None:
    t0 = time.perf_counter()
    bench_dvh()
    bench_mesh()
    bench_contours()
    print(f"\n(benchmark ran in {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
