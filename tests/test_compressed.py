"""Compressed transfer syntaxes (RLE, JPEG 2000, JPEG-LS) decode to the same HU as the native files."""

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from grtv_nb import open_study
from grtv_nb.phantom import write_phantom


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_compressed_series_reads_like_native(tmp_path, syntax):
    z = (np.arange(6) - 2.5) * 3.0
    folder = write_phantom(tmp_path / "p", z_positions=z, with_dose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        native = open_study(folder)
    for f in sorted(folder.glob("CT_*.dcm")):
        ds = pydicom.dcmread(f)
        try:
            ds.compress(syntax)
        except (RuntimeError, NotImplementedError) as exc:
            pytest.skip(f"no encoder for {syntax.name} here: {exc}")
        ds.save_as(f)
    assert pydicom.dcmread(next(folder.glob("CT_*.dcm"))).file_meta.TransferSyntaxUID == syntax
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = open_study(folder)
    assert np.array_equal(comp.ds["image"].values, native.ds["image"].values)
    assert comp.volume_cc("BODY") == native.volume_cc("BODY")
