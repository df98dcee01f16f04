"""Benchmark: deep-learning data preparation (sample 3's resize, sample 4's augmentation) with
grtv_nb beside the reference tools, in one run, on a synthetic 512 x 512 x 200 int16 CT with two
uint8 0/255 masks (body, left lung).

Resize, CT (200, 512, 512) int16 -> (200, 256, 256) (sample 3):

- ``grtv_nb``: ``transforms.resize_volume(ct, shape, np.int16)`` (int16 out, rounded);
- ``scipy zoom``: ``scipy.ndimage.zoom(ct, ..., order=1, grid_mode=True, mode='nearest')`` (int16 out);
- ``skimage resize``: ``skimage.transform.resize(ct, shape, order=1, anti_aliasing=False,
  preserve_range=True)`` (float64 out);
- ``torch interpolate``: ``torch.nn.functional.interpolate(x, shape, mode='trilinear')`` on a float32
  tensor made outside the timing (float32 out; the int16 -> float32 conversion is not counted);
- ``floor``: the memory-bandwidth floor, reading the input once and writing the output once
  (numpy, one pass each), into a new array (``fresh output``: its page faults included, as for
  every tool above, which all return a new array) or into memory already mapped.

One augmentation round, CT + 2 masks, rotation +-3 deg about x, y, z and deformation 0.05
(sample 4's settings):

- ``grtv_nb``: ``augment.augment_volumes([ct, body, lung], tmp, times=1, ...)`` (raw files + .mhd
  headers written, as the facade does) and the warp alone (``apply_transform``);
- ``scipy map_coordinates``: the same composed warp (rotation + B-spline field) built as a dense
  coordinate array and sampled with ``map_coordinates`` (order 1 for the CT, 0 for the masks);
- ``TorchIO``: ``RandomAffine(degrees=3, scales=0) + RandomElasticDeformation(7 control points)``
  on a Subject (CT ScalarImage + 2 LabelMaps);
- ``MONAI``: ``Rand3DElasticd`` (rotate_range 3 deg, elastic field; bilinear CT, nearest masks).

Every tool runs in its own subprocess; the time is the best of ``REPEAT`` runs for fast tools (one
run for the slow ones, after a warm-up on a small volume where compilation matters), and the peak
memory is the highest resident memory above the process's baseline after the data was built
(sampled every millisecond; the input itself is not counted). ``ratio`` is the tool's time over
grtv_nb's. Missing tools print n/a with the reason.

Run: ``.venv/bin/python benchmarks/bench_transforms.py`` (``--small`` for a 1/8 size smoke run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (200, 512, 512)
NEW_SHAPE = (200, 256, 256)
ANGLE = 3.0
DEFORM = 0.05
REPEAT = 3


# ----------------------------------------------------------------------------- data


def make_data(shape):
    """Synthetic CT (air, elliptic body at 40 HU with noise, two lungs at -800, a spine at 700)
    and uint8 0/255 masks of the body and the left lung; built slice by slice (low peak memory)."""
    nz, ny, nx = shape
    ct = np.empty(shape, np.int16)
    body = np.zeros(shape, np.uint8)
    lung = np.zeros(shape, np.uint8)
    y, x = np.ogrid[:ny, :nx]
    b2d = ((y - ny * 0.5) / (ny * 0.38)) ** 2 + ((x - nx * 0.5) / (nx * 0.45)) ** 2 <= 1
    ll = ((y - ny * 0.45) / (ny * 0.22)) ** 2 + ((x - nx * 0.68) / (nx * 0.12)) ** 2 <= 1
    rl = ((y - ny * 0.45) / (ny * 0.22)) ** 2 + ((x - nx * 0.32) / (nx * 0.12)) ** 2 <= 1
    sp = ((y - ny * 0.72) / (ny * 0.05)) ** 2 + ((x - nx * 0.5) / (nx * 0.05)) ** 2 <= 1
    rng = np.random.default_rng(0)
    for k in range(nz):
        s = np.full((ny, nx), -1000, np.int16)
        s[b2d] = 40
        in_lung = 0.15 * nz < k < 0.85 * nz
        if in_lung:
            s[ll | rl] = -800
        s[sp] = 700
        s += rng.integers(-15, 16, size=(ny, nx), dtype=np.int16)
        ct[k] = s
        body[k][b2d] = 255
        if in_lung:
            lung[k][ll] = 255
    return ct, body, lung


# ----------------------------------------------------------------------------- memory sampling


class PeakRSS:
    """Highest resident set size (bytes) seen while active, sampled every millisecond."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def __enter__(self):
        self.base = self.rss()
        self.peak = self.base
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


