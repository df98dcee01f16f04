"""Server-side slice rendering for the widgets: pure numpy, no plotting library.

This module owns the pixels the slice viewer shows: it turns one plane of a study into an RGB
``uint8`` image (window/level -> grey, dose colour wash, ROI fills and outlines, isodose lines,
crosshairs) and encodes it as PNG. Everything is array indexing and boolean ops on the study
arrays, which is what keeps one 512x512 slice with 20 ROI outlines and a dose wash in the
millisecond range (see ``benchmarks/bench_render.py``).

Conventions
-----------
Volumes are ``[z, y, x]`` in the canonical frame of :mod:`grtv_nb.geometry` (x to the patient's
left, y posterior, z superior). Planes are shown in radiological convention:

- ``axial``: rows = y (anterior at the top), columns = x (patient's right on the viewer's left);
- ``coronal``: rows = z (superior at the top), columns = x;
- ``sagittal``: rows = z (superior at the top), columns = y (anterior on the left).

Display images have square pixels of ``pixel_mm`` (the finest in-plane spacing by default): the
slice axis is resampled by nearest neighbour at voxel boundaries, so non-uniform slice spacing and
anisotropic voxels are shown at their true physical aspect.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import display as _display
from ..errors import ValidationError

PLANES = ("axial", "coronal", "sagittal")

#: Window/level presets as (window width, level) in HU: :data:`grtv_nb.display.PRESETS` (stored
#: there as (level, width)).
PRESETS: dict[str, tuple[float, float]] = {name: (w, lev) for name, (lev, w) in _display.PRESETS.items()}

_MAX_DISPLAY = 1536  # cap on display image rows/columns

# plane -> (row axis, column axis, axis of the slice index); axes: 0=z, 1=y, 2=x
PLANE_AXES = {"axial": (1, 2, 0), "coronal": (0, 2, 1), "sagittal": (0, 1, 2)}
_AXIS_NAMES = ("z", "y", "x")


# ----------------------------------------------------------------------------------------------
# Study access
# ----------------------------------------------------------------------------------------------


@dataclass
class RoiCrop:
    """A ROI mask kept as its bounding box: ``mask`` covers ``[z0:z1, y0:y1, x0:x1]``."""

    lo: tuple[int, int, int]
    mask: np.ndarray

    @property
    def hi(self) -> tuple[int, int, int]:
        return tuple(int(a + b) for a, b in zip(self.lo, self.mask.shape))  # type: ignore[return-value]

    @property
    def empty(self) -> bool:
        return self.mask.size == 0


class StudyArrays:
    """Uniform read access to a :class:`grtv_nb.Study` or an xarray Dataset of the study layout.

    Holds the image, dose and coordinates, and rasterises each ROI mask once (``Study.mask`` or
    ``ds.masks``), keeping only its bounding box.

    Parameters
    ----------
    study : Study or xarray.Dataset
        Dataset dims ``z, y, x`` with coords ``x, y, z`` (mm); optional ``image`` (HU), ``dose``
        (Gy) and ``masks`` (``roi, z, y, x`` bool) with ``roi_color`` (``roi, rgb`` uint8).
    """

    def __init__(self, study: Any):
        ds = getattr(study, "ds", study)
        if not hasattr(ds, "data_vars") or not hasattr(ds, "coords"):
            raise ValidationError(f"study must be a grtv_nb Study or an xarray Dataset, got {type(study).__name__}")
        for ax in ("x", "y", "z"):
            if ax not in ds.coords:
                raise ValidationError(f"study dataset has no coordinate {ax!r} (need x, y, z in mm)")
        self._study = study if study is not ds else None
        self.ds = ds
        self.x = np.asarray(ds.coords["x"].values, dtype=np.float64)
        self.y = np.asarray(ds.coords["y"].values, dtype=np.float64)
        self.z = np.asarray(ds.coords["z"].values, dtype=np.float64)
        self.shape = (len(self.z), len(self.y), len(self.x))
        if min(self.shape) < 1:
            raise ValidationError(f"study volume is empty (shape {self.shape})")
        self.image = self._var("image")
        self.dose = self._var("dose", np.float32)
        self.dose_max = float(np.nanmax(self.dose)) if self.dose is not None and self.dose.size else 0.0
        if self.dose is not None and not self.dose_max > 0:
            self.dose = None  # an all-zero dose shows nothing: treat as absent
        self.image_range = (float(self.image.min()), float(self.image.max())) if self.image is not None else (0.0, 0.0)
        self.roi_names: list[str] = []
        self.roi_colors: list[tuple[int, int, int]] = []
        if "roi" in ds.coords and ds.sizes.get("roi", 0) > 0:
            self.roi_names = [str(r) for r in ds.coords["roi"].values]
            if "roi_color" in ds.coords or "roi_color" in ds:
                cols = np.asarray(ds["roi_color"].values).reshape(len(self.roi_names), -1)[:, :3]
                self.roi_colors = [tuple(int(c) for c in row) for row in cols]
            else:
                self.roi_colors = [_display.default_color(i) for i in range(len(self.roi_names))]
        self._crops: dict[int, RoiCrop] = {}
        self.direction = self._direction(study, ds)

    @staticmethod
    def _direction(study: Any, ds: Any) -> np.ndarray:
        """Columns = patient-space (LPS) directions of the x, y, z axes: the Study grid's, else the
        image's ``direction`` attribute (oblique series), else the identity (canonical frame)."""
        g = getattr(study, "grid", None)
        if g is not None and getattr(g, "direction", None) is not None:
            return np.asarray(g.direction, dtype=np.float64).reshape(3, 3)
        if "image" in ds.data_vars and "direction" in ds["image"].attrs:
            return np.asarray(ds["image"].attrs["direction"], dtype=np.float64).reshape(3, 3)
        return np.eye(3)

    def _var(self, name: str, dtype: Any = None) -> np.ndarray | None:
        if name not in self.ds.data_vars:
            return None
        da = self.ds[name]
        if tuple(da.dims) != ("z", "y", "x"):
            da = da.transpose("z", "y", "x")
        arr = np.asarray(da.values)
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        return arr

    @property
    def study(self) -> Any:
        """The :class:`grtv_nb.Study` the arrays read (its cached masks, DVHs and meshes), or None
        for a plain Dataset."""
        return self._study

    # -- geometry --------------------------------------------------------------------------
    @property
    def grid(self):
        """The study's :class:`grtv_nb.geometry.Grid` (built from the coordinates for a Dataset)."""
        g = getattr(self._study, "grid", None)
        if g is None or tuple(g.shape) != self.shape:
            from ..geometry import Grid

            g = Grid(x=self.x, y=self.y, z=self.z, slice_thickness=self.spacing(0))
        return g

    def coords(self, axis: int) -> np.ndarray:
        return (self.z, self.y, self.x)[axis]

    def spacing(self, axis: int) -> float:
        c = self.coords(axis)
        if len(c) > 1:
            return float(np.median(np.diff(c)))
        if axis == 0:
            st = getattr(getattr(self._study, "grid", None), "slice_thickness", 0.0) or 0.0
            return float(st) if st > 0 else 1.0
        return 1.0

    def roi_index(self, roi: int | str) -> int:
        if isinstance(roi, (int, np.integer)):
            if not 0 <= int(roi) < len(self.roi_names):
                raise ValidationError(f"roi index {roi} out of range (study has {len(self.roi_names)} ROIs)")
            return int(roi)
        try:
            return self.roi_names.index(str(roi))
        except ValueError:
            raise ValidationError(f"roi {roi!r} not in study (ROIs: {', '.join(self.roi_names)})") from None

    def full_mask(self, roi: int | str) -> np.ndarray:
        """The ROI's boolean mask on the study grid (``Study.mask`` when available)."""
        i = self.roi_index(roi)
        if self._study is not None and hasattr(self._study, "mask"):
            m = self._study.mask(self.roi_names[i])
        else:
            da = self.ds["masks"].isel(roi=i)
            if tuple(da.dims) != ("z", "y", "x"):
                da = da.transpose("z", "y", "x")
            m = da.values
        m = np.asarray(m, dtype=bool)
        if m.shape != self.shape:
            raise ValidationError(f"mask of roi {self.roi_names[i]!r} has shape {m.shape}, grid is {self.shape}")
        return m

    def crop(self, roi: int | str) -> RoiCrop:
        """The ROI mask cropped to its bounding box (computed once, then cached)."""
        i = self.roi_index(roi)
        c = self._crops.get(i)
        if c is None:
            m = self.full_mask(i)
            lo, hi = [], []
            for ax in range(3):
                other = tuple(a for a in range(3) if a != ax)
                nz = np.flatnonzero(m.any(axis=other))
                lo.append(int(nz[0]) if nz.size else 0)
                hi.append(int(nz[-1]) + 1 if nz.size else 0)
            c = RoiCrop(tuple(lo), np.ascontiguousarray(m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]))
            self._crops[i] = c
        return c

    def voxel_at(self, plane: str, index: int, row: int, col: int, geom: PlaneGeometry) -> tuple[int, int, int]:
        """Voxel (iz, iy, ix) under display pixel (row, col) of ``plane`` at slice ``index``."""
        ra, ca, sa = PLANE_AXES[plane]
        ijk = [0, 0, 0]
        ijk[sa] = int(index)
        ijk[ra] = int(geom.rmap[int(np.clip(row, 0, geom.height - 1))])
        ijk[ca] = int(geom.cmap[int(np.clip(col, 0, geom.width - 1))])
        return (ijk[0], ijk[1], ijk[2])

    def probe(self, ijk: tuple[int, int, int]) -> dict[str, Any]:
        """Position (mm), HU, dose and the ROIs containing voxel ``ijk`` = (iz, iy, ix)."""
        iz, iy, ix = ijk
        out: dict[str, Any] = {
            "index": (iz, iy, ix),
            "xyz_mm": (float(self.x[ix]), float(self.y[iy]), float(self.z[iz])),
            "hu": float(self.image[iz, iy, ix]) if self.image is not None else None,
            "dose": float(self.dose[iz, iy, ix]) if self.dose is not None else None,
        }
        inside = []
        for i, name in enumerate(self.roi_names):
            c = self.crop(i)
            (z0, y0, x0), (z1, y1, x1) = c.lo, c.hi
            if z0 <= iz < z1 and y0 <= iy < y1 and x0 <= ix < x1 and c.mask[iz - z0, iy - y0, ix - x0]:
                inside.append(name)
        out["rois"] = inside
        return out


