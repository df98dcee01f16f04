"""The long seeded mutation campaign over the DICOM-RT readers (``make fuzz``).

Mutates copies of the real data in ../shared/data and of a small phantom (bit flips, truncation,
tag deletion, value replacement with NaN / inf / huge / negative / empty / wrong VR, huge declared
sizes, junk files, symbolic-link loops; see tests/fuzz_support.py), opens each copy as a user
would, and prints the inputs tried and the outcomes by class. Exit status 1 when any input ends
in a crash (foreign exception), an unnamed error, a wrong result or a hang.

Usage::

    python tools/fuzz_campaign.py [--cases 3000] [--seed 1] [--small] [--minutes M] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import fuzz_support as fz  # noqa: E402
import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--small", action="store_true", help="only the small data sets (no 60-98 slice series)")
    ap.add_argument("--minutes", type=float, default=None, help="start no case after this many minutes")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    from grtv_nb.phantom import write_phantom

    with tempfile.TemporaryDirectory(prefix="grtv_fuzz_") as tmp:
        tmp = Path(tmp)
        ph = write_phantom(tmp / "phantom", z_positions=np.arange(8) * 4.0 - 14, nx=40, ny=32, pixel_mm=6.0,
                           dose_grid_mm=8.0)
        data = args.data if args.data.is_dir() else None
        if data is None:
            print(f"note: {args.data} not found: the phantom alone is mutated")
        bases = fz.base_folders(data, ph, large=not args.small)
        print(f"bases: {', '.join(b.name for b in bases)}; {args.cases} cases, seed {args.seed}")
        by_kind: dict[str, Counter] = {}
        t0 = time.time()

        def log(i, base, o):
            by_kind.setdefault(o.mutation.kind, Counter())[o.cls] += 1
            if o.cls in fz.FAILURES:
                print(f"[{i}] {o.cls.upper()} {base.name}: {o.mutation} -> {o.message}", flush=True)
            if (i + 1) % 250 == 0:
                print(f"  {i + 1} cases, {time.time() - t0:.0f} s", flush=True)

        work = tmp / "cases"
        work.mkdir()
        deadline = time.monotonic() + 60 * args.minutes if args.minutes else None
        tally = fz.campaign(bases, args.cases, args.seed, work, log=log, deadline=deadline)
    print(f"\n{tally.line()} in {time.time() - t0:.0f} s")
    columns = ["same", "changed", "refused", *fz.FAILURES, "skipped"]
    print(f"{'mutation':<10}" + "".join(f"{c:>9}" for c in columns))
    for kind, c in sorted(by_kind.items()):
        print(f"{kind:<10}" + "".join(f"{c.get(k, 0):>9}" for k in columns))
    return 1 if tally.failures or tally.counts["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
