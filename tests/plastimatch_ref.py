"""Test helper: independent body outlines from ``plastimatch segment`` (run on an MHA written from
the canonical array: LPS, identity direction, so plastimatch sees the couch posterior)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def plastimatch_exe() -> str | None:
    exe = Path(sys.executable).with_name("plastimatch")
    return str(exe) if exe.exists() else shutil.which("plastimatch")


def write_mha(path: Path, vol: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
    vol = np.ascontiguousarray(vol.astype(np.int16))
    dz = float(np.median(np.diff(z)))
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n"
        f"Offset = {x[0]} {y[0]} {z[0]}\nCenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\n"
        f"ElementSpacing = {x[1] - x[0]} {y[1] - y[0]} {dz}\n"
        f"DimSize = {vol.shape[2]} {vol.shape[1]} {vol.shape[0]}\n"
        "ElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    )
    with open(path, "wb") as f:
        f.write(header.encode())
        f.write(vol.tobytes())


def read_mha(path: Path) -> np.ndarray:
    raw = Path(path).read_bytes()
    marker = b"ElementDataFile = LOCAL\n"
    i = raw.index(marker) + len(marker)
    head = raw[:i].decode()
    fields = dict(line.split(" = ", 1) for line in head.strip().splitlines())
    nx, ny, nz = (int(v) for v in fields["DimSize"].split())
    dtype = {"MET_UCHAR": np.uint8, "MET_SHORT": np.int16, "MET_FLOAT": np.float32}[fields["ElementType"]]
    return np.frombuffer(raw[i:], dtype=dtype)[: nx * ny * nz].reshape(nz, ny, nx)


def plastimatch_body(vol: np.ndarray, x, y, z, fill_holes: bool = True) -> np.ndarray | None:
    """Body mask by ``plastimatch segment`` (None if plastimatch is not installed)."""
    exe = plastimatch_exe()
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as td:
        src, dst = Path(td) / "ct.mha", Path(td) / "body.mha"
        write_mha(src, vol, x, y, z)
        cmd = [exe, "segment", "--input", str(src), "--output-img", str(dst)]
        if fill_holes:
            cmd.append("--fill-holes")
        subprocess.run(cmd, check=True, capture_output=True)
        return read_mha(dst) > 0
