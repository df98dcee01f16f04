"""The pyGRTV facade: the Python API of the Growth RTV viewer, call for call, over a grtv_nb study.

Scripts written for the original run unchanged::

    from grtv import *
    grtv = pyGRTV()
    ret = grtv.readRTDir("/data/patient1")
    ret, ct = grtv.readGRTVRaw(grtv.GRTV_DATA_TYPE_IMAGE)

Conventions (see ``shared/spec/pygrtv-api.md``): every call returns a status first
(``GRTV_STATUS_OK`` or ``GRTV_STATUS_FALIED``; the original's spelling, with the alias
``GRTV_STATUS_FAILED``); calls producing an array return ``(status, array)`` (``None`` on failure);
output containers are filled in place. A failed call never raises: it returns FALIED, emits a
:class:`~grtv_nb.errors.GRTVCallFailed` warning (a GRTVWarning, shown for every failure, not only
the first of a loop) saying what was wrong (also kept in ``lastError``) and leaves the loaded
study unchanged.

Volumes are ``[z, y, x]`` arrays in the canonical frame of :mod:`grtv_nb.geometry`. Units:
``GRTV_DATA_TYPE_IMAGE`` CT in HU (int16); ``GRTV_DATA_TYPE_DOSE`` the dose in cGy as uint16
(rounded, the unit ``setDose`` takes); ``GRTV_DATA_TYPE_ROI`` uint8 0/255.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np

from .errors import GRTVCallFailed, GRTVError, GRTVWarning, ValidationError, warn_every_time

GRTV_STATUS_OK = 0
GRTV_STATUS_FALIED = -1
GRTV_STATUS_FAILED = GRTV_STATUS_FALIED
GRTV_PARAM_IMAGE_SIZE = 0
GRTV_PARAM_IMAGE_RES = 1
GRTV_DATA_TYPE_IMAGE = 0
GRTV_DATA_TYPE_DOSE = 1
GRTV_DATA_TYPE_ROI = 2
GRTV_MESH_TYPE_STL = 0
GRTV_MESH_TYPE_PLY = 1

__all__ = [
    "pyGRTV",
    "np",
    "GRTV_STATUS_OK",
    "GRTV_STATUS_FALIED",
    "GRTV_STATUS_FAILED",
    "GRTV_PARAM_IMAGE_SIZE",
    "GRTV_PARAM_IMAGE_RES",
    "GRTV_DATA_TYPE_IMAGE",
    "GRTV_DATA_TYPE_DOSE",
    "GRTV_DATA_TYPE_ROI",
    "GRTV_MESH_TYPE_STL",
    "GRTV_MESH_TYPE_PLY",
]


def _status_call(array_result: bool = False):
    """Turn exceptions into (FALIED[, None]) with a warning naming the call and the problem."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:  # every failure becomes a status, never a traceback
                kind = "" if isinstance(exc, GRTVError) else f" ({type(exc).__name__})"
                msg = f"{fn.__name__} failed{kind}: {exc}"
                self.lastError = msg
                warn_every_time(msg, GRTVCallFailed, stacklevel=2)  # each failure shown, also in a loop
                return (GRTV_STATUS_FALIED, None) if array_result else GRTV_STATUS_FALIED

        return wrapper

    return deco


