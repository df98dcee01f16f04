"""Benchmark: the default DVH engine (grtv_nb.dvh.compute_roi_dvh, convention "exact") against analytical
DVHs, beside dicompyler-core 0.5.6 and plastimatch on the same DICOM files, and its speed.

Cases (Nelms et al., Med. Phys. 42(8), 2015 construction, built by :func:`grtv_nb.phantom.analytic_case`):
spheres (R 12 and 4 mm), cylinders and cones standing and lying, a box and a spherical shell, in linear
dose gradients of 1 Gy/mm along SI (z) and AP (y), contour planes 1, 2 and 3 mm apart, dose grids of 1
and 2.5 mm, written as RTSTRUCT + RTDOSE without CT (as DVH-only exports). Goals (issue 10): volume and
Dmean within 1 %, D99/D95/D5/D1/D0.03cc within max(1 %, 0.3 Gy).

Speed: 20 ROIs (BODY, organs, targets) contoured on the 2 mm planes of a 512 x 512 x 200 CT, dose on a
2.5 mm grid, ours vs dicompyler-core on the same files.

dicompyler-core runs in its own virtualenv (it needs pydicom < 3): ``$GRTV_DCVENV`` or ``.bench/dcvenv``
(created on first run by benchmarks/bench_dvh_mesh.py's helper). plastimatch: the PyPI wheel's binary.
Run: ``.venv/bin/python benchmarks/bench_dvh_analytic.py [--quick] [--repeat N] [--no-speed]`` (each
time the fastest of N runs, default 3; ``--no-speed`` skips the 20-ROI case). Exits 0 when a reference tool is
missing (its columns say n/a).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grtv_nb.dvh import compute_roi_dvh  # noqa: E402
from grtv_nb.errors import GRTVWarning  # noqa: E402
from grtv_nb.phantom import ANALYTIC_SHAPES, analytic_case, write_analytic_case  # noqa: E402

PLASTIMATCH = Path(sys.executable).parent / "plastimatch"
KEYS = ("volume", "mean", "D99", "D95", "D5", "D1", "D0.03cc")

DC_SCRIPT = r"""
import json, sys, time
import pydicom
from dicompylercore import dvhcalc
out = []
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 1
for rs_path, rd_path in json.loads(sys.argv[1]):
    rs, rd = pydicom.dcmread(rs_path), pydicom.dcmread(rd_path)
    best = float("inf")
    for _ in range(repeat):  # the fastest of `repeat` runs, in CPU time (timings are noisy under load)
        res = {}
        t0 = time.process_time()
        for r in rs.StructureSetROISequence:
            h = dvhcalc.get_dvh(rs, rd, int(r.ROINumber))
            if h.volume > 0:
                res[str(r.ROIName)] = {"volume": h.volume, "mean": h.mean, "min": h.min, "max": h.max,
                                       "D99": h.D99.value, "D95": h.D95.value, "D5": h.D5.value,
                                       "D1": h.D1.value, "D0.03cc": h.dose_constraint(0.03, "cm3").value}
        best = min(best, time.process_time() - t0)
    out.append({"s": best, "rois": res})