# ----------------------------------------------------------------------------- tools


def _transform(shape):
    from grtv_nb.augment import random_transform

    return random_transform(shape, 0, rotate=True, rotate_range_deg=ANGLE, deform=True, deform_rate=DEFORM)


def tool_resize_grtv(data, new_shape):
    from grtv_nb.transforms import resize_volume

    resize_volume(data[0][:4, :32, :32], (4, 16, 16), np.int16)  # load the compiled kernel
    return lambda: resize_volume(data[0], new_shape, np.int16), REPEAT


def tool_resize_scipy(data, new_shape):
    from scipy.ndimage import zoom

    ct = data[0]
    z = [m / n for n, m in zip(ct.shape, new_shape)]
    return lambda: zoom(ct, z, order=1, grid_mode=True, mode="nearest"), REPEAT


def tool_resize_skimage(data, new_shape):
    from skimage.transform import resize

    ct = data[0]
    return lambda: resize(ct, new_shape, order=1, anti_aliasing=False, preserve_range=True), REPEAT


def tool_resize_torch(data, new_shape):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(data[0]).float()[None, None]
    return lambda: F.interpolate(x, size=new_shape, mode="trilinear", align_corners=False), REPEAT


def tool_resize_floor(data, new_shape):
    ct = data[0]
    out = np.empty(new_shape, np.int16)
    out.fill(0)
    flat = ct.reshape(-1).view(np.uint64) if ct.nbytes % 8 == 0 else ct.reshape(-1)

    def run():
        flat.sum()  # read the input once
        out.fill(1)  # write the output once (into memory already mapped)
    return run, REPEAT


def tool_resize_floor_fresh(data, new_shape):
    ct = data[0]
    flat = ct.reshape(-1).view(np.uint64) if ct.nbytes % 8 == 0 else ct.reshape(-1)

    def run():
        flat.sum()  # read the input once
        out = np.empty(new_shape, np.int16)
        out.fill(1)  # write a new output array once (page faults included, as for every tool)
        return out
    return run, REPEAT


def tool_augment_grtv(data, _):
    from grtv_nb.augment import augment_volumes

    tmp = tempfile.mkdtemp(prefix="bench_aug_")
    small = [v[:8, :64, :64].copy() for v in data]
    augment_volumes(small, tmp, times=1, rotate_range_deg=ANGLE, deform=True, deform_rate=DEFORM, seed=0,
                    progress=False)

    def run():
        augment_volumes(list(data), tmp, times=1, names=["ct", "body", "llung"], rotate=True,
                        rotate_range_deg=ANGLE, deform=True, deform_rate=DEFORM, seed=0, progress=False)
    return run, REPEAT


def tool_warp_grtv(data, _):
    from grtv_nb.augment import apply_transform

    t = _transform(data[0].shape)
    small = [v[:8, :64, :64].copy() for v in data]
    apply_transform(small, _transform(small[0].shape))
    return lambda: apply_transform(list(data), t), REPEAT


def tool_augment_scipy(data, _):
    from scipy.ndimage import map_coordinates

    t = _transform(data[0].shape)

    def run():
        shape = data[0].shape
        field = t.displacement_field(normalized=False)  # (3, z, y, x) voxels
        idx = np.indices(shape, dtype=np.float32)
        c = t.centre.astype(np.float32)
        m = t.matrix.astype(np.float32)
        coords = np.einsum("ij,jzyx->izyx", m, idx - c[:, None, None, None]) + c[:, None, None, None] + field
        del idx, field
        out = [map_coordinates(data[0], coords, order=1, mode="constant", cval=-1000)]
        out += [map_coordinates(v, coords, order=0, mode="constant", cval=0) for v in data[1:]]
        return out
    return run, 1


