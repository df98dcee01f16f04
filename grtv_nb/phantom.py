"""The built-in phantom patient: an analytical torso written as real DICOM-RT files.

Anatomy (patient coordinates, mm, DICOM LPS: +x patient left, +y posterior, +z superior):

========== =============================================== ======
structure  shape                                           HU
========== =============================================== ======
BODY       elliptic cylinder, semi-axes 160 x 110           fat -100 (12 mm layer), muscle 40
Lung_L/R   ellipsoids at x = +-75, y 0, z 60 (48, 62, 55)  -820
Spine      ring around the canal, centre (0, 71): r 20/10  bone 700 (ROI with a hole)
SpinalCanal disc r 10 at (0, 71)                           CSF 15
Liver      ellipsoid at (-60, -20, -40), semi (60, 45, 45) 60
Kidney_L/R ellipsoids at (+-62, 55, -55), semi (22, 18, 32) 150
Stomach    ellipsoid at (55, -25, -20), semi (35, 30, 30)  30, gas -950 where y < -35
PTV        sphere r 20 at (70, 5, 50) inside the left lung 30
========== =============================================== ======

The HU volume is evaluated at each voxel centre from these formulas (not from the contours), and
the RTSTRUCT holds polygon cross-sections (96 points) of the same shapes, so rasterised volumes
can be checked against analytical volumes. PTV contours lie 1 mm above the CT slice planes
(between slices: they must be matched to the nearest slice). The Spine ROI has a hole.

The RTDOSE comes from a 3-field plan (gantry 0, 120, 240 deg, 60 mm square fields with 4 mm
penumbra, exponential depth attenuation from the body surface) converging on the PTV centre,
normalised to 60 Gy there, on a 4 mm grid whose origin is offset from the image grid and which
does not cover the whole body (zero outside).

ROI order (the ``roi_index``): BODY, Spine, SpinalCanal, Liver, Lung_R, Lung_L, Kidney_R, Kidney_L,
Stomach, PTV — so the original's sample 4 (index 0 = body, 5 = left lung) runs unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

from .errors import ValidationError
from .fileio import replace_folder

#: ImageOrientationPatient of the standard patient positions (axial acquisitions).
PATIENT_POSITIONS: dict[str, tuple[float, ...]] = {
    "HFS": (1, 0, 0, 0, 1, 0),
    "HFP": (-1, 0, 0, 0, -1, 0),
    "FFS": (-1, 0, 0, 0, 1, 0),
    "FFP": (1, 0, 0, 0, -1, 0),
    "HFDL": (0, -1, 0, 1, 0, 0),
    "HFDR": (0, 1, 0, -1, 0, 0),
    "FFDL": (0, 1, 0, 1, 0, 0),
    "FFDR": (0, -1, 0, -1, 0, 0),
}

BODY_AB = (160.0, 110.0)
FAT_MM = 12.0
ELLIPSOIDS = {
    # name: (centre, semi-axes, HU)
    "Lung_R": ((-75.0, 0.0, 60.0), (48.0, 62.0, 55.0), -820),
    "Lung_L": ((75.0, 0.0, 60.0), (48.0, 62.0, 55.0), -820),
    "Liver": ((-60.0, -20.0, -40.0), (60.0, 45.0, 45.0), 60),
    "Kidney_R": ((-62.0, 55.0, -55.0), (22.0, 18.0, 32.0), 150),
    "Kidney_L": ((62.0, 55.0, -55.0), (22.0, 18.0, 32.0), 150),
    "Stomach": ((55.0, -25.0, -20.0), (35.0, 30.0, 30.0), 30),
    "PTV": ((70.0, 5.0, 50.0), (20.0, 20.0, 20.0), 30),
}
SPINE_CENTRE = (0.0, 71.0)
SPINE_R, CANAL_R = 20.0, 10.0
STOMACH_GAS_Y = -35.0
PTV_Z_OFFSET = 1.0
ROI_ORDER = [
    ("BODY", (0, 200, 0), "EXTERNAL"),
    ("Spine", (255, 255, 200), "ORGAN"),
    ("SpinalCanal", (255, 255, 0), "ORGAN"),
    ("Liver", (160, 80, 40), "ORGAN"),
    ("Lung_R", (0, 160, 255), "ORGAN"),
    ("Lung_L", (0, 80, 255), "ORGAN"),
    ("Kidney_R", (200, 0, 100), "ORGAN"),
    ("Kidney_L", (255, 0, 150), "ORGAN"),
    ("Stomach", (255, 150, 0), "ORGAN"),
    ("PTV", (255, 0, 0), "PTV"),
]
BEAM_ANGLES = (0.0, 120.0, 240.0)
FIELD_HALF, PENUMBRA, MU = 30.0, 4.0, 0.005
PRESCRIPTION_GY = 60.0


def hu_at(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Analytical HU of the phantom at patient points (broadcast arrays)."""
    x, y, z = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, y, z)))
    a, b = BODY_AB
    hu = np.full(x.shape, -1000.0)
    body = (x / a) ** 2 + (y / b) ** 2 <= 1
    hu[body] = -100
    inner = (x / (a - FAT_MM)) ** 2 + (y / (b - FAT_MM)) ** 2 <= 1
    hu[inner] = 40
    for name in ("Liver", "Kidney_R", "Kidney_L", "Stomach", "Lung_R", "Lung_L", "PTV"):
        c, s, v = ELLIPSOIDS[name]
        inside = ((x - c[0]) / s[0]) ** 2 + ((y - c[1]) / s[1]) ** 2 + ((z - c[2]) / s[2]) ** 2 <= 1
        hu[inside] = v
        if name == "Stomach":
            hu[inside & (y < STOMACH_GAS_Y)] = -950
    r2 = (x - SPINE_CENTRE[0]) ** 2 + (y - SPINE_CENTRE[1]) ** 2
    hu[r2 <= SPINE_R**2] = 700
    hu[r2 <= CANAL_R**2] = 15
    return hu


