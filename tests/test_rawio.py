"""Raw volume files and MetaImage headers (grtv_nb.rawio); SimpleITK, when installed, is the
independent reader of the headers."""

from __future__ import annotations

import numpy as np
import pytest

from grtv_nb.errors import GRTVWarning, ValidationError
from grtv_nb.rawio import read_mhd, read_raw, write_mhd, write_raw


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_round_trip_and_layout(tmp_path, dtype):
    rng = np.random.default_rng(0)
    vol = (rng.random((5, 7, 9)) * 200).astype(dtype)
    p = write_raw(tmp_path / "v.raw", vol, dtype)
    raw = p.read_bytes()
    assert len(raw) == vol.size * np.dtype(dtype).itemsize
    # headerless, C order (x fastest), little-endian
    assert raw == vol.astype(np.dtype(dtype).newbyteorder("<")).tobytes(order="C")
    assert np.array_equal(read_raw(p, shape=vol.shape, dtype=dtype), vol)


def test_header_lets_read_raw_find_shape_and_dtype(tmp_path):
    vol = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 50
    p = write_raw(tmp_path / "ct.raw", vol, np.int16, header=True, spacing=(2.5, 0.8, 0.9), origin=(-10, 5, 7))
    hdr = read_mhd(tmp_path / "ct.mhd")
    assert hdr["shape"] == (4, 5, 6) and hdr["dtype"] == np.int16
    assert hdr["spacing"] == (2.5, 0.8, 0.9) and hdr["origin"] == (-10.0, 5.0, 7.0)
    assert hdr["fields"]["DimSize"] == "6 5 4" and hdr["fields"]["ElementType"] == "MET_SHORT"
    got = read_raw(p)
    assert got.dtype == np.int16 and np.array_equal(got, vol)
    assert np.array_equal(read_raw(tmp_path / "ct.mhd"), vol)


def test_simpleitk_reads_the_header(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    vol = np.random.default_rng(1).integers(0, 2, (6, 8, 10)).astype(np.uint8) * 255
    write_raw(tmp_path / "m.raw", vol, np.uint8, header=True, spacing=(3.0, 1.5, 0.5), origin=(1, 2, 3))
    img = sitk.ReadImage(str(tmp_path / "m.mhd"))
    assert img.GetSize() == (10, 8, 6)
    assert img.GetSpacing() == (0.5, 1.5, 3.0)
    assert img.GetOrigin() == (3.0, 2.0, 1.0)
    assert np.array_equal(sitk.GetArrayFromImage(img), vol)


def test_conversion_rounds_and_clips(tmp_path):
    vol = np.array([[[-0.6, -0.4, 0.5, 1.5, 2.4, 300.0, -7.0]]], dtype=np.float32)
    with pytest.warns(GRTVWarning, match="3 of 7 values lie outside uint8's range 0..255"):
        got = read_raw(write_raw(tmp_path / "a.raw", vol, np.uint8), shape=vol.shape, dtype=np.uint8)
    assert got.tolist() == [[[0, 0, 1, 2, 2, 255, 0]]]
    got = read_raw(write_raw(tmp_path / "b.raw", vol, np.int16), shape=vol.shape, dtype=np.int16)
    assert got.tolist() == [[[-1, 0, 1, 2, 2, 300, -7]]]
    hu = np.array([[[-1000, 0, 3000]]], dtype=np.int16)
    with pytest.warns(GRTVWarning, match="2 of 3 values"):
        got = read_raw(write_raw(tmp_path / "c.raw", hu, np.uint8), shape=hu.shape, dtype=np.uint8)
    assert got.tolist() == [[[0, 0, 255]]]
    mask = np.array([[[True, False]]])
    assert (tmp_path / "d.raw").exists() is False
    write_raw(tmp_path / "d.raw", mask, np.uint8)
    assert (tmp_path / "d.raw").read_bytes() == b"\x01\x00"


def test_atomic_replace_and_no_leftovers(tmp_path, monkeypatch):
    import grtv_nb.rawio as rawio

    p = tmp_path / "x.raw"
    write_raw(p, np.zeros((2, 2, 2), np.int16))
    with pytest.raises(ValidationError):
        write_raw(p, np.zeros((2, 2, 2), complex))
    assert p.read_bytes() == b"\x00" * 16  # untouched

    def half_then_fail(arr, f):
        f.write(arr.tobytes()[: arr.nbytes // 2])
        raise OSError("disk full")

    monkeypatch.setattr(rawio, "_tofile", half_then_fail)
    for dtype in (np.int16, np.uint8):  # direct write and converting write
        with pytest.raises(OSError, match="disk full"):
            write_raw(p, np.ones((4, 4, 4), np.int16), dtype)
    assert p.read_bytes() == b"\x00" * 16  # the old file survives a failed write
    assert sorted(f.name for f in tmp_path.iterdir()) == ["x.raw"]


def test_bad_inputs(tmp_path):
    vol = np.zeros((2, 3, 4), np.int16)
    with pytest.raises(ValidationError, match="folder"):
        write_raw(tmp_path, vol)
    with pytest.raises(ValidationError, match="dataType"):
        write_raw(tmp_path / "a.raw", vol, np.complex64)
    with pytest.raises(ValidationError, match="3D"):
        write_raw(tmp_path / "a.raw", vol[0], header=True)
    with pytest.raises(ValidationError, match="spacing"):
        write_mhd(tmp_path / "a.mhd", (2, 3, 4), np.int16, spacing=(1, 0, 1))
    write_raw(tmp_path / "b.raw", vol)
    with pytest.raises(ValidationError, match="shape"):
        read_raw(tmp_path / "b.raw")
    with pytest.raises(ValidationError, match="bytes"):
        read_raw(tmp_path / "b.raw", shape=(2, 3, 5), dtype=np.int16)
    with pytest.raises(ValidationError, match="does not exist"):
        read_raw(tmp_path / "missing.raw", shape=(1, 1, 1))
    assert read_raw(tmp_path / "b.raw", shape=(2, 3, 4)).dtype == np.int16  # 2 bytes/voxel: int16
