"""Test helper: the cells of the segmentation robustness matrix (issue 15), shared by
tests/test_segment_robust.py and benchmarks/bench_segment_matrix.py.

A cell is a CT built from the real TotalSegmentator example CT (../shared/data; its labels are
TotalSegmentator model outputs, used as the reference) plus its labels on the same grid: the CT
written as a DICOM series in each of the 8 patient positions and opened with grtv_nb, cropped
(right half of the trunk, abdomen only, liver dome only, pelvis only, a few slices), resliced to
5 mm, with noise, one slice; and CTs that hold no trunk (the head-and-neck CT, air, a water
phantom) for which every organ but the body (and, in the neck, the canal) must be refused.

:func:`outcome` grades one organ of one cell: the right organ (Dice against the reference on the
part in the image), a refusal, or a wrong organ, never silently."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from nifti_ref import DATA, TS_LABELS, dice, read_ct_folder, ts_ct, ts_labels, write_image_series

POSITIONS = ("HFS", "FFS", "HFP", "FFP", "HFDL", "HFDR", "FFDL", "FFDR")
ORGANS = ("body", "llung", "rlung", "spinal_cord", "liver", "lkidney", "rkidney", "stomach")
#: An organ with less than this fraction of its full-CT reference volume in the image may be
#: refused (a refusal of a larger part is a miss).
PRESENT_FRAC = 0.2
#: Below this Dice (coverage for the canal) a found organ is graded a wrong organ.
WRONG_DICE = 0.3


@dataclass
class Cell:
    name: str
    image: xr.DataArray
    labels: xr.DataArray | None  # TotalSegmentator labels on the image's grid, None: no reference
    note: str = ""


def _da(vol, z, y, x) -> xr.DataArray:
    return xr.DataArray(vol, dims=("z", "y", "x"), coords={"z": z, "y": y, "x": x}, attrs={"modality": "CT"})


def position_cell(img, lab, position: str, folder: Path) -> Cell:
    from grtv_nb import open_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = open_study(write_image_series(img, folder / position, position=position))
    return Cell(f"position {position}", st.ds["image"], lab, "DICOM series, opened with open_study")


def reslice_z(img, lab, step: float) -> tuple[xr.DataArray, xr.DataArray]:
    """Thick slices: each new slice the mean of the old slices within ``step`` (a slab), labels
    by nearest slice."""
    z = img.z.values
    nz = np.arange(z[0] + step / 2, z[-1] - step / 2 + 1e-6, step)
    v = img.values.astype(np.float32)
    out = np.stack([v[np.abs(z - c) <= step / 2 + 1e-6].mean(axis=0) for c in nz])
    idx = np.abs(z[None, :] - nz[:, None]).argmin(axis=1)
    return (_da(np.rint(out).astype(np.int16), nz, img.y.values, img.x.values),
            lab.isel(z=idx).assign_coords(z=nz))


def build_cells(tmp: Path, positions=POSITIONS, extra: bool = True) -> list[Cell]:
    img, lab = ts_ct(), ts_labels()
    cells = [Cell("full CT (NIfTI)", img, lab, "the reference run")]
    for pos in positions:
        cells.append(position_cell(img, lab, pos, tmp))
    if not extra:
        return cells
    xm = 0.0
    right = img.x.values < xm + 20.0
    cells.append(Cell("right half of the trunk", img.isel(x=right), lab.isel(x=right),
                      "field of view cut 20 mm left of the midline"))
    for name, sl in (("abdomen only (z 280-390)", slice(280.0, 390.0)), ("liver dome (z >= 370)", slice(370.0, None)),
                     ("pelvis only (z <= 250)", slice(None, 250.0)), ("3 slices (z 337-343)", slice(336.0, 344.0))):
        cells.append(Cell(name, img.sel(z=sl), lab.sel(z=sl)))
    cells.append(Cell("1 slice", img.isel(z=[60]), lab.isel(z=[60]), "must be refused"))
    thick, tlab = reslice_z(img, lab, 5.0)
    cells.append(Cell("5 mm slabs", thick, tlab, "the 3 mm slices within each 5 mm slab averaged"))
    rng = np.random.default_rng(1)
    noisy = img.copy(data=np.clip(img.values + rng.normal(0, 40, img.shape), -1024, 3000).astype(np.int16))
    cells.append(Cell("noise sd 40 HU", noisy, lab))
    hn = DATA / "pycerr-headneck-ct" / "head_and_neck" / "pt_1"
    if hn.is_dir():
        cells.append(Cell("head and neck CT", read_ct_folder(hn), None, "no trunk organ; body and canal only"))
    c = np.arange(-150.0, 150.0, 2.0)
    air = _da(np.full((20, len(c), len(c)), -1000, np.int16), np.arange(20) * 3.0, c, c)
    cells.append(Cell("air only", air, None, "no patient"))
    yy, xx = np.meshgrid(c, c, indexing="ij")
    water = np.where(xx**2 + yy**2 <= 100.0**2, 0, -1000).astype(np.int16)
    cells.append(Cell("water cylinder", _da(np.repeat(water[None], 20, axis=0), np.arange(20) * 3.0, c, c), None,
                      "phantom, no organs"))
    return cells


def reference(cell: Cell, organ: str, full_body: np.ndarray | None) -> np.ndarray | None:
    """The reference mask of ``organ`` on the cell's grid, or None where there is none."""
    if cell.labels is None:
        return None
    if organ == "body":
        return full_body
    return np.isin(cell.labels.values, TS_LABELS[organ])


def score(organ: str, mask: np.ndarray, ref: np.ndarray) -> float:
    """Dice; for the spinal canal the coverage of the reference cord."""
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
