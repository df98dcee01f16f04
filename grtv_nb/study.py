"""The study: one patient's image, dose and structures as a labelled xarray Dataset.

``Study.ds`` is an :class:`xarray.Dataset` with dims ``z, y, x`` and coordinates in mm (see
:mod:`grtv_nb.geometry` for the frame):

- ``image`` (z, y, x): CT in HU (int16) or MR values; absent when the image series is missing
  or incomplete (the dose grid is then the reference grid).
- ``dose`` (z, y, x): float32 Gy, linearly interpolated onto the reference grid, 0 outside the
  dose grid; absent without RTDOSE.
- ``masks`` (roi, z, y, x): bool, **lazy**: an ROI is rasterised the first time any part of it is
  read, then kept bit-packed and cropped to its bounding box (a few MB for a body contour on a
  512x512x300 CT). Indexing with xarray (``ds.masks.sel(roi="Heart").isel(z=10)``) unpacks only
  what is asked for.
- ROI coordinates: ``roi`` (name), ``roi_number``, ``roi_type``, ``roi_color`` (roi, rgb).

Metadata (patient, study, series, geometry, notes) is in ``ds.attrs``; ``direction`` is the 3x3
orientation, row-major (see :mod:`grtv_nb.geometry`). ``ds.rt`` (:mod:`grtv_nb.accessor`) gives the
grid, masks, volumes and DVHs from the Dataset alone, also once written with ``to_zarr()`` or
``to_netcdf()`` and reopened with xarray. The Dataset is built on the first use of ``Study.ds`` (or
``image``, ``dose``): opening a study does not import xarray (:mod:`grtv_nb.study_ds`); the NumPy
arrays are :attr:`Study.image_values`, :attr:`Study.dose_values` and :meth:`Study.mask`. The study
object is the only place that holds state; everything else in grtv_nb is functions of its arrays
and grid.
"""

from __future__ import annotations

import contextlib
import os
import sys
from _thread import allocate_lock  # = threading.Lock, without importing threading (~0.6 ms)
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._record import Record
from .dicom.folder import HeaderList, referenced_image_uids, scan_folder, select
from .dicom.image import read_series
from .dicom.reader import get_backend, read_roi_contours
from .dicom.rtstruct import ROI, read_rois
from .dicom.values import text  # undecodable or NUL-padded text never raises
from .errors import GRTVError, ValidationError, warn
from .fileio import protect_folders
from .geometry import Grid
from .validate import check_free_roi_name, check_new_roi, roi_position

if TYPE_CHECKING:
    import xarray as xr

    from .dicom.rtdose import DoseVolume
    from .dvh import DVHResult