# ----------------------------------------------------------------------------------------------
# Plane geometry
# ----------------------------------------------------------------------------------------------

#: Patient-direction letters of the +/- LPS axes (x: left/right, y: posterior/anterior,
#: z: head/feet).
_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))
_SECOND_LETTER = 0.3  # a secondary axis gets its letter when its share of the direction exceeds this

#: plane -> patient-frame array axis (0=x, 1=y, 2=z) and sign pointing down and to the right on screen
_SCREEN_AXES = {"axial": ((1, 1), (0, 1)), "coronal": ((2, -1), (0, 1)), "sagittal": ((2, -1), (1, 1))}


def _letters(v: np.ndarray) -> str:
    order = np.argsort(-np.abs(v))
    out = ""
    for k, i in enumerate(order):
        if k and abs(v[i]) < _SECOND_LETTER:
            break
        out += _LETTERS[i][0 if v[i] > 0 else 1]
        if k == 1:
            break
    return out


def orientation_labels(direction: np.ndarray, plane: str) -> tuple[str, str, str, str]:
    """Patient-direction letters (A/P, L/R, H/F) at the top, bottom, left and right edges of a
    plane as drawn by :func:`render_slice`.

    ``direction`` has the patient-space (LPS) directions of the array's x, y, z axes as columns
    (identity for the canonical frame, whatever the patient position was: HFS, FFS, HFP, FFP... are
    all read into it). Oblique axes get two letters (e.g. ``"LA"``) when a second patient axis
    contributes more than ``_SECOND_LETTER``."""
    if plane not in PLANES:
        raise ValidationError(f"plane must be one of {PLANES}, got {plane!r}")
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    (ra, rs), (ca, cs) = _SCREEN_AXES[plane]
    down, right = d[:, ra] * rs, d[:, ca] * cs
    return (_letters(-down), _letters(down), _letters(-right), _letters(right))