class pyGRTV:  # noqa: N801 - the original's name
    """In-process replacement of the Growth RTV Python connection.

    Attributes
    ----------
    study : grtv_nb.Study or None
        The loaded study (the native object: use it for anything beyond the original API).
    pyIni : str
        Path of the settings file (``$GRTV_NB_CONFIG`` or ``~/.config/grtv_nb/pyGRTV.ini``).
    userPyCache : str
        The user's cache folder (``$GRTV_NB_CACHE`` or ``~/.cache/grtv_nb``).
    lastError : str
        The message of the last failed call ("" if none).
    """

    GRTV_STATUS_OK = GRTV_STATUS_OK
    GRTV_STATUS_FALIED = GRTV_STATUS_FALIED
    GRTV_STATUS_FAILED = GRTV_STATUS_FAILED
    GRTV_PARAM_IMAGE_SIZE = GRTV_PARAM_IMAGE_SIZE
    GRTV_PARAM_IMAGE_RES = GRTV_PARAM_IMAGE_RES
    GRTV_DATA_TYPE_IMAGE = GRTV_DATA_TYPE_IMAGE
    GRTV_DATA_TYPE_DOSE = GRTV_DATA_TYPE_DOSE
    GRTV_DATA_TYPE_ROI = GRTV_DATA_TYPE_ROI
    GRTV_MESH_TYPE_STL = GRTV_MESH_TYPE_STL
    GRTV_MESH_TYPE_PLY = GRTV_MESH_TYPE_PLY

    def __init__(self):
        self.study = None
        self.lastError = ""
        self.pyIni = str(Path(os.environ.get("GRTV_NB_CONFIG", Path.home() / ".config" / "grtv_nb" / "pyGRTV.ini")))
        self.userPyCache = str(Path(os.environ.get("GRTV_NB_CACHE", Path.home() / ".cache" / "grtv_nb")))

    # ------------------------------------------------------------------ helpers
    def _need_study(self):
        if self.study is None:
            raise GRTVError("no data loaded: call readRTDir(rtDirPath) first")
        return self.study

    def _need_image(self):
        st = self._need_study()
        if not st.has_image:
            raise GRTVError(
                "the loaded folder has no complete image series (the dose grid is the reference grid); "
                "image volumes and tags are not available"
            )
        return st

    def _outside_sources(self, path, what: str, folder: bool = False) -> None:
        """Refuse a write into a folder the loaded study was read from (besides the guard of
        :mod:`grtv_nb.fileio`, which covers every live study)."""
        if self.study is None or not isinstance(path, str | os.PathLike):
            return
        from .export import source_paths
        from .fileio import check_outside_sources

        p = Path(os.fspath(path))
        check_outside_sources(p if folder else p.parent, what, extra=source_paths(self.study))

    # ------------------------------------------------------------------ reading
    @_status_call()
    def readRTDir(self, rtDirPath) -> int:
        """Load the DICOM files stored directly in a folder (image series + RTSTRUCT/RTDOSE/RTPLAN).
        The previous study stays loaded if reading fails."""
        from .study import open_study

        if not isinstance(rtDirPath, str | os.PathLike):
            raise ValidationError(f"rtDirPath must be a folder path, got {type(rtDirPath).__name__}")
        self.study = open_study(rtDirPath)
        self.lastError = ""
        return GRTV_STATUS_OK

    @_status_call()
    def getImageDcmTags(self, dcmTagsMap: dict) -> int:
        """Fill ``dcmTagsMap`` with the DICOM tags of the first slice (keyword -> value)."""
        st = self._need_image()
        if not isinstance(dcmTagsMap, dict):
            raise ValidationError("dcmTagsMap must be a dict")
        from .dicom.tags import dataset_to_dict

        dcmTagsMap.update(dataset_to_dict(st.image_headers[0]))
        return GRTV_STATUS_OK

    @_status_call()
    def getImageParam(self, paramID: int, paramMap: dict) -> int:
        """``GRTV_PARAM_IMAGE_SIZE``: size_x, size_y, size_z (voxels); ``GRTV_PARAM_IMAGE_RES``:
        res_x, res_y, res_z (mm; res_z is the median slice spacing)."""
        st = self._need_study()
        if not isinstance(paramMap, dict):
            raise ValidationError("paramMap must be a dict")
        nz, ny, nx = st.grid.shape
        if paramID == GRTV_PARAM_IMAGE_SIZE:
            paramMap.update({"size_x": nx, "size_y": ny, "size_z": nz})
        elif paramID == GRTV_PARAM_IMAGE_RES:
            dz, dy, dx = st.grid.spacing
            paramMap.update({"res_x": float(dx), "res_y": float(dy), "res_z": float(dz)})
        else:
            raise ValidationError(
                f"paramID {paramID!r} is not GRTV_PARAM_IMAGE_SIZE ({GRTV_PARAM_IMAGE_SIZE}) or "
                f"GRTV_PARAM_IMAGE_RES ({GRTV_PARAM_IMAGE_RES})"
            )
        return GRTV_STATUS_OK

    @_status_call(array_result=True)
    def readGRTVRaw(self, grtvDataType: int, dataID: int = -1):
        """``(status, volume)``: the image (HU int16), the dose (cGy uint16, on the image grid) or
        the ROI ``dataID`` (uint8, 0 outside / 255 inside)."""
        st = self._need_study()
        if grtvDataType == GRTV_DATA_TYPE_IMAGE:
            st = self._need_image()
            return GRTV_STATUS_OK, np.array(st.image_values)
        if grtvDataType == GRTV_DATA_TYPE_DOSE:
            if not st.has_dose:
                raise GRTVError("the loaded study has no dose (no RTDOSE in the folder and no setDose)")
            cgy = st.dose_values * 100.0
            if cgy.max() > 65535:
                warnings.warn("dose above 655.35 Gy clipped to 65535 cGy in the uint16 volume", GRTVWarning,
                              stacklevel=3)
            return GRTV_STATUS_OK, np.clip(np.rint(cgy), 0, 65535).astype(np.uint16)
        if grtvDataType == GRTV_DATA_TYPE_ROI:
            if isinstance(dataID, bool) or not isinstance(dataID, int | np.integer):
                raise ValidationError(f"dataID must be an ROI index (int), got {dataID!r}")
            if not 0 <= int(dataID) < len(st.rois):
                raise ValidationError(f"dataID {dataID} is not an ROI index (0..{len(st.rois) - 1})")
            return GRTV_STATUS_OK, st.mask(int(dataID)).astype(np.uint8) * np.uint8(255)
        raise ValidationError(f"grtvDataType {grtvDataType!r} is not GRTV_DATA_TYPE_IMAGE/DOSE/ROI")

    @_status_call()
    def getROIList(self, roiList: list) -> int:
        """Append one dict per structure: roi_name, roi_index, roi_number, roi_color, roi_type."""
        st = self._need_study()
        if not isinstance(roiList, list):
            raise ValidationError("roiList must be a list")
        for i, r in enumerate(st.rois):
            roiList.append({
                "roi_name": r.name, "roi_index": i, "roi_number": r.number,
                "roi_color": tuple(r.color), "roi_type": r.roi_type,
            })
        return GRTV_STATUS_OK

    # ------------------------------------------------------------------ changes
    @_status_call()
    def setNewROI(self, roiRaw, roiName, roiColor) -> int:
        """Add a structure from a volume of the image's shape: 0..255 (inside: value >= 128), or a
        0/1 or boolean mask (inside: 1/True); see :func:`grtv_nb.validate.mask_from_raw`. A failure
        at any step (values, name, contours, mesh, DVH) leaves the study unchanged."""
        st = self._need_study()
        from .validate import mask_from_raw

        mask = mask_from_raw(roiRaw, st.grid.shape, name=roiName)
        st.add_roi(roiName, mask, roiColor, source="mask")
        return GRTV_STATUS_OK

    @_status_call()
    def predNewROI(self, roiName, roiColor) -> int:
        """Add a structure by automatic segmentation of the current CT (see grtv_nb.segment)."""
        st = self._need_image()
        from .segment import segment_organ
        from .validate import validate_color

        # refused before the segmentation runs; a colour is required (no default as in setNewROI)
        name, color = st.check_new_roi(roiName, validate_color(roiColor))
        mask = segment_organ(st.image, name)
        st.add_roi(name, mask, color, source="auto")
        return GRTV_STATUS_OK

    @_status_call()
    def setDose(self, doseRaw) -> int:
        """Replace the dose with a volume of the image's shape in cGy (0..65535); DVHs are recomputed."""
        st = self._need_study()
        from .validate import dose_from_cgy

        st.set_dose(dose_from_cgy(doseRaw, st.grid.shape))
        return GRTV_STATUS_OK

    # ------------------------------------------------------------------ export
    @_status_call()
    def exportROIMesh(self, dataID, meshPath, meshType=GRTV_MESH_TYPE_STL) -> int:
        """Write the structure's surface mesh (patient mm) as binary STL or PLY, atomically, never
        into a folder the loaded study was read from."""
        st = self._need_study()
        from .mesh import write_mesh

        if meshType not in (GRTV_MESH_TYPE_STL, GRTV_MESH_TYPE_PLY):
            raise ValidationError(f"meshType {meshType!r} is not GRTV_MESH_TYPE_STL or GRTV_MESH_TYPE_PLY")
        if isinstance(dataID, bool) or not isinstance(dataID, int | np.integer):
            raise ValidationError(f"dataID must be an ROI index (int), got {dataID!r}")
        if not isinstance(meshPath, str | os.PathLike) or Path(meshPath).is_dir():
            raise ValidationError(f"meshPath must be a file path, got {meshPath!r}")
        self._outside_sources(meshPath, "the folder of meshPath")
        mesh = st.mesh(st.roi_index(int(dataID)))
        if mesh.is_empty:
            raise GRTVError(f"ROI {dataID} ('{st.rois[int(dataID)].name}') is empty: no mesh to write")
        write_mesh(mesh, meshPath, "ply" if meshType == GRTV_MESH_TYPE_PLY else "stl")
        return GRTV_STATUS_OK

    @_status_call()
    def exportRT(self, exportDir, overwrite: bool = False) -> int:
        """Write the current data as a new DICOM-RT set (image series, RTSTRUCT, RTDOSE) into a new or
        empty folder outside the study's folders; ``overwrite=True`` replaces a previous grtv_nb
        export there, nothing else (see :mod:`grtv_nb.export`). Concurrent exports into one folder:
        one wins, the others fail."""
        st = self._need_study()
        from .export import export_rt

        export_rt(st, exportDir, overwrite=overwrite)
        return GRTV_STATUS_OK

    # ------------------------------------------------------------------ deep learning
    @_status_call(array_result=True)
    def resizeImage3D(self, img3d_in, newShape, dataType=np.int16):
        """``(status, volume)``: trilinear resize to ``newShape`` (see grtv_nb.transforms.resize_volume).
        Values an integer ``dataType`` can't hold are clipped to its range with one warning per
        call giving their count."""
        from .transforms import resize_volume
        from .validate import count_out_of_range, warn_clipped

        try:
            shape = tuple(newShape)
        except TypeError:
            raise ValidationError(f"newShape must be 3 positive ints, got {newShape!r}") from None
        out = resize_volume(img3d_in, shape, dataType)
        if np.issubdtype(out.dtype, np.integer):
            vol = np.asarray(img3d_in)
            # a linear resize stays within the input's range: count only when that range does not fit
            if vol.size and count_out_of_range(np.array([np.min(vol), np.max(vol)]), out.dtype):
                n = count_out_of_range(resize_volume(vol, shape, np.float32), out.dtype)
                if n:
                    warn_clipped(n, out.size, out.dtype, "resizeImage3D")
        return GRTV_STATUS_OK, out

    @_status_call()
    def augmentImg3D(self, imageList, outputDirectory, augmentTimes=5, fileNameList=None, rotate=True,
                     rotateAngRange=2.5, deform=False, deformRate=0.25, seed=None) -> int:
        """Random rotation/deformation of aligned volumes, written as ``<prefix>.<NNNN>.raw``
        (see :func:`grtv_nb.augment.augment_volumes`; ``seed``, an addition to the original API,
        makes a run reproducible)."""
        from .augment import augment_volumes

        self._outside_sources(outputDirectory, "outputDirectory", folder=True)
        augment_volumes(
            imageList, outputDirectory, times=augmentTimes, names=list(fileNameList) if fileNameList else None,
            rotate=rotate, rotate_range_deg=rotateAngRange, deform=deform, deform_rate=deformRate, seed=seed,
        )
        return GRTV_STATUS_OK

    @_status_call()
    def closeGRTVTFSession(self) -> int:
        """Release the auto-segmentation TensorFlow model and its memory, and the cached landmarks
        of the last segmented CT (safe at any time; TensorFlow is not imported for it)."""
        from .segment import close_session

        close_session()
        return GRTV_STATUS_OK

    # ------------------------------------------------------------------ utilities
    def getSliceByLut(self, slice, wl=0, ww=2000):  # noqa: A002 - the original's argument name
        """Window/level a 2D slice to an 8-bit grey image (uint8): ``wl`` the level (centre),
        ``ww`` the width."""
        from .display import window_level

        return window_level(slice, wl, ww)

    @_status_call()
    def writeRaw(self, path, volume, dataType=np.int16) -> int:
        """Write a volume as a headerless raw file (C order, little-endian) of ``dataType``,
        atomically, never into a folder the loaded study was read from. Values an integer
        ``dataType`` can't hold are clipped with one warning per call giving their count."""
        from .rawio import write_raw

        self._outside_sources(path, "the folder of path")
        write_raw(path, volume, dataType)
        return GRTV_STATUS_OK
