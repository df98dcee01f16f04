"""Test helper: the cells of the segmentation robustness matrix (issue 15), shared by
tests/test_segment_robust.py and benchmarks/bench_segment_matrix.py.

A cell is a CT built from the real TotalSegmentator example CT (../shared/data; its labels are
TotalSegmentator model outputs, used as the reference) plus its labels on the cell's grid. The
kinds of cell the issue lists (:data:`KINDS`):

- the 8 patient positions: the CT written as a DICOM series in each and opened with grtv_nb;
- z crops: thorax only (the lung bases, the only thorax this CT holds), abdomen only, thorax +
  abdomen, the liver dome, the pelvis only, and a few slices (5 slices, 15 mm) through the middle
  of each organ (3 slices and 1 slice too);
- a field of view cut laterally (the right half of the trunk; one side of it, cut 20 mm past the
  spinal canal on either side);
- resampled to 1, 2, 4 and 5 mm slices (1 and 2 mm: linear interpolation between the 3 mm
  slices; 4 and 5 mm: thick slabs, the mean of the 3 mm slices weighted by the length of each
  within the slab, as a thick slice reconstructed from thin ones);
- Gaussian noise (sd 40 HU);
- a synthetic soft-tissue tumour (a 40 HU sphere) placed in each lung;
- CTs that hold no trunk (the head-and-neck CT, air, a water phantom), for which every organ
  but the body (and, in the neck, the canal) must be refused.

Every cell's reference labels are the full CT's labels mapped onto the cell's grid by
:func:`on_grid` (nearest voxel centre; on the resampled cells by :func:`z_weights`, the weights
that made the cell's image from the full CT's slices: an organ where at least half the weight is
that organ), and the full CT's predictions are mapped the same way, so
:func:`evaluate` compares like with like: for each organ, Delta = Dice(cell's prediction) -
Dice(full CT's prediction on the same part), both against the cell's reference (the canal: the
coverage of the cord; the body: against the full CT's body on the same voxels, so its Delta is
Dice - 1). A tumour cell's lung scores leave the tumour's voxels out (whether a lung contour
holds a tumour is a convention).

:func:`outcome` grades one organ of one cell: the right organ, a refusal, or a wrong organ, never
silently; :data:`KNOWN` lists the (cell, organ) pairs that do not yet meet the goal, with why.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from nifti_ref import DATA, TS_LABELS, dice, read_ct_folder, write_image_series

POSITIONS = ("HFS", "FFS", "HFP", "FFP", "HFDL", "HFDR", "FFDL", "FFDR")
ORGANS = ("body", "llung", "rlung", "spinal_cord", "liver", "lkidney", "rkidney", "stomach")
#: An organ with less than this fraction of its full-CT reference volume in the image may be
#: refused (a refusal of a larger part is a miss).
PRESENT_FRAC = 0.2
#: Below this Dice (coverage for the canal) a found organ is graded a wrong organ.
WRONG_DICE = 0.3
#: The goal: a found organ's Dice on the part in the image within this of the full CT's on that part.
DELTA_MAX = 0.03
#: The kinds of cell issue 15 asks for.
KINDS = ("reference", "position", "thorax only", "abdomen only", "thorax + abdomen", "few slices", "crop",
         "lateral crop", "resampled", "noise", "tumour", "no trunk")
#: Organ -> z (mm) of the middle of its reference on this CT, for the "few slices" cells.
FEW_SLICES = {"lungs": 412.0, "spinal_cord": 324.0, "liver": 364.0, "lkidney": 358.0, "rkidney": 345.0,
              "stomach": 382.0}

#: (cell, organ) pairs that do not meet the goal yet (a miss, a wrong organ, or |Delta| > DELTA_MAX),
#: with the reason. tests/test_segment_robust.py asserts that exactly these fail, so a regression
#: and a fix both show.
_SPINE = "spinal canal code: not diagnosed yet (the crop and field-of-view rules did not change it)"
_BORDER = ("no spinal canal, so no midline: these 15 mm hold 2 closed bony rings (z 409, 415), canal_min_slices is 3 "
           "(with 2: liver 0.917, Delta -0.021, but on '5 slices of stomach (z 382)' liver and right kidney, under "
           "PRESENT_FRAC there, are drawn with |Delta| 0.05-0.08)")
KNOWN: dict[tuple[str, str], str] = {
    ("abdomen only (z 280-390)", "liver"): "better than the full CT on the same part (Delta > 0): "
                                           "the seed rule without lung bases",
    ("abdomen only (z 280-390)", "stomach"): "better than the full CT on the same part (Delta > 0; missed "
                                             "before the stomach's cage was completed): both miss the antrum, "
                                             "outside the rib cage",
    ("abdomen only (z 250-360)", "liver"): "better than the full CT on the same part (Delta > 0; WRONG, Dice "
                                           "0.20, before the back-muscle check of the liver candidate)",
    ("5 slices of lungs (z 412)", "llung"): "the left lung base in these 15 mm is a 9.9 cc piece, under lung_min_cc "
                                            "(10 cc), beside the stomach's gas (25.5 cc, median -951 HU)",
    ("5 slices of lungs (z 412)", "liver"): _BORDER,
    ("5 slices of lungs (z 412)", "stomach"): _BORDER,
    ("5 slices of rkidney (z 345)", "spinal_cord"): "the track's last ring slice (z 349) is a 54 mm2 hole in the "
                                                    "back of the vertebral body, 11 mm in front of the canal "
                                                    "(no closed ring there); on the whole CT the ring slices "
                                                    "above rule it out of the chain",
}


@dataclass
class Cell:
    name: str
    image: xr.DataArray
    labels: xr.DataArray | None  # the full CT's labels on the image's grid, None: no reference
    kind: str = ""
    note: str = ""
    ignore: np.ndarray | None = None  # voxels left out of every score (a synthetic tumour)
    zweights: np.ndarray | None = None  # resampled in z: (cell slices, full CT slices) weights, see z_weights
    source: np.ndarray | None = None  # ... and the full CT's labels, mapped with them per organ

    def to_cell(self, full_mask: np.ndarray | xr.DataArray) -> np.ndarray:
        """A mask on the full CT's grid mapped onto this cell's grid as the cell's image was made
        (:func:`z_weights`: the mask's weighted fraction at least 0.5), else by nearest voxel."""
        if self.zweights is not None:
            m = np.asarray(full_mask, dtype=np.float32)
            return np.tensordot(self.zweights, m, axes=(1, 0)) >= 0.5 - 1e-6
        return on_grid(full_mask, self.image).values


def _da(vol, z, y, x) -> xr.DataArray:
    return xr.DataArray(vol, dims=("z", "y", "x"), coords={"z": z, "y": y, "x": x}, attrs={"modality": "CT"})


def on_grid(full: xr.DataArray, image: xr.DataArray) -> xr.DataArray:
    """``full`` (an array on the full CT's grid) at the voxel centres of ``image``, nearest voxel:
    how a cell's labels and the full CT's predictions are both mapped onto the cell."""
    return full.sel(z=image.z.values, y=image.y.values, x=image.x.values, method="nearest").assign_coords(
        z=image.z.values, y=image.y.values, x=image.x.values)


def position_cell(img, lab, position: str, folder: Path) -> Cell:
    from grtv_nb import open_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = open_study(write_image_series(img, folder / position, position=position))
    image = st.ds["image"]
    return Cell(f"position {position}", image, on_grid(lab, image), "position", "DICOM series, opened with open_study")


def z_weights(z: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """``(new z, weights)``: slices ``step`` mm apart made from the slices at ``z``, each new slice
    the weights (a row, summing to 1) times the old slices. Thicker than the CT's: a slab ``step``
    thick, each old slice weighted by the length of its own extent (to the midpoints between it
    and its neighbours) within the slab, as a thick slice reconstructed from thin ones (a slab
    centred between two old slices holds both halves alike; the plain mean of the old slices
    whose centres lie within the slab moved its centre by up to half an old slice); thinner:
    linear interpolation between the two nearest slices."""
    z = np.asarray(z, dtype=np.float64)
    if step > float(np.median(np.diff(z))):
        nz = np.arange(z[0] + step / 2, z[-1] - step / 2 + 1e-6, step)
        mid = (z[1:] + z[:-1]) / 2
        lo = np.concatenate([[2 * z[0] - mid[0]], mid])
        hi = np.concatenate([mid, [2 * z[-1] - mid[-1]]])
        w = np.clip(np.minimum(hi[None], nz[:, None] + step / 2) - np.maximum(lo[None], nz[:, None] - step / 2),
                    0.0, None)
    else:
        nz = np.arange(z[0], z[-1] + 1e-6, step)
        i = np.clip(np.searchsorted(z, nz, side="right") - 1, 0, len(z) - 2)
        f = (nz - z[i]) / (z[i + 1] - z[i])
        w = np.zeros((len(nz), len(z)))
        w[np.arange(len(nz)), i] = 1 - f
        w[np.arange(len(nz)), i + 1] += f
    return nz, w / w.sum(axis=1, keepdims=True)


def reslice_z(img, lab, step: float) -> tuple[xr.DataArray, xr.DataArray]:
    """The CT with slices ``step`` mm apart (:func:`z_weights`), and its labels on that grid: the
    label of the largest weight (an organ made of several labels, the lobes of a lung, is mapped
    as one by :meth:`Cell.to_cell`)."""
    nz, w = z_weights(img.z.values, step)
    out = np.tensordot(w.astype(np.float32), img.values.astype(np.float32), axes=(1, 0))
    image = _da(np.rint(out).astype(np.int16), nz, img.y.values, img.x.values)
    labels = lab.values[np.argmax(w, axis=1)]
    return image, xr.DataArray(labels, dims=("z", "y", "x"), coords=image.coords)


def tumour_cell(img, lab, side: str, radius: float = 12.0) -> Cell:
    """A soft-tissue tumour (40 HU, sd 15 HU texture) of ``radius`` mm centred on the point of the
    ``side`` lung's reference deepest inside it (or as deep as there is; the lung bases are thin),
    its voxels left out of the scores."""
    from scipy import ndimage as ndi

    lung = np.isin(lab.values, TS_LABELS[side])
    sp = [abs(float(img[a][1] - img[a][0])) for a in "zyx"]
    depth = ndi.distance_transform_edt(lung, sampling=sp)
    k = np.unravel_index(int(np.argmax(depth)), lung.shape)
    Z, Y, X = np.meshgrid(img.z.values - img.z.values[k[0]], img.y.values - img.y.values[k[1]],
                          img.x.values - img.x.values[k[2]], indexing="ij")
    ball = Z**2 + Y**2 + X**2 <= radius**2
    rng = np.random.default_rng(2)
    v = img.values.copy()
    v[ball] = np.rint(rng.normal(40.0, 15.0, int(ball.sum()))).astype(np.int16)
    what = "left" if side == "llung" else "right"
    return Cell(f"tumour in the {what} lung", img.copy(data=v), lab, "tumour",
                f"{radius:.0f} mm sphere of 40 HU, {float(depth[k]):.0f} mm deep in the lung", ignore=ball)


def _builders(img, lab, tmp: Path | None) -> dict[str, Callable[[], Cell]]:
    """Cell name -> a function building that cell (the full CT first), nothing built yet."""
    out: dict[str, Callable[[], Cell]] = {"full CT (NIfTI)": lambda: Cell("full CT (NIfTI)", img, lab, "reference",
                                                                          "the reference run")}
    for pos in POSITIONS:
        out[f"position {pos}"] = lambda pos=pos: position_cell(img, lab, pos, tmp)

    def crop(name, kind, sel, note=""):
        def f():
            image = sel(img)
            return Cell(name, image, on_grid(lab, image), kind, note)
        out[name] = f

    crop("right half of the trunk", "lateral crop", lambda i: i.isel(x=i.x.values < 20.0),
         "field of view cut 20 mm left of the midline")
    crop("right side past the spine (x < -20)", "lateral crop", lambda i: i.isel(x=i.x.values < -20.0),
         "field of view cut 20 mm right of the midline: no canal, the midline placed from the body")
    crop("left side past the spine (x > 20)", "lateral crop", lambda i: i.isel(x=i.x.values > 20.0),
         "field of view cut 20 mm left of the midline: no canal, the midline placed from the body")
    crop("thorax only (z >= 397)", "thorax only", lambda i: i.sel(z=slice(397.0, None)), "the lung bases")
    crop("thorax + abdomen (z >= 300)", "thorax + abdomen", lambda i: i.sel(z=slice(300.0, None)))
    crop("abdomen only (z 280-390)", "abdomen only", lambda i: i.sel(z=slice(280.0, 390.0)))
    crop("abdomen only (z 250-360)", "abdomen only", lambda i: i.sel(z=slice(250.0, 360.0)),
         "the image's top 67 mm below the liver dome")
    crop("liver dome (z >= 370)", "crop", lambda i: i.sel(z=slice(370.0, None)))
    crop("pelvis only (z <= 250)", "crop", lambda i: i.sel(z=slice(None, 250.0)))
    for organ, zc in FEW_SLICES.items():
        crop(f"5 slices of {organ} (z {zc:.0f})", "few slices", lambda i, zc=zc: i.sel(z=slice(zc - 7.6, zc + 7.6)))
    crop("3 slices (z 337-343)", "few slices", lambda i: i.sel(z=slice(336.0, 344.0)))
    crop("1 slice", "few slices", lambda i: i.isel(z=[60]), "must be refused")

    def resliced(step):
        image, labels = reslice_z(img, lab, step)
        return Cell(f"{step:.0f} mm slices", image, labels, "resampled",
                    "interpolated" if step < 3.0 else "the 3 mm slices in each slab averaged, weighted by overlap",
                    zweights=z_weights(img.z.values, step)[1].astype(np.float32), source=lab.values)

    for step in (1.0, 2.0, 4.0, 5.0):
        out[f"{step:.0f} mm slices"] = lambda step=step: resliced(step)

    def noisy():
        rng = np.random.default_rng(1)
        v = np.clip(img.values + rng.normal(0, 40, img.shape), -1024, 3000).astype(np.int16)
        return Cell("noise sd 40 HU", img.copy(data=v), lab, "noise")

    out["noise sd 40 HU"] = noisy
    out["tumour in the right lung"] = lambda: tumour_cell(img, lab, "rlung")
    out["tumour in the left lung"] = lambda: tumour_cell(img, lab, "llung")
    hn = DATA / "pycerr-headneck-ct" / "head_and_neck" / "pt_1"
    out["head and neck CT"] = lambda: Cell("head and neck CT", read_ct_folder(hn), None, "no trunk",
                                           "no trunk organ; body and canal")
    c = np.arange(-150.0, 150.0, 2.0)
    out["air only"] = lambda: Cell("air only", _da(np.full((20, len(c), len(c)), -1000, np.int16),
                                                   np.arange(20) * 3.0, c, c), None, "no trunk", "no patient")

    def water():
        yy, xx = np.meshgrid(c, c, indexing="ij")
        w = np.where(xx**2 + yy**2 <= 100.0**2, 0, -1000).astype(np.int16)
        return Cell("water cylinder", _da(np.repeat(w[None], 20, axis=0), np.arange(20) * 3.0, c, c), None,
                    "no trunk", "phantom, no organs")

    out["water cylinder"] = water
    return out


#: The names of the matrix's cells, in order (the full CT first).
CELL_NAMES = tuple(_builders(None, None, None))


def build_cells(tmp: Path, positions=POSITIONS, extra: bool = True,
                want: Callable[[str], bool] | None = None) -> list[Cell]:
    """The matrix's cells (the full CT first; the head-and-neck CT only where its data is).
    ``positions``: which patient positions; ``extra``: the cells besides the positions;
    ``want``: only the cells whose name it accepts (besides the full CT)."""
    from nifti_ref import ts_ct, ts_labels

    img, lab = ts_ct(), ts_labels()
    hn = DATA / "pycerr-headneck-ct" / "head_and_neck" / "pt_1"
    cells = []
    for name, make in _builders(img, lab, tmp).items():
        if name != CELL_NAMES[0]:
            if name.startswith("position ") and name.split()[1] not in positions:
                continue
            if (not name.startswith("position ") and not extra) or (want is not None and not want(name)):
                continue
            if name == "head and neck CT" and not hn.is_dir():
                continue
        cells.append(make())
    return cells


def reference(cell: Cell, organ: str, full_body: np.ndarray | None) -> np.ndarray | None:
    """The reference mask of ``organ`` on the cell's grid, or None where there is none."""
    if cell.labels is None:
        return None
    if organ == "body":
        return full_body
    if cell.source is not None:
        return cell.to_cell(np.isin(cell.source, TS_LABELS[organ]))
    return np.isin(cell.labels.values, TS_LABELS[organ])


def score(organ: str, mask: np.ndarray, ref: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Dice; for the spinal canal the coverage of the reference cord. ``ignore``: voxels left out."""
    if ignore is not None:
        mask, ref = mask & ~ignore, ref & ~ignore
    if organ == "spinal_cord":
        return float((mask & ref).sum() / max(ref.sum(), 1))
    return dice(mask, ref)


def outcome(organ: str, mask: np.ndarray | None, ref: np.ndarray | None, full_cc: float, vox_cc: float,
            expect_found: bool = False) -> tuple[str, float | None]:
    """(grade, score): ``ok`` (found, right organ), ``refused`` (acceptable), ``MISSED`` (refused
    although at least PRESENT_FRAC of it is in the image), ``WRONG`` (found where there is none,
    or Dice below WRONG_DICE). Without a reference (``ref`` None), a found organ is WRONG unless
    ``expect_found``."""
    if ref is None:
        if mask is None:
            return ("MISSED" if expect_found else "refused"), None
        return ("ok" if expect_found else "WRONG"), None
    present = ref.sum() * vox_cc >= PRESENT_FRAC * full_cc and ref.sum() > 0
    if mask is None:
        return ("MISSED" if present else "refused"), None
    if not ref.any():
        return "WRONG", 0.0
    s = score(organ, mask, ref)
    return ("ok" if s >= WRONG_DICE else "WRONG"), s


@dataclass
class Result:
    """One organ of one cell: the grade, the score, the full CT's score on the same part, Delta."""

    grade: str
    score: float | None = None
    full: float | None = None
    delta: float | None = None

    @property
    def fails(self) -> bool:
        """A miss, a wrong organ, or |Delta| > DELTA_MAX."""
        return self.grade in ("MISSED", "WRONG") or (self.delta is not None and abs(self.delta) > DELTA_MAX)


def voxel_cc(img: xr.DataArray) -> float:
    return float(np.prod([abs(float(img[a][1] - img[a][0])) if img.sizes[a] > 1 else 3.0 for a in "xyz"])) / 1000


def segment_all(img: xr.DataArray) -> tuple[dict[str, np.ndarray | None], float, float]:
    """Every organ of a fresh session: (masks, None where refused), seconds for the first organ
    (landmarks included), seconds for all."""
    from grtv_nb.errors import SegmentationError
    from grtv_nb.segment import close_session, segment_organ

    close_session()
    out: dict[str, np.ndarray | None] = {}
    t0 = time.perf_counter()
    first = 0.0
    for organ in ORGANS:
        try:
            out[organ] = segment_organ(img, organ)
        except SegmentationError:
            out[organ] = None
        if organ == ORGANS[0]:
            first = time.perf_counter() - t0
    secs = time.perf_counter() - t0
    close_session()
    return out, first, secs


class FullRun:
    """The full CT's predictions (the first cell), kept on its grid for :func:`on_grid`."""

    def __init__(self, cell: Cell, masks: dict[str, np.ndarray | None]):
        img = cell.image
        self.vox_cc = voxel_cc(img)
        self.pred = {o: None if m is None else xr.DataArray(m, coords=img.coords, dims=img.dims)
                     for o, m in masks.items()}
        body = masks["body"]
        self.cc = {o: float((body if o == "body" else np.isin(cell.labels.values, TS_LABELS[o])).sum()) * self.vox_cc
                   for o in ORGANS}


def evaluate(cell: Cell, masks: dict[str, np.ndarray | None], full: FullRun) -> dict[str, Result]:
    """Grade every organ of ``cell`` and compute its Delta against the full CT on the same part."""
    img = cell.image
    vox = voxel_cc(img)
    out = {}
    on: dict[str, np.ndarray | None] = {o: None for o in ORGANS}
    if cell.labels is not None:
        on = {o: None if p is None else cell.to_cell(p) for o, p in full.pred.items()}
    for organ in ORGANS:
        m = masks[organ]
        ref = reference(cell, organ, on["body"])
        expect = (organ == "body" and cell.name != "air only") or (
            organ == "spinal_cord" and cell.name == "head and neck CT")
        grade, s = outcome(organ, m, ref, full.cc[organ], vox, expect_found=expect)
        r = Result(grade, s)
        if grade == "ok" and ref is not None and m is not None:
            r.score = score(organ, m, ref, cell.ignore)
            fp = on[organ]
            if fp is not None and ref.any():
                r.full = score(organ, fp, ref, cell.ignore)
                r.delta = r.score - r.full
        out[organ] = r
    return out
