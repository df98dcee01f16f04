"""Benchmark: exportRT (grtv_nb.export.export_rt), mask -> RTSTRUCT beside rt-utils and plastimatch,
and the DVHs of every exported real patient beside dicompyler-core and plastimatch.

1. **exportRT** end to end (image series copied, RTSTRUCT, RTDOSE written atomically) on the built-in
   phantom (10 ROIs + the merged "Lung", dose) and on pycerr-headneck-ct (90 slices of 511 x 511) with
   a body outline (threshold -300 HU, largest component: ~2 000 loops with the airway holes) added by
   ``Study.add_roi``; with its parts (copying the image files, building + saving the RTSTRUCT, the
   RTDOSE) and, as a floor, ``shutil.copytree`` of the source folder.
2. **Mask -> RTSTRUCT file** for one ROI (the body outline above; the phantom's merged lungs):
   grtv_nb (``mask_to_contours`` + ``build_rtstruct`` + save) beside rt-utils
   (``RTStructBuilder.create_new`` + ``add_roi`` + ``save``, OpenCV contours) and plastimatch
   (``convert --input-prefix <NRRD masks> --referenced-ct <CT> --output-dicom``, a whole process).
3. **DVH of every ROI of each exported real patient** (the export re-read; patients without a dose get
   an analytic one by ``Study.set_dose``: a Gaussian of 40 mm sigma, 60 Gy, centred on their first ROI
   over 1 cc): grtv_nb ``open_study(export).dvh(on="dose")`` (the RTDOSE grid, as the references)
   beside dicompyler-core 0.5.6 ``dvhcalc.get_dvh`` per ROI (its own virtualenv ``.bench/dcvenv``, as
   ``bench_dvh_mesh.py``, since it does not import with pydicom 3) and ``plastimatch convert`` (ROI
   image on the RTDOSE grid) + ``plastimatch dvh``. Agreement of volume, Dmean and Dmax per ROI (goal:
   within 2% for ROIs over 10 cc). ``bench_dvh_mesh.py`` does the same on the source dicompyler-example
   files; this one checks what our exports give other tools.

Run: ``.venv/bin/python benchmarks/bench_export.py`` (or ``make bench``). Missing tools or data give
n/a rows; the script always exits 0.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PLASTIMATCH = Path(sys.executable).parent / "plastimatch"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_dvh_mesh: the dicompyler-core venv + script
warnings.simplefilter("ignore")

REAL = {
    "cerr pat_1": "cerr-radiomics-phantom/pat_1", "cerr pat_2": "cerr-radiomics-phantom/pat_2",
    "cerr pat_3": "cerr-radiomics-phantom/pat_3", "cerr pat_4": "cerr-radiomics-phantom/pat_4",
    "rt-utils mock": "rt-utils-testdata/tests/mock_data", "dicompyler": "dicompyler-example/example_data",
    "totalseg": "totalsegmentator-example/example_ct_dicom", "headneck": "pycerr-headneck-ct/head_and_neck/pt_1",
}
TOTALSEG_LABELS = {"liver": 5, "spleen": 1, "aorta": 52, "spinal_cord": 79}
SIGMA_MM = 60.0  # the analytic dose given to patients without one
TOL_PCT, TOL_GY = 2.0, 0.01  # agreement goal: 2%, or one 0.01 Gy bin for doses near 0 (histogram means)


def _best(fn, repeat: int = 3) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def _pm() -> str | None:
    return str(PLASTIMATCH) if PLASTIMATCH.exists() else shutil.which("plastimatch")


# ----------------------------------------------------------------------------- studies
def headneck_with_body():
    from scipy import ndimage

    from grtv_nb import open_study

    st = open_study(DATA / REAL["headneck"])
    lab, _ = ndimage.label(st.ds["image"].values > -300)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    st.add_roi("Body", lab == sizes.argmax(), (0, 255, 0), roi_type="EXTERNAL")
    return st


def phantom_with_lung(tmp: Path):
    from grtv_nb import open_study
    from grtv_nb.phantom import write_phantom

    src = tmp / "phantom_src"
    st = open_study(src if src.exists() else write_phantom(src))
    st.add_roi("Lung", st.mask("Lung_L") | st.mask("Lung_R"), (255, 255, 0))
    return st


def study_for_dvh(name: str):
    """A real patient as a study with ROIs and a dose (analytic where it has none)."""
    from grtv_nb import open_study

    if name == "headneck":
        st = headneck_with_body()
    else:
        st = open_study(DATA / REAL[name])
    if name == "totalseg":
        import SimpleITK as sitk
        from reference_tools import itk_mask_to_canonical

        seg = sitk.ReadImage(str(DATA / "totalsegmentator-example" / "example_seg_dicom.nii.gz"))
        for organ, lab in TOTALSEG_LABELS.items():
            st.add_roi(organ, itk_mask_to_canonical(seg == lab, st.grid), None)
    if not st.has_dose:
        first = next(i for i in range(len(st.rois)) if st.volume_cc(i) > 1)
        zz, yy, xx = np.nonzero(st.mask(first))
        g = st.grid
        c = np.array([g.x[xx].mean(), g.y[yy].mean(), g.z[zz].mean()])
        z, y, x = np.meshgrid(g.z - c[2], g.y - c[1], g.x - c[0], indexing="ij", sparse=True)
        st.set_dose((60.0 * np.exp(-(x**2 + y**2 + z**2) / (2 * SIGMA_MM**2))).astype(np.float32))
    return st


# ----------------------------------------------------------------------------- 1. exportRT
def _export_case(label: str, st, tmp: Path) -> None:
    from grtv_nb.dicom.common import PatientStudy, save_atomic
    from grtv_nb.dicom.rtdose import build_rtdose
    from grtv_nb.dicom.rtstruct import ROI, build_rtstruct
    from grtv_nb.export import _export_images, export_rt

    t_exp = _best(lambda: export_rt(st, Path(tempfile.mkdtemp(dir=tmp)) / "export"))
    ps = PatientStudy.from_dataset(st.image_headers[0], st.grid.frame_of_reference_uid)
    t_img = _best(lambda: _export_images(st, Path(tempfile.mkdtemp(dir=tmp)), ps))
    rois = [ROI(r.name, r.number, r.color, r.roi_type or "ORGAN", r.contours) for r in st.rois]
    t_rs = _best(lambda: save_atomic(build_rtstruct(rois, ps, None), tmp / "rs.dcm"))
    t_rd = (_best(lambda: save_atomic(build_rtdose(st.ds["dose"].values, st.grid, ps), tmp / "rd.dcm"))
            if st.has_dose else float("nan"))  # fmt: skip
    src = st.source["folder"]
    t_copy = _best(lambda: shutil.copytree(src, Path(tempfile.mkdtemp(dir=tmp)) / "c"))
    loops = sum(len(r.contours) for r in st.rois)
    pts = sum(len(c) for r in st.rois for c in r.contours)
    print(f"{label:42s} {loops:6d} {pts:7d} {t_exp:9.3f} {t_img:7.3f} {t_rs:9.3f} {t_rd:7.3f} {t_copy:9.3f}"
          f" {t_exp / t_copy:11.1f}")  # fmt: skip


def bench_export(tmp: Path) -> None:
    print("\n## 1. exportRT (best of 3, seconds; images = copying the image files, RTSTRUCT/RTDOSE = build + save)")
    print(f"{'case':42s} {'loops':>6s} {'points':>7s} {'exportRT':>9s} {'images':>7s} {'RTSTRUCT':>9s}"
          f" {'RTDOSE':>7s} {'copytree':>9s} {'export/copy':>11s}")  # fmt: skip
    _export_case("phantom (64 sl. 192x144, 11 ROIs, dose)", phantom_with_lung(tmp), tmp)
    if (DATA / REAL["headneck"]).exists():
        _export_case("headneck (90 sl. 511x511) + body outline", headneck_with_body(), tmp)


# ----------------------------------------------------------------------------- 2. mask -> RTSTRUCT
def _rtutils_layout(mask: np.ndarray, grid, series) -> np.ndarray:
    """Our canonical mask in rt-utils's [row, column, slice] layout (slices in its series order)."""
    from reference_tools import nearest_index

    first = series[0]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    u, v = iop[:3], iop[3:]
    ipp = np.array([[float(x) for x in s.ImagePositionPatient] for s in series])
    rows, cols = int(first.Rows), int(first.Columns)
    ps_r, ps_c = (float(x) for x in first.PixelSpacing)
    assert np.allclose(np.abs(u), [1, 0, 0]) and np.allclose(np.abs(v), [0, 1, 0]), "axial series only"
    ix = nearest_index(grid.x, ipp[0, 0] + np.arange(cols) * ps_c * u[0], 0.05, "x")
    iy = nearest_index(grid.y, ipp[0, 1] + np.arange(rows) * ps_r * v[1], 0.05, "y")
    iz = nearest_index(grid.z, ipp[:, 2], 0.05, "z")
    return np.ascontiguousarray(mask[np.ix_(iz, iy, ix)].transpose(1, 2, 0))