def _axis_map(c: np.ndarray, spacing: float, pixel: float, max_n: int) -> tuple[np.ndarray, float]:
    """Nearest-voxel index of each display pixel along one axis (coords ``c`` increasing).

    Returns (index map, pixel size actually used)."""
    n_vox = len(c)
    if n_vox == 1:
        lo, hi = c[0] - spacing / 2, c[0] + spacing / 2
    else:
        lo = c[0] - (c[1] - c[0]) / 2
        hi = c[-1] + (c[-1] - c[-2]) / 2
    extent = hi - lo
    if abs(spacing - pixel) < 1e-6 * max(pixel, 1e-9) and (n_vox < 3 or np.allclose(np.diff(c), spacing, rtol=1e-4)):
        if n_vox <= max_n:
            return np.arange(n_vox, dtype=np.intp), pixel
    n = max(1, int(round(extent / pixel)))
    if n > max_n:
        n = max_n
    px = extent / n
    t = lo + (np.arange(n) + 0.5) * px
    mids = (c[1:] + c[:-1]) / 2 if n_vox > 1 else np.zeros(0)
    return np.searchsorted(mids, t).astype(np.intp), px


@dataclass
class PlaneGeometry:
    """Display geometry of one plane: display pixel -> native index maps and the mm per pixel.

    ``rmap[r]`` is the voxel index (along the row axis) shown in display row ``r``; ``cmap[c]``
    likewise for columns. For coronal and sagittal planes ``rmap`` is decreasing (superior on top).
    """

    plane: str
    rmap: np.ndarray
    cmap: np.ndarray
    row_mm: float
    col_mm: float
    identity: bool = False
    _rinv: dict = field(default_factory=dict, repr=False)

    @property
    def height(self) -> int:
        return len(self.rmap)

    @property
    def width(self) -> int:
        return len(self.cmap)

    @property
    def size_mm(self) -> tuple[float, float]:
        return (self.height * self.row_mm, self.width * self.col_mm)

    def rows_of(self, i0: int, i1: int) -> tuple[int, int]:
        """Display rows [r0, r1) whose voxel index is in [i0, i1) (rmap is monotonic)."""
        return _range_of(self.rmap, i0, i1)

    def cols_of(self, i0: int, i1: int) -> tuple[int, int]:
        return _range_of(self.cmap, i0, i1)

    def display_row(self, voxel_index: int) -> int:
        """A display row showing voxel ``voxel_index`` (centre of its run)."""
        r0, r1 = self.rows_of(voxel_index, voxel_index + 1)
        return (r0 + r1 - 1) // 2 if r1 > r0 else -1

    def display_col(self, voxel_index: int) -> int:
        c0, c1 = self.cols_of(voxel_index, voxel_index + 1)
        return (c0 + c1 - 1) // 2 if c1 > c0 else -1


