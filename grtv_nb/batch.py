"""Batch work over many patients on Dask: a local cluster by default, any Dask cluster when users
outgrow one machine (pass a ``distributed.Client`` or a scheduler address).

Each patient is one task: the function receives the folder path and runs in a worker process
(studies are opened there, never shipped between processes). Failures are returned per patient
(``error``), never raised for the whole batch.

Results are **tidy** tables (one observation per row, the same columns for every patient):

- ``patients``: one row per patient (status, grid, ROI count, dose max, warning count, error);
- ``rois``: one row per (patient, ROI, metric): ``volume_cc`` and the dose statistics of
  :data:`ROI_METRICS` (Gy), with their unit;
- ``warnings``: one row per warning raised while reading the patient (category and message).

A per-patient HTML report (:func:`patient_report_html`) holds the summary, the ROI table, the DVH
and the axial slice through the dose maximum with ROI outlines, pictures embedded (one self-contained
file per patient).
"""

from __future__ import annotations

import functools
import html
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ValidationError

#: Dose statistics of each ROI in the ``rois`` table (names of :attr:`grtv_nb.dvh.DVHResult.stats`).
ROI_METRICS = ("mean", "min", "max", "D98", "D95", "D50", "D2")
#: Columns of the three tables, in order.
PATIENT_COLUMNS = ("folder", "patient_id", "status", "error", "shape_zyx", "spacing_zyx_mm", "n_rois",
                   "has_dose", "dose_max_gy", "n_warnings", "report")
ROI_COLUMNS = ("folder", "patient_id", "roi", "roi_type", "metric", "value", "unit")
WARNING_COLUMNS = ("folder", "patient_id", "category", "message")
REPORT_FIGSIZE = (6.0, 4.0)  # inches, each picture of the HTML report
REPORT_DPI = 80
REPORT_WINDOW = (40.0, 400.0)  # level, width (HU) of the report's CT slice


def validate_folders(value: Any, name: str = "folders") -> list[str]:
    """Check a list of patient folders given as a parameter (papermill, CLI) and return it as strings.

    A string is refused (papermill's ``-p folders '[...]'`` passes one: iterating it would treat each
    character as a folder); so are empty entries and non-path items. Folders that do not exist are
    kept: they fail one by one in the batch, with their own error row.

    Raises
    ------
    ValidationError
        Naming the parameter, what was given and how to pass a list with papermill.
    """
    hint = (f"with papermill pass a YAML list: -y '{name}: [/data/p1, /data/p2]' "
            f"(-p {name} '[...]' passes a string)")
    if isinstance(value, (str, bytes, os.PathLike)):
        raise ValidationError(f"parameter {name!r} must be a list of patient folders, got the string "
                              f"{str(value)[:80]!r}; {hint}")
    try:
        items = list(value)
    except TypeError:
        raise ValidationError(f"parameter {name!r} must be a list of patient folders, got "
                              f"{type(value).__name__} {value!r}; {hint}") from None
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike)) or not str(item).strip():
            raise ValidationError(f"parameter {name!r}: item {i} must be a folder path, got {item!r}; {hint}")
        out.append(str(Path(item)))
    return out


