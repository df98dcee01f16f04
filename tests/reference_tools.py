"""Test and benchmark helper: run the independent reference tools and bring their answers onto
grtv_nb's canonical grid.

References (none of them uses grtv_nb code):

- **plastimatch** ``convert`` (C++ rasteriser; ``--xor-contours`` so inner loops are holes),
  one NRRD mask per ROI read with SimpleITK;
- **rt-utils** ``RTStructBuilder.create_from`` + ``get_roi_mask_by_name`` (OpenCV ``fillPoly`` on
  vertices rounded to whole pixels, contours matched to slices by ReferencedSOPInstanceUID);
- **our own dose interpolation**: the RTDOSE read with pydicom, its grid built from
  ImagePositionPatient / ImageOrientationPatient / PixelSpacing / GridFrameOffsetVector, and
  ``scipy.interpolate.RegularGridInterpolator`` (linear, 0 outside).

Every mask is mapped to the canonical ``[z, y, x]`` array by the *physical position* of each of its
voxels (never by assuming an axis order): :func:`voxels_to_canonical`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom

# ----------------------------------------------------------------------------- geometry


def nearest_index(coords: np.ndarray, values: np.ndarray, tol: float, what: str) -> np.ndarray:
    """Index of the nearest entry of the increasing array ``coords`` for each value; raises
    AssertionError when a value is farther than ``tol`` mm from every coordinate."""
    values = np.asarray(values, dtype=np.float64)
    k = np.clip(np.searchsorted(coords, values), 1, max(len(coords) - 1, 1))
    if len(coords) == 1:
        k = np.zeros(values.shape, dtype=np.int64)
    else:
        k = np.where(np.abs(values - coords[k - 1]) <= np.abs(values - coords[k]), k - 1, k)
    dev = np.abs(values - coords[k]) if values.size else np.zeros(0)
    if dev.size and dev.max() > tol:
        raise AssertionError(f"{what}: reference voxel centres are up to {dev.max():.3f} mm off the grid's {what} "
                             f"coordinates (tolerance {tol} mm): the grids differ")
    return k


def voxels_to_canonical(points_lps: np.ndarray, grid, tol: float = 0.05, tol_z: float | None = None) -> np.ndarray:
    """Boolean canonical mask (grid.shape) with True at the voxels whose centres are ``points_lps``
    (N, 3 patient mm). Points must coincide with voxel centres of ``grid`` within ``tol`` mm
    (``tol_z`` along z, default ``tol``)."""
    out = np.zeros(grid.shape, dtype=bool)
    if len(points_lps) == 0:
        return out
    q = grid.to_canonical_points(np.asarray(points_lps, dtype=np.float64))
    ix = nearest_index(grid.x, q[:, 0], tol, "x")
    iy = nearest_index(grid.y, q[:, 1], tol, "y")
    iz = nearest_index(grid.z, q[:, 2], tol if tol_z is None else tol_z, "z")
    out[iz, iy, ix] = True
    return out


# ----------------------------------------------------------------------------- plastimatch


def plastimatch_exe() -> str | None:
    """The plastimatch executable: the binary shipped in the PyPI wheel, else the venv's console
    script, else one on PATH (None when absent)."""
    try:
        import plastimatch as _pm  # the PyPI wheel

        exe = Path(_pm.__file__).with_name("bin") / "plastimatch"
        if exe.exists():
            return str(exe)
    except ImportError:
        pass
    exe = Path(sys.executable).with_name("plastimatch")
    if exe.exists():
        return str(exe)
    return shutil.which("plastimatch")


def plastimatch_convert_cmd(rtss: Path, ct_dir: Path, out_dir: Path, *, xor: bool = True,
                            fixed: Path | None = None) -> list[str]:
    """The ``plastimatch convert`` command writing one NRRD mask per ROI into ``out_dir/prefix``
    and the ROI list into ``out_dir/ss.txt``."""
    exe = plastimatch_exe()
    if exe is None:
        raise FileNotFoundError("plastimatch is not installed")
    cmd = [exe, "convert", "--input", str(rtss), "--output-prefix", str(out_dir / "prefix"),
           "--prefix-format", "nrrd", "--output-ss-list", str(out_dir / "ss.txt")]
    if ct_dir is not None:
        cmd += ["--referenced-ct", str(ct_dir)]
    if fixed is not None:
        cmd += ["--fixed", str(fixed)]
    if xor:
        cmd.append("--xor-contours")
    return cmd


def _plastimatch_file_name(name: str) -> str:
    # plastimatch writes "<prefix>/<name>.nrrd" with characters unsafe in file names replaced.
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def plastimatch_roi_masks(rtss: Path, ct_dir: Path | None, out_dir: Path, grid, *, xor: bool = True,
                          fixed: Path | None = None, tol_z: float | None = None) -> dict[str, np.ndarray]:
    """Rasterise every ROI with plastimatch and return canonical masks on ``grid`` by name.

    The output geometry is the referenced CT (or ``fixed``); masks are mapped to ``grid`` by the
    physical position of each voxel. On a CT with non-uniform slice spacing plastimatch writes a
    uniform grid (the smallest gap) and puts each contour plane on its nearest slice: pass ``tol_z``
    to map those slices to ours.
    """
    import SimpleITK as sitk

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = plastimatch_convert_cmd(rtss, ct_dir, out_dir, xor=xor, fixed=fixed)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"plastimatch failed ({res.returncode}): {res.stdout[-2000:]}{res.stderr[-2000:]}")
    names = []
    for line in (out_dir / "ss.txt").read_text().splitlines():
        parts = line.split("|", 2)
        if len(parts) == 3:
            names.append(parts[2].strip())
    masks = {}
    for name in names:
        path = out_dir / "prefix" / f"{_plastimatch_file_name(name)}.nrrd"
        if not path.exists():
            path = out_dir / "prefix" / f"{name}.nrrd"
        if not path.exists():
            continue
        masks[name] = itk_mask_to_canonical(sitk.ReadImage(str(path)), grid, tol_z=tol_z)
    return masks


def itk_mask_to_canonical(image, grid, tol_z: float | None = None) -> np.ndarray:
    """A SimpleITK mask image -> canonical bool mask on ``grid`` (by physical voxel positions)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(image)  # [k, j, i]
    k, j, i = np.nonzero(arr)
    origin = np.array(image.GetOrigin())
    spacing = np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    idx = np.stack([i, j, k], axis=1).astype(np.float64)
    pts = origin + (idx * spacing) @ direction.T
    return voxels_to_canonical(pts, grid, tol_z=tol_z)