def _mask_case(label: str, st, roi: str, tmp: Path) -> None:
    from grtv_nb.contours import contour_points, mask_to_contours
    from grtv_nb.dicom.common import PatientStudy, save_atomic
    from grtv_nb.dicom.rtstruct import ROI, build_rtstruct
    from grtv_nb.export import export_rt

    mask = st.mask(roi)
    grid = st.grid
    ps = PatientStudy.from_dataset(st.image_headers[0], grid.frame_of_reference_uid)

    def ours():
        loops = contour_points(mask_to_contours(mask, grid, name=roi))
        save_atomic(build_rtstruct([ROI(roi, 1, (255, 0, 0), "ORGAN", loops)], ps, None), tmp / "rs1.dcm")
        return loops

    t_ours = _best(ours)
    n_loops = len(ours())
    # the references read the CT files of a folder holding only them
    exp = Path(tempfile.mkdtemp(dir=tmp)) / "export"
    export_rt(st, exp)
    ct_dir = Path(tempfile.mkdtemp(dir=tmp))
    for f in exp.glob("CT_*.dcm"):
        shutil.copy(f, ct_dir / f.name)
    t_ru = t_pm = float("nan")
    try:
        import rt_utils.rtstruct_builder as builder
        from rt_utils import RTStructBuilder

        builder.warnings = warnings
        m_rt = _rtutils_layout(mask, grid, RTStructBuilder.create_new(dicom_series_path=str(ct_dir)).series_data)

        def ru():
            rt = RTStructBuilder.create_new(dicom_series_path=str(ct_dir))
            rt.add_roi(mask=m_rt, name=roi)
            rt.save(str(tmp / "rs_rtutils.dcm"))

        t_ru = _best(ru)
    except ImportError:
        pass
    exe = _pm()
    if exe:
        import SimpleITK as sitk

        mdir = Path(tempfile.mkdtemp(dir=tmp))
        im = sitk.GetImageFromArray(mask.astype(np.uint8))
        im.SetOrigin(tuple(float(a[0]) for a in (grid.x, grid.y, grid.z)))
        im.SetSpacing((float(grid.dx), float(grid.dy), float(grid.dz)))
        sitk.WriteImage(im, str(mdir / f"{roi}.nrrd"))
        cmd = [exe, "convert", "--input-prefix", str(mdir), "--referenced-ct", str(ct_dir), "--output-dicom"]
        t_pm = _best(lambda: subprocess.run([*cmd, tempfile.mkdtemp(dir=tmp)], check=True, capture_output=True))
    print(f"{label:26s} {st.volume_cc(roi):8.1f} {n_loops:6d} {t_ours:8.3f} {t_ru:9.3f} {t_pm:9.3f}"
          f" {t_ru / t_ours:9.1f} {t_pm / t_ours:8.1f}")  # fmt: skip