def validate_folder(value: Any, name: str = "patient") -> Path:
    """Check one patient folder given as a parameter: a path to an existing folder (error names ``name``)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValidationError(f"parameter {name!r} must be the path of a patient folder, got {value!r}")
    p = Path(value).expanduser()
    if not p.is_dir():
        raise ValidationError(f"parameter {name!r}: {str(p)!r} is not an existing folder")
    return p


def patient_summary(folder: str | os.PathLike, report_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """One patient's results: ``{"patient": row, "rois": [rows], "warnings": [rows]}`` (see the module
    docstring for the columns); with ``report_dir``, also writes ``<report_dir>/<patient>.html``."""
    import warnings

    from .study import open_study

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = open_study(folder)
        pid = str(st.attrs.get("patient_id", ""))
        key = {"folder": str(folder), "patient_id": pid}
        rois = []
        for i, r in enumerate(st.rois):
            if r.fillable:
                rois.append({**key, "roi": r.name, "roi_type": r.roi_type or "", "metric": "volume_cc",
                             "value": round(st.volume_cc(i), 3), "unit": "cc"})
        if st.has_dose and rois:
            stats = st.dvh().stats
            for name in stats["roi"].values:
                rtype = next((r.roi_type or "" for r in st.rois if r.name == name), "")
                for m in ROI_METRICS:
                    v = float(stats[m].sel(roi=name))
                    rois.append({**key, "roi": str(name), "roi_type": rtype, "metric": m,
                                 "value": round(v, 4) if v == v else None, "unit": "Gy"})
    warn_rows = [{**key, "category": w.category.__name__, "message": str(w.message)} for w in caught]
    report = ""
    if report_dir is not None:
        report = str(write_patient_report(st, Path(report_dir) / f"{_report_name(folder)}.html",
                                          notes=[w["message"] for w in warn_rows]))
    patient = {**key, "status": "ok", "error": "", "shape_zyx": "x".join(str(n) for n in st.grid.shape),
               "spacing_zyx_mm": "x".join(f"{s:.3g}" for s in st.grid.spacing), "n_rois": len(st.rois),
               "has_dose": st.has_dose, "dose_max_gy": round(float(st.ds["dose"].max()), 4) if st.has_dose else None,
               "n_warnings": len(warn_rows), "report": report}
    return {"patient": patient, "rois": rois, "warnings": warn_rows}


def _report_name(folder: str | os.PathLike) -> str:
    parts = [p for p in Path(folder).resolve().parts[-2:] if p not in ("/", "")]
    return "_".join(parts).replace(" ", "_") or "patient"


def tidy_tables(results: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The three tidy tables (``patients``, ``rois``, ``warnings``) of :func:`run_batch` results, a failed
    patient being a ``patients`` row with status ``failed`` and its error."""
    patients, rois, warns = [], [], []
    for r in results:
        if "patient" in r:
            patients.append(r["patient"])
            rois += r.get("rois", [])
            warns += r.get("warnings", [])
        else:
            row = dict.fromkeys(PATIENT_COLUMNS, None)
            row.update(folder=r.get("folder", ""), patient_id="", status="failed", error=r.get("error", ""),
                       n_warnings=0, report="")
            patients.append(row)
    return {"patients": patients, "rois": rois, "warnings": warns}