def _range_of(m: np.ndarray, i0: int, i1: int) -> tuple[int, int]:
    if len(m) == 0:
        return (0, 0)
    if m[0] <= m[-1]:
        a = int(np.searchsorted(m, i0, side="left"))
        b = int(np.searchsorted(m, i1, side="left"))
        return (a, b)
    rev = m[::-1]
    a = int(np.searchsorted(rev, i0, side="left"))
    b = int(np.searchsorted(rev, i1, side="left"))
    n = len(m)
    return (n - b, n - a)


def plane_geometry(arrays: StudyArrays, plane: str, pixel_mm: float | None = None) -> PlaneGeometry:
    """Display geometry of ``plane`` for a study at square pixels of ``pixel_mm`` (default: the
    finest in-plane x/y spacing)."""
    if plane not in PLANES:
        raise ValidationError(f"plane must be one of {PLANES}, got {plane!r}")
    if pixel_mm is None:
        pixel_mm = min(arrays.spacing(1), arrays.spacing(2))
    ra, ca, _ = PLANE_AXES[plane]
    rmap, rpx = _axis_map(arrays.coords(ra), arrays.spacing(ra), pixel_mm, _MAX_DISPLAY)
    cmap, cpx = _axis_map(arrays.coords(ca), arrays.spacing(ca), pixel_mm, _MAX_DISPLAY)
    if ra == 0:
        rmap = rmap[::-1].copy()  # superior at the top
    ident = (
        ra != 0
        and len(rmap) == arrays.shape[ra]
        and len(cmap) == arrays.shape[ca]
        and bool(np.all(rmap == np.arange(len(rmap))))
        and bool(np.all(cmap == np.arange(len(cmap))))
    )
    return PlaneGeometry(plane, rmap, cmap, rpx, cpx, identity=ident)


