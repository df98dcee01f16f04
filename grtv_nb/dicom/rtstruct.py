"""RT Structure Set: reading ROIs (name, number, colour, type, contours) and writing a new one.

Attributes mapped (reading)
---------------------------
- StructureSetROISequence: ROINumber, ROIName, ReferencedFrameOfReferenceUID (ROI order = the
  order of this sequence; it defines ``roi_index``).
- ROIContourSequence: ReferencedROINumber, ROIDisplayColor, ContourSequence (ContourGeometricType,
  ContourData). CLOSED_PLANAR loops are kept for rasterisation; POINT and OPEN_PLANAR data are
  kept but never filled.
- RTROIObservationsSequence: RTROIInterpretedType, ROIObservationLabel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pydicom

from ..errors import warn

_DEFAULT_COLORS = [
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
    (255, 128, 0), (128, 0, 255), (0, 128, 255), (255, 0, 128), (128, 255, 0), (0, 255, 128),
]


def default_color(i: int) -> tuple[int, int, int]:
    return _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)]


@dataclass
class ROI:
    """One structure.

    Attributes
    ----------
    name : str
        ROIName.
    number : int
        ROINumber (unique within the structure set).
    color : (r, g, b)
        ROIDisplayColor, 0..255.
    roi_type : str
        RTROIInterpretedType ("EXTERNAL", "ORGAN", "PTV", ...; "" when absent).
    contours : list of (N, 3) float arrays
        CLOSED_PLANAR loops in patient coordinates (mm).
    geometric_type : str
        "CLOSED_PLANAR", "POINT", "OPEN_PLANAR", "MIXED", "MASK" (defined from a mask) or "" (empty).
    other_data : list of (N, 3) arrays
        POINT / OPEN_PLANAR contour data (listed, never filled).
    frame_of_reference_uid : str
    source : str
        "RTSTRUCT", "mask" (setNewROI) or "auto" (predNewROI).
    """

    name: str
    number: int
    color: tuple[int, int, int]
    roi_type: str = ""
    contours: list[np.ndarray] = field(default_factory=list)
    geometric_type: str = ""
    other_data: list[np.ndarray] = field(default_factory=list)
    frame_of_reference_uid: str = ""
    source: str = "RTSTRUCT"
    observation_label: str = ""

    @property
    def fillable(self) -> bool:
        return self.geometric_type in ("CLOSED_PLANAR", "MIXED", "MASK")


def _color(v, i: int) -> tuple[int, int, int]:
    try:
        c = [int(round(float(x))) for x in v]
        if len(c) == 3:
            return tuple(int(np.clip(x, 0, 255)) for x in c)  # type: ignore[return-value]
    except (TypeError, ValueError):
        pass
    return default_color(i)


def read_rois(ds: pydicom.Dataset, *, source_name: str = "RTSTRUCT", report=None) -> list[ROI]:
    """Read every ROI of an RTSTRUCT dataset (contours in patient mm)."""
    report = report or warn
    top_for = str(ds.get("FrameOfReferenceUID", "") or "")
    if not top_for:
        for item in ds.get("ReferencedFrameOfReferenceSequence", []):
            top_for = str(item.get("FrameOfReferenceUID", "") or "")
            if top_for:
                break
    rois: dict[int, ROI] = {}
    order: list[int] = []
    for i, item in enumerate(ds.get("StructureSetROISequence", [])):
        num = int(item.get("ROINumber", i + 1))
        if num in rois:
            report(f"{source_name}: ROINumber {num} is used twice; the second ROI '{item.get('ROIName', '')}' "
                   "was renumbered")
            num = max(rois) + 1
        name = str(item.get("ROIName", "") or f"ROI_{num}").strip()
        rois[num] = ROI(
            name=name,
            number=num,
            color=default_color(i),
            frame_of_reference_uid=str(item.get("ReferencedFrameOfReferenceUID", "") or top_for),
        )
        order.append(num)
    for item in ds.get("ROIContourSequence", []):
        num = int(item.get("ReferencedROINumber", -1))
        roi = rois.get(num)
        if roi is None:
            report(f"{source_name}: contours for ROINumber {num}, which StructureSetROISequence does not define, "
                   "were ignored")
            continue
        if "ROIDisplayColor" in item:
            roi.color = _color(item.ROIDisplayColor, order.index(num))
        kinds = set()
        for c in item.get("ContourSequence", []):
            gtype = str(c.get("ContourGeometricType", "CLOSED_PLANAR") or "CLOSED_PLANAR").upper()
            data = c.get("ContourData")
            if data is None:
                continue
            pts = np.asarray([float(x) for x in data], dtype=np.float64)
            if pts.size % 3:
                report(f"{source_name}: ROI '{roi.name}': a contour has {pts.size} coordinates (not a multiple of "
                       "3) and was ignored")
                continue
            pts = pts.reshape(-1, 3)
            kinds.add(gtype)
            if gtype == "CLOSED_PLANAR":
                roi.contours.append(pts)
            else:
                roi.other_data.append(pts)
        if len(kinds) == 1:
            roi.geometric_type = kinds.pop()
        elif kinds:
            roi.geometric_type = "MIXED" if "CLOSED_PLANAR" in kinds else "POINT"
    for item in ds.get("RTROIObservationsSequence", []):
        roi = rois.get(int(item.get("ReferencedROINumber", -1)))
        if roi is not None:
            roi.roi_type = str(item.get("RTROIInterpretedType", "") or "").strip()
            roi.observation_label = str(item.get("ROIObservationLabel", "") or "")
    return [rois[n] for n in order]