def write_tables(tables: dict[str, list[dict[str, Any]]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the tidy tables as ``<out_dir>/{patients,rois,warnings}.csv`` (atomically); return the paths."""
    cols = {"patients": PATIENT_COLUMNS, "rois": ROI_COLUMNS, "warnings": WARNING_COLUMNS}
    return {k: write_rows_csv(tables[k], Path(out_dir) / f"{k}.csv", columns=cols[k]) for k in cols}


def run_patients(
    folders: Any,
    out_dir: str | os.PathLike,
    *,
    reports: bool = True,
    client: Any = None,
    n_workers: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The batch report: validate ``folders``, summarise every patient on Dask (with an HTML report
    each in ``<out_dir>/reports`` when ``reports``), write the tidy tables into ``out_dir`` and return them."""
    paths = validate_folders(folders)
    func = functools.partial(patient_summary, report_dir=str(Path(out_dir) / "reports") if reports else None)
    tables = tidy_tables(run_batch(paths, func, client=client, n_workers=n_workers))
    write_tables(tables, out_dir)
    return tables


# ------------------------------------------------------------------ per-patient HTML report
def _png(fig) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=REPORT_DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def report_figures(study) -> dict[str, Any]:
    """The report's matplotlib figures: ``slice`` (axial CT through the dose maximum, or the middle
    slice, with dose wash and ROI outlines, anterior at the top, patient's left on the right) and
    ``dvh`` (cumulative DVHs; absent without dose). Plain :class:`matplotlib.figure.Figure` objects:
    pyplot and its backend (a notebook's inline one) are left alone, nothing is displayed."""
    import numpy as np
    from matplotlib.figure import Figure

    from .display import window_level

    g = study.grid
    if study.has_dose:
        k = int(np.unravel_index(int(np.argmax(study.ds["dose"].values)), g.shape)[0])
    else:
        k = g.shape[0] // 2
    x, y = np.asarray(g.x), np.asarray(g.y)
    ext = (x[0], x[-1], y[-1], y[0])  # row 0 (anterior) at the top
    figs: dict[str, Any] = {}
    fig = Figure(figsize=REPORT_FIGSIZE)
    ax = fig.subplots()
    if study.has_image:
        ax.imshow(window_level(study.ds["image"].values[k], *REPORT_WINDOW), cmap="gray", extent=ext)
    if study.has_dose:
        d = study.ds["dose"].values[k]
        ax.imshow(np.ma.masked_less(d, 0.1 * float(d.max() or 1)), cmap="jet", alpha=0.35, extent=ext)
    for i, r in enumerate(study.rois):
        if r.fillable and r.contours:
            m = study.mask(i)[k]
            if m.any():
                ax.contour(x, y, m.astype(np.uint8), levels=[0.5], colors=[np.array(r.color) / 255], linewidths=1)
    ax.set(title=f"axial z = {g.z[k]:.1f} mm", xlabel="x (mm, patient left →)", ylabel="y (mm, posterior ↓)")
    figs["slice"] = fig
    if study.has_dose and any(r.fillable for r in study.rois):
        fig = Figure(figsize=REPORT_FIGSIZE)
        ax = fig.subplots()
        study.dvh().plot(ax=ax)
        figs["dvh"] = fig
    return figs


def patient_report_html(study, *, title: str | None = None, notes: Sequence[str] = ()) -> str:
    """A self-contained HTML report of one study (summary, ROI volumes and dose statistics, pictures);
    ``notes`` (e.g. the warnings raised while reading it) are listed under the summary."""
    import numpy as np

    figs = report_figures(study)
    rows = []
    stats = study.dvh().stats if study.has_dose and any(r.fillable for r in study.rois) else None
    for i, r in enumerate(study.rois):
        vol = f"{study.volume_cc(i):.2f}" if r.fillable else "-"
        cells = [html.escape(r.name), html.escape(r.roi_type or "-"), vol]
        if stats is not None:
            names = [str(n) for n in stats["roi"].values]
            for m in ROI_METRICS:
                v = float(stats[m].sel(roi=r.name)) if r.name in names else np.nan
                cells.append(f"{v:.2f}" if np.isfinite(v) else "-")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ["ROI", "type", "volume cc"] + ([f"{m} Gy" for m in ROI_METRICS] if stats is not None else [])
    title = title or f"Patient {study.attrs.get('patient_id', '') or '?'}"
    pics = "".join(f'<figure><img alt="{k}" src="data:image/png;base64,{_png(f)}"><figcaption>{k}</figcaption>'
                   f"</figure>" for k, f in figs.items())
    no_dose = "" if study.has_dose else "<p><b>No dose</b> in this study: no DVH.</p>"
    if notes:
        no_dose += "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
            "figure{display:inline-block}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><pre>{html.escape(study.summary())}</pre>{no_dose}"
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(rows)}</table>{pics}</body></html>")


def write_patient_report(study, path: str | os.PathLike, *, notes: Sequence[str] = ()) -> Path:
    """Write :func:`patient_report_html` to ``path`` atomically; ``study`` is a Study or a folder."""
    from .fileio import write_bytes_atomic
    from .study import Study, open_study

    if not isinstance(study, Study):
        study = open_study(study)
    html_text = patient_report_html(study, notes=notes)
    write_bytes_atomic(path, html_text.encode("utf-8"), "report path", create_parent=True)
    return Path(path)


def _safe(func: Callable[[str], Any], folder: str) -> dict[str, Any]:
    try:
        out = func(folder)
        return out if isinstance(out, dict) else {"folder": folder, "result": out}
    except Exception as exc:  # one bad patient never stops the batch
        return {"folder": folder, "error": f"{type(exc).__name__}: {exc}"}


def run_batch(
    folders: Sequence[str | os.PathLike],
    func: Callable[[str], Any] = patient_summary,
    *,
    client: Any = None,
    n_workers: int | None = None,
) -> list[dict[str, Any]]:
    """Run ``func(folder)`` for every patient folder on Dask and return the rows in input order.

    Parameters
    ----------
    folders : sequence of paths
        Patient folders (each one DICOM-RT set).
    func : callable(str) -> dict
        Picklable function of one folder; default :func:`patient_summary`.
    client : distributed.Client, str or None
        An existing client, a scheduler address ("tcp://host:8786"), or None to start a local
        cluster of processes (closed at the end).
    n_workers : int, optional
        Workers of the local cluster (default: the CPU count, at most the number of folders).
    """
    from dask.distributed import Client, LocalCluster

    paths = validate_folders(folders)
    if not paths:
        return []
    own = None
    if client is None:
        n = n_workers or min(os.cpu_count() or 1, len(paths))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)  # no worker start/stop chatter in notebook outputs
        own = client = Client(cluster)
    elif isinstance(client, str):
        own = client = Client(client)
    try:
        futures = client.map(_safe, [func] * len(paths), paths, pure=False)
        return client.gather(futures)
    finally:
        if own is not None:
            cluster = getattr(own, "cluster", None)
            own.close()
            if cluster is not None:
                cluster.close()


def write_rows_csv(rows: list[dict[str, Any]], path: str | os.PathLike, columns: Sequence[str] = ()) -> Path:
    """Write rows as CSV, atomically: ``columns`` first, then any other keys in first-seen order."""
    import csv

    cols: list[str] = list(columns)
    for r in rows:
        cols += [k for k in r if k not in cols]
    from .fileio import atomic_open

    with atomic_open(path, "w", "CSV path", create_parent=True, newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return Path(path)
