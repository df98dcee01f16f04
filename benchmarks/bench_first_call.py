"""Benchmark: time to first result in a fresh process, with an empty compile cache (a new install,
a Binder start, a fresh container) and with a warm one (any later process), beside the warm time
of the same call in a process that has already made it.

Steps, each timed in a new Python process (issue 14):

- ``import``: ``from grtv import *``;
- ``readRTDir``: ``pyGRTV().readRTDir`` of a CT series (the 90-slice 512 x 512 head-and-neck CT of
  ``../shared/data`` when present, else the phantom written to a temporary folder);
- ``resizeImage3D``: the loaded CT to 256 x 256 in-plane (int16);
- ``augmentImg3D``: one round (rotation + deformation) of a 60 x 256 x 256 int16 volume.

Scenarios: ``empty cache`` (``NUMBA_CACHE_DIR`` pointed at a new empty folder, as on a fresh
install, so every kernel compiles), ``warm cache`` (the same folder, filled by the previous run),
``after warmup`` (empty folder filled by ``grtv-nb warmup`` first, as ``make`` does after
install). ``in-process`` is the same call made a second time in the warm-cache process (a
process's first resizes and augmentation rounds run on bit-identical NumPy twins of the kernels,
so the augmentation round is also timed with the compiled kernel loaded). Goals:
empty cache within 2 s of the in-process time, warm cache within 0.2 s.

Run: ``.venv/bin/python benchmarks/bench_first_call.py`` (or ``make bench``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HN = DATA / "pycerr-headneck-ct" / "head_and_neck" / "pt_1"

_CHILD = r"""
import json, sys, tempfile, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from grtv import *
res = {"import": time.perf_counter() - t0}
folder = sys.argv[1]
g = pyGRTV()
def timed(key, fn):
    t = time.perf_counter(); r = fn(); res[key] = time.perf_counter() - t
    status = r[0] if isinstance(r, tuple) else r
    assert status == GRTV_STATUS_OK, (key, g.lastError)
    return r
timed("readRTDir", lambda: g.readRTDir(folder))
_, ct = g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)
shape = (ct.shape[0], 256, 256)
timed("resizeImage3D", lambda: g.resizeImage3D(ct, shape))
vol = np.random.default_rng(0).integers(-1000, 1500, (60, 256, 256)).astype(np.int16)
out = tempfile.mkdtemp()
aug = lambda i: g.augmentImg3D([vol], out + f"/r{i}", 1, rotate=True, deform=True, seed=i)
timed("augmentImg3D", lambda: aug(0))
timed("readRTDir again", lambda: g.readRTDir(folder))
timed("resizeImage3D again", lambda: g.resizeImage3D(ct, shape))
timed("augmentImg3D again", lambda: aug(1))
from grtv_nb.augment import load_kernels
load_kernels((np.int16,))
timed("augmentImg3D compiled", lambda: aug(2))
print("RESULT " + json.dumps(res))
"""

STEPS = ("import", "readRTDir", "resizeImage3D", "augmentImg3D")


def _run(folder: Path, cache: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    p = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=1800)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if p.returncode != 0 or line is None:
        raise SystemExit(f"benchmark child failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(line[7:])


def _warmup(cache: Path) -> float:
    import time

    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grtv_nb.cli", "warmup"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_first_") as td:
        td = Path(td)
        if HN.is_dir():
            folder, label = HN, "head-and-neck CT, 90 x 512 x 512"
        else:
            from grtv_nb.phantom import write_phantom

            folder, label = write_phantom(td / "phantom"), "phantom"
        cache = td / "numba_cache"
        cache.mkdir()
        empty = _run(folder, cache)
        warm = min((_run(folder, cache) for _ in range(2)), key=lambda r: sum(r[s] for s in STEPS))
        cache2 = td / "numba_cache_warmup"
        cache2.mkdir()
        t_warmup = _warmup(cache2)
        after = _run(folder, cache2)
    print(f"First call in a fresh process ({label}; seconds). Goals: empty cache <= in-process + 2 s; "
          "warm cache <= in-process + 0.2 s")
    hdr = f"{'step':<15} {'empty cache':>11} {'warm cache':>10} {'after warmup':>12} {'in-process':>10} " \
          f"{'empty-inproc':>12} {'warm-inproc':>11}"
    print(hdr)
    print("-" * len(hdr))
    for s in STEPS:
        inproc = warm.get(f"{s} again", 0.0)
        print(f"{s:<15} {empty[s]:11.3f} {warm[s]:10.3f} {after[s]:12.3f} {inproc:10.3f} "
              f"{empty[s] - inproc:12.3f} {warm[s] - inproc:11.3f}")
    print(f"(grtv-nb warmup itself took {t_warmup:.1f} s, once, at install)")
    print(f"in-process = the same call again; a process's first resizes and augmentation rounds run on "
          f"NumPy twins of the kernels. augmentImg3D with the compiled kernel loaded: "
          f"{warm['augmentImg3D compiled']:.3f} s (fresh process with warm cache: "
          f"{warm['augmentImg3D'] - warm['augmentImg3D compiled']:+.3f} s against it)")


if __name__ == "__main__":
    main()