print(json.dumps(out))
"""


def dc_python() -> Path | None:
    env = os.environ.get("GRTV_DCVENV")
    if env and (Path(env) / "bin" / "python").exists():
        return Path(env) / "bin" / "python"
    try:
        from bench_dvh_mesh import ensure_dcvenv

        return ensure_dcvenv()
    except Exception as exc:  # noqa: BLE001 - a missing reference tool is reported, not fatal
        print(f"dicompyler-core unavailable: {exc}")
        return None


def run_dicompyler(pairs: list[tuple[Path, Path]], repeat: int = 1) -> list[dict] | None:
    """dicompyler-core's DVHs and times of each (RTSTRUCT, RTDOSE) pair: per pair the fastest of
    ``repeat`` runs of its per-ROI work (``get_dvh`` from the read datasets, then the statistics)."""
    py = dc_python()
    if py is None:
        return None
    r = subprocess.run([str(py), "-c", DC_SCRIPT, json.dumps([[str(a), str(b)] for a, b in pairs]), str(repeat)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("dicompyler-core failed:", r.stderr[-1500:])
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def _stats_from_cumulative(edges: np.ndarray, cum: np.ndarray) -> dict:
    from grtv_nb.dvh import _dose_at

    vol = float(cum[0])
    diff = -np.diff(np.append(cum, 0.0))
    w = edges[1] - edges[0]
    return {"volume": vol, "mean": float(np.sum((edges + w / 2) * diff) / vol),
            **{f"D{x}": _dose_at(cum, edges, vol * x / 100, vol) for x in (99, 95, 5, 1)},
            "D0.03cc": _dose_at(cum, edges, 0.03, vol)}


def run_plastimatch(rs: Path, rd: Path, voxel_cc: float, top_gy: float) -> dict | None:
    exe = str(PLASTIMATCH) if PLASTIMATCH.exists() else shutil.which("plastimatch")
    if not exe:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        try:
            subprocess.run([exe, "convert", "--input", str(rs), "--fixed", str(rd), "--output-ss-img",
                            str(t / "ss.mha"), "--output-ss-list", str(t / "ss.txt")], check=True, capture_output=True)
            subprocess.run([exe, "dvh", "--input-ss-img", str(t / "ss.mha"), "--input-ss-list", str(t / "ss.txt"),
                            "--input-dose", str(rd), "--output-csv", str(t / "dvh.csv"), "--normalization", "vox",
                            "--bin-width", "0.01", "--num-bins", str(int(top_gy / 0.01) + 2)],
                           check=True, capture_output=True)
        except subprocess.CalledProcessError:
            return None
        rows = [r.split(",") for r in (t / "dvh.csv").read_text().splitlines() if r.strip()]
    table = np.array([[float(v) for v in r[:2]] for r in rows[1:]])
    if table[0, 1] <= 0:
        return None
    return _stats_from_cumulative(table[:, 0], table[:, 1] * voxel_cc)


def _err(key: str, got: float | None, want: float) -> tuple[float, bool]:
    if got is None or not np.isfinite(got):
        return float("nan"), False
    if key in ("volume", "mean"):
        e = 100 * (got / want - 1)
        return e, abs(e) <= 1.0
    return got - want, abs(got - want) <= max(0.01 * want, 0.3)


def ill_posed(c) -> str | None:
    """Why the case's contours do not fix its volume to 1 %, or None.

    * A flat end face across the planes (cylinder, cone base, box): the contours are the same
      wherever the face lies between the last plane inside and the first outside, a range of
      ``area x spacing`` in volume. Where the face lies on the slab boundary (half a spacing beyond
      the end plane, what the slab convention assumes) the case is consistent with it; elsewhere no
      method can know where it is (reported when the volume range exceeds 1 %).
    * Fewer than three contour planes: no curvature to extrapolate the surface beyond them from.
    """
    from grtv_nb.phantom import _extent, section_area

    e = _extent(c.shape, "z")
    cz = c.centre[2]
    planes = sorted({round(float(lp[0, 2]), 6) for lp in c.contours})
    v = c.truth.volume_cc * 1000
    if len(planes) < 3:
        beyond = v - float(np.trapezoid(section_area(c.shape, "z", np.linspace(planes[0] - cz, planes[-1] - cz, 2001)),
                                        np.linspace(planes[0], planes[-1], 2001)))
        return f"{len(planes)} contour planes, {100 * beyond / v:.0f} % of the volume beyond them"
    why = []
    for sign in (-1, 1):
        face = float(section_area(c.shape, "z", np.array(sign * (e - 1e-6))))
        if face <= 0:
            continue
        zf = cz + sign * e
        conv = (planes[-1] if sign > 0 else planes[0]) + sign * 0.5 * c.plane_mm  # the slab's end
        rng = face * c.plane_mm / v
        if abs(conv - zf) > 1e-6 and rng > 0.01:
            why.append(f"flat end at z={zf:+.2f} mm, slab end {conv:+.2f}: same contours for volumes "
                       f"{100 * rng:.1f} % apart, slab end {100 * face * sign * (conv - zf) / v:+.1f} %")
    return "; ".join(why) or None


def analytic_table(quick: bool, repeat: int = 3) -> None:
    spacings = (1.0, 3.0) if quick else (1.0, 2.0, 3.0)
    grids = (2.5,) if quick else (1.0, 2.5)
    cases = [analytic_case(s, axis=a, plane_mm=p, dose_mm=g, centre=(0.3, -0.6, 0.2))
             for s in ANALYTIC_SHAPES for a in ("z", "y") for p in spacings for g in grids]
    with tempfile.TemporaryDirectory() as tmp:
        pairs = []
        for i, c in enumerate(cases):
            f = write_analytic_case(Path(tmp) / f"c{i}", c, with_ct=False)
            pairs.append((f / "RS_analytic.dcm", f / "RD_analytic.dcm"))
        t0 = time.perf_counter()
        dc = run_dicompyler(pairs, repeat)
        t_dc_total = time.perf_counter() - t0
        pm = [run_plastimatch(rs, rd, float(np.prod(c.dose_grid.spacing)) / 1000, float(c.dose.max()))
              for (rs, rd), c in zip(pairs, cases)]
    tools = {"ours": [], "ours extrude": [], "dicompyler-core": [], "plastimatch": []}
    t_ours = []
    t_ext = []
    # warm-up (imports, compiled kernels): both paths of between="auto" (cases[0] extrudes under
    # "auto"; without "interpolate" here the first interpolated case paid ~30 ms of kernel loading)
    for between in ("auto", "interpolate", "extrude"):
        compute_roi_dvh(cases[0].dose, cases[0].dose_grid, {"w": cases[0].contours}, between=between,
                        dose_pct=(99, 95, 5, 1), dose_cc=(0.03,))
    for i, c in enumerate(cases):
        for between, key, times in (("auto", "ours", t_ours), ("extrude", "ours extrude", t_ext)):
            best = np.inf
            for _ in range(repeat):  # the fastest of `repeat` runs, as for dicompyler-core
                t0 = time.process_time()
                r = compute_roi_dvh(c.dose, c.dose_grid, {c.shape: c.contours}, between=between,
                                    dose_pct=(99, 95, 5, 1), dose_cc=(0.03,))
                best = min(best, time.process_time() - t0)
            times.append(best)
            st = r.stats
            tools[key].append({"volume": float(st["volume_cc"][0]), **{k: float(st[k][0]) for k in KEYS[1:]}})
        tools["dicompyler-core"].append(dc[i]["rois"].get(c.shape) if dc else None)
        tools["plastimatch"].append(pm[i])
    print(f"\nAnalytic cases: {len(cases)} (errors: volume/mean in %, D-points in Gy; * = outside the goal)")
    hdr = f"{'case':44s} {'tool':16s} " + " ".join(f"{k:>8s}" for k in KEYS) + "  pass"
    print(hdr)
    npass = {k: 0 for k in tools}
    for i, c in enumerate(cases):
        t = c.truth
        want = {"volume": t.volume_cc, "mean": t.mean, "D99": t.dose_at_pct(99), "D95": t.dose_at_pct(95),
                "D5": t.dose_at_pct(5), "D1": t.dose_at_pct(1), "D0.03cc": t.dose_at_cc(0.03)}
        for tool, rows in tools.items():
            got = rows[i]
            errs = [_err(k, None if got is None else got.get(k), want[k]) for k in KEYS]
            ok = all(e[1] for e in errs)
            npass[tool] += ok
            cells = " ".join(f"{e:+7.2f}{' ' if g else '*'}" if np.isfinite(e) else f"{'n/a':>8s}" for e, g in errs)
            print(f"{c.name if tool == 'ours' else '':44s} {tool:16s} {cells}  {'yes' if ok else 'no'}")
    print("\ncases meeting every goal: " + ", ".join(f"{k} {v}/{len(cases)}" for k, v in npass.items()))
    why = [ill_posed(c) for c in cases]
    posed = [i for i, w in enumerate(why) if w is None]
    ok_ours = [all(_err(k, tools["ours"][i][k], w)[1] for k, w in zip(KEYS, (
        c.truth.volume_cc, c.truth.mean, c.truth.dose_at_pct(99), c.truth.dose_at_pct(95), c.truth.dose_at_pct(5),
        c.truth.dose_at_pct(1), c.truth.dose_at_cc(0.03)))) for i, c in enumerate(cases)]
    print(f"well-posed cases (the contours fix the volume to 1 %): ours {sum(ok_ours[i] for i in posed)}/{len(posed)}")
    print("cases the contours do not fix (reported apart, with the reason):")
    for i, w in enumerate(why):
        if w is not None:
            print(f"  {cases[i].name:40s} ours {'meets' if ok_ours[i] else 'misses'} the goals: {w}")
    if dc:
        speed_per_case([c.name for c in cases], t_ours, t_ext, [d["s"] for d in dc], repeat, t_dc_total)


def speed_per_case(names: list[str], t_ours: list[float], t_ext: list[float], t_dc: list[float], repeat: int,
                   t_dc_total: float) -> None:
    """Per-case times (ms) of ours and dicompyler-core, their ratio, and a summary."""
    ours, ext, dc = np.array(t_ours), np.array(t_ext), np.array(t_dc)
    per = dc / np.maximum(ours, 1e-9)
    print(f"\nSpeed per analytic case: CPU time of the process (both single-threaded; fair on a shared machine), "
          f"fastest of {repeat} runs.\nTimed: ours = compute_roi_dvh on the parsed contours and dose array (planes, "
          "samples, histogram, statistics\nD99/D95/D5/D1/D0.03cc); dicompyler-core = get_dvh on the read "
          "RTSTRUCT/RTDOSE datasets (it parses the ROI's\ncontours and the dose there), then the same statistics.")
    print(f"{'case':44s} {'ours ms':>8s} {'extrude':>8s} {'dc ms':>8s} {'dc/ours':>8s}")
    for n, a, b, c, r in zip(names, ours, ext, dc, per):
        print(f"{n:44s} {1e3 * a:8.2f} {1e3 * b:8.2f} {1e3 * c:8.2f} {r:7.1f}x{' *' if r < 1 else ''}")
    print(f"time for all cases: ours {ours.sum():.3f} s (extruded {ext.sum():.3f} s), dicompyler-core "
          f"{dc.sum():.3f} s: ratio {dc.sum() / max(ours.sum(), 1e-9):.1f}x (extruded "
          f"{dc.sum() / max(ext.sum(), 1e-9):.1f}x); its process incl. reading and repeats {t_dc_total:.1f} s")
    print(f"per case ratio dicompyler-core / ours: median {np.median(per):.1f}x, min {per.min():.1f}x, "
          f"cases slower than dicompyler-core: {int(np.sum(per < 1))}")
    slow = np.argsort(per)[:5]
    print("lowest ratios: " + "; ".join(f"{names[i]} {1e3 * ours[i]:.1f} ms vs {1e3 * dc[i]:.1f} ms" for i in slow))
    top = np.argsort(-ours)[:5]
    print("slowest of ours: " + "; ".join(f"{names[i]} {1e3 * ours[i]:.1f} ms" for i in top))


def _ellipse(cx, cy, a, b, z, n=120):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + a * np.cos(t), cy + b * np.sin(t), np.full(n, z)])


def speed_case():
    """20 ROIs on the 2 mm planes of a 512 x 512 x 200 CT (0.98 mm pixels); dose on a 2.5 mm grid."""
    from grtv_nb.geometry import Grid

    z = np.arange(200) * 2.0 - 199.0
    rng = np.random.default_rng(7)
    rois = {"BODY": [_ellipse(0, 0, 240, 170, zk) for zk in z]}
    for i in range(19):
        cx, cy, cz = rng.uniform(-120, 120), rng.uniform(-80, 80), rng.uniform(-120, 120)
        a, b, c = rng.uniform(8, 70), rng.uniform(8, 60), rng.uniform(8, 70)
        loops = []
        for zk in z:
            f = 1 - ((zk - cz) / c) ** 2
            if f > 0:
                loops.append(_ellipse(cx, cy, a * np.sqrt(f), b * np.sqrt(f), zk))
        rois[f"ROI_{i:02d}"] = loops
    g = Grid(np.arange(-250, 250.1, 2.5), np.arange(-180, 180.1, 2.5), np.arange(-200, 0.1, 2.5), slice_thickness=2.5)
    Z, Y, X = np.meshgrid(g.z, g.y, g.x, indexing="ij")
    dose = (60 * np.exp(-((X - 20) ** 2 + (Y + 10) ** 2 + (Z + 100) ** 2) / (2 * 60.0**2))).astype(np.float32)
    return rois, dose, g


def speed_table() -> None:
    from grtv_nb.dicom.common import PatientStudy, save_atomic
    from grtv_nb.dicom.rtdose import build_rtdose
    from grtv_nb.dicom.rtstruct import ROI, build_rtstruct

    rois, dose, g = speed_case()
    for between in ("auto", "interpolate", "extrude"):  # warm-up (imports, compiled kernels)
        compute_roi_dvh(dose, g, {"ROI_00": rois["ROI_00"]}, between=between)
    t0 = time.perf_counter()
    ours = compute_roi_dvh(dose, g, rois, convention="exact")
    t_ours = time.perf_counter() - t0
    t_b = {}
    for between in ("interpolate", "extrude"):
        t0 = time.perf_counter()
        compute_roi_dvh(dose, g, rois, between=between)
        t_b[between] = time.perf_counter() - t0
    t0 = time.perf_counter()
    compute_roi_dvh(dose, g, rois, convention="dicompyler")
    t_dcconv = time.perf_counter() - t0
    print(f"\nSpeed: 20 ROIs on a 512 x 512 x 200 CT's 2 mm planes, dose grid {dose.shape} of 2.5 mm")
    print(f"  ours exact (default auto) {t_ours:7.2f} s")
    print(f"  ours exact, interpolated  {t_b['interpolate']:7.2f} s")
    print(f"  ours exact, extruded      {t_b['extrude']:7.2f} s")
    print(f"  ours dicompyler convention{t_dcconv:7.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        ps = PatientStudy(patient_name="SPEED", patient_id="SPEED")
        rl = [ROI(name=n, number=i + 1, color=(255, 0, 0), roi_type="ORGAN", contours=c, geometric_type="CLOSED_PLANAR",
                  source="RTSTRUCT") for i, (n, c) in enumerate(rois.items())]
        rs, rd = Path(tmp) / "rs.dcm", Path(tmp) / "rd.dcm"
        save_atomic(build_rtstruct(rl, ps, None), rs)
        save_atomic(build_rtdose(dose, g, ps), rd)
        dc = run_dicompyler([(rs, rd)])
    if dc:
        t_dc = dc[0]["s"]
        print(f"  dicompyler-core 0.5.6     {t_dc:7.2f} s   -> ours exact is {t_dc / t_ours:.1f}x faster")
        worst = max(abs(float(ours.stats["volume_cc"].sel(roi=n)) / v["volume"] - 1) for n, v in dc[0]["rois"].items())
        print(f"  largest volume difference to dicompyler-core: {100 * worst:.2f} %")


def main() -> None:
    quick = "--quick" in sys.argv
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GRTVWarning)
        analytic_table(quick, repeat)
        if "--no-speed" not in sys.argv:
            speed_table()


if __name__ == "__main__":
    main()