def native_plane(vol: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D plane of ``vol`` at ``index`` with (row axis, column axis) as in ``PLANE_AXES``."""
    if plane == "axial":
        return vol[index]
    if plane == "coronal":
        return vol[:, index, :]
    return vol[:, :, index]


def display_plane(vol: np.ndarray, geom: PlaneGeometry, index: int) -> np.ndarray:
    """Plane of ``vol`` at ``index`` resampled onto the display pixels."""
    p = native_plane(vol, geom.plane, index)
    if geom.identity:
        return p
    return p[geom.rmap[:, None], geom.cmap[None, :]]


# ----------------------------------------------------------------------------------------------
# Colour
# ----------------------------------------------------------------------------------------------

_LUT_CACHE: dict[tuple[float, float], np.ndarray] = {}
_ALL_INT16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)  # in uint16 bit order


def window_lut(window: float, level: float) -> np.ndarray:
    """uint8 lookup table indexed by the uint16 bit pattern of int16 values:
    :func:`grtv_nb.display.window_level` evaluated once for every int16 value."""
    key = (float(window), float(level))
    lut = _LUT_CACHE.get(key)
    if lut is None:
        lut = _display.window_level(_ALL_INT16, level=level, width=window)
        if len(_LUT_CACHE) > 32:
            _LUT_CACHE.clear()
        _LUT_CACHE[key] = lut
    return lut


def apply_window(plane: np.ndarray, window: float, level: float) -> np.ndarray:
    """Grey levels (uint8) of an image plane under a window width/level (HU): the same values as
    :func:`grtv_nb.display.window_level`, by table lookup for int16 images."""
    window = max(float(window), 1e-3)
    if plane.dtype == np.int16:
        return window_lut(window, level)[plane.view(np.uint16)]
    return _display.window_level(plane, level=level, width=window)


def _jet(t: np.ndarray) -> np.ndarray:
    r = np.clip(1.5 - np.abs(4 * t - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * t - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * t - 1), 0, 1)
    return np.stack([r, g, b], axis=-1)


#: 256-entry RGB colour map of the dose wash (blue = low, red = high).
DOSE_LUT = (_jet(np.linspace(0.0, 1.0, 256)) * 255).round().astype(np.float32)


def dose_color(dose_gy: float, dose_max: float) -> tuple[int, int, int]:
    """Colour of a dose level on the wash colour map (used for isodose lines and legends)."""
    i = int(np.clip(dose_gy / dose_max * 255, 0, 255)) if dose_max > 0 else 255
    return tuple(int(v) for v in DOSE_LUT[i])  # type: ignore[return-value]


def outline(mask: np.ndarray, thick: int = 1) -> np.ndarray:
    """Boundary pixels of a 2D boolean mask (pixels with a 4-neighbour outside; the image edge
    counts as outside). ``thick`` > 1 widens it inwards."""
    m = mask
    inner = m.copy()
    for _ in range(max(1, thick)):
        e = inner.copy()
        e[1:, :] &= inner[:-1, :]
        e[:-1, :] &= inner[1:, :]
        e[:, 1:] &= inner[:, :-1]
        e[:, :-1] &= inner[:, 1:]
        e[0, :] = False
        e[-1, :] = False
        e[:, 0] = False
        e[:, -1] = False
        inner = e
    return m & ~inner


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


@dataclass
class RenderOptions:
    """What to draw on a slice.

    Attributes
    ----------
    window, level : float
        Grey window width and centre (HU).
    rois : list of int or None
        Indices of the ROIs to draw (None: all).
    roi_mode : {"outline", "filled"}
    roi_opacity : float
        Opacity of fills (0-1); outlines are opaque.
    highlight : int or None
        ROI drawn with a thicker outline.
    show_dose : bool
    dose_threshold : float
        Dose (Gy) below which no wash is drawn.
    dose_opacity : float
    isodose_levels : sequence of float
        Dose levels (Gy) drawn as lines in their wash colour.
    crosshair : (row, col) or None
        Display row and column of the crosshair lines (-1 for none).
    """

    window: float = 400.0
    level: float = 40.0
    rois: list[int] | None = None
    roi_mode: str = "outline"
    roi_opacity: float = 0.35
    highlight: int | None = None
    show_dose: bool = True
    dose_threshold: float = 0.0
    dose_opacity: float = 0.35
    isodose_levels: tuple[float, ...] = ()
    crosshair: tuple[int, int] | None = None


def _blend(region: np.ndarray, m: np.ndarray, color: np.ndarray, alpha: float) -> None:
    if alpha >= 1.0:
        region[m] = color
    else:
        region[m] = region[m] * (1.0 - alpha) + color * alpha


def render_slice(arrays: StudyArrays, geom: PlaneGeometry, index: int, opts: RenderOptions | None = None) -> np.ndarray:
    """Render one plane of a study into an RGB image.

    Parameters
    ----------
    arrays : StudyArrays
    geom : PlaneGeometry
        From :func:`plane_geometry` for the plane to draw.
    index : int
        Slice index along the plane's normal axis (z for axial, y for coronal, x for sagittal).
    opts : RenderOptions

    Returns
    -------
    ndarray, shape (height, width, 3), uint8
    """
    opts = opts or RenderOptions()
    _, _, sa = PLANE_AXES[geom.plane]
    n = arrays.shape[sa]
    if not 0 <= index < n:
        raise ValidationError(f"{geom.plane} slice index {index} out of range 0..{n - 1}")
    h, w = geom.height, geom.width
    if arrays.image is not None:
        grey = apply_window(display_plane(arrays.image, geom, index), opts.window, opts.level)
    else:
        grey = np.zeros((h, w), np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)

    if opts.show_dose and arrays.dose is not None:
        d = display_plane(arrays.dose, geom, index)
        thr = max(float(opts.dose_threshold), 1e-6)
        m = d >= thr
        if opts.dose_opacity > 0 and m.any():
            idx = np.clip(d[m] * (255.0 / arrays.dose_max), 0, 255).astype(np.intp)
            a = float(opts.dose_opacity)
            rgb[m] = rgb[m] * (1.0 - a) + DOSE_LUT[idx] * a
        for lvl in opts.isodose_levels:
            if lvl <= 0:
                continue
            line = outline(d >= lvl)
            if line.any():
                rgb[line] = dose_color(lvl, arrays.dose_max)

    rois = range(len(arrays.roi_names)) if opts.rois is None else opts.rois
    ra, ca, _ = PLANE_AXES[geom.plane]
    for i in rois:
        sub = _roi_display(arrays.crop(i), geom, index, ra, ca, sa)
        if sub is None:
            continue
        (r0, c0), m = sub
        region = rgb[r0 : r0 + m.shape[0], c0 : c0 + m.shape[1]]
        color = np.asarray(arrays.roi_colors[i], np.float32)
        if opts.roi_mode == "filled" and opts.roi_opacity > 0:
            _blend(region, m, color, float(opts.roi_opacity))
        thick = 2 if opts.highlight == i else 1
        region[outline(m, thick)] = color

    if opts.crosshair is not None:
        cr, cc = opts.crosshair
        cyan = np.array([255.0, 255.0, 0.0], np.float32)
        if 0 <= cr < h:
            rgb[cr, ::2] = rgb[cr, ::2] * 0.3 + cyan * 0.7
        if 0 <= cc < w:
            rgb[::2, cc] = rgb[::2, cc] * 0.3 + cyan * 0.7
    return rgb.astype(np.uint8)


def _roi_display(crop: RoiCrop, geom: PlaneGeometry, index: int, ra: int, ca: int, sa: int):
    """The part of a ROI's mask shown on this plane, on display pixels: ((row0, col0), mask) or None."""
    if crop.empty:
        return None
    lo, hi = crop.lo, crop.hi
    if not lo[sa] <= index < hi[sa]:
        return None
    r0, r1 = geom.rows_of(lo[ra], hi[ra])
    c0, c1 = geom.cols_of(lo[ca], hi[ca])
    if r1 <= r0 or c1 <= c0:
        return None
    sl: list[Any] = [slice(None)] * 3
    sl[sa] = index - lo[sa]
    p = crop.mask[tuple(sl)]  # 2D with axes (ra, ca) in increasing axis order == (row, col) order
    rows = geom.rmap[r0:r1] - lo[ra]
    cols = geom.cmap[c0:c1] - lo[ca]
    m = p[rows[:, None], cols[None, :]]
    if not m.any():
        return None
    return (r0, c0), m


def draw_labels(rgb: np.ndarray, labels: tuple[str, str, str, str] | list[str]) -> np.ndarray:
    """A copy of ``rgb`` with orientation letters (top, bottom, left, right) drawn at its edges in
    yellow (Pillow's default font), as the live canvas shows them."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    d = ImageDraw.Draw(im)
    h, w = rgb.shape[:2]
    spots = ((w / 2, 2), (w / 2, h - 2), (3, h / 2), (w - 3, h / 2))
    for text, anchor, xy in zip(labels, ("mt", "mb", "lm", "rm"), spots):
        if text:
            d.text(xy, text, fill=(255, 215, 94), anchor=anchor, stroke_width=1, stroke_fill=(0, 0, 0))
    return np.asarray(im)


# ----------------------------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------------------------


def encode_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode an RGB (or grey) uint8 image as PNG bytes (Pillow when present, else zlib)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return _png_zlib(rgb, compress_level)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _png_zlib(rgb: np.ndarray, level: int) -> bytes:
    import struct

    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    h, w, c = rgb.shape
    color_type = {1: 0, 3: 2, 4: 6}[c]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * c)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    hdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", hdr) + chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b"")


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes to an RGB uint8 array (Pillow)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