def bench_mask_to_rtstruct(tmp: Path) -> None:
    print("\n## 2. One ROI mask -> RTSTRUCT file (best of 3, seconds)")
    print("grtv_nb = mask_to_contours + build_rtstruct + save; rt-utils = create_new + add_roi + save;")
    print("plastimatch = convert --input-prefix (NRRD mask) --referenced-ct --output-dicom (whole process)")
    print(f"{'case':26s} {'cc':>8s} {'loops':>6s} {'grtv_nb':>8s} {'rt-utils':>9s} {'plastim.':>9s}"
          f" {'rtu/ours':>9s} {'pm/ours':>8s}")  # fmt: skip
    _mask_case("phantom Lung (merged)", phantom_with_lung(tmp), "Lung", tmp)
    if (DATA / REAL["headneck"]).exists():
        _mask_case("headneck body outline", headneck_with_body(), "Body", tmp)


# ----------------------------------------------------------------------------- 3. DVH of exports
def dicompyler(rs: Path, rd: Path) -> dict | None:
    try:
        from bench_dvh_mesh import DC_SCRIPT, ensure_dcvenv
    except ImportError:
        return None
    py = ensure_dcvenv()
    if py is None:
        return None
    t0 = time.perf_counter()
    r = subprocess.run([str(py), "-c", DC_SCRIPT, str(rs), str(rd)], capture_output=True, text=True)
    if r.returncode != 0:
        print("  dicompyler-core failed:", r.stderr[-800:])
        return None
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    return res