def _entry_depth(px, py, ux, uy):
    """Distance from the body surface to each point along the beam direction (ux, uy)."""
    a, b = BODY_AB
    # solve |(p - t u)| on ellipse for t > 0 (backwards along the beam)
    A = (ux / a) ** 2 + (uy / b) ** 2
    B = -2 * ((px * ux) / a**2 + (py * uy) / b**2)
    C = (px / a) ** 2 + (py / b) ** 2 - 1
    disc = np.maximum(B * B - 4 * A * C, 0)
    t = (-B + np.sqrt(disc)) / (2 * A)
    return np.maximum(t, 0)


def dose_at(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Analytical dose (Gy) of the phantom's 3-field plan at patient points."""
    x, y, z = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, y, z)))
    c = ELLIPSOIDS["PTV"][0]

    def profile(t):
        return 0.5 * (erf((FIELD_HALF - t) / PENUMBRA) + erf((FIELD_HALF + t) / PENUMBRA))

    def raw(px, py, pz):
        tot = np.zeros(np.shape(px))
        for ang in BEAM_ANGLES:
            th = np.radians(ang)
            ux, uy = np.sin(th), -np.cos(th)  # gantry 0: beam from anterior (-y) travelling to +y
            rx, ry = px - c[0], py - c[1]
            lateral = rx * uy - ry * ux
            depth = _entry_depth(px, py, ux, uy)
            tot += profile(lateral) * profile(pz - c[2]) * np.exp(-MU * depth)
        return tot

    norm = PRESCRIPTION_GY / raw(np.array(c[0]), np.array(c[1]), np.array(c[2]))
    inside = (x / BODY_AB[0]) ** 2 + (y / BODY_AB[1]) ** 2 <= 1
    return np.where(inside, raw(x, y, z) * norm, 0.0)


def _ellipse(cx, cy, ax, ay, n=96):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


