"""Robustness matrix of automatic organ segmentation (issue 15): every organ method on the real
TotalSegmentator example CT (../shared/data; its labels are TotalSegmentator model outputs, the
reference) in the 8 patient positions (DICOM series opened with open_study), cropped in z
(thorax only, thorax + abdomen, abdomen only, liver dome, pelvis only, 5 slices through each
organ, 3 slices, 1 slice) and laterally (right half of the trunk), resampled to 1, 2, 4 and 5 mm
slices, with noise, with a synthetic tumour in each lung, and on CTs without a trunk (head and
neck, air, a water cylinder). Cells are built and graded by tests/seg_matrix.py.

Each entry: Dice against the reference on the part in the image (the canal: coverage of the
cord; the body: Dice against the full CT's body on the same voxels), then in brackets
Delta = that Dice minus the full CT's prediction's Dice on the same part (its prediction mapped
onto the cell's grid as the reference is), ``!`` where |Delta| > 0.03; ``ref`` for a refusal that
is right (less than 20 % of the organ in the image, or no reference organ), ``MISS`` for a
refusal of an organ that is there, ``WRONG`` for an organ drawn where there is none or with Dice
below 0.3. The last columns: the seconds for the first organ (the body, landmarks included) and
for all organs of the cell; ``known`` marks the (cell, organ) pairs listed in seg_matrix.KNOWN.

Run: ``.venv/bin/python benchmarks/bench_segment_matrix.py [--positions-only] [--cells WORD,WORD]``
(``--cells``: only the cells whose name holds one of the words, after the full CT, which gives the
reference predictions).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str]) -> int:
    from nifti_ref import ts_unavailable

    why = ts_unavailable()
    if why:
        print(f"skipped: {why}")
        return 0
    from seg_matrix import DELTA_MAX, KNOWN, ORGANS, POSITIONS, FullRun, build_cells, evaluate, segment_all

    words = argv[argv.index("--cells") + 1].split(",") if "--cells" in argv else None
    with tempfile.TemporaryDirectory() as tmp:
        cells = build_cells(Path(tmp), positions=POSITIONS, extra="--positions-only" not in argv,
                            want=None if words is None else (lambda name: any(w in name for w in words)))
    short = {"body": "body", "llung": "llung", "rlung": "rlung", "spinal_cord": "canal", "liver": "liver",
             "lkidney": "lkidney", "rkidney": "rkidney", "stomach": "stomach"}
    print(f"{'cell':30s} " + " ".join(f"{short[o]:>15s}" for o in ORGANS) + f" {'1st s':>6s} {'all s':>6s}")
    counts = {"ok": 0, "refused": 0, "MISSED": 0, "WRONG": 0}
    flagged = []
    full = None
    for cell in cells:
        masks, first, secs = segment_all(cell.image)
        if full is None:
            full = FullRun(cell, masks)
        res = evaluate(cell, masks, full)
        row = []
        for organ in ORGANS:
            r = res[organ]
            counts[r.grade] += 1
            known = (cell.name, organ) in KNOWN
            if r.grade == "ok" and r.score is not None:
                d = "" if r.delta is None else f"({r.delta:+.3f}{'!' if abs(r.delta) > DELTA_MAX else ' '})"
                txt = f"{r.score:.3f}{d}"
            else:
                txt = {"ok": "found", "refused": "ref", "MISSED": "MISS"}.get(
                    r.grade, "WRONG" if r.score is None else f"W{r.score:.2f}")
            if r.fails:
                flagged.append((cell.name, organ, txt, known))
            row.append(f"{txt + ('*' if known else ''):>15s}")
        print(f"{cell.name[:30]:30s} " + " ".join(row) + f" {first:6.1f} {secs:6.1f}", flush=True)
    print(f"\ncells x organs: {sum(counts.values())}; right organ {counts['ok']}, right refusal "
          f"{counts['refused']}, missed {counts['MISSED']}, WRONG organ {counts['WRONG']}; "
          f"|Delta| > {DELTA_MAX}: {sum(1 for f in flagged if '!' in f[2])}")
    for name, organ, txt, known in flagged:
        print(f"  {name}: {organ} {txt}" + (f"  (known: {KNOWN[name, organ]})" if known else "  (NOT in KNOWN)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
