"""Choosing what belongs together in a folder: several image series, per-beam doses summed."""

import shutil
import warnings

import numpy as np
import pydicom
import pytest

from grtv_nb import open_study
from grtv_nb.errors import GRTVWarning
from grtv_nb.phantom import write_phantom


@pytest.fixture()
def two_series(tmp_path):
    z = (np.arange(10) - 4.5) * 3.0 + 40
    a = write_phantom(tmp_path / "a", z_positions=z)
    b = write_phantom(tmp_path / "b", z_positions=z + 200, with_struct=False, with_dose=False)
    for i, f in enumerate(sorted(b.glob("CT_*.dcm"))):  # a second, larger series of another patient
        shutil.copy(f, a / f"OTHER_{i}.dcm")
    for i in range(5):
        ds = pydicom.dcmread(sorted(b.glob("CT_*.dcm"))[0])
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], 300 + 3 * i]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(a / f"OTHER_extra_{i}.dcm")
    return a


def test_picks_the_series_the_rtstruct_references(two_series):
    with pytest.warns(GRTVWarning, match="2 image series found; using .*referenced by the RTSTRUCT"):
        st = open_study(two_series)
    assert st.grid.shape[0] == 10
    assert st.volume_cc("Lung_L") > 0


def test_explicit_series_choice(two_series):
    other = pydicom.dcmread(two_series / "OTHER_0.dcm").SeriesInstanceUID
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = open_study(two_series, series_uid=other)
    assert st.grid.shape[0] == 15


def test_beam_doses_of_one_plan_are_summed(tmp_path):
    z = (np.arange(12) - 5.5) * 3.0 + 45
    folder = write_phantom(tmp_path / "p", z_positions=z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = open_study(folder)
    rd = pydicom.dcmread(folder / "RD_phantom.dcm")
    plan_uid = pydicom.uid.generate_uid()
    pix = rd.pixel_array.astype(np.uint32)
    parts = [pix // 3, pix // 3, pix - 2 * (pix // 3)]
    (folder / "RD_phantom.dcm").unlink()
    for i, part in enumerate(parts):
        ds = rd.copy()
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.DoseSummationType = "BEAM"
        item = pydicom.Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
        item.ReferencedSOPInstanceUID = plan_uid
        ds.ReferencedRTPlanSequence = [item]
        ds.PixelData = part.astype(np.uint32).tobytes()
        ds.save_as(folder / f"RD_beam{i}.dcm")
    with pytest.warns(GRTVWarning, match="summed 3 per-beam RTDOSE"):
        st = open_study(folder)
    assert np.abs(st.ds["dose"].values - ref.ds["dose"].values).max() < 1e-3
    assert any("summed 3" in n for n in st.notes)
