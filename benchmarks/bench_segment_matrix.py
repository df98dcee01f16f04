"""Robustness matrix of automatic organ segmentation (issue 15): every organ method on the real
TotalSegmentator example CT (../shared/data; its labels are TotalSegmentator model outputs, the
reference) written in the 8 patient positions (HFS, FFS, HFP, FFP, HFDL, HFDR, FFDL, FFDR; DICOM
series opened with open_study), cropped (right half of the trunk, abdomen only, liver dome only,
pelvis only, 3 slices, 1 slice), resliced to 5 mm slabs, with noise, and on CTs without a trunk
(head and neck, air, a water cylinder). Cells are built by tests/seg_matrix.py.

Each entry: Dice against the reference on the part in the image (the canal: coverage of the
cord; the body: Dice against the full CT's body on the same voxels), ``ref`` for a refusal that
is right (less than 20 % of the organ in the image, or no reference organ), ``MISS`` for a
refusal of an organ that is there, ``WRONG`` for an organ drawn where there is none or with
Dice below 0.3. The last columns are the seconds for all organs of the cell (landmarks
included) and the worst change of Dice against the full CT.

Run: ``.venv/bin/python benchmarks/bench_segment_matrix.py [--positions-only] [--cells WORD,WORD]``
(``--cells``: only the cells whose name holds one of the words, after the full CT, which gives the
reference Dice).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str]) -> int:
    from nifti_ref import ts_unavailable

    why = ts_unavailable()
    if why:
        print(f"skipped: {why}")
        return 0
    from seg_matrix import ORGANS, POSITIONS, build_cells, outcome, reference, score

    from grtv_nb.errors import SegmentationError
    from grtv_nb.segment import close_session, segment_organ

    words = argv[argv.index("--cells") + 1].split(",") if "--cells" in argv else None
    with tempfile.TemporaryDirectory() as tmp:
        # the 8 DICOM series are written only when asked for
        positions = POSITIONS if words is None else tuple(
            p for p in POSITIONS if any(w in f"position {p}" for w in words))
        cells = build_cells(Path(tmp), positions=positions, extra="--positions-only" not in argv)
    if words is not None:
        cells = cells[:1] + [c for c in cells[1:] if any(w in c.name for w in words)]
    short = {"body": "body", "llung": "llung", "rlung": "rlung", "spinal_cord": "canal", "liver": "liver",
             "lkidney": "lkidney", "rkidney": "rkidney", "stomach": "stomach"}
    print(f"{'cell':26s} " + " ".join(f"{short[o]:>8s}" for o in ORGANS) + f" {'seconds':>8s} {'worst dD':>8s}")
    full_score: dict = {}
    full_cc: dict = {}
    full_body = None
    counts = {"ok": 0, "refused": 0, "MISSED": 0, "WRONG": 0}
    for cell in cells:
        img = cell.image
        vox_cc = float(np.prod([abs(float(img[a][1] - img[a][0])) if img.sizes[a] > 1 else 3.0 for a in "xyz"])) / 1000
        close_session()
        row = []
        t0 = time.perf_counter()
        worst = 0.0
        for organ in ORGANS:
            try:
                m = segment_organ(img, organ)
            except SegmentationError:
                m = None
            body_ref = None
            if organ == "body" and full_body is not None and cell.labels is not None:
                body_ref = full_body.sel(z=img.z, y=img.y, x=img.x, method="nearest").values
            ref = reference(cell, organ, body_ref)
            if cell is cells[0]:
                full_body = xr.DataArray(m, coords=img.coords, dims=img.dims) if organ == "body" else full_body
                ref = m if organ == "body" else ref
                full_cc[organ] = float(ref.sum()) * vox_cc
                full_score[organ] = score(organ, m, ref) if m is not None else None
            expect = (organ == "body" and cell.name != "air only") or (
                organ == "spinal_cord" and cell.name == "head and neck CT")
            grade, s = outcome(organ, m, ref, full_cc.get(organ, 0.0), vox_cc, expect_found=expect)
            counts[grade] += 1
            if grade == "ok" and s is not None:
                row.append(f"{s:8.3f}")
                if full_score.get(organ) is not None and cell is not cells[0]:
                    worst = min(worst, s - full_score[organ])
            elif grade == "ok":
                row.append(f"{'found':>8s}")
            elif grade == "refused":
                row.append(f"{'ref':>8s}")
            elif grade == "MISSED":
                row.append(f"{'MISS':>8s}")
            else:
                row.append(f"{'WRONG':>8s}" if s is None else f"{'W' + format(s, '.2f'):>8s}")
        secs = time.perf_counter() - t0
        print(f"{cell.name[:26]:26s} " + " ".join(row) + f" {secs:8.1f} {worst:+8.3f}")
    close_session()
    print(f"\ncells x organs: {sum(counts.values())}; right organ {counts['ok']}, right refusal "
          f"{counts['refused']}, missed {counts['MISSED']}, WRONG organ {counts['WRONG']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