def plastimatch_dvh(rs: Path, rd: Path, tmp: Path) -> dict | None:
    import pydicom

    exe = _pm()
    if not exe:
        return None
    ds = pydicom.dcmread(rd, stop_before_pixels=True)
    off = [float(x) for x in ds.GridFrameOffsetVector] if int(ds.get("NumberOfFrames", 1)) > 1 else [0.0, 1.0]
    vox_cc = float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]) * abs(off[1] - off[0]) / 1000.0
    dmax = float(np.max(pydicom.dcmread(rd).pixel_array)) * float(ds.DoseGridScaling)
    w = 0.01
    t0 = time.perf_counter()
    # --xor-contours: inner loops are holes (as the export writes them, and as dicompyler-core reads them)
    subprocess.run([exe, "convert", "--input", str(rs), "--fixed", str(rd), "--output-ss-img", str(tmp / "ss.mha"),
                    "--output-ss-list", str(tmp / "ss.txt"), "--xor-contours"], check=True, capture_output=True)
    t1 = time.perf_counter()
    subprocess.run([exe, "dvh", "--input-ss-img", str(tmp / "ss.mha"), "--input-ss-list", str(tmp / "ss.txt"),
                    "--input-dose", str(rd), "--output-csv", str(tmp / "dvh.csv"), "--normalization", "vox",
                    "--bin-width", str(w), "--num-bins", str(int(dmax / w) + 2)], check=True, capture_output=True)
    t2 = time.perf_counter()
    rows = [r.split(",") for r in (tmp / "dvh.csv").read_text().splitlines() if r.strip()]
    names = [h.strip() for h in rows[0][1:]]
    table = np.array([[float(v) for v in r[: len(names) + 1]] for r in rows[1:]])
    edges, counts = table[:, 0], table[:, 1:]
    rois = {}
    for i, n in enumerate(names):
        c = counts[:, i]
        rois[n] = None if c[0] <= 0 else {
            "volume": c[0] * vox_cc, "mean": float(w * c[1:].sum() / c[0]),
            "max": float(edges[np.flatnonzero(c > 0)[-1]] + w / 2)}
    return {"convert_s": t1 - t0, "dvh_s": t2 - t1, "total_s": t2 - t0, "rois": rois}