class PackedMask(Record):
    """A boolean volume kept as bits, cropped to its bounding box."""

    _fields = ("shape", "offset", "box", "bits")

    shape: tuple[int, int, int]
    offset: tuple[int, int, int]
    box: tuple[int, int, int]
    bits: np.ndarray  # uint8 (bz, by, ceil(bx/8)), packed along x

    def __init__(self, shape: tuple[int, int, int], offset: tuple[int, int, int], box: tuple[int, int, int],
                 bits: np.ndarray):
        self.shape, self.offset, self.box, self.bits = shape, offset, box, bits

    @classmethod
    def pack(cls, mask: np.ndarray) -> PackedMask:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return cls(mask.shape, (0, 0, 0), (0, 0, 0), np.zeros((0, 0, 0), np.uint8))
        lo, hi = [], []
        for ax in range(3):
            other = tuple(a for a in range(3) if a != ax)
            idx = np.flatnonzero(mask.any(axis=other))
            lo.append(int(idx[0]))
            hi.append(int(idx[-1]) + 1)
        crop = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        return cls(mask.shape, (lo[0], lo[1], lo[2]), (hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]),
                   np.packbits(crop, axis=2))

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    @property
    def count(self) -> int:
        return int(np.unpackbits(self.bits).sum()) if self.bits.size else 0

    def region(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        """Unpack the part of the full-size mask selected by three step-1 slices."""
        sel = [s.indices(n) for s, n in zip((zs, ys, xs), self.shape)]
        out = np.zeros(tuple(max(b - a, 0) for a, b, _ in sel), dtype=bool)
        if not self.bits.size:
            return out
        src, dst = [], []
        for (a, b, _), o, n in zip(sel, self.offset, self.box):
            lo, hi = max(a, o), min(b, o + n)
            if hi <= lo:
                return out
            src.append(slice(lo - o, hi - o))
            dst.append(slice(lo - a, hi - a))
        block = self.bits[src[0], src[1]]
        unpacked = np.unpackbits(block, axis=2, count=self.box[2])[:, :, src[2]]
        out[dst[0], dst[1], dst[2]] = unpacked.astype(bool)
        return out

    def full(self) -> np.ndarray:
        return self.region(slice(None), slice(None), slice(None))


def _rasterize(contours: list[np.ndarray], grid: Grid, label: str) -> np.ndarray:
    """:func:`grtv_nb.raster.rasterize_roi` (imported on the first rasterisation, not by opening a study)."""
    from .raster import rasterize_roi

    return rasterize_roi(contours, grid, label=label)


class MaskStore:
    """Per-ROI masks, rasterised on first use and cached bit-packed."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self._packed: list[PackedMask | None] = []
        self._producers: list = []
        self._lock = allocate_lock()

    def __len__(self) -> int:
        return len(self._packed)

    def append(self, producer=None, mask: np.ndarray | None = None) -> None:
        self._packed.append(PackedMask.pack(mask) if mask is not None else None)
        self._producers.append(producer)

    def packed(self, i: int) -> PackedMask:
        p = self._packed[i]
        if p is None:
            with self._lock:
                p = self._packed[i]
                if p is None:
                    prod = self._producers[i]
                    m = prod() if prod is not None else np.zeros(self.grid.shape, dtype=bool)
                    p = PackedMask.pack(m)
                    self._packed[i] = p
        return p

    def is_cached(self, i: int) -> bool:
        return self._packed[i] is not None

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self._packed if p is not None)


class Study:
    """One patient's image, dose and ROIs (see the module docstring for the Dataset layout).

    Create with :func:`open_study`.
    """

    def __init__(
        self,
        grid: Grid,
        *,
        image: np.ndarray | None = None,
        dose: np.ndarray | None = None,
        rois: list[ROI] | None = None,
        attrs: dict | None = None,
        image_headers: Sequence[Any] | None = None,
        source: dict | None = None,
    ):
        self.grid = grid
        self._image = image
        self._dose = dose
        self.rois: list[ROI] = []
        self.store = MaskStore(grid)
        self.attrs = dict(attrs or {})
        self.image_headers = image_headers or []  # pydicom datasets of the image slices, sorted
        self.source = source or {}
        self.notes: list[str] = list(self.attrs.get("notes", []))
        self._ds: xr.Dataset | None = None
        self._meshes: dict[int, object] = {}
        self._dvh: DVHResult | None = None
        self._volumes: dict[int, float] = {}  # contour volumes (cc) by ROI index
        self.native_doses: list = []  # DoseVolume objects as read (their own grids), for dose-grid DVHs
        for r in rois or []:
            self._append_roi(r)

    # ----------------------------------------------------------------- construction
    def _append_roi(self, roi: ROI, mask: np.ndarray | None = None) -> None:
        grid = self.grid
        if mask is None and roi.fillable and roi.contours:
            contours = roi.contours
            name = roi.name
            self.store.append(lambda: _rasterize(contours, grid, f"ROI '{name}'"))
        else:
            self.store.append(None, mask)
        self.rois.append(roi)
        self._ds = None

    # ----------------------------------------------------------------- views
    @property
    def ds(self) -> xr.Dataset:
        """The study as an xarray Dataset (rebuilt cheaply when ROIs or dose change)."""
        if self._ds is None:
            self._ds = self._build_ds()
        return self._ds

    def _build_ds(self) -> xr.Dataset:
        from .study_ds import build_dataset  # xarray is imported here, on the first st.ds

        return build_dataset(self.grid, image=self._image, dose=self._dose, rois=self.rois, store=self.store,
                             attrs=self.attrs, notes=self.notes)

    @property
    def image(self) -> xr.DataArray | None:
        return self.ds["image"] if self._image is not None else None

    @property
    def dose(self) -> xr.DataArray | None:
        return self.ds["dose"] if self._dose is not None else None

    @property
    def image_values(self) -> np.ndarray | None:
        """The image as a NumPy array (z, y, x), the array behind :attr:`image` (not a copy), read
        without building the Dataset (so without importing xarray); ``None`` when absent."""
        return self._image

    @property
    def dose_values(self) -> np.ndarray | None:
        """The dose (Gy, float32, z, y, x) as a NumPy array, the array behind :attr:`dose` (not a
        copy), read without building the Dataset; ``None`` when absent."""
        return self._dose

    @property
    def has_image(self) -> bool:
        return self._image is not None

    @property
    def has_dose(self) -> bool:
        return self._dose is not None

    @property
    def roi_names(self) -> list[str]:
        return [r.name for r in self.rois]

    def roi_index(self, roi: int | str) -> int:
        """Index of an ROI given its index or name (exact, then case-insensitive)."""
        return roi_position(self.roi_names, roi)

    def mask(self, roi: int | str) -> np.ndarray:
        """Full-size boolean mask (z, y, x) of an ROI (rasterised on first use)."""
        return self.store.packed(self.roi_index(roi)).full()

    def voxel_count(self, roi: int | str) -> int:
        return self.store.packed(self.roi_index(roi)).count

    def volume_cc(self, roi: int | str) -> float:
        """ROI volume in cc. An ROI read from contours: the volume the default DVH gives it
        (:func:`grtv_nb.dvh.roi_volume_cc`: what its contours enclose, each contour plane's exact area
        times its slab thickness, or for an ROI the DVH interpolates between planes the interpolated
        solid's volume). An ROI defined by a mask: its voxel count weighted by each slice's thickness."""
        i = self.roi_index(roi)
        r = self.rois[i]
        if r.geometric_type != "MASK" and r.fillable and r.contours:
            if i not in self._volumes:
                from .dvh import roi_volume_cc

                self._volumes[i] = roi_volume_cc(
                    r.contours, self.grid.direction, single_thickness=float(self.grid.slice_thickness or self.grid.dz),
                    ref_z=self.grid.z)
            return self._volumes[i]
        p = self.store.packed(i)
        if not p.bits.size:
            return 0.0
        per_slice = np.unpackbits(p.bits, axis=2, count=p.box[2]).reshape(p.box[0], -1).sum(axis=1)
        vv = self.grid.voxel_volumes_cc()[p.offset[0]:p.offset[0] + p.box[0]]
        return float((per_slice * vv).sum())

    # ----------------------------------------------------------------- changes
    @contextlib.contextmanager
    def _transaction(self):
        """Run a change as a transaction: on any exception every piece of state a change may
        touch (ROI list, masks, meshes, dose, DVH, attributes, notes) is put back as it was, so a
        failed call leaves the study unchanged (the exception propagates)."""
        saved = (list(self.rois), list(self.store._packed), list(self.store._producers), dict(self._meshes),
                 self._dvh, self._ds, self._dose, list(self.native_doses), dict(self.attrs), list(self.notes),
                 [(r, r.name) for r in self.rois])
        try:
            yield
        except BaseException:
            (rois, packed, producers, meshes, dvh, ds, dose, native, attrs, notes, names) = saved
            self.rois[:] = rois
            self.store._packed[:] = packed
            self.store._producers[:] = producers
            self._meshes.clear()
            self._meshes.update(meshes)
            self._dvh, self._ds, self._dose = dvh, ds, dose
            self.native_doses = native
            self.attrs.clear()
            self.attrs.update(attrs)
            self.notes[:] = notes
            for r, n in names:
                r.name = n
            raise

    def add_roi(
        self,
        name: str,
        mask: np.ndarray,
        color=None,
        *,
        roi_type: str | None = None,
        source: str = "mask",
    ) -> ROI:
        """Add an ROI from a boolean mask on the study grid.

        The ROI gets at once its planar contours (outer loops and holes, patient mm), its surface
        mesh and, when the study has a dose, its DVH. Refuses a name already taken, a wrong shape or
        a bad colour; the study is unchanged after a refusal or any later failure (contours, mesh,
        DVH: the change is a transaction).
        """
        with self._transaction():
            return self._add_roi(name, mask, color, roi_type=roi_type, source=source)

    def _add_roi(self, name, mask, color, *, roi_type, source) -> ROI:
        name, color = self.check_new_roi(name, color)
        mask = np.asarray(mask)
        if mask.shape != self.grid.shape:
            raise ValidationError(f"mask shape {mask.shape} differs from the image shape {self.grid.shape}")
        if roi_type is None:  # a body outline is EXTERNAL (RTROIInterpretedType), anything else ORGAN
            from .dicom.rtstruct import interpreted_type

            roi_type = interpreted_type(name)
        mask = mask.astype(bool)
        from .contours import contour_points, mask_to_contours
        from .mesh import mask_to_mesh

        contours = contour_points(mask_to_contours(mask, self.grid, name=name))
        mesh = mask_to_mesh(mask, self.grid, name=name) if mask.any() else None
        number = max([r.number for r in self.rois], default=0) + 1
        roi = ROI(name=name, number=number, color=color, roi_type=roi_type, geometric_type="MASK",
                  frame_of_reference_uid=self.grid.frame_of_reference_uid, source=source, contours=contours)
        self._append_roi(roi, mask)
        if mesh is not None:
            self._meshes[len(self.rois) - 1] = mesh
        if self._dose is not None:
            self._dvh = None
            self.dvh()
        return roi

    def check_new_roi(self, name, color=None) -> tuple[str, tuple[int, int, int]]:
        """``(name, colour)`` as :meth:`add_roi` will use them, or a ValidationError for a name that
        is empty, taken or not writable to an RTSTRUCT, or a bad colour (so a caller can refuse
        before computing the mask)."""
        return check_new_roi(self.roi_names, name, color)

    def remove_roi(self, roi: int | str) -> ROI:
        """Remove an ROI (index or name) with its mask, mesh and DVH; returns it. The study is
        unchanged when this fails."""
        with self._transaction():
            i = self.roi_index(roi)
            removed = self.rois.pop(i)
            del self.store._packed[i]
            del self.store._producers[i]
            self._meshes = {(k if k < i else k - 1): m for k, m in self._meshes.items() if k != i}
            self._ds = None
            if self._dvh is not None:
                self._dvh = None
                self.dvh()
            return removed

    def rename_roi(self, roi: int | str, new_name: str) -> str:
        """Rename an ROI (index or name); the new name follows the rules of :meth:`add_roi`
        (:func:`grtv_nb.validate.check_free_roi_name`). Returns the name used.
        The study is unchanged when this fails."""
        with self._transaction():
            i = self.roi_index(roi)
            name = check_free_roi_name(self.roi_names, new_name, renaming=i)
            self.rois[i].name = name
            self._ds = None
            if self._dvh is not None:
                self._dvh = None
                self.dvh()
            return name

    def set_dose(self, dose_gy: np.ndarray) -> None:
        """Replace the dose (Gy, float) on the study grid; every DVH is recomputed. The study is
        unchanged when the dose is refused or the DVH computation fails."""
        with self._transaction():
            self._set_dose(dose_gy)

    def _set_dose(self, dose_gy: np.ndarray) -> None:
        dose = np.asarray(dose_gy)
        if dose.shape != self.grid.shape:
            raise ValidationError(f"dose shape {dose.shape} differs from the image shape {self.grid.shape}")
        if not np.issubdtype(dose.dtype, np.number):
            raise ValidationError(f"dose must be numeric, got dtype {dose.dtype}")
        if not np.isfinite(dose).all():
            raise ValidationError("dose contains NaN or infinite values")
        if (dose < 0).any():
            raise ValidationError("dose contains negative values")
        self._dose = dose.astype(np.float32)
        self.native_doses = []  # the dose no longer comes from the RTDOSE files
        self.attrs["dose_summation"] = "USER"
        self._ds = None
        self._dvh = None
        self.dvh()

    # ----------------------------------------------------------------- derived data
    def contours(self, roi: int | str) -> list[np.ndarray]:
        """Closed planar loops (N, 3) in patient mm: the RTSTRUCT's own for read ROIs, traced from
        the mask (outer boundaries and holes) for ROIs added from masks."""
        return list(self.rois[self.roi_index(roi)].contours)

    def mesh(self, roi: int | str):
        """Closed surface mesh (patient mm) of an ROI, computed once (see :mod:`grtv_nb.mesh`)."""
        i = self.roi_index(roi)
        if i not in self._meshes:
            from .mesh import mask_to_mesh

            self._meshes[i] = mask_to_mesh(self.mask(i), self.grid, name=self.rois[i].name)
        return self._meshes[i]

    def dvh(self, rois=None, *, on: str | None = None, convention: str = "exact", **kwargs):
        """DVHs of ROIs (default: all with contours or masks) as a :class:`grtv_nb.dvh.DVHResult`.

        Parameters
        ----------
        rois : list of names/indices, optional
        on : {None, "image", "dose"}
            Which dose the engine reads. ``None`` (default): the dose as read from the RTDOSE when
            there is a single one and it was not replaced, else the study's dose on the study grid.
            ``"image"``: the study's dose on the study grid. ``"dose"``: the RTDOSE grid (needs the
            dose as read).
        convention : {"exact", "dicompyler", "voxel"}
            ``"exact"`` (default): ROIs with contours by :func:`grtv_nb.dvh.compute_roi_dvh` (each
            contour plane its own slab, volume exactly what the contours enclose), ROIs defined by
            masks by voxel-centre inclusion. ``"dicompyler"``: dicompyler-core 0.5.6's numbers.
            ``"voxel"``: rasterised masks (on the study grid, or the dose planes with ``on="dose"``).
        **kwargs
            Passed to :func:`grtv_nb.dvh.compute_roi_dvh` (end_cap, bin_width, statistics...).
        """
        from . import dvh as _dvh

        if on not in (None, "image", "dose"):
            raise ValidationError(f"on must be 'image' or 'dose', got {on!r}")
        if convention not in _dvh.CONVENTIONS:
            raise ValidationError(f"convention must be one of {', '.join(_dvh.CONVENTIONS)}, got {convention!r}")
        if self._dose is None and on != "dose":
            raise GRTVError("the study has no dose: no DVH can be computed")
        idx = [self.roi_index(r) for r in rois] if rois is not None else [
            i for i, r in enumerate(self.rois) if r.fillable]
        names = [self.rois[i].name for i in idx]
        default = rois is None and not kwargs and on is None and convention == "exact"
        if default and self._dvh is not None:
            return self._dvh
        native = len(self.native_doses) == 1
        if on == "dose":
            if not self.native_doses:
                raise GRTVError("on='dose' needs the dose as read from RTDOSE (not replaced by set_dose)")
            if not native:
                raise GRTVError("on='dose' needs a single RTDOSE grid; this study summed several")
        if convention == "voxel":
            if on == "dose":
                dv = self.native_doses[0]
                res = _dvh.compute_dvh_on_dose_grid(
                    dv.array, dv.grid, {n: self.rois[i].contours for n, i in zip(names, idx)}, **kwargs)
            else:
                assert self._dose is not None  # refused above when on != "dose"
                res = _dvh.compute_dvh(self._dose, self.grid, lambda n: self.mask(n), roi_names=names, **kwargs)
        else:
            use_native = on == "dose" or (on is None and native)
            dose, grid = (self.native_doses[0].array, self.native_doses[0].grid) if use_native else (
                self._dose, self.grid)
            assert dose is not None  # refused above when on != "dose"
            by_contour = {self.rois[i].name: self.rois[i].contours for i in idx
                          if self.rois[i].geometric_type != "MASK" and self.rois[i].contours}
            by_mask = [i for i in idx if self.rois[i].name not in by_contour]
            study_dose = self._dose
            if by_mask and study_dose is None:
                raise GRTVError("the study has no dose on its grid: the DVH of an ROI without contours (a mask) "
                                "cannot be computed")
            extra = {self.rois[i].name: _dvh.mask_samples(study_dose, self.grid, self.mask(i), self.rois[i].name)
                     for i in by_mask} if study_dose is not None else {}
            notes: list[str] = []
            kwargs.setdefault("single_thickness", float(self.grid.slice_thickness or self.grid.dz))
            kwargs.setdefault("ref_z", self.grid.z)
            res = _dvh.compute_roi_dvh(dose, grid, by_contour, convention=convention, notes=notes,
                                       extra=extra, **kwargs)
            if names != res.roi_names:  # mask ROIs were appended after the contour ROIs
                res = _dvh.DVHResult(res.differential.sel(roi=names), res.stats.sel(roi=names),
                                     res.bin_width, res.prescription_gy)
            for n in notes:
                if n not in self.notes:
                    self.notes.append(n)
        if default:
            self._dvh = res
        return res

    # ----------------------------------------------------------------- reporting
    def summary_rows(self) -> list[dict]:
        rows = []
        for i, r in enumerate(self.rois):
            rows.append({
                "index": i, "name": r.name, "number": r.number, "type": r.roi_type or "-",
                "color": r.color, "contours": len(r.contours),
                "volume_cc": self.volume_cc(i) if r.fillable else float("nan"),
                "kind": r.geometric_type or "empty",
            })
        return rows

    def summary(self) -> str:
        """A plain-text summary table: series, grid, ROIs with volumes (cc), dose max."""
        a = self.attrs
        lines = [
            f"Patient   : {a.get('patient_name', '')} ({a.get('patient_id', '')})",
            f"Series    : {a.get('modality', '-')} {a.get('series_description', '')} "
            f"[{a.get('series_uid', '') or 'no UID'}] position {a.get('patient_position', '') or '?'}",
            f"Grid      : {self.grid.describe()} (reference: {a.get('reference_grid', 'image')})",
            f"x range   : {self.grid.x[0]:.1f} .. {self.grid.x[-1]:.1f} mm; y {self.grid.y[0]:.1f} .. "
            f"{self.grid.y[-1]:.1f} mm; z {self.grid.z[0]:.1f} .. {self.grid.z[-1]:.1f} mm",
        ]
        if self._dose is not None:
            lines.append(f"Dose      : max {float(self._dose.max()):.3f} Gy ({a.get('dose_summation', '')})")
        else:
            lines.append("Dose      : none")
        lines.append(f"ROIs      : {len(self.rois)}")
        hdr = f"  {'#':>3} {'name':<24} {'type':<12} {'contours':>8} {'volume cc':>10}"
        lines.append(hdr)
        for row in self.summary_rows():
            vol = f"{row['volume_cc']:10.2f}" if np.isfinite(row["volume_cc"]) else f"{'(' + row['kind'] + ')':>10}"
            lines.append(f"  {row['index']:>3} {row['name'][:24]:<24} {row['type'][:12]:<12} "
                         f"{row['contours']:>8} {vol}")
        for n in self.notes:
            lines.append(f"Note      : {n}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<grtv_nb.Study {self.grid.describe()}, {len(self.rois)} ROIs, dose={'yes' if self.has_dose else 'no'}>"


def _read_doses(files: list) -> list[DoseVolume]:
    """The RTDOSE files read (the RTDOSE reader is imported only for a folder holding one)."""
    if not files:
        return []
    from .dicom.rtdose import read_dose

    return [read_dose(d) for d in files]


def open_study(
    folder: str | os.PathLike,
    *,
    series_uid: str | None = None,
    rtstruct: str | os.PathLike | None = None,
    rtdose=None,
) -> Study:
    """Open a DICOM-RT folder as a :class:`Study`.

    Parameters
    ----------
    folder : path
        Folder holding the DICOM files directly (any file names; non-DICOM files are skipped).
    series_uid, rtstruct, rtdose : optional
        Explicit choice of the image series (SeriesInstanceUID), structure set and dose file(s)
        (file name, path or SOPInstanceUID) when the folder holds several.

    Notes
    -----
    When the image series is missing or incomplete (e.g. 1 of 98 slices) and an RTDOSE exists,
    the dose grid becomes the reference grid (as dicompyler-core and plastimatch compute DVHs) and
    the study has no ``image`` variable; a warning says so.
    """

    scan = scan_folder(folder)
    sel = select(scan, series_uid=series_uid, rtstruct=rtstruct, rtdose=rtdose)
    notes = list(sel.notes)
    doses = _read_doses(sel.rtdoses)
    image_vol = None
    if sel.series is not None:
        image_vol = read_series(sel.series)
        notes += image_vol.notes
    # Is the image series complete enough to be the reference grid?
    reference = "image"
    if image_vol is not None and sel.series is not None and sel.rtstruct is not None:
        refs = referenced_image_uids(sel.rtstruct.hdr)
        present = sel.series.sop_uids & refs
        if present and len(present) < len(refs):
            missing = len(refs) - len(present)
            msg = (f"the RTSTRUCT references {len(refs)} image slices of which only {len(present)} are present "
                   f"({missing} missing)")
            if doses and len(present) < 0.5 * len(refs):
                warn(msg + "; the dose grid is used as the reference grid (no image volume)")
                reference = "dose"
            else:
                warn(msg + "; contours on missing slices are dropped")
    if image_vol is not None and sel.series is not None and image_vol.grid.shape[0] == 1 and doses \
            and reference == "image":
        warn(f"the image series has a single slice ({sel.series.describe()}); the dose grid is used as the "
             "reference grid (no image volume)")
        reference = "dose"
    if image_vol is None:
        if not doses:
            if sel.rtstruct is not None:
                raise GRTVError(f"'{folder}' holds an RTSTRUCT but no image series and no RTDOSE: "
                                "there is no grid to rasterise the contours on")
            raise GRTVError(f"'{folder}' holds no image series and no RTDOSE")
        warn(f"no image series in '{folder}': the RTDOSE grid is used as the reference grid")
        reference = "dose"
    if reference == "dose" or image_vol is None:  # no image volume: reference is "dose"
        grid = doses[0].grid
        image = None
        headers: Sequence[Any] = []
    else:
        grid = image_vol.grid
        image = image_vol.array
        headers = HeaderList(image_vol.files)  # each file's full dataset read when first used
    dose = None
    if doses:
        units = {d.units for d in doses}
        if units != {"GY"}:
            notes.append(f"DoseUnits {'/'.join(sorted(units))}: dose values are not in Gy")
        from .dicom.rtdose import sum_doses

        dose = sum_doses(doses, grid)
    # ROIs
    rois: list[ROI] = []
    if sel.rtstruct is not None:
        rs_hdr = sel.rtstruct.raw_header
        if rs_hdr is not None:  # read raw, without a pydicom dataset
            rois = read_rois(rs_hdr, source_name=sel.rtstruct.path.name)
        else:
            contours = read_roi_contours(sel.rtstruct.path) if get_backend() == "dicomsdl" else None
            rois = read_rois(sel.rtstruct.ds, source_name=sel.rtstruct.path.name, roi_contours=contours)
        ref_for = grid.frame_of_reference_uid
        bad_for = {r.frame_of_reference_uid for r in rois if r.frame_of_reference_uid and ref_for
                   and r.frame_of_reference_uid != ref_for}
        if bad_for:
            n_bad = sum(r.frame_of_reference_uid in bad_for for r in rois)
            warn(f"RTSTRUCT {sel.rtstruct.path.name}: {n_bad} ROI(s) reference frame of reference "
                 f"{', '.join(sorted(bad_for))}, not the image's {ref_for}: their contours were not rasterised "
                 "(they would land in the wrong place)")
            for r in rois:
                if r.frame_of_reference_uid in bad_for:
                    r.contours = []
                    r.geometric_type = ""
    # the first slice's header holds the attributes read here (reader.IMAGE_HEADER_TAGS): no full dataset
    first = image_vol.files[0].hdr if headers and image_vol is not None else (
        sel.rtstruct.hdr if sel.rtstruct else doses[0].files[0].hdr)
    resolved_folder = Path(folder).resolve()
    attrs = {
        "patient_name": text(first, "PatientName"),
        "patient_id": text(first, "PatientID"),
        "study_uid": text(first, "StudyInstanceUID"),
        "series_uid": text(first, "SeriesInstanceUID") if headers else "",
        "series_description": text(first, "SeriesDescription") if headers else "",
        "modality": image_vol.modality if (image_vol is not None and reference == "image") else "",
        "frame_of_reference_uid": grid.frame_of_reference_uid,
        "patient_position": text(first, "PatientPosition") if headers else "",
        "reference_grid": reference,
        "slice_thickness": float(grid.slice_thickness),
        "source_folder": str(resolved_folder),
        "dose_summation": "+".join(d.summation_type for d in doses),
        "dose_units": "/".join(sorted({d.units for d in doses})),
    }
    attrs["notes"] = notes
    source: dict[str, Any] = {
        "folder": resolved_folder,
        "image_files": [f.path for f in image_vol.files] if image_vol is not None else [],
        "rtstruct": sel.rtstruct.path if sel.rtstruct else None,
        # the RTSTRUCT's dataset (a complete raw header answers as its pydicom dataset, read when used)
        "rtstruct_ds": sel.rtstruct.hdr if sel.rtstruct else None,
        "rtdoses": [d.path for d in sel.rtdoses],
        "rtplan": sel.rtplan.path if sel.rtplan else None,
        "layout": image_vol.layout if image_vol is not None else None,
    }
    study = Study(grid, image=image, dose=dose, rois=rois, attrs=attrs, image_headers=headers, source=source)
    study.native_doses = doses
    if "xarray" in sys.modules:  # register ds.rt for Datasets opened elsewhere (st.ds registers it anyway)
        from . import accessor  # noqa: F401
    # no writer of grtv_nb writes into these folders while the study lives (grtv_nb.fileio)
    protect_folders(study, [source["folder"], *source["image_files"], source["rtstruct"], *source["rtdoses"],
                            source["rtplan"]])
    for n in notes:
        if n.startswith("summed") or "found; using" in n:
            warn(n)
    return study
