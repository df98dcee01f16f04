"""Command line: ``grtv-nb summary FOLDER`` (read and summarise a DICOM-RT folder), ``grtv-nb phantom``
(the main job on the built-in phantom: write it, read it, summarise and check it, write outputs),
``grtv-nb data list|fetch`` (the notebooks' example datasets),
``grtv-nb warmup`` (compile the numba kernels into their on-disk cache, once after install)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path


def _summarise(folder: Path, out: Path | None) -> int:
    from .study import open_study

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = open_study(folder)
        vols = {r.name: study.volume_cc(i) for i, r in enumerate(study.rois) if r.fillable}
    dt = time.perf_counter() - t0
    print(study.summary())
    for w in caught:
        print(f"Warning   : {w.message}")
    print(f"Read and rasterised in {dt:.2f} s")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary = {
            "folder": str(folder),
            "grid": {"shape_zyx": list(study.grid.shape), "spacing_zyx_mm": list(study.grid.spacing)},
            "rois": [{"index": i, "name": r.name, "type": r.roi_type, "volume_cc": vols.get(r.name)}
                     for i, r in enumerate(study.rois)],
            "dose_max_gy": float(study.ds["dose"].max()) if study.has_dose else None,
            "warnings": [str(w.message) for w in caught],
            "seconds": dt,
        }
        from .fileio import write_bytes_atomic

        write_bytes_atomic(out / "summary.json", json.dumps(summary, indent=2).encode("utf-8"), "summary path")
        write_bytes_atomic(out / "summary.txt", (study.summary() + "\n").encode("utf-8"), "summary path")
        print(f"Outputs written to {out}/ (summary.txt, summary.json)")
    return 0


def _phantom(out: Path) -> int:
    from .phantom import ROI_ORDER, analytic_volume_cc, write_phantom
    from .study import open_study

    out.mkdir(parents=True, exist_ok=True)
    folder = out / "phantom_dicom"
    write_phantom(folder, overwrite=True)
    print(f"Phantom patient written to {folder}/")
    _summarise(folder, out)
    study = open_study(folder)
    print("\nCheck against the analytical phantom:")
    print(f"  {'ROI':<12} {'grtv_nb cc':>11} {'analytic cc':>12} {'diff %':>8}")
    worst = 0.0
    for name, _, _ in ROI_ORDER:
        v, a = study.volume_cc(name), analytic_volume_cc(name)
        d = 100 * (v - a) / a
        worst = max(worst, abs(d)) if a > 100 else worst
        print(f"  {name:<12} {v:11.2f} {a:12.2f} {d:8.2f}")
    print(f"  largest difference for ROIs over 100 cc: {worst:.2f} %")
    dvh = study.dvh()
    dvh.stats_to_csv(out / "dvh_stats.csv")
    dvh.to_csv(out / "dvh_cumulative.csv")
    st = dvh.stats
    where = "RTDOSE grid" if len(study.native_doses) == 1 else "image grid"
    print(f"\nDVH (exact engine on the {where}, {100 * dvh.bin_width:.0f} cGy bins):")
    print(f"  {'ROI':<12} {'mean Gy':>8} {'max Gy':>8} {'D95 Gy':>8}")
    for name in dvh.roi_names:
        print(f"  {name:<12} {float(st['mean'].sel(roi=name)):8.2f} {float(st['max'].sel(roi=name)):8.2f} "
              f"{float(st['D95'].sel(roi=name)):8.2f}")
    print(f"  written to {out / 'dvh_stats.csv'} and {out / 'dvh_cumulative.csv'}")
    mid = study.grid.shape[0] // 2
    png = out / "phantom_axial.png"
    try:
        from .display import window_level

        _write_png(png, window_level(study.ds["image"].values[mid], 40, 400))
        print(f"  middle axial slice written to {png}")
    except Exception as exc:  # pragma: no cover - display only
        print(f"  (no PNG: {exc})")
    return 0


def _batch(folders: list[Path], out: Path, scheduler: str | None, workers: int | None, reports: bool) -> int:
    from .batch import run_patients

    if len(folders) == 1 and folders[0].is_dir() and not any(p.is_file() for p in folders[0].iterdir()):
        folders = sorted(p for p in folders[0].iterdir() if p.is_dir())
    tables = run_patients(folders, out, reports=reports, client=scheduler, n_workers=workers)
    failed = [r for r in tables["patients"] if r["status"] == "failed"]
    for r in failed:
        print(f"failed: {r['folder']}: {r['error']}")
    print(f"{len(tables['patients'])} patient(s), {len(failed)} failed; tables (patients.csv, rois.csv, "
          f"warnings.csv){' and reports/' if reports else ''} written to {out}/")
    return 1 if failed and len(failed) == len(tables["patients"]) else 0


def _data(action: str, names: list[str]) -> int:
    from .datasets import DATASETS, fetch, list_datasets

    if action == "list":
        for r in list_datasets():
            state = "available" if r["available"] else "not fetched"
            print(f"{r['name']:<26} {r['files']:>4} files  {state:<12} {r['title']}")
            print(f"{'':<26} licence: {r['licence']}; source: {r['source']}")
        return 0
    for name in names or [n for n in DATASETS if n != "phantom"]:
        print(f"{name}: {fetch(name)}")
    return 0


def _write_png(path: Path, gray) -> None:
    import struct
    import zlib

    import numpy as np

    g = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = g.shape
    raw = b"".join(b"\x00" + g[i].tobytes() for i in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    from .fileio import write_bytes_atomic

    write_bytes_atomic(path, png, "PNG path")


def _warmup() -> int:
    from ._kernels import cache_dir
    from .warmup import warmup

    t0 = time.perf_counter()
    print(f"Compiling grtv_nb's kernels into {cache_dir()} ...", flush=True)
    warmup(verbose=True)
    print(f"Done in {time.perf_counter() - t0:.1f} s: later processes load them from the cache")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``grtv-nb`` command line; returns the exit status."""
    p = argparse.ArgumentParser(prog="grtv-nb", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="read a DICOM-RT folder and print its summary")
    s.add_argument("folder", type=Path)
    s.add_argument("--out", type=Path, default=None, help="also write summary.txt/json here")
    ph = sub.add_parser("phantom", help="write, read and check the built-in phantom patient")
    ph.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")
    b = sub.add_parser("batch", help="summarise many patient folders on Dask (a local cluster by default)")
    b.add_argument("folders", nargs="+", type=Path, help="patient folders (or one folder of patient folders)")
    b.add_argument("--out", type=Path, default=Path("out/batch"),
                   help="output folder: patients.csv, rois.csv, warnings.csv, reports/<patient>.html")
    b.add_argument("--no-reports", action="store_true", help="skip the per-patient HTML reports")
    b.add_argument("--scheduler", default=None, help="address of a Dask scheduler (default: local cluster)")
    b.add_argument("--workers", type=int, default=None, help="workers of the local cluster")
    d = sub.add_parser("data", help="example datasets: list them, or fetch (download + verify) into the data folder")
    d.add_argument("action", choices=["list", "fetch"])
    d.add_argument("names", nargs="*", help="datasets to fetch (default: all)")
    tr = sub.add_parser("train", help="train an auto-segmentation U-Net (needs grtv_nb[tf])")
    tr.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("warmup", help="compile the numba kernels into their on-disk cache (run once after install)")
    a = p.parse_args(argv)
    from .errors import GRTVError

    try:
        if a.cmd == "summary":
            return _summarise(a.folder, a.out)
        if a.cmd == "phantom":
            return _phantom(a.out)
        if a.cmd == "batch":
            return _batch(a.folders, a.out, a.scheduler, a.workers, not a.no_reports)
        if a.cmd == "data":
            return _data(a.action, a.names)
        if a.cmd == "train":
            from .segment.unet import main_train

            return int(main_train(a.args) or 0)
        if a.cmd == "warmup":
            return _warmup()
    except GRTVError as exc:
        print(f"grtv-nb: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