def bench_dvh(tmp: Path) -> None:
    from grtv_nb import open_study
    from grtv_nb.export import export_rt

    print("\n## 3. DVH of every ROI of each exported real patient (seconds; agreement in % of the reference)")
    print("ours e2e = open_study(export) + dvh(on='dose'); ours DVH = dvh(on='dose') on the opened export;")
    print("dc = dicompyler-core get_dvh x ROIs (datasets read once, excluded); pm = plastimatch convert + dvh")
    timing, agree = [], []
    for name, rel in {"phantom": None, **REAL}.items():
        if rel is not None and not (DATA / rel).exists():
            continue
        st = phantom_with_lung(tmp) if name == "phantom" else study_for_dvh(name)
        exp = tmp / f"dvh_{re.sub(r'[^A-Za-z0-9]', '_', name)}"
        try:
            export_rt(st, exp)
        except Exception as exc:  # report and go on with the other patients
            print(f"  {name}: exportRT failed: {type(exc).__name__}: {exc}")
            continue
        rs, rd = next(exp.glob("RS_*.dcm")), next(exp.glob("RD_*.dcm"))
        t_e2e = _best(lambda exp=exp: open_study(exp).dvh(on="dose"), 2)
        st2 = open_study(exp)
        st2.dvh(on="dose")
        t_dvh = _best(lambda st2=st2: st2.dvh(on="dose"), 3)
        ours = st2.dvh(on="dose")
        dc = dicompyler(rs, rd)
        work = tmp / f"pm_{exp.name}"
        work.mkdir()
        pm = plastimatch_dvh(rs, rd, work)
        shape = "x".join(str(s) for s in st2.native_doses[0].grid.shape[::-1])
        timing.append((name, shape, len(ours.roi_names), t_e2e, t_dvh, dc["dvh_s"] if dc else float("nan"),
                       pm["total_s"] if pm else float("nan")))
        stats = ours.stats
        for i, roi in enumerate(ours.roi_names):
            v = float(stats["volume_cc"].values[i])
            if v <= 0:
                continue
            row = [name, roi, v, float(stats["mean"].values[i]), float(stats["max"].values[i])]
            ok = True
            for ref in (dc, pm):
                r = (ref or {}).get("rois", {}).get(roi) if ref else None
                for key, val in (("volume", row[2]), ("mean", row[3]), ("max", row[4])):
                    pct = 100 * (val - r[key]) / r[key] if r and r[key] else float("nan")
                    row.append(pct)
                    if np.isfinite(pct) and abs(pct) > TOL_PCT and (key == "volume" or abs(val - r[key]) > TOL_GY):
                        ok = False
            agree.append((row, ok))
    print(f"\n{'patient':14s} {'dose grid':>12s} {'ROIs':>4s} {'ours e2e':>9s} {'ours DVH':>9s} {'dc':>8s} {'pm':>7s}"
          f" {'dc/e2e':>7s} {'pm/e2e':>7s} {'dc/DVH':>7s} {'pm/DVH':>7s}")  # fmt: skip
    for name, shape, n, e2e, dvh, t_dc, t_pm in timing:
        print(f"{name:14s} {shape:>12s} {n:4d} {e2e:9.3f} {dvh:9.3f} {t_dc:8.3f} {t_pm:7.3f} {t_dc / e2e:7.1f}"
              f" {t_pm / e2e:7.1f} {t_dc / dvh:7.1f} {t_pm / dvh:7.1f}")  # fmt: skip
    print(f"\n{'patient':14s} {'ROI':16s} {'vol cc':>9s} {'mean Gy':>8s} {'max Gy':>7s} {'dV dc':>6s} {'dMean dc':>8s}"
          f" {'dMax dc':>7s} {'dV pm':>6s} {'dMean pm':>8s} {'dMax pm':>7s}")  # fmt: skip
    n_big = n_bad = 0
    for row, ok in agree:
        name, roi, v, mn, mx, *d = row
        if v >= 10:
            n_big += 1
            n_bad += not ok
            flag = "" if ok else f"  > {TOL_PCT:g}% and > {TOL_GY:g} Gy"
        else:
            flag = "  (<10 cc)"
        cells = " ".join(f"{x:+6.2f}" if k % 3 != 1 else f"{x:+8.2f}" for k, x in enumerate(d))
        print(f"{name:14s} {roi[:16]:16s} {v:9.2f} {mn:8.3f} {mx:7.3f} {cells}{flag}")
    print(f"ROIs >= 10 cc within {TOL_PCT:g}% (or {TOL_GY:g} Gy) of both references: {n_big - n_bad} of {n_big}")


def main() -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        bench_export(tmp)
        bench_mask_to_rtstruct(tmp)
        bench_dvh(tmp)
    print(f"\n(benchmark ran in {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests"))  # reference_tools: the test suite's helpers for the references
    main()
