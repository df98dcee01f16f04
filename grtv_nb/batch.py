"""Batch work over many patients on Dask: a local cluster by default, any Dask cluster when users
outgrow one machine (pass a ``distributed.Client`` or a scheduler address).

Each patient is one task: the function receives the folder path and runs in a worker process
(studies are opened there, never shipped between processes). Failures are returned per patient
(``error`` column), never raised for the whole batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def patient_summary(folder: str | os.PathLike) -> dict[str, Any]:
    """One patient's summary row: grid, ROI volumes (cc), dose max (Gy) and mean dose per ROI."""
    import warnings

    from .study import open_study

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = open_study(folder)
        row: dict[str, Any] = {
            "folder": str(folder),
            "patient_id": st.attrs.get("patient_id", ""),
            "shape_zyx": "x".join(str(n) for n in st.grid.shape),
            "spacing_zyx_mm": "x".join(f"{s:.3g}" for s in st.grid.spacing),
            "n_rois": len(st.rois),
            "dose_max_gy": float(st.ds["dose"].max()) if st.has_dose else None,
        }
        for i, r in enumerate(st.rois):
            if r.fillable:
                row[f"{r.name} cc"] = round(st.volume_cc(i), 3)
        if st.has_dose and st.rois:
            stats = st.dvh().stats
            for name in stats["roi"].values:
                row[f"{name} Dmean Gy"] = round(float(stats["mean"].sel(roi=name)), 4)
    row["warnings"] = len(caught)
    return row


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

    paths = [str(Path(f)) for f in folders]
    if not paths:
        return []
    own = None
    if client is None:
        n = n_workers or min(os.cpu_count() or 1, len(paths))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
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


def write_rows_csv(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write batch rows as CSV (union of the columns, in first-seen order), atomically."""
    import csv

    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    from .fileio import atomic_open

    with atomic_open(path, "w", "CSV path", create_parent=True, newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return Path(path)