# ----------------------------------------------------------------------------- rt-utils


def image_only_folder(folder: Path, dest: Path) -> Path:
    """A folder of symlinks to the image (CT/MR) files of ``folder`` only: rt-utils takes every file
    with pixel data as a slice, an RTDOSE included."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(Path(folder).iterdir()):
        if not p.is_file():
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:
            continue
        if str(ds.get("Modality", "")) in ("CT", "MR", "PT") and "ImagePositionPatient" in ds:
            link = dest / p.name
            if not link.exists():
                os.symlink(p.resolve(), link)
    return dest


def rtss_with_slice_refs(rtss: Path, image_dir: Path, out: Path, replace: bool = False) -> tuple[Path, int]:
    """Copy of an RTSTRUCT where every contour without a ContourImageSequence gets one naming the
    image slice nearest to its plane, when that slice lies within half the local slice spacing
    (rt-utils matches contours to slices by these references only, and fails on a contour without
    one: CERR writes none, and the phantom's PTV lies between slices). Contours farther from every
    slice are left out of the copy (no tool rasterises them), and so is the ContourSequence of an
    ROI left without contours. Existing references are kept, or with ``replace`` recomputed too
    (references to slices not in ``image_dir``). Returns (path, number of references written)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    slices = []
    for p in sorted(Path(image_dir).iterdir()):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        n = np.cross(iop[:3], iop[3:])
        slices.append((float(np.array([float(v) for v in ds.ImagePositionPatient]) @ n), ds.SOPClassUID,
                       ds.SOPInstanceUID, n))
    slices.sort(key=lambda t: t[0])
    pos = np.array([s[0] for s in slices])
    gaps = np.diff(pos) if len(pos) > 1 else np.array([np.inf])
    below = np.concatenate([[gaps[0]], gaps])
    above = np.concatenate([gaps, [gaps[-1]]])
    rs = pydicom.dcmread(rtss, force=True)
    added = 0
    for item in rs.get("ROIContourSequence", []):
        if "ContourSequence" not in item:
            continue
        keep = []
        for c in item.ContourSequence:
            if "ContourImageSequence" in c and not replace:
                keep.append(c)
                continue
            raw = c.get_item("ContourData")  # raw bytes when untouched: no DS conversion
            val = raw.value if raw is not None else b""
            if isinstance(val, bytes):
                pts = np.array(val.decode().split("\\"), dtype=np.float64).reshape(-1, 3)
            else:
                pts = np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
            z = float(pts.mean(axis=0) @ slices[0][3])
            k = int(np.argmin(np.abs(pos - z)))
            half = 0.5 * (above[k] if z >= pos[k] else below[k])
            if abs(z - pos[k]) > half + 1e-3:
                continue
            it = Dataset()
            it.ReferencedSOPClassUID = slices[k][1]
            it.ReferencedSOPInstanceUID = slices[k][2]
            c.ContourImageSequence = Sequence([it])
            keep.append(c)
            added += 1
        if keep:
            item.ContourSequence = Sequence(keep)
        else:
            del item.ContourSequence
    rs.save_as(out, enforce_file_format=False)
    return out, added


def rtutils_roi_masks(image_dir: Path, rtss: Path, grid, names: list[str] | None = None
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rasterise ROIs with rt-utils; return canonical masks on ``grid`` by name and the canonical
    region rt-utils can represent.

    rt-utils returns masks indexed ``[row, column, slice]`` (slices in its own order: sorted along
    the slice normal) but allocates them with shape (Columns, Rows, slices): on a non-square image
    only rows and columns below min(Rows, Columns) survive, so comparisons must be restricted to
    the returned region. Each True voxel is placed by its physical position
    IPP(slice) + column * PixelSpacing[1] * row direction + row * PixelSpacing[0] * column direction.
    """
    import warnings

    import rt_utils.rtstruct_builder as _builder
    from rt_utils import RTStructBuilder

    if not hasattr(_builder, "warnings"):  # rt-utils 1.2.7 calls warnings.warn without importing it
        _builder.warnings = warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # warn_only: RTSTRUCTs that reference image slices absent from the folder are still read
        rt = RTStructBuilder.create_from(dicom_series_path=str(image_dir), rt_struct_path=str(rtss), warn_only=True)
    series = rt.series_data
    first = series[0]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    u, v = iop[:3], iop[3:]
    ps_row, ps_col = (float(x) for x in first.PixelSpacing)
    rows, cols = int(first.Rows), int(first.Columns)
    ipp = np.array([[float(x) for x in s.ImagePositionPatient] for s in series])

    def place(r, c, k):
        return ipp[k] + np.outer(c * ps_col, u) + np.outer(r * ps_row, v)

    side = min(rows, cols)
    r, c, k = np.meshgrid(np.arange(side), np.arange(side), np.arange(len(series)), indexing="ij")
    region = voxels_to_canonical(place(r.ravel(), c.ravel(), k.ravel()), grid)
    out = {}
    for name in names if names is not None else rt.get_roi_names():
        m = rt.get_roi_mask_by_name(name)
        r, c, k = np.nonzero(m)
        keep = (r < side) & (c < side)
        out[name] = voxels_to_canonical(place(r[keep], c[keep], k[keep]), grid)
    return out, region


# ----------------------------------------------------------------------------- dose


class DoseReference:
    """An RTDOSE read with pydicom and interpolated with scipy (linear, 0 outside its grid).

    The grid is built from the file alone: frame ``k`` lies at ImagePositionPatient +
    offset_k * normal (GridFrameOffsetVector, relative form, or absolute z when its first value
    equals the z of ImagePositionPatient), row ``j`` at + j * PixelSpacing[0] * column direction,
    column ``i`` at + i * PixelSpacing[1] * row direction.
    """

    def __init__(self, path: Path):
        from scipy.interpolate import RegularGridInterpolator

        ds = pydicom.dcmread(path)
        self.ipp = np.array([float(x) for x in ds.ImagePositionPatient])
        iop = np.array([float(x) for x in ds.ImageOrientationPatient])
        self.u, self.v = iop[:3], iop[3:]
        self.n = np.cross(self.u, self.v)
        dr, dc = (float(x) for x in ds.PixelSpacing)
        rows, cols = int(ds.Rows), int(ds.Columns)
        nframes = int(ds.get("NumberOfFrames", 1) or 1)
        values = ds.pixel_array.reshape(nframes, rows, cols).astype(np.float64) * float(ds.DoseGridScaling)
        off = np.array([float(x) for x in ds.GridFrameOffsetVector]) if nframes > 1 else np.zeros(1)
        if off[0] != 0:
            off = (off - self.ipp[2]) / self.n[2]
        order = np.argsort(off)
        self.values = values[order]
        self.values_raw = ds.pixel_array.reshape(nframes, rows, cols)[order]
        self.max = float(values.max())
        self.axes = (off[order], np.arange(rows) * dr, np.arange(cols) * dc)
        self._interp = RegularGridInterpolator(self.axes, self.values, bounds_error=False, fill_value=0.0)

    def local(self, points_lps: np.ndarray) -> np.ndarray:
        """(offset along normal, along column direction, along row direction) of patient points."""
        d = np.asarray(points_lps, dtype=np.float64) - self.ipp
        return np.stack([d @ self.n, d @ self.v, d @ self.u], axis=-1)

    def __call__(self, points_lps: np.ndarray) -> np.ndarray:
        return self._interp(self.local(points_lps))

    def inside(self, points_lps: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
        """Points at least ``margin_mm`` inside the hull of the dose voxel centres."""
        q = self.local(points_lps)
        ok = np.ones(q.shape[:-1], dtype=bool)
        for a, ax in enumerate(self.axes):
            ok &= (q[..., a] >= ax.min() + margin_mm) & (q[..., a] <= ax.max() - margin_mm)
        return ok

    def on_grid(self, grid) -> np.ndarray:
        """The reference dose at every voxel centre of a canonical ``grid`` ([z, y, x])."""
        out = np.empty(grid.shape, dtype=np.float64)
        yy, xx = np.meshgrid(grid.y, grid.x, indexing="ij")
        for k, zk in enumerate(grid.z):
            pts = grid.to_patient_points(np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, zk)], axis=1))
            out[k] = self(pts).reshape(xx.shape)
        return out


def grid_points(grid) -> np.ndarray:
    """Patient coordinates (nz, ny, nx, 3) of every voxel centre of a canonical grid."""
    z, y, x = np.meshgrid(grid.z, grid.y, grid.x, indexing="ij")
    pts = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    return grid.to_patient_points(pts).reshape(*grid.shape, 3)


def rewrite_dose_orientation(src: Path, dst: Path, *, flip_rows: bool, flip_cols: bool, reverse_frames: bool,
                             absolute_offsets: bool = False) -> Path:
    """Write a copy of an RTDOSE describing the same dose with other storage axes: rows, columns
    and/or frames reversed (ImageOrientationPatient, ImagePositionPatient and GridFrameOffsetVector
    changed to match), optionally with GridFrameOffsetVector in its absolute (z) form."""
    ds = pydicom.dcmread(src)
    ref = DoseReference(src)
    nframes, rows, cols = ref.values.shape
    arr = ref.values_raw  # file pixels sorted by frame position, as ref.values
    u, v, n = ref.u.copy(), ref.v.copy(), ref.n.copy()
    ipp = ref.ipp.copy()
    dr, dc = ref.axes[1][1] - ref.axes[1][0], ref.axes[2][1] - ref.axes[2][0]
    if flip_rows:
        arr = arr[:, ::-1]
        ipp = ipp + (rows - 1) * dr * v
        v = -v
    if flip_cols:
        arr = arr[:, :, ::-1]
        ipp = ipp + (cols - 1) * dc * u
        u = -u
    new_n = np.cross(u, v)
    pos = ref.ipp[None, :] + ref.axes[0][:, None] * n[None, :]  # frame positions, increasing along n
    along = pos @ new_n
    order = np.argsort(along)[::-1] if reverse_frames else np.argsort(along)
    arr = arr[order]
    ipp = ipp + ((pos[order[0]] - ipp) @ new_n) * new_n  # the first stored frame's plane
    offs = (pos[order] - ipp) @ new_n
    ds.ImageOrientationPatient = [f"{x:.6g}" for x in np.concatenate([u, v])]
    ds.ImagePositionPatient = [f"{x:.6g}" for x in ipp]
    if absolute_offsets:
        if abs(abs(new_n[2]) - 1) > 1e-6:
            raise ValueError("absolute GridFrameOffsetVector needs axial frames")
        ds.GridFrameOffsetVector = [f"{ipp[2] + o * new_n[2]:.6g}" for o in offs]
    else:
        ds.GridFrameOffsetVector = [f"{o:.6g}" for o in offs]
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds.save_as(dst, enforce_file_format=False)
    return dst


def dvh_sequence_volumes(rtdose: Path) -> dict[int, float]:
    """Total volume (cc) of each ROI in an RTDOSE's embedded cumulative DVHSequence (first bin)."""
    ds = pydicom.dcmread(rtdose, stop_before_pixels=True)
    out = {}
    for item in ds.get("DVHSequence", []):
        data = [float(x) for x in item.DVHData]
        roi = int(item.DVHReferencedROISequence[0].ReferencedROINumber)
        if str(item.get("DVHType", "CUMULATIVE")).upper() == "CUMULATIVE" and len(data) >= 2:
            out[roi] = data[1]
    return out


def clinical_body_case(example_data: Path):
    """The dicompyler-core patient's one CT slice and its clinical BODY ROI on that plane:
    ``(image, reference)``. ``image`` is a canonical CT DataArray holding the slice twice (2 slices
    3 mm apart: segmentation needs a volume); ``reference`` is the BODY polygon(s) of the slice's
    plane drawn with scikit-image (voxel centres inside; nested loops cut holes)."""
    import xarray as xr
    from skimage.draw import polygon2mask

    ct = pydicom.dcmread(example_data / "ct.0.dcm")
    rs = pydicom.dcmread(example_data / "rtss.dcm")
    if [round(float(v)) for v in ct.ImageOrientationPatient] != [1, 0, 0, 0, 1, 0]:
        raise ValueError("expected an HFS axial CT slice")
    hu = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    x0, y0, z0 = (float(v) for v in ct.ImagePositionPatient)
    dy, dx = (float(v) for v in ct.PixelSpacing)
    number = next(int(r.ROINumber) for r in rs.StructureSetROISequence if r.ROIName == "BODY")
    item = next(i for i in rs.ROIContourSequence if int(i.ReferencedROINumber) == number)
    ref = np.zeros(hu.shape, bool)
    for c in item.ContourSequence:
        p = np.asarray(c.ContourData, float).reshape(-1, 3)
        if abs(p[0, 2] - z0) < 0.5:
            ref ^= polygon2mask(hu.shape, np.c_[(p[:, 1] - y0) / dy, (p[:, 0] - x0) / dx])
    img = xr.DataArray(
        np.stack([hu, hu]).astype(np.int16), dims=("z", "y", "x"),
        coords={"z": [z0, z0 + 3.0], "y": y0 + dy * np.arange(hu.shape[0]), "x": x0 + dx * np.arange(hu.shape[1])},
        attrs={"modality": "CT"},
    )
    return img, ref
