"""Test helper: load the TotalSegmentator NIfTI reference volumes (and its small DICOM CT) into
xarray DataArrays in grtv_nb's canonical frame (x to patient left, y posterior, z superior; DICOM
LPS; coordinates increasing; array order [z, y, x]).

NIfTI world coordinates are RAS: LPS = (-R, -A, S). Only axis-aligned affines are handled (enough
for the reference files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TS = DATA / "totalsegmentator-example"

# TotalSegmentator `total` label indices (label_map_total.tsv)
TS_LABELS = {
    "llung": (10, 11),
    "rlung": (12, 13, 14),
    "spinal_cord": (79,),
    "liver": (5,),
    "lkidney": (3,),
    "rkidney": (2,),
    "stomach": (6,),
}


def ts_unavailable() -> str | None:
    """Why the TotalSegmentator example cannot be used here (its CT absent, or nibabel not
    installed), or None when it can."""
    if not (TS / "example_ct.nii.gz").exists():
        return f"totalsegmentator-example not found ({TS})"
    try:
        import nibabel  # noqa: F401
    except ImportError:
        return "nibabel not installed (pip install grtv_nb[test])"
    return None


def load_nifti_lps(path: Path | str, dtype=None, name: str = "image") -> xr.DataArray:
    """Read a NIfTI file into a DataArray (z, y, x) with LPS coordinates (mm) increasing."""
    import nibabel as nib

    img = nib.load(str(path))
    aff = img.affine
    data = np.asanyarray(img.dataobj)
    if dtype is not None:
        data = data.astype(dtype)
    # permutation: for each array axis, which world axis it runs along
    m = aff[:3, :3]
    world_axis = np.argmax(np.abs(m), axis=0)  # array axis i -> world axis
    if sorted(world_axis.tolist()) != [0, 1, 2]:
        raise ValueError(f"{path}: affine is not axis-aligned")
    sign_lps = np.array([-1.0, -1.0, 1.0])  # RAS -> LPS
    coords = {}
    order = [None, None, None]  # world axis -> array axis
    for i in range(3):
        w = world_axis[i]
        n = data.shape[i]
        c = (m[w, i] * np.arange(n) + aff[w, 3]) * sign_lps[w]
        if c[-1] < c[0]:
            data = np.flip(data, axis=i)
            c = c[::-1]
        coords["xyz"[w]] = c
        order[w] = i
    data = np.ascontiguousarray(np.transpose(data, (order[2], order[1], order[0])))
    return xr.DataArray(
        data, dims=("z", "y", "x"), coords={"z": coords["z"], "y": coords["y"], "x": coords["x"]}, name=name
    )


def ts_ct(full: bool = True) -> xr.DataArray:
    """The TotalSegmentator example CT (full 112 slices, or the 30-slice crop) as int16 HU."""
    f = "example_ct.nii.gz" if full else "example_ct_sm.nii.gz"
    da = load_nifti_lps(TS / f, dtype=np.int16)
    da.attrs["modality"] = "CT"
    return da


def ts_labels(full: bool = True) -> xr.DataArray:
    """The `total` label map matching :func:`ts_ct` (force_split for the full CT)."""
    f = "example_seg_fast_force_split.nii.gz" if full else "example_seg.nii.gz"
    return load_nifti_lps(TS / f, dtype=np.uint8, name="labels")


def ts_reference(labels: xr.DataArray, organ: str) -> np.ndarray:
    return np.isin(labels.values, TS_LABELS[organ])


def ts_dicom_ct() -> xr.DataArray:
    """The 20-slice JPEG2000 DICOM CT of the example, read with pydicom (HFS, axial), canonical."""
    return read_ct_folder(TS / "example_ct_dicom")


def read_ct_folder(folder: Path | str, pattern: str = "*") -> xr.DataArray:
    """An axial HFS CT series (one folder) read with pydicom alone, in the canonical frame."""
    import pydicom

    files = sorted(Path(folder).glob(pattern))
    dss = [pydicom.dcmread(f) for f in files if f.is_file()]
    dss = [d for d in dss if getattr(d, "Modality", "CT") == "CT" and "PixelData" in d]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    ds0 = dss[0]
    ori = np.array(ds0.ImageOrientationPatient, dtype=float)
    if not np.allclose(ori, [1, 0, 0, 0, 1, 0]):
        raise ValueError("expected an HFS axial series")
    vol = np.stack(
        [d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss]
    )
    dy, dx = (float(v) for v in ds0.PixelSpacing)
    x0, y0 = float(ds0.ImagePositionPatient[0]), float(ds0.ImagePositionPatient[1])
    x = x0 + dx * np.arange(vol.shape[2])
    y = y0 + dy * np.arange(vol.shape[1])
    z = np.array([float(d.ImagePositionPatient[2]) for d in dss])
    da = xr.DataArray(np.rint(vol).astype(np.int16), dims=("z", "y", "x"), coords={"z": z, "y": y, "x": x})
    da.attrs["modality"] = "CT"
    return da


def ts_dicom_labels() -> xr.DataArray:
    return load_nifti_lps(TS / "example_seg_dicom.nii.gz", dtype=np.uint8, name="labels")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    s = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / s) if s else 1.0


#: Row and column direction signs (along x and y) of axial images per patient position.
POSITION_AXES = {"HFS": (1, 1), "FFS": (-1, 1), "HFP": (-1, -1), "FFP": (1, -1)}
#: ImageOrientationPatient of the decubitus positions (DICOM PS3.3 C.7.6.2.1.1): the image rows
#: run along the patient's y and the columns along x (HFDL: rows to the anterior, columns to the
#: patient's left; the others by symmetry).
DECUBITUS_IOP = {
    "HFDL": (0, -1, 0, 1, 0, 0),
    "HFDR": (0, 1, 0, -1, 0, 0),
    "FFDL": (0, 1, 0, 1, 0, 0),
    "FFDR": (0, -1, 0, -1, 0, 0),
}


def write_image_series(img: xr.DataArray, folder: Path | str, position: str = "HFS", modality: str = "CT") -> Path:
    """Write a canonical CT DataArray as an axial DICOM CT series (one file per slice, signed
    16-bit HU, explicit VR little endian) with pydicom alone: a real CT in DICOM form for the
    facade's sample scripts, written independently of grtv_nb's writers. ``position`` (HFS, FFS,
    HFP, FFP, HFDL, HFDR, FFDL, FFDR) sets PatientPosition and the image orientation as a scanner
    would store it: the rows and columns run along -x / -y where that position's image axes are
    reversed, and a decubitus image's rows run along y, its columns along x.
    ``modality="MR"`` writes an MR Image Storage series instead (same geometry)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    x, y, z = (np.asarray(img[a].values, float) for a in "xyz")
    vol = np.asarray(img.values).astype(np.int16)
    if position in DECUBITUS_IOP:
        iop = DECUBITUS_IOP[position]
        fy, fx = iop[1], iop[3]  # rows run along y (sign fy), columns along x (sign fx)
        vol = np.transpose(vol, (0, 2, 1))[:, ::fx, ::fy]
        spacing = [f"{x[1] - x[0]:.6f}", f"{y[1] - y[0]:.6f}"]
    else:
        fx, fy = POSITION_AXES[position]
        vol = vol[:, ::fy, ::fx]
        iop = (fx, 0, 0, 0, fy, 0)
        spacing = [f"{y[1] - y[0]:.6f}", f"{x[1] - x[0]:.6f}"]
    x0, y0 = (x[0] if fx > 0 else x[-1]), (y[0] if fy > 0 else y[-1])
    for k in range(len(z)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = modality, "TS^example", "ts-example"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientPosition, ds.InstanceNumber = position, k + 1
        ds.ImagePositionPatient = [f"{x0:.4f}", f"{y0:.4f}", f"{z[k]:.4f}"]
        ds.ImageOrientationPatient = [str(v) for v in iop]
        ds.PixelSpacing = spacing
        ds.SliceThickness = f"{np.median(np.diff(z)):.4f}"
        ds.Rows, ds.Columns = vol.shape[1], vol.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
        if modality == "CT":
            ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(vol[k]).tobytes()
        pydicom.dcmwrite(folder / f"CT_{k:04d}.dcm", ds, enforce_file_format=True)
    return folder
