"""Analytical shapes written as RTSTRUCT onto a CT grid: rasterised volumes against closed-form
volumes (within 1% for shapes over 10 cc), holes stay holes, contours between slices."""

import warnings

import numpy as np
import pytest

from grtv_nb import open_study
from grtv_nb.dicom.common import PatientStudy, save_atomic
from grtv_nb.dicom.rtstruct import ROI, ImageReference, build_rtstruct
from grtv_nb.phantom import default_slices, write_phantom


def circle(cx, cy, r, z, n=180):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


@pytest.fixture(scope="module")
def shapes_study(tmp_path_factory):
    folder = write_phantom(tmp_path_factory.mktemp("shapes") / "ct", with_struct=False, with_dose=False)
    import pydicom

    first = pydicom.dcmread(sorted(folder.glob("CT_*.dcm"))[0])
    ps = PatientStudy.from_dataset(first)
    z = default_slices()
    rois = []
    # sphere r=30 centred at (10, -5, 3) with contours 1.2 mm above each slice plane (between slices)
    loops = []
    for zk in z + 1.2:
        h = zk - 3.0
        if abs(h) < 30:
            loops.append(circle(10, -5, np.sqrt(30**2 - h**2), zk))
    rois.append(ROI("Sphere", 1, (255, 0, 0), "ORGAN", loops, "CLOSED_PLANAR"))
    # cylinder r=25, 60 mm long (z -30..30)
    loops = [circle(-60.3, 10.7, 25, zk) for zk in z if -30 < zk < 30]  # generic placement on the lattice
    rois.append(ROI("Cylinder", 2, (0, 255, 0), "ORGAN", loops, "CLOSED_PLANAR"))
    # torus R=45, r=15 around (50, 0, -40): annuli (outer + inner loop) on each plane
    loops = []
    for zk in z:
        h = zk + 40
        if abs(h) < 15:
            w = np.sqrt(15**2 - h**2)
            loops.append(circle(50, 0, 45 + w, zk))
            loops.append(circle(50, 0, 45 - w, zk)[::-1])
    rois.append(ROI("Torus", 3, (0, 0, 255), "ORGAN", loops, "CLOSED_PLANAR"))
    ref = ImageReference(str(first.SeriesInstanceUID), str(first.SOPClassUID), [])
    save_atomic(build_rtstruct(rois, ps, ref), folder / "RS_shapes.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_study(folder)


def test_sphere_between_slices(shapes_study):
    v = shapes_study.volume_cc("Sphere")
    assert v == pytest.approx(4 / 3 * np.pi * 30**3 / 1000, rel=0.01)


def test_cylinder(shapes_study):
    assert shapes_study.volume_cc("Cylinder") == pytest.approx(np.pi * 25**2 * 60 / 1000, rel=0.01)


def test_torus_volume_and_hole(shapes_study):
    st = shapes_study
    assert st.volume_cc("Torus") == pytest.approx(2 * np.pi**2 * 45 * 15**2 / 1000, rel=0.01)
    m = st.mask("Torus")
    iz = int(np.argmin(np.abs(st.grid.z + 40)))
    ix = int(np.argmin(np.abs(st.grid.x - 50)))
    iy = int(np.argmin(np.abs(st.grid.y - 0)))
    assert not m[iz, iy, ix]  # the hole of the ring stays empty
    assert m[iz, iy, int(np.argmin(np.abs(st.grid.x - 95)))]  # the ring itself is filled