def roi_contours(z_planes: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Analytical contour loops (N, 3) of every phantom ROI on the given slice planes."""
    out: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in ROI_ORDER}

    def add(name, xy, z):
        out[name].append(np.column_stack([xy, np.full(len(xy), z)]))

    for z in z_planes:
        add("BODY", _ellipse(0, 0, *BODY_AB, n=128), z)
        add("Spine", _ellipse(*SPINE_CENTRE, SPINE_R, SPINE_R), z)
        add("Spine", _ellipse(*SPINE_CENTRE, CANAL_R, CANAL_R)[::-1], z)
        add("SpinalCanal", _ellipse(*SPINE_CENTRE, CANAL_R, CANAL_R), z)
        for name in ("Liver", "Lung_R", "Lung_L", "Kidney_R", "Kidney_L", "Stomach", "PTV"):
            c, s, _ = ELLIPSOIDS[name]
            zz = z + PTV_Z_OFFSET if name == "PTV" else z
            f = 1 - ((zz - c[2]) / s[2]) ** 2
            if f <= 0.02:
                continue
            r = np.sqrt(f)
            add(name, _ellipse(c[0], c[1], s[0] * r, s[1] * r), zz)
    return out


def default_slices(n: int = 64, spacing: float = 3.0) -> np.ndarray:
    """Slice positions (mm) of the default phantom: ``n`` slices centred on z = 0."""
    return (np.arange(n) - (n - 1) / 2) * spacing


def write_phantom(
    folder: str | os.PathLike,
    patient_position: str = "HFS",
    *,
    z_positions: np.ndarray | None = None,
    pixel_mm: float = 2.0,
    nx: int = 192,
    ny: int = 144,
    dose_grid_mm: float = 4.0,
    with_dose: bool = True,
    with_struct: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the phantom patient as DICOM files (CT slices, RTSTRUCT, RTDOSE) into ``folder``.

    Parameters
    ----------
    folder : path
        Created if needed; must be missing or empty, or (with ``overwrite``) hold a previous
        phantom or grtv_nb export, whose files are replaced (:func:`grtv_nb.fileio.replace_folder`).
    patient_position : str
        One of :data:`PATIENT_POSITIONS` (HFS, HFP, FFS, FFP, HFDL, HFDR, FFDL, FFDR). The same
        physical patient is written with that position's image orientation.
    z_positions : array, optional
        Slice positions (mm); non-uniform spacing allowed. Default: 64 slices, 3 mm apart.
    pixel_mm, nx, ny : in-plane pixel size and the number of pixels along patient x and y.

    Returns
    -------
    Path of the folder.
    """
    from .dicom.common import PatientStudy, new_uid, save_atomic
    from .dicom.image import build_image_slice
    from .dicom.rtdose import build_rtdose
    from .dicom.rtstruct import ROI, ImageReference, build_rtstruct
    from .geometry import Grid

    pos = patient_position.upper()
    if pos not in PATIENT_POSITIONS:
        raise ValidationError(f"patient_position '{patient_position}' is not one of {', '.join(PATIENT_POSITIONS)}")
    folder = Path(folder)
    z = default_slices() if z_positions is None else np.sort(np.asarray(z_positions, dtype=np.float64))
    tag = (pos, tuple(np.round(z, 3)), pixel_mm, nx, ny, dose_grid_mm)
    ps = PatientStudy(
        patient_name="PHANTOM^GRTV", patient_id="GRTVPHANTOM", study_uid=new_uid("study", tag),
        frame_of_reference_uid=new_uid("for", tag), study_description="grtv_nb phantom",
        study_date="20260101", study_time="120000",
    )
    series_uid = new_uid("ct", tag)
    iop = np.array(PATIENT_POSITIONS[pos], dtype=np.float64)
    u, v = iop[:3], iop[3:]
    n = np.cross(u, v)
    xs = (np.arange(nx) - (nx - 1) / 2) * pixel_mm
    ys = (np.arange(ny) - (ny - 1) / 2) * pixel_mm
    cols = nx if abs(u[0]) > 0.5 else ny
    rows = ny if abs(v[1]) > 0.5 else nx
    # first pixel position: the corner of the FOV where the row/column directions start
    corner_x = xs[0] if (u[0] > 0.5 or v[0] > 0.5) else xs[-1]
    corner_y = ys[0] if (u[1] > 0.5 or v[1] > 0.5) else ys[-1]
    with replace_folder(folder, "folder", overwrite=overwrite, kind="phantom") as tmp:
        slices = []
        jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        order = np.argsort(z * n[2])  # storage order along the normal; instance numbers follow it
        for inst, k in enumerate(order, start=1):
            ipp = np.array([corner_x, corner_y, z[k]])
            px = ipp[0] + ii * pixel_mm * u[0] + jj * pixel_mm * v[0]
            py = ipp[1] + ii * pixel_mm * u[1] + jj * pixel_mm * v[1]
            hu = hu_at(px, py, z[k])
            uid = new_uid("ct-slice", tag, k)
            thick = float(np.median(np.diff(z))) if len(z) > 1 else 3.0
            ds = build_image_slice(
                hu, ps=ps, series_uid=series_uid, sop_uid=uid, position=ipp, orientation=iop,
                pixel_spacing=(pixel_mm, pixel_mm), slice_thickness=thick, instance_number=inst,
                patient_position=pos, series_description=f"grtv_nb phantom {pos}", body_part="CHEST",
            )
            save_atomic(ds, tmp / f"CT_{inst:04d}.dcm")
            slices.append((float(z[k]), uid))
        slices.sort()
        if with_struct:
            contours = roi_contours(z)
            rois = [ROI(name=nm, number=i + 1, color=col, roi_type=typ, contours=contours[nm],
                        geometric_type="CLOSED_PLANAR", source="RTSTRUCT")
                    for i, (nm, col, typ) in enumerate(ROI_ORDER)]
            ref = ImageReference(series_uid, "1.2.840.10008.5.1.4.1.1.2", slices)
            rs = build_rtstruct(rois, ps, ref, sop_uid=new_uid("rs", tag), series_uid=new_uid("rs-series", tag),
                                label="PHANTOM")
            save_atomic(rs, tmp / "RS_phantom.dcm")
        if with_dose:
            d = dose_grid_mm
            gx = np.arange(-150.7, 150.0, d)
            gy = np.arange(-108.3, 110.0, d)
            gz = np.arange(max(z[0], -80.2), min(z[-1], 91.8) + 1e-6, d)
            dgrid = Grid(gx, gy, gz, frame_of_reference_uid=ps.frame_of_reference_uid, slice_thickness=d)
            Z, Y, X = np.meshgrid(gz, gy, gx, indexing="ij")
            dose = dose_at(X, Y, Z)
            rd = build_rtdose(dose, dgrid, ps, sop_uid=new_uid("rd", tag), series_uid=new_uid("rd-series", tag),
                              summation_type="PLAN", comment="grtv_nb phantom 3-field plan")
            save_atomic(rd, tmp / "RD_phantom.dcm")
    return folder


def analytic_volume_cc(name: str, z_positions: np.ndarray | None = None) -> float:
    """Volume (cc) of an ROI as represented on the slices: the exact cross-section areas of the
    analytical shape times each slice's thickness (what an ideal rasteriser would give)."""
    z = default_slices() if z_positions is None else np.sort(np.asarray(z_positions, dtype=np.float64))
    from .geometry import Grid

    w = Grid(np.arange(2.0), np.arange(2.0), z).slice_weights()
    area = np.zeros(len(z))
    for k, zk in enumerate(z):
        if name == "BODY":
            area[k] = np.pi * BODY_AB[0] * BODY_AB[1]
        elif name == "Spine":
            area[k] = np.pi * (SPINE_R**2 - CANAL_R**2)
        elif name == "SpinalCanal":
            area[k] = np.pi * CANAL_R**2
        else:
            c, s, _ = ELLIPSOIDS[name]
            zz = zk + PTV_Z_OFFSET if name == "PTV" else zk
            f = 1 - ((zz - c[2]) / s[2]) ** 2
            area[k] = np.pi * s[0] * s[1] * f if f > 0.02 else 0.0
    return float((area * w).sum() / 1000.0)


def default_phantom_dir() -> Path:
    """A cached copy of the default (HFS) phantom, written on first use."""
    base = Path(os.environ.get("GRTV_NB_CACHE", Path.home() / ".cache" / "grtv_nb"))
    d = base / "phantom-HFS-v1"
    if not (d / "RS_phantom.dcm").exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        write_phantom(d, overwrite=True)
    return d


# ----------------------------------------------------------------------------------------------
# analytic DVH cases (Nelms et al., Med. Phys. 42(8), 2015): shapes, linear dose, exact DVHs
# ----------------------------------------------------------------------------------------------
#: Analytic shapes: kind and size (mm). Centred at the case's centre; "lying" shapes have their
#: axis along patient x. Cones: base radius R at the -H/2 end, apex at +H/2.
ANALYTIC_SHAPES: dict[str, dict] = {
    "sphere": {"kind": "sphere", "R": 12.0},
    "sphere_small": {"kind": "sphere", "R": 4.0},
    "cylinder": {"kind": "cylinder", "R": 10.0, "H": 24.0, "axis": "z"},
    "cylinder_lying": {"kind": "cylinder", "R": 10.0, "H": 24.0, "axis": "x"},
    "cone": {"kind": "cone", "R": 12.0, "H": 24.0, "axis": "z"},
    "cone_lying": {"kind": "cone", "R": 12.0, "H": 24.0, "axis": "x"},
    "box": {"kind": "box", "size": (20.0, 16.0, 24.0)},
    "shell": {"kind": "shell", "R": 15.0, "r": 8.0},
}
#: Dose of the analytic cases: ANALYTIC_D0 Gy at the shape's centre plus gradient Gy/mm.
ANALYTIC_D0 = 30.0
ANALYTIC_GRADIENT = 1.0
_LOOP_POINTS = 720


def _cone_r(t: np.ndarray, R: float, H: float) -> np.ndarray:
    """Radius of the cone at axial position t (centre 0, base at -H/2)."""
    return np.where(np.abs(t) <= H / 2, R * (H / 2 - t) / H, 0.0)


def section_area(shape: str, axis: str, s: np.ndarray) -> np.ndarray:
    """Exact area (mm^2) of the shape's cross-section by the plane at distance ``s`` (mm) from its
    centre, perpendicular to patient ``axis`` ("x", "y" or "z")."""
    from scipy.integrate import quad

    p = ANALYTIC_SHAPES[shape]
    s = np.asarray(s, dtype=np.float64)
    k = p["kind"]
    if k == "sphere":
        return np.pi * np.maximum(p["R"] ** 2 - s**2, 0)
    if k == "shell":
        return np.pi * (np.maximum(p["R"] ** 2 - s**2, 0) - np.maximum(p["r"] ** 2 - s**2, 0))
    if k == "box":
        i = "xyz".index(axis)
        a = [v for j, v in enumerate(p["size"]) if j != i]
        return np.where(np.abs(s) <= p["size"][i] / 2, a[0] * a[1], 0.0)
    R, H = p["R"], p["H"]
    if k == "cylinder":
        if axis == p["axis"]:
            return np.where(np.abs(s) <= H / 2, np.pi * R * R, 0.0)
        return 2 * np.sqrt(np.maximum(R * R - s**2, 0)) * H
    # cone
    if axis == p["axis"]:
        return np.pi * _cone_r(s, R, H) ** 2

    def one(v: float) -> float:
        if abs(v) >= R:
            return 0.0
        t_end = H / 2 - H * abs(v) / R  # r(t) > |v| for t < t_end
        return quad(lambda t: 2 * np.sqrt(max(float(_cone_r(t, R, H)) ** 2 - v * v, 0.0)), -H / 2, t_end)[0]

    return np.array([one(v) for v in s.ravel()]).reshape(s.shape)


def _extent(shape: str, axis: str) -> float:
    p = ANALYTIC_SHAPES[shape]
    if p["kind"] in ("sphere", "shell"):
        return p["R"]
    if p["kind"] == "box":
        return p["size"]["xyz".index(axis)] / 2
    return p["H"] / 2 if axis == p["axis"] else p["R"]


@dataclass(frozen=True)
class AnalyticDVH:
    """The exact DVH of a shape in a linear dose ``D0 + g * s`` (s along ``axis`` from the centre).

    ``s`` and ``cum`` tabulate the volume (cc) beyond each s (fine enough for 1e-5 accuracy).
    """

    shape: str
    axis: str
    d0: float
    gradient: float
    s: np.ndarray
    cum: np.ndarray

    @property
    def volume_cc(self) -> float:
        return float(self.cum[0])

    def _dose(self, s: float) -> float:
        return self.d0 + self.gradient * s

    @property
    def min(self) -> float:
        return self._dose(float(self.s[np.flatnonzero(np.diff(self.cum) < 0)[0]]))

    @property
    def max(self) -> float:
        return self._dose(float(self.s[np.flatnonzero(np.diff(self.cum) < 0)[-1] + 1]))

    @property
    def mean(self) -> float:
        dv = -np.diff(self.cum)
        return self._dose(float(np.sum(0.5 * (self.s[1:] + self.s[:-1]) * dv) / np.sum(dv)))

    def dose_at_cc(self, v: float) -> float:
        """Dose (Gy) received by at least ``v`` cc."""
        return self._dose(float(np.interp(v, self.cum[::-1], self.s[::-1])))

    def dose_at_pct(self, x: float) -> float:
        return self.dose_at_cc(self.volume_cc * x / 100.0)

    def volume_at(self, dose_gy: float) -> float:
        """Volume (cc) receiving at least ``dose_gy``."""
        return float(np.interp((dose_gy - self.d0) / self.gradient, self.s, self.cum))


def analytic_dvh(shape: str, axis: str = "z", *, d0: float = ANALYTIC_D0, gradient: float = ANALYTIC_GRADIENT,
                 n: int = 40001) -> AnalyticDVH:
    """The exact DVH of ``shape`` in the dose ``d0 + gradient * s``, s along patient ``axis``."""
    if shape not in ANALYTIC_SHAPES:
        raise ValidationError(f"unknown analytic shape {shape!r}; known: {', '.join(ANALYTIC_SHAPES)}")
    e = _extent(shape, axis)
    s = np.linspace(-e, e, n)
    a = section_area(shape, axis, s) if ANALYTIC_SHAPES[shape]["kind"] != "cone" or axis == ANALYTIC_SHAPES[
        shape]["axis"] else _cone_side_areas(shape, axis, s)
    seg = 0.5 * (a[1:] + a[:-1]) * np.diff(s)
    cum = np.concatenate([np.cumsum(seg[::-1])[::-1], [0.0]]) / 1000.0
    return AnalyticDVH(shape, axis, float(d0), float(gradient), s, cum)


def _cone_side_areas(shape: str, axis: str, s: np.ndarray) -> np.ndarray:
    # the side section is smooth in s: evaluate on a coarser set and interpolate (cubic)
    from scipy.interpolate import CubicSpline

    p = ANALYTIC_SHAPES[shape]
    u = np.linspace(-p["R"], p["R"], 801)
    return np.maximum(CubicSpline(u, section_area(shape, axis, u))(s), 0.0)


def shape_loops(shape: str, z: float, centre=(0.0, 0.0, 0.0)) -> list[np.ndarray]:
    """The shape's cross-section loops (N, 3 patient mm) on the axial plane at ``z``."""
    p = ANALYTIC_SHAPES[shape]
    cx, cy, cz = centre
    h = z - cz
    t = np.linspace(0, 2 * np.pi, _LOOP_POINTS, endpoint=False)
    k = p["kind"]

    def circle(r):
        # vertices on a circle of the same area as the true circle (polygon area correction)
        rr = r * np.sqrt(2 * np.pi / (_LOOP_POINTS * np.sin(2 * np.pi / _LOOP_POINTS)))
        return np.column_stack([cx + rr * np.cos(t), cy + rr * np.sin(t), np.full(len(t), z)])

    def rect(hx, hy):
        return np.array([[cx - hx, cy - hy, z], [cx + hx, cy - hy, z], [cx + hx, cy + hy, z], [cx - hx, cy + hy, z]])

    if k in ("sphere", "shell"):
        out = [circle(np.sqrt(p["R"] ** 2 - h * h))] if abs(h) < p["R"] else []
        if k == "shell" and abs(h) < p["r"]:
            out.append(circle(np.sqrt(p["r"] ** 2 - h * h))[::-1])
        return out
    if k == "box":
        sx, sy, sz = p["size"]
        return [rect(sx / 2, sy / 2)] if abs(h) < sz / 2 else []
    R, H = p["R"], p["H"]
    if p["axis"] == "z":
        r = float(_cone_r(np.array(h), R, H)) if k == "cone" else (R if abs(h) < H / 2 else 0.0)
        return [circle(r)] if r > 0 and abs(h) < H / 2 else []
    if abs(h) >= R:
        return []
    if k == "cylinder":
        return [rect(H / 2, np.sqrt(R * R - h * h))]
    # lying cone, axis x: |y| <= sqrt(r(x)^2 - h^2) for x from -H/2 to where r(x) = |h|
    x_end = H / 2 - H * abs(h) / R
    xs = -H / 2 + (x_end + H / 2) * (1 - np.cos(np.linspace(0, np.pi, _LOOP_POINTS // 2))) / 2
    w = np.sqrt(np.maximum(_cone_r(xs, R, H) ** 2 - h * h, 0))
    top = np.column_stack([cx + xs, cy + w, np.full(len(xs), z)])
    bot = np.column_stack([cx + xs[::-1], cy - w[::-1], np.full(len(xs), z)])
    return [np.concatenate([top, bot[1:-1]])[::-1]]  # counter-clockwise, like the circles


@dataclass(frozen=True)
class AnalyticCase:
    """One analytic DVH case in memory: contours on planes, a dose on its grid, the exact DVH."""

    shape: str
    axis: str  # dose gradient direction ("z": SI, "y": AP)
    plane_mm: float
    dose_mm: float
    centre: tuple[float, float, float]
    planes: np.ndarray
    contours: list
    dose: np.ndarray
    dose_grid: object
    truth: AnalyticDVH

    @property
    def name(self) -> str:
        return f"{self.shape} {'SI' if self.axis == 'z' else 'AP'} planes {self.plane_mm:g} dose {self.dose_mm:g}"


def analytic_case(shape: str, *, axis: str = "z", plane_mm: float = 2.0, dose_mm: float = 2.5,
                  centre=(0.0, 0.0, 0.0), margin_mm: float = 6.0) -> AnalyticCase:
    """An analytic case: the shape's cross-sections on axial planes ``plane_mm`` apart (plane
    positions ``(k + 1/2) * plane_mm``, so slab boundaries fall on multiples of ``plane_mm``), a
    linear dose (``ANALYTIC_D0`` at the centre, ``ANALYTIC_GRADIENT`` Gy/mm along ``axis``) on a grid
    of ``dose_mm`` voxels whose origin is offset from the planes, and the exact DVH."""
    from .geometry import Grid

    if axis not in ("x", "y", "z"):
        raise ValidationError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    ex = max(_extent(shape, a) for a in "xyz") + margin_mm
    cx, cy, cz = (float(c) for c in centre)
    kz = np.arange(np.floor((cz - ex) / plane_mm), np.ceil((cz + ex) / plane_mm) + 1)
    planes = (kz + 0.5) * plane_mm
    contours = [lp for zp in planes for lp in shape_loops(shape, float(zp), (cx, cy, cz))]

    def axis_coords(c):
        return np.arange(c - ex - 0.37 * dose_mm, c + ex + dose_mm, dose_mm)

    g = Grid(axis_coords(cx), axis_coords(cy), axis_coords(cz), slice_thickness=dose_mm)
    coord = {"x": g.x - cx, "y": g.y - cy, "z": g.z - cz}[axis]
    shp = {"x": (1, 1, -1), "y": (1, -1, 1), "z": (-1, 1, 1)}[axis]
    dose = np.broadcast_to(ANALYTIC_D0 + ANALYTIC_GRADIENT * coord.reshape(shp), g.shape).astype(np.float64)
    return AnalyticCase(shape, axis, float(plane_mm), float(dose_mm), (cx, cy, cz), planes, contours,
                        np.ascontiguousarray(dose), g, analytic_dvh(shape, axis))


def write_analytic_case(folder: str | os.PathLike, case: AnalyticCase, *, with_ct: bool = True,
                        pixel_mm: float = 1.0, overwrite: bool = False) -> Path:
    """Write an :class:`AnalyticCase` as DICOM: RTSTRUCT + RTDOSE, and (``with_ct``) CT slices on
    the contour planes (water, ``pixel_mm`` pixels). Without CT the RTSTRUCT references no image,
    as DVH-only exports do."""
    from .dicom.common import PatientStudy, new_uid, save_atomic
    from .dicom.image import build_image_slice
    from .dicom.rtdose import build_rtdose
    from .dicom.rtstruct import ROI, ImageReference, build_rtstruct

    folder = Path(folder)
    tag = (case.name, case.centre, with_ct)
    ps = PatientStudy(
        patient_name="ANALYTIC^DVH", patient_id="GRTVANALYTIC", study_uid=new_uid("study", tag),
        frame_of_reference_uid=new_uid("for", tag), study_description=f"analytic {case.name}",
        study_date="20260101", study_time="120000",
    )
    g = case.dose_grid
    with replace_folder(folder, "folder", overwrite=overwrite, kind="phantom") as tmp:
        ref = None
        if with_ct:
            series_uid = new_uid("ct", tag)
            x0, x1 = g.x[0], g.x[-1]
            y0, y1 = g.y[0], g.y[-1]
            nx = int(np.ceil((x1 - x0) / pixel_mm)) + 1
            ny = int(np.ceil((y1 - y0) / pixel_mm)) + 1
            slices = []
            for inst, zp in enumerate(case.planes, start=1):
                uid = new_uid("ct-slice", tag, inst)
                ds = build_image_slice(
                    np.zeros((ny, nx)), ps=ps, series_uid=series_uid, sop_uid=uid, position=(x0, y0, float(zp)),
                    orientation=np.array([1.0, 0, 0, 0, 1, 0]), pixel_spacing=(pixel_mm, pixel_mm),
                    slice_thickness=case.plane_mm, instance_number=inst, patient_position="HFS",
                    series_description="analytic water", body_part="CHEST",
                )
                save_atomic(ds, tmp / f"CT_{inst:04d}.dcm")
                slices.append((float(zp), uid))
            ref = ImageReference(series_uid, "1.2.840.10008.5.1.4.1.1.2", slices)
        roi = ROI(name=case.shape, number=1, color=(255, 0, 0), roi_type="PTV", contours=case.contours,
                  geometric_type="CLOSED_PLANAR", source="RTSTRUCT")
        rs = build_rtstruct([roi], ps, ref, sop_uid=new_uid("rs", tag), series_uid=new_uid("rs-series", tag),
                            label="ANALYTIC", decimals=4)
        save_atomic(rs, tmp / "RS_analytic.dcm")
        rd = build_rtdose(case.dose, g, ps, sop_uid=new_uid("rd", tag), series_uid=new_uid("rd-series", tag),
                          summation_type="PLAN", comment=f"analytic {case.name}")
        save_atomic(rd, tmp / "RD_analytic.dcm")
    return folder