def tool_augment_torchio(data, _):
    import torch
    import torchio as tio

    ct, body, lung = (torch.from_numpy(np.ascontiguousarray(v))[None] for v in data)
    subject = tio.Subject(ct=tio.ScalarImage(tensor=ct), body=tio.LabelMap(tensor=body),
                          lung=tio.LabelMap(tensor=lung))
    tf = tio.Compose([
        tio.RandomAffine(scales=0, degrees=ANGLE, translation=0, default_pad_value=-1000),
        tio.RandomElasticDeformation(num_control_points=7, max_displacement=DEFORM * 256 * 0.99,
                                     locked_borders=0),
    ])
    return lambda: tf(subject), 1


def tool_augment_monai(data, _):
    from monai.transforms import Rand3DElasticd

    d = {"ct": data[0][None], "body": data[1][None], "lung": data[2][None]}
    tf = Rand3DElasticd(keys=["ct", "body", "lung"], sigma_range=(20, 30), magnitude_range=(100, 300), prob=1.0,
                        rotate_range=(np.deg2rad(ANGLE),) * 3, mode=("bilinear", "nearest", "nearest"),
                        padding_mode="zeros")
    tf.set_random_state(0)
    return lambda: tf(d), 1


TOOLS = {
    "resize": [("grtv_nb", tool_resize_grtv), ("scipy zoom", tool_resize_scipy),
               ("skimage resize", tool_resize_skimage), ("torch interpolate", tool_resize_torch),
               ("floor (fresh output)", tool_resize_floor_fresh), ("floor (mapped output)", tool_resize_floor)],
    "augment": [("grtv_nb", tool_augment_grtv), ("grtv_nb warp only", tool_warp_grtv),
                ("scipy map_coordinates", tool_augment_scipy), ("TorchIO", tool_augment_torchio),
                ("MONAI", tool_augment_monai)],
}


# ----------------------------------------------------------------------------- driver


def worker(task: str, name: str, shape) -> dict:
    data = make_data(shape)
    new_shape = (shape[0], shape[1] // 2, shape[2] // 2)
    fn = dict(TOOLS[task])[name]
    try:
        run, repeat = fn(data, new_shape)
    except ImportError as e:
        return {"error": f"not installed ({e.name or e})"}
    times, peak = [], 0.0
    for _ in range(repeat):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            res = run()
            times.append(time.perf_counter() - t0)
        del res
        peak = max(peak, mem.extra_mb)
    return {"seconds": min(times), "peak_mb": peak}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        task, name, shape = sys.argv[2], sys.argv[3], tuple(json.loads(sys.argv[4]))
        import warnings

        warnings.simplefilter("ignore")
        print("RESULT " + json.dumps(worker(task, name, shape)))
        return
    shape = SHAPE
    if "--small" in sys.argv:
        shape = (SHAPE[0] // 2, SHAPE[1] // 4, SHAPE[2] // 4)
    in_mb = np.prod(shape) * 2 / 2**20
    print(f"bench_transforms: CT {shape[::-1]} (x, y, z) int16 ({in_mb:.0f} MB) + 2 uint8 masks; "
          f"{os.cpu_count()} CPUs")
    for task in TOOLS:
        title = (f"resize CT to {(shape[0], shape[1] // 2, shape[2] // 2)}" if task == "resize" else
                 f"augmentation round: CT + 2 masks, rotation +-{ANGLE} deg + deformation {DEFORM}")
        print(f"\n{title}")
        print(f"{'tool':<24}{'seconds':>10}{'ratio':>9}{'peak MB':>10}  note")
        ours = None
        for name, _ in TOOLS[task]:
            cmd = [sys.executable, __file__, "--worker", task, name, json.dumps(list(shape))]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not line:
                err = (p.stderr.strip().splitlines() or ["failed"])[-1][:80]
                print(f"{name:<24}{'n/a':>10}{'':>9}{'':>10}  {err}")
                continue
            r = json.loads(line[-1][7:])
            if "error" in r:
                print(f"{name:<24}{'n/a':>10}{'':>9}{'':>10}  {r['error']}")
                continue
            if ours is None:
                ours = r["seconds"]
            ratio = r["seconds"] / ours
            print(f"{name:<24}{r['seconds']:>10.3f}{ratio:>8.2f}x{r['peak_mb']:>10.0f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
