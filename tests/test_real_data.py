"""Opening the real public DICOM-RT data in ../shared/data (see each folder's PROVENANCE.md)."""

import warnings

import numpy as np
import pydicom
import pytest

from grtv_nb import open_study
from grtv_nb.dicom.folder import scan_folder
from grtv_nb.errors import GRTVWarning
from tests_support import shared_case


def _open(path, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        st = open_study(path, **kw)
    return st, [str(w.message) for w in rec]


def test_dicompyler_patient_uses_dose_grid_and_matches_published_heart(shared_data):
    st, msgs = _open(shared_case(shared_data, "dicompyler-example/example_data"))
    assert st.attrs["reference_grid"] == "dose"
    assert any("1 are present" in m or "single slice" in m for m in msgs)
    assert st.grid.shape == (98, 129, 194)
    assert len(st.rois) == 10 and st.roi_names[0] == "BODY"
    # dicompyler-core's own test figure for ROI 5 Heart: 440.23 cc
    assert st.volume_cc("Heart") == pytest.approx(440.23, rel=0.01)
    assert st.roi_names[1] == "Areola" and st.volume_cc("Areola") == 0.0  # empty ROI listed
    assert float(st.ds["dose"].max()) == pytest.approx(14.68, abs=0.01)


def test_dicompyler_embedded_dvh_volumes(shared_data):
    folder = shared_case(shared_data, "dicompyler-example/example_data")
    st, _ = _open(folder)
    rd = pydicom.dcmread(folder / "rtdose.dcm")
    numbers = {r.number: r.name for r in st.rois}
    # The TPS's BODY DVH (13944 cc) covers only its dose-calculation region, not the whole outline on
    # the grid, so the EXTERNAL ROI is left out; every other ROI over 10 cc must agree.
    for item in rd.DVHSequence:
        num = int(item.DVHReferencedROISequence[0].ReferencedROINumber)
        tps_cc = float(item.DVHData[1])  # cumulative: first bin is the total volume
        ours = st.volume_cc(numbers[num])
        if tps_cc > 10 and numbers[num] != "BODY":
            # the TPS integrates on its own finer grid: small ROIs differ more on the 2.5 mm dose grid
            assert ours == pytest.approx(tps_cc, rel=0.02 if tps_cc > 100 else 0.03), numbers[num]


def test_cerr_patients_non_square_images(shared_data):
    for k in (1, 2, 3, 4):
        folder = shared_case(shared_data, f"cerr-radiomics-phantom/pat_{k}")
        st, _ = _open(folder)
        n_ct = len(list(folder.glob("DCM_IMG_*.dcm")))
        assert st.grid.shape[0] == n_ct
        assert st.ds["image"].dtype == np.int16
        assert st.roi_names == ["GTV-1"]
        assert st.volume_cc("GTV-1") > 1
        assert np.all(np.diff(st.grid.z) > 0)
    st, _ = _open(shared_case(shared_data, "cerr-radiomics-phantom/pat_1"))
    assert st.grid.shape == (60, 201, 204)


def test_headneck_sorted_by_position_not_file_order(shared_data):
    folder = shared_case(shared_data, "pycerr-headneck-ct/head_and_neck/pt_1")
    st, _ = _open(folder)
    assert st.grid.shape == (90, 511, 511)
    assert st.grid.z[0] == pytest.approx(-267.0) and st.grid.z[-1] == pytest.approx(0.0)
    first = pydicom.dcmread(folder / "IMG_00000.dcm")  # the top slice in the files
    top = first.pixel_array.astype(np.int32) * int(first.RescaleSlope) + int(first.RescaleIntercept)
    assert np.array_equal(st.ds["image"].values[-1], top)
    assert st.ds["image"].min() >= -1024


def test_jpeg2000_series_with_blank_uids(shared_data):
    folder = shared_case(shared_data, "totalsegmentator-example/example_ct_dicom")
    st, _ = _open(folder)
    assert st.grid.shape == (20, 512, 512)
    img = st.ds["image"].values
    assert img.min() == -1024 and img.max() == 1839
    assert st.grid.dz == pytest.approx(2.0)


def test_rt_utils_mock_data_partial_references(shared_data):
    st, msgs = _open(shared_case(shared_data, "rt-utils-testdata/tests/mock_data"))
    assert st.grid.shape[0] == 2
    assert any("RTSTRUCT files found" in m for m in msgs)
    assert all(st.volume_cc(i) > 0 for i in range(len(st.rois)))


def test_rt_utils_oblique_series(shared_data):
    st, msgs = _open(shared_case(shared_data, "rt-utils-testdata/tests/oriented_data"))
    assert not st.grid.axis_aligned
    assert st.grid.shape == (3, 50, 100)
    assert st.grid.dx == pytest.approx(2.5) and st.grid.dy == pytest.approx(3.5)
    assert any("info.txt" in m for m in msgs)


def test_pydicom_files_feet_first_and_foreign_references(shared_data):
    st, msgs = _open(shared_case(shared_data, "pydicom-rt-testfiles"))
    assert st.attrs["patient_position"] == "FFS"
    assert st.grid.shape == (1, 128, 128)
    assert np.all(np.diff(st.grid.x) > 0) and np.all(np.diff(st.grid.y) > 0)
    assert any("frame of reference" in m for m in msgs)
    # explicit pick of the MR series
    with pytest.warns(GRTVWarning, match="PROVENANCE.md"):  # the data's notes file is not DICOM
        scan = scan_folder(shared_data / "pydicom-rt-testfiles")
    mr = [s for s in scan.series if s.modality == "MR"][0]
    st2, _ = _open(shared_data / "pydicom-rt-testfiles", series_uid=mr.series_uid)
    assert st2.attrs["modality"] == "MR" and st2.grid.shape == (1, 64, 64)
