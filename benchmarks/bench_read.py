"""Benchmark: open a DICOM-RT folder and rasterise all its ROIs with grtv_nb, beside the reference
readers, on the same data in one run; and the memory of 40 ROIs on a 512 x 512 x 300 CT.

Cases: the built-in phantom (written to a temporary folder), pycerr-headneck-ct (90 CT slices, no
structures), the four cerr-radiomics-phantom patients, dicompyler-example (1 CT slice: the dose grid
is the reference grid). Tools:

- ``grtv_nb``: ``open_study(folder)`` (scan, image, dose, structures) + ``study.mask(roi)`` of every
  ROI (full boolean masks, as rt-utils returns);
- ``grtv_nb open`` / ``grtv_nb open/pyd``: ``open_study(folder)`` alone, with the dicomsdl and the
  pydicom reader backend (:mod:`grtv_nb.dicom.reader`);
- ``dicomsdl``: every file opened with dicomsdl, CT slices decoded, rescaled, sorted and stacked,
  RTSTRUCT contour points and RTDOSE pixels fetched;
- ``pydicom loop``: ``dcmread`` + ``pixel_array`` of each CT slice file, sorted by position, stacked;
- ``SimpleITK``: ``ImageSeriesReader`` of the folder's CT series (series lookup included);
- ``rt-utils``: ``RTStructBuilder.create_from`` + ``get_roi_mask_by_name`` for every ROI (given a
  folder of CT symlinks, since it takes every file with pixel data as a slice, and an RTSTRUCT with
  per-contour slice references added where the file lacks them: prepared outside the timing);
- ``plastimatch``: ``plastimatch convert`` of the folder (CT to NRRD + one NRRD mask per ROI,
  ``--xor-contours``); on dicompyler-example the RTSTRUCT on the dose grid (``--fixed rtdose.dcm``).

Every tool runs in its own subprocess (so peak memories are separate), three times: ``best`` is the
fastest, ``first`` the first (file cache already warm from the folder pre-scan). Python tools are
timed inside their process (imports excluded); plastimatch as a whole process. Peak memory:
``tracemalloc`` peak of one run (Python tools) and the subprocess's max RSS (``wait4``; includes the
interpreter and its imports, ~100-200 MB for the Python tools).

Fresh process (issue 14, what a script pays for its first read): ``grtv readRTDir`` (``from grtv
import *`` + ``pyGRTV().readRTDir``), ``grtv_nb open``, ``dicomsdl``, ``SimpleITK`` and the ``pydicom
loop``, each in its own new process, timed from before its first import (numpy's included) to the
end of its first read; best of five processes (tools alternating), wall clock and CPU time.
``--fresh-only`` prints that table alone; with ``--all`` on every real folder holding a CT series,
``--repeat N`` processes per tool, ``--quick`` for grtv readRTDir, dicomsdl and SimpleITK only.

Run: ``.venv/bin/python benchmarks/bench_read.py`` (or ``make bench``). Missing tools give n/a rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
REPEAT = 3
sys.path.insert(0, str(ROOT / "tests"))  # reference_tools: the test suite's helpers for the references
sys.path.insert(0, str(ROOT))  # the grtv_nb of this checkout (workers inherit it through PYTHONPATH)
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


# ----------------------------------------------------------------------------- workers (subprocess)


def _work_grtv(args: dict):
    import warnings

    import grtv_nb.study  # noqa: F401  (imports xarray & co. outside the timing)
    from grtv_nb import open_study

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = open_study(args["folder"])
            for i in range(len(s.rois)):
                s.mask(i)
        return len(s.rois)

    return run


def _work_grtv_open(args: dict, backend: str | None = None):
    """open_study only (scan, CT, RTSTRUCT parse, dose): the reading the issue-14 goal is about."""
    import warnings

    import grtv_nb.study  # noqa: F401
    from grtv_nb import open_study
    from grtv_nb.dicom import reader

    if backend:
        reader.set_backend(backend)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = open_study(args["folder"])
        return s.grid.shape

    return run


def _work_grtv_facade(args: dict):
    """The pyGRTV facade as a script uses it: ``from grtv import *`` then ``pyGRTV().readRTDir``."""
    import warnings

    from grtv import GRTV_STATUS_OK, pyGRTV

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = pyGRTV()
            assert g.readRTDir(args["folder"]) == GRTV_STATUS_OK, g.lastError
        return g.study.grid.shape

    return run


def _work_dicomsdl(args: dict):
    """dicomsdl: every file of the folder opened; CT slices decoded, rescaled (by dicomsdl's
    pixelData), sorted and stacked; contour points of an RTSTRUCT and every frame of an RTDOSE
    fetched and scaled to Gy."""
    from pathlib import Path

    import dicomsdl
    import numpy as np

    def run():
        slices, other = [], 0
        for p in sorted(Path(args["folder"]).iterdir()):
            try:
                df = dicomsdl.open_file(str(p))
            except Exception:
                continue
            mod = df.Modality
            if mod in ("CT", "MR"):
                # pixelData() applies RescaleSlope/RescaleIntercept itself (storedvalue=False)
                slices.append((float(df.ImagePositionPatient[2]), df.pixelData()))
            elif mod == "RTSTRUCT":
                for roi in df.ROIContourSequence or []:
                    for c in roi.ContourSequence or []:
                        other += len(c.ContourData or [])
            elif mod == "RTDOSE":
                # every frame, in Gy: dicomsdl's pixelData(i) is one frame, and it decodes 32-bit doses
                # as 16-bit (dicomsdl 0.109.4: wrong values), so the raw bytes are taken as they are
                info = df.getPixelDataInfo()
                dt = np.dtype(f"<{'i' if info['PixelRepresentation'] else 'u'}{info['BitsAllocated'] // 8}")
                dose = np.frombuffer(df.PixelData, dt) * float(df.DoseGridScaling or 1.0)
                other += dose.size
        slices.sort(key=lambda t: t[0])
        return np.stack([a for _, a in slices]).shape if slices else other

    return run


def _work_pydicom(args: dict):
    import numpy as np
    import pydicom

    def run():
        slices = [pydicom.dcmread(p) for p in args["ct_files"]]
        slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        return np.stack([d.pixel_array for d in slices]).shape

    return run


def _work_sitk(args: dict):
    import SimpleITK as sitk

    def run():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(args["folder"])
        files = max((sitk.ImageSeriesReader.GetGDCMSeriesFileNames(args["folder"], i) for i in ids), key=len)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        img = reader.Execute()
        return sitk.GetArrayViewFromImage(img).shape

    return run


def _work_rtutils(args: dict):
    import warnings

    import rt_utils.rtstruct_builder as builder
    from rt_utils import RTStructBuilder

    builder.warnings = warnings  # rt-utils 1.2.7 calls warnings.warn without importing it

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rt = RTStructBuilder.create_from(dicom_series_path=args["ct_dir"], rt_struct_path=args["rtss"],
                                             warn_only=True)
            names = rt.get_roi_names()
            for n in names:
                try:
                    rt.get_roi_mask_by_name(n)
                except Exception:  # ROIs without contours raise in rt-utils
                    pass
        return len(names)

    return run


WORKERS = {"grtv_nb": _work_grtv, "pydicom loop": _work_pydicom, "SimpleITK": _work_sitk, "rt-utils": _work_rtutils,
           "grtv_nb open": _work_grtv_open,
           "grtv_nb open/pyd": lambda args: _work_grtv_open(args, "pydicom"), "dicomsdl": _work_dicomsdl,
           "grtv readRTDir": _work_grtv_facade}


def worker_main(tool: str, args: dict) -> None:
    import tracemalloc

    run = WORKERS[tool](args)
    times, cpus = [], []
    for _ in range(REPEAT):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print("RESULT " + json.dumps({"times": times, "cpus": cpus, "tracemalloc": peak}))


def fresh_main(tool: str, args: dict) -> None:
    """One import + read in this new process: the tool's imports (and numpy's) and its first read,
    timed from before the first import."""
    t0, c0 = time.perf_counter(), time.process_time()
    run = WORKERS[tool](args)
    t1, c1 = time.perf_counter(), time.process_time()
    run()
    t2, c2 = time.perf_counter(), time.process_time()
    print("RESULT " + json.dumps({"import": t1 - t0, "read": t2 - t1, "cpu_import": c1 - c0, "cpu_read": c2 - c1}))


def mem40_main(nx: int, nz: int, n_rois: int) -> None:
    """40 ROIs on a 512 x 512 x 300 CT, built in memory (a written phantom of that size takes
    minutes): the phantom's 10 analytical ROIs x 4 (shifted copies), rasterised lazily then all."""
    import resource
    import tracemalloc

    import numpy as np

    from grtv_nb.dicom.rtstruct import ROI
    from grtv_nb.geometry import Grid
    from grtv_nb.phantom import ROI_ORDER, roi_contours
    from grtv_nb.study import Study

    tracemalloc.start()
    px = 0.8
    xs = (np.arange(nx) - (nx - 1) / 2) * px
    zs = (np.arange(nz) - (nz - 1) / 2) * 1.0
    grid = Grid(xs, xs.copy(), zs, frame_of_reference_uid="1.2.3", slice_thickness=1.0)
    image = np.full(grid.shape, -1000, dtype=np.int16)
    base = roi_contours(zs)
    rois = []
    for i in range(n_rois):
        name, color, typ = ROI_ORDER[i % len(ROI_ORDER)]
        shift = np.array([0.0, 0.0, 0.0]) if i < len(ROI_ORDER) else np.array([(i // len(ROI_ORDER)) * 3.0, 0.0, 0.0])
        rois.append(ROI(name=f"{name}_{i}", number=i + 1, color=color, roi_type=typ,
                        contours=[c + shift for c in base[name]], geometric_type="CLOSED_PLANAR"))
    study = Study(grid, image=image, rois=rois, attrs={"modality": "CT"})
    rss_idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    for i in range(n_rois):
        study.store.packed(i)
    t_all = time.perf_counter() - t0
    _ = study.ds.masks.sel(roi=study.roi_names[0]).isel(z=nz // 2).values  # xarray access still works
    peak = tracemalloc.get_traced_memory()[1]
    out = {
        "shape": list(grid.shape), "n_rois": n_rois, "image_mb": image.nbytes / 2**20,
        "full_bool_mask_mb": image.size / 2**20, "store_mb": study.store.nbytes / 2**20,
        "rasterise_all_s": t_all, "tracemalloc_peak_mb": peak / 2**20, "rss_before_masks_mb": rss_idle,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("RESULT " + json.dumps(out))


# ----------------------------------------------------------------------------- driver


# A tiny launcher (python -S: no site imports, ~10 MB) forks and execs the tool and reports the
# tool's own max RSS and wall time: ru_maxrss of a child forked straight from this (large) process
# would count the pages it shared with us before exec.
_LAUNCHER = r"""
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
sys.stdout.flush()
sys.stdout.write("\n__LAUNCHER__ %d %f %d %f\n" % (ru.ru_maxrss, wall, os.waitstatus_to_exitcode(status),
                                                    ru.ru_utime + ru.ru_stime))
"""


def _spawn(argv: list[str]) -> tuple[int, str, float, float, float]:
    """Run a command; return (returncode, output, wall s, max RSS MB, CPU s) of that process alone."""
    p = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *argv], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    out = p.stdout
    tail = [ln for ln in out.splitlines() if ln.startswith("__LAUNCHER__ ")]
    if not tail:
        return p.returncode or 1, out, float("nan"), float("nan"), float("nan")
    kb, wall, rc, cpu = tail[-1].split()[1:]
    return int(rc), out, float(wall), int(kb) / 1024, float(cpu)


def run_python_tool(tool: str, args: dict) -> dict:
    rc, out, _, rss, _ = _spawn([sys.executable, __file__, "--worker", tool, json.dumps(args)])
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if rc != 0 or line is None:
        return {"error": out.strip().splitlines()[-1][:80] if out.strip() else f"exit {rc}"}
    res = json.loads(line[7:])
    return {"best": min(res["times"]), "first": res["times"][0], "cpu": min(res["cpus"]),
            "tracemalloc_mb": res["tracemalloc"] / 2**20, "rss_mb": rss}


FRESH_TOOLS = ("grtv readRTDir", "grtv_nb open", "dicomsdl", "SimpleITK", "pydicom loop")
FRESH_REPEAT = 5


def _fresh_once(tool: str, args: dict) -> dict:
    rc, out, _, _, _ = _spawn([sys.executable, __file__, "--fresh", tool, json.dumps(args)])
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if rc != 0 or line is None:
        return {"error": out.strip().splitlines()[-1][:80] if out.strip() else f"exit {rc}"}
    return json.loads(line[7:])


def _fresh_best(runs: list[dict]) -> dict:
    """The best wall-clock total of some fresh runs and its parts, and the best CPU total (user +
    sys of the process from its first import: steadier than wall time on a shared machine)."""
    bad = next((r for r in runs if "error" in r), None)
    if bad is not None:
        return bad
    best = min(runs, key=lambda r: r["import"] + r["read"])
    cpu = min(runs, key=lambda r: r["cpu_import"] + r["cpu_read"])
    return {"total": best["import"] + best["read"], "import": best["import"], "read": best["read"],
            "cpu": cpu["cpu_import"] + cpu["cpu_read"], "cpu_import": cpu["cpu_import"], "cpu_read": cpu["cpu_read"]}


def run_fresh(tool: str, args: dict, repeat: int = FRESH_REPEAT) -> dict:
    """``tool`` in ``repeat`` new processes, each timing its imports and its first read (the
    interpreter's own start, the same for every tool, excluded): the best total and its parts."""
    return _fresh_best([_fresh_once(tool, args) for _ in range(repeat)])


def fresh_cases(everything: bool = False) -> list[tuple[str, Path]]:
    """The head-and-neck CT and cerr pat_1; ``everything``: every real folder holding a CT series
    (the four cerr patients, dicompyler's 1-slice CT + RTSTRUCT + RTDOSE + RTPLAN, rt-utils' two)."""
    out = []
    hn = DATA / "pycerr-headneck-ct" / "head_and_neck" / "pt_1"
    if hn.is_dir():
        out.append(("headneck-ct (90 sl)", hn))
    for i in range(1, 5 if everything else 2):
        d = DATA / "cerr-radiomics-phantom" / f"pat_{i}"
        if d.is_dir():
            out.append((f"cerr pat_{i}", d))
    if everything:
        for label, d in (("dicompyler (1 CT sl)", DATA / "dicompyler-example" / "example_data"),
                         ("rt-utils mock_data", DATA / "rt-utils-testdata" / "tests" / "mock_data"),
                         ("rt-utils oriented", DATA / "rt-utils-testdata" / "tests" / "oriented_data")):
            if d.is_dir():
                out.append((label, d))
    return out


def print_fresh(cases: list[tuple[str, Path]], repeat: int = FRESH_REPEAT,
                tools: tuple[str, ...] = FRESH_TOOLS) -> None:
    """Issue 14, a script's first read: each tool in its own new process, imports + first read of
    the folder (grtv: the series, RTSTRUCT and RTDOSE; the others the CT; see the tool list). The
    tools alternate, process after process; the best of ``repeat`` each, wall clock and CPU."""
    have = set()
    for mod, tool in (("dicomsdl", "dicomsdl"), ("SimpleITK", "SimpleITK")):
        try:
            __import__(mod)
            have.add(tool)
        except ImportError:
            pass
    tools = tuple(t for t in tools if t not in ("dicomsdl", "SimpleITK") or t in have)
    print(f"Fresh process: imports + first read, each tool in its own new process, tools alternating (best of "
          f"{repeat}; s; import = the tool's imports with numpy's)")
    hdr = f"{'case':<22} " + " ".join(f"{t:>18}" for t in tools) + f" {'/dicomsdl':>9} {'/SimpleITK':>10}"
    print(hdr)
    print("-" * len(hdr))
    cpu_rows = []
    for label, folder in cases:
        print(f"  {label} (fresh) ...", file=sys.stderr, flush=True)
        ct = _image_files(folder) if "pydicom loop" in tools else []
        runs: dict[str, list[dict]] = {t: [] for t in tools}
        for _ in range(repeat):
            for t in tools:
                runs[t].append(_fresh_once(t, {"ct_files": ct} if t == "pydicom loop" else {"folder": str(folder)}))
        res = {t: _fresh_best(v) for t, v in runs.items()}
        cells = [f"{'error':>18}" if "error" in r else f"{r['total']:6.3f} ({r['import']:.3f}+{r['read']:.3f})"
                 .rjust(18) for r in res.values()]

        def ratio(other: str, key: str, width: int, res: dict = res) -> str:
            ours, o = res.get("grtv readRTDir", {}), res.get(other, {})
            return f"{ours[key] / o[key]:{width}.2f}" if key in ours and key in o else f"{'n/a':>{width}}"

        print(f"{label:<22} " + " ".join(cells) + f" {ratio('dicomsdl', 'total', 9)} {ratio('SimpleITK', 'total', 10)}")
        cpu_rows.append(f"{label:<22} " + " ".join(f"{r['cpu']:18.3f}" if "cpu" in r else f"{'error':>18}"
                                                    for r in res.values())
                        + f" {ratio('dicomsdl', 'cpu', 9)} {ratio('SimpleITK', 'cpu', 10)}")
    print("(total (import + read)); grtv readRTDir = from grtv import * + pyGRTV().readRTDir; grtv_nb open = "
          "open_study; ratios: grtv readRTDir / the tool")
    print("CPU s (user + sys from the first import to the end of the read, best of the same processes):")
    for row in cpu_rows:
        print(row)


def run_plastimatch(cmd_for_dir) -> dict:
    import reference_tools as rt

    exe = rt.plastimatch_exe()
    if exe is None:
        return {"error": "plastimatch not installed"}
    times, cpus, rss = [], [], 0.0
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory() as td:
            rc, out, wall, r, cpu = _spawn([exe] + cmd_for_dir(Path(td)))
            if rc != 0:
                return {"error": out.strip().splitlines()[-1][:80]}
            times.append(wall)
            cpus.append(cpu)
            rss = max(rss, r)
    return {"best": min(times), "first": times[0], "cpu": min(cpus), "tracemalloc_mb": None, "rss_mb": rss}


def _image_files(folder: Path) -> list[str]:
    import pydicom

    out = []
    for p in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:
            continue
        if str(ds.get("Modality", "")) in ("CT", "MR") and "ImagePositionPatient" in ds:
            out.append(str(p))
    return out


def cases(tmp: Path) -> list[tuple[str, Path, Path | None, Path | None]]:
    """(label, folder, rtstruct or None, rtdose used as plastimatch's grid or None)."""
    from grtv_nb.phantom import write_phantom

    out = [("phantom", write_phantom(tmp / "phantom"), tmp / "phantom" / "RS_phantom.dcm", None)]
    hn = DATA / "pycerr-headneck-ct" / "head_and_neck" / "pt_1"
    if hn.is_dir():
        out.append(("headneck-ct (90 sl)", hn, None, None))
    for i in range(1, 5):
        d = DATA / "cerr-radiomics-phantom" / f"pat_{i}"
        if d.is_dir():
            out.append((f"cerr pat_{i}", d, next(d.glob("DCM_RS_*.dcm")), None))
    dp = DATA / "dicompyler-example" / "example_data"
    if dp.is_dir():
        out.append(("dicompyler (1 CT sl)", dp, dp / "rtss.dcm", dp / "rtdose.dcm"))
    return out


def main() -> None:
    import reference_tools as rt

    try:
        import SimpleITK  # noqa: F401

        have_sitk = True
    except ImportError:
        have_sitk = False
    try:
        import rt_utils  # noqa: F401

        have_rtu = True
    except ImportError:
        have_rtu = False
    try:
        import dicomsdl  # noqa: F401

        have_sdl = True
    except ImportError:
        have_sdl = False
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_read_") as td:
        tmp = Path(td)
        for label, folder, rtss, fixed in cases(tmp):
            print(f"  {label} ...", file=sys.stderr, flush=True)
            ct = _image_files(folder)
            res = {"grtv_nb": run_python_tool("grtv_nb", {"folder": str(folder)}),
                   "pydicom loop": run_python_tool("pydicom loop", {"ct_files": ct})}
            res["grtv_nb open"] = run_python_tool("grtv_nb open", {"folder": str(folder)})
            res["grtv_nb open/pyd"] = run_python_tool("grtv_nb open/pyd", {"folder": str(folder)})
            if have_sdl:
                res["dicomsdl"] = run_python_tool("dicomsdl", {"folder": str(folder)})
            if have_sitk:
                res["SimpleITK"] = run_python_tool("SimpleITK", {"folder": str(folder)})
            if have_rtu and rtss is not None and len(ct) > 1:
                ctd = rt.image_only_folder(folder, tmp / f"ct_{len(rows)}")
                fixed_rs, _ = rt.rtss_with_slice_refs(rtss, ctd, tmp / f"rs_{len(rows)}.dcm")
                res["rt-utils"] = run_python_tool("rt-utils", {"ct_dir": str(ctd), "rtss": str(fixed_rs)})
            else:
                res["rt-utils"] = {"error": "n/a (no RTSTRUCT)" if rtss is None else "n/a (1 CT slice)"}

            def pm_cmd(out: Path, folder=folder, rtss=rtss, fixed=fixed) -> list[str]:
                if fixed is not None:
                    return ["convert", "--input", str(rtss), "--fixed", str(fixed), "--output-prefix",
                            str(out / "masks"), "--prefix-format", "nrrd", "--xor-contours"]
                cmd = ["convert", "--input", str(folder), "--output-img", str(out / "image.nrrd")]
                if rtss is not None:
                    cmd += ["--output-prefix", str(out / "masks"), "--prefix-format", "nrrd", "--xor-contours"]
                return cmd

            res["plastimatch"] = run_plastimatch(pm_cmd)
            base = res["grtv_nb"].get("best")
            for tool, r in res.items():
                rows.append((label, tool, r, base))
    print_table(rows)
    print_open_vs_dicomsdl(rows)
    print("Notes: grtv_nb also reads and resamples the dose (phantom, dicompyler) and parses the RTSTRUCT; the "
          "pydicom loop and SimpleITK read the CT only;\n       plastimatch also writes its NRRD outputs; on "
          "dicompyler grtv_nb and plastimatch rasterise on the dose grid. grtv_nb's first run in a process\n"
          "       includes loading numba and its cached kernels when a dose is resampled (~1 s).")
    print()
    print_fresh(fresh_cases())
    print()
    print_mem40()


def print_table(rows) -> None:
    print(f"Open a folder + rasterise all ROIs (best of {REPEAT} runs; 'first' = first run in a fresh process; "
          "CPU = user+sys, best run). ratio = tool / grtv_nb (> 1: grtv_nb faster)")
    hdr = (f"{'case':<22} {'tool':<13} {'best s':>7} {'first s':>7} {'CPU s':>7} {'ratio':>6} {'CPU ratio':>9} "
           f"{'tracemalloc MB':>14} {'maxrss MB':>9}")
    print(hdr)
    print("-" * len(hdr))
    last = None
    base_cpu = {label: r["cpu"] for label, tool, r, _ in rows if tool == "grtv_nb" and "cpu" in r}
    for label, tool, r, base in rows:
        lab = label if label != last else ""
        last = label
        if "error" in r:
            print(f"{lab:<22} {tool:<13} {r['error']}")
            continue
        ratio = f"{r['best'] / base:6.2f}" if base else "   n/a"
        bc = base_cpu.get(label)
        cratio = f"{r['cpu'] / bc:9.2f}" if bc else "      n/a"
        tm = f"{r['tracemalloc_mb']:14.1f}" if r["tracemalloc_mb"] is not None else f"{'-':>14}"
        print(f"{lab:<22} {tool:<13} {r['best']:7.3f} {r['first']:7.3f} {r['cpu']:7.3f} {ratio} {cratio} {tm} "
              f"{r['rss_mb']:9.0f}")


def print_open_vs_dicomsdl(rows) -> None:
    """Issue 14's reading goal: open_study (series + RTSTRUCT + RTDOSE) <= 1.2x dicomsdl reading the
    same files, and never slower than SimpleITK reading the CT alone."""
    by = {}
    for label, tool, r, _ in rows:
        if "best" in r:
            by.setdefault(label, {})[tool] = r
    print()
    print("Reading only: grtv_nb open_study (dicomsdl backend; /pyd: pydicom backend) vs dicomsdl and SimpleITK "
          "(best s; 'first' = first run in a new process). Goals: <= 1.2x dicomsdl, <= SimpleITK")
    hdr = (f"{'case':<22} {'open':>7} {'first':>7} {'open/pyd':>8} {'dicomsdl':>8} {'SimpleITK':>9} "
           f"{'/dicomsdl':>9} {'/SimpleITK':>10}")
    print(hdr)
    print("-" * len(hdr))
    for label, t in by.items():
        o, sdl, sitk, pyd = (t.get(k) for k in ("grtv_nb open", "dicomsdl", "SimpleITK", "grtv_nb open/pyd"))
        if o is None:
            continue

        def f(r, w=8):
            return f"{r['best']:{w}.3f}" if r else f"{'n/a':>{w}}"

        rs = f"{o['best'] / sdl['best']:9.2f}" if sdl else f"{'n/a':>9}"
        ri = f"{o['best'] / sitk['best']:10.2f}" if sitk else f"{'n/a':>10}"
        print(f"{label:<22} {o['best']:7.3f} {o['first']:7.3f} {f(pyd)} {f(sdl)} {f(sitk, 9)} {rs} {ri}")


def print_mem40(nx: int = 512, nz: int = 300, n_rois: int = 40) -> None:
    rc, out, wall, rss, _ = _spawn([sys.executable, __file__, "--mem40", str(nx), str(nz), str(n_rois)])
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if rc != 0 or line is None:
        print(f"40-ROI memory check failed: {out[-500:]}")
        return
    r = json.loads(line[7:])
    print(f"Memory: {r['n_rois']} ROIs on a {r['shape'][2]}x{r['shape'][1]}x{r['shape'][0]} CT (built in memory)")
    print(f"  image int16                      {r['image_mb']:8.1f} MB")
    print(f"  one full bool mask               {r['full_bool_mask_mb']:8.1f} MB "
          f"(x{r['n_rois']} = {r['full_bool_mask_mb'] * r['n_rois']:.0f} MB if kept unpacked)")
    print(f"  all {r['n_rois']} masks cached (store.nbytes) {r['store_mb']:8.1f} MB")
    print(f"  rasterise all {r['n_rois']} ROIs            {r['rasterise_all_s']:8.2f} s")
    print(f"  tracemalloc peak                 {r['tracemalloc_peak_mb']:8.1f} MB")
    print(f"  process max RSS                  {r['maxrss_mb']:8.1f} MB (goal: well under 2048 MB)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], json.loads(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--fresh":
        fresh_main(sys.argv[2], json.loads(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--fresh-only":  # the fresh-process table alone
        # options: --all (every real CT folder), --repeat N, --quick (grtv readRTDir, dicomsdl, SimpleITK only)
        opts = sys.argv[2:]
        n = int(opts[opts.index("--repeat") + 1]) if "--repeat" in opts else FRESH_REPEAT
        print_fresh(fresh_cases("--all" in opts), n,
                    ("grtv readRTDir", "dicomsdl", "SimpleITK") if "--quick" in opts else FRESH_TOOLS)
    elif len(sys.argv) > 1 and sys.argv[1] == "--mem40":
        mem40_main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
