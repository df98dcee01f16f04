"""Bad inputs to the reader: each gets a clear, specific error or warning naming the problem."""

import shutil
import warnings

import numpy as np
import pydicom
import pytest

from grtv_nb import open_study
from grtv_nb.errors import DicomReadError, GeometryError, GRTVError, GRTVWarning
from grtv_nb.phantom import write_phantom
from tests_support import grtv_warns


@pytest.fixture()
def small_phantom(tmp_path):
    z = (np.arange(12) - 5.5) * 3.0 + 40
    return write_phantom(tmp_path / "p", z_positions=z)


def _ct_files(folder):
    return sorted(folder.glob("CT_*.dcm"))


def test_missing_folder(tmp_path):
    with pytest.raises(DicomReadError, match="does not exist"):
        open_study(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(DicomReadError, match="empty"):
        open_study(tmp_path)


def test_folder_of_non_dicom_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(DicomReadError, match="no usable DICOM") as exc:
        open_study(tmp_path)
    assert "notes.txt" in str(exc.value)


def test_truncated_slice_is_skipped_with_a_warning_naming_it(small_phantom):
    f = _ct_files(small_phantom)[5]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.warns(GRTVWarning) as rec:
        st = open_study(small_phantom)
    msgs = " ".join(str(w.message) for w in rec)
    assert f.name in msgs
    assert st.grid.shape[0] == 11
    assert "gap" in msgs  # the missing slice is reported as a gap


def test_short_pixel_data_is_refused_after_slices_of_the_same_format(small_phantom):
    # slices whose format elements (matrix, bits, rescale, transfer syntax) repeat the previous
    # slice's bytes are checked once (grtv_nb.dicom.image): the pixel data length is still checked
    # on each, a consistent file whose PixelData is one row short is left out, named
    f = _ct_files(small_phantom)[5]
    ds = pydicom.dcmread(f)
    ds.PixelData = ds.PixelData[: -2 * int(ds.Columns)]
    ds.save_as(f)
    with pytest.warns(GRTVWarning) as rec:
        st = open_study(small_phantom)
    msgs = " ".join(str(w.message) for w in rec)
    assert f.name in msgs and "PixelData" in msgs
    assert st.grid.shape[0] == 11


def test_non_dicom_file_among_dicom_is_skipped(small_phantom):
    (small_phantom / "README.txt").write_text("not dicom")
    with pytest.warns(GRTVWarning, match="README.txt"):
        st = open_study(small_phantom)
    assert st.grid.shape[0] == 12


def test_missing_slice_is_reported(small_phantom):
    _ct_files(small_phantom)[4].unlink()
    with grtv_warns("irregular slice gaps", r"only 11 are present \(1 missing\)"):
        st = open_study(small_phantom)
    assert st.grid.shape[0] == 11
    assert not st.grid.uniform_z


def test_duplicate_slice_position_is_reported(small_phantom):
    f = _ct_files(small_phantom)[3]
    ds = pydicom.dcmread(f)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(small_phantom / "dup.dcm")
    with pytest.warns(GRTVWarning, match="duplicate the position"):
        st = open_study(small_phantom)
    assert st.grid.shape[0] == 12


def test_gantry_tilt_is_refused(small_phantom):
    for i, f in enumerate(_ct_files(small_phantom)):
        ds = pydicom.dcmread(f)
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ipp[1] += 0.5 * i  # slices shift in y as z increases: a tilted gantry
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
        ds.save_as(f)
    with pytest.raises(GeometryError, match="gantry-tilted"):
        open_study(small_phantom)


def test_mixed_orientations_are_refused(small_phantom):
    f = _ct_files(small_phantom)[2]
    ds = pydicom.dcmread(f)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(f)
    with pytest.raises(GeometryError, match="orientations"):
        open_study(small_phantom)


def test_rtstruct_with_another_frame_of_reference(small_phantom):
    f = small_phantom / "RS_phantom.dcm"
    ds = pydicom.dcmread(f)
    other = pydicom.uid.generate_uid()
    ds.FrameOfReferenceUID = other
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = other
    for item in ds.StructureSetROISequence:
        item.ReferencedFrameOfReferenceUID = other
    ds.save_as(f)
    with pytest.warns(GRTVWarning, match="frame of reference"):
        st = open_study(small_phantom)
    assert st.volume_cc("BODY") == 0.0


def test_contour_with_fewer_than_three_points(small_phantom):
    f = small_phantom / "RS_phantom.dcm"
    ds = pydicom.dcmread(f)
    c = ds.ROIContourSequence[0].ContourSequence[0]
    c.ContourData = list(c.ContourData)[:6]
    c.NumberOfContourPoints = 2
    ds.save_as(f)
    with pytest.warns(GRTVWarning, match="fewer than 3 points"):
        st = open_study(small_phantom)
    assert st.volume_cc("BODY") > 0


def test_rtdose_without_image_series(small_phantom, tmp_path):
    d = tmp_path / "doseonly"
    d.mkdir()
    shutil.copy(small_phantom / "RD_phantom.dcm", d)
    with pytest.warns(GRTVWarning, match="no image series"):
        st = open_study(d)
    assert st.attrs["reference_grid"] == "dose"
    assert not st.has_image and st.has_dose
    assert float(st.ds["dose"].max()) > 50


def test_rtstruct_alone_has_no_grid(small_phantom, tmp_path):
    d = tmp_path / "rsonly"
    d.mkdir()
    shutil.copy(small_phantom / "RS_phantom.dcm", d)
    with pytest.raises(GRTVError, match="no image series and no RTDOSE"):
        open_study(d)


def test_incomplete_series_with_dose_uses_the_dose_grid(small_phantom):
    for f in _ct_files(small_phantom)[1:]:
        f.unlink()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        st = open_study(small_phantom)
    assert st.attrs["reference_grid"] == "dose"
    assert any("reference grid" in str(w.message) for w in rec)
    assert st.volume_cc("Lung_L") > 0
