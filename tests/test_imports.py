"""No hidden import stalls: opening a study and the facade calls import neither dask, TensorFlow, VTK
nor matplotlib (each costs 0.5-5 s in a fresh process), nor numba (a process's first resizes and
augmentations run on NumPy twins of the compiled kernels) nor requests (pydicom's eager import, see
grtv_nb._lazyimports); and the package has no import cycles.

The checks run in a fresh interpreter (the test process has long imported everything)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("dask", "tensorflow", "vtk", "matplotlib", "pyvista", "torch", "numba", "requests")

_CHILD = r"""
import json, sys, tempfile, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
HEAVY = %r
folder, out = sys.argv[1], Path(tempfile.mkdtemp())
steps = []
def check(label):
    mods = {m.split(".")[0] for m in sys.modules} & set(HEAVY)
    if any(s[0] == "setNewROI" for s in steps) or label == "setNewROI":
        mods.discard("numba")  # the DVH engine's compiled kernels (setNewROI recomputes the DVH)
    steps.append([label, sorted(mods)])

import grtv_nb
check("import grtv_nb")
from grtv import *  # noqa: F403
check("from grtv import *")
st = grtv_nb.open_study(folder)
check("open_study")
st.ds, st.image, st.dose, st.mask(0)
check("study.ds / image / dose / mask")
g = pyGRTV()
calls = [
    ("readRTDir", lambda: g.readRTDir(folder)),
    ("getImageDcmTags", lambda: g.getImageDcmTags({})),
    ("getImageParam", lambda: g.getImageParam(GRTV_PARAM_IMAGE_SIZE, {})),
    ("readGRTVRaw image", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)),
    ("readGRTVRaw dose", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_DOSE)),
    ("readGRTVRaw roi", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_ROI, 0)),
    ("getROIList", lambda: g.getROIList([])),
    ("resizeImage3D", lambda: g.resizeImage3D(np.zeros((8, 16, 16), np.int16), (4, 8, 8))),
    ("augmentImg3D", lambda: g.augmentImg3D([np.zeros((8, 16, 16), np.int16)], str(out / "aug"), 1, seed=1)),
    ("augmentImg3D deform", lambda: g.augmentImg3D(
        [np.arange(8 * 16 * 16, dtype=np.int16).reshape(8, 16, 16), np.ones((8, 16, 16), np.uint8) * 255],
        str(out / "aug2"), 2, deform=True, seed=2)),
    ("setNewROI", lambda: g.setNewROI(g.readGRTVRaw(GRTV_DATA_TYPE_ROI, 0)[1], "copy", [1, 2, 3])),
    ("setDose", lambda: g.setDose(g.readGRTVRaw(GRTV_DATA_TYPE_DOSE)[1])),
    ("exportROIMesh", lambda: g.exportROIMesh(0, str(out / "m.stl"))),
    ("exportRT", lambda: g.exportRT(str(out / "rt"))),
    ("getSliceByLut", lambda: g.getSliceByLut(np.zeros((4, 4)))),
    ("writeRaw", lambda: g.writeRaw(str(out / "v.raw"), np.zeros((2, 2, 2)))),
    ("closeGRTVTFSession", lambda: g.closeGRTVTFSession()),
]
for label, call in calls:
    res = call()
    status = res[0] if isinstance(res, tuple) else res
    if not isinstance(res, np.ndarray) and status != GRTV_STATUS_OK:
        raise SystemExit(f"{label} failed: {g.lastError}")
    check(label)
print("STEPS " + json.dumps(steps))
"""


def test_no_heavy_imports_after_open_study_and_facade_calls(phantom_dir):
    p = subprocess.run([sys.executable, "-c", _CHILD % (HEAVY,), str(phantom_dir)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("STEPS ")), None)
    assert p.returncode == 0 and line, p.stdout[-2000:] + p.stderr[-3000:]
    steps = json.loads(line[6:])
    assert len(steps) == 21
    leaks = [(label, mods) for label, mods in steps if mods]
    assert not leaks, f"heavy modules imported by: {leaks}"


def test_import_grtv_nb_is_light():
    code = ("import sys, grtv_nb; print(sorted(m for m in ('xarray', 'numba', 'scipy', 'dask', 'pydicom') "
            "if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_no_import_cycles_in_the_package():
    """The layers import downward only: no module of grtv_nb imports the package root back."""
    import ast

    pkg = ROOT / "grtv_nb"
    offenders = []
    for path in pkg.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == pkg:
            continue
        depth = len(path.relative_to(pkg).parts)  # grtv_nb/x.py: 1, grtv_nb/dicom/x.py: 2
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == depth and node.module is None:
                # `from .. import x` is fine when x is a submodule; a name of the root itself is not
                names = [a.name for a in node.names
                         if not (pkg / f"{a.name}.py").exists() and not (pkg / a.name).is_dir()]
                if names:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "grtv_nb":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # segment/unet.py belongs to the segmentation helpers; the DICOM, study and kernel layers must be clean
    offenders = [o for o in offenders if not o.startswith("grtv_nb/segment/")]
    assert not offenders, f"modules importing the package root (an import cycle): {offenders}"


def test_dask_arrays_still_work_after_a_study_was_opened(phantom_dir):
    """The dask guard only answers "no dask array" while dask is not imported: afterwards xarray
    recognises dask arrays as usual."""
    code = (
        "import sys, warnings; warnings.simplefilter('ignore'); import grtv_nb\n"
        "st = grtv_nb.open_study(sys.argv[1]); st.ds\n"
        "assert 'dask' not in sys.modules\n"
        "import dask.array as da, xarray as xr\n"
        "a = xr.DataArray(da.ones((4, 6), chunks=2), dims=('y', 'x'))\n"
        "assert a.chunks == ((2, 2), (2, 2, 2)), a.chunks\n"
        "assert type(a.data).__module__.startswith('dask') and float(a.sum().compute()) == 24.0\n"
        "print('OK')\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(phantom_dir)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    if "No module named 'dask'" in p.stderr:
        import pytest

        pytest.skip("dask is not installed")
    assert p.returncode == 0 and p.stdout.strip() == "OK", p.stderr[-2000:]


# xarray (with pandas, ~0.6 s of a fresh process) is imported when a study's Dataset is first asked for
# (st.ds, st.image, st.dose), never by opening a study or by the facade's reads, resizes and augmentations.
_CHILD_NO_XARRAY = r"""
import json, sys, tempfile, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
LAZY = ("xarray", "pandas")
folder, out = sys.argv[1], Path(tempfile.mkdtemp())
steps = []
def check(label):
    steps.append([label, sorted({m.split(".")[0] for m in sys.modules} & set(LAZY))])

import grtv_nb
from grtv import *  # noqa: F403
check("from grtv import *")
st = grtv_nb.open_study(folder)
check("open_study")
n_rois, has_dose = len(st.rois), st.has_dose
st.mask(0), st.volume_cc(0), st.summary()
check("study.mask / volume_cc / summary")
g = pyGRTV()
ct = None
for label, call in [
    ("readRTDir", lambda: g.readRTDir(folder)),
    ("getImageParam", lambda: g.getImageParam(GRTV_PARAM_IMAGE_RES, {})),
    ("getROIList", lambda: g.getROIList([])),
    ("readGRTVRaw image", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)),
    ("readGRTVRaw dose", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_DOSE)),
    ("readGRTVRaw roi", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_ROI, 0)),
    ("resizeImage3D", lambda: g.resizeImage3D(g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)[1], (4, 8, 8))),
    ("augmentImg3D", lambda: g.augmentImg3D(
        [g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)[1][:8, ::8, ::8], g.readGRTVRaw(GRTV_DATA_TYPE_ROI, 0)[1][:8, ::8, ::8]],
        str(out / "aug"), 2, rotate=True, deform=True, seed=3)),
]:
    res = call()
    status = res[0] if isinstance(res, tuple) else res
    if status != GRTV_STATUS_OK:
        raise SystemExit(f"{label} failed: {g.lastError}")
    check(label)
ds = g.study.ds
check("study.ds")
assert ds.rt.grid.shape == g.study.grid.shape  # ds.rt registered by the first st.ds
print("STEPS " + json.dumps([steps, n_rois, has_dose]))
"""


def test_xarray_and_pandas_only_imported_by_the_dataset(phantom_dir):
    p = subprocess.run([sys.executable, "-c", _CHILD_NO_XARRAY, str(phantom_dir)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("STEPS ")), None)
    assert p.returncode == 0 and line, p.stdout[-2000:] + p.stderr[-3000:]
    steps, n_rois, has_dose = json.loads(line[6:])
    assert n_rois >= 8 and has_dose  # an RTSTRUCT with many contours (their bulk parse) and an RTDOSE were read
    assert [label for label, _ in steps][-1] == "study.ds" and len(steps) == 12
    leaks = [(label, mods) for label, mods in steps[:-1] if mods]
    assert not leaks, f"xarray/pandas imported by: {leaks}"
    assert steps[-1][1] == ["pandas", "xarray"]  # the Dataset itself does need them


def test_open_study_registers_ds_rt_when_xarray_is_imported(phantom_dir):
    """``ds.rt`` on a Dataset from elsewhere works after open_study, without st.ds, when xarray was
    imported first (the usual notebook); and ``import grtv_nb.accessor`` registers it in any case."""
    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "import numpy as np, xarray as xr, grtv_nb\n"
        "st = grtv_nb.open_study(sys.argv[1])\n"
        "ds = xr.Dataset(coords={'z': [0.0, 2.0], 'y': [0.0, 1.0, 2.0], 'x': [5.0, 6.0]})\n"
        "print(ds.rt.grid.shape)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(phantom_dir)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "(2, 3, 2)", p.stderr[-2000:]
    code = ("import xarray as xr, grtv_nb.accessor\n"
            "print(xr.Dataset(coords={'z': [1.0], 'y': [0.0, 1.0], 'x': [0.0]}).rt.grid.shape)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "(1, 2, 1)", p.stderr[-2000:]


_CHILD_NO_PYDICOM = r"""
import json, sys, tempfile, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
LAZY = ("pydicom", "xarray", "pandas", "requests")
folder, out = sys.argv[1], Path(tempfile.mkdtemp())
steps = []
def check(label):
    steps.append([label, sorted({m.split(".")[0] for m in sys.modules} & set(LAZY))])

import grtv_nb
from grtv import *  # noqa: F403
st = grtv_nb.open_study(folder)
check("open_study")
attrs = dict(st.attrs)
g = pyGRTV()
for label, call in [
    ("readRTDir", lambda: g.readRTDir(folder)),
    ("getImageParam", lambda: g.getImageParam(GRTV_PARAM_IMAGE_SIZE, {})),
    ("readGRTVRaw image", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)),
    ("resizeImage3D", lambda: g.resizeImage3D(g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)[1], (4, 8, 8))),
    ("augmentImg3D", lambda: g.augmentImg3D([g.readGRTVRaw(GRTV_DATA_TYPE_IMAGE)[1][:8, ::8, ::8]],
                                            str(out / "aug"), 1, rotate=True, deform=True, seed=3)),
    ("getImageDcmTags", lambda: g.getImageDcmTags({})),
]:
    res = call()
    status = res[0] if isinstance(res, tuple) else res
    if status != GRTV_STATUS_OK:
        raise SystemExit(f"{label} failed: {g.lastError}")
    check(label)
tags = {}
g.getImageDcmTags(tags)
print("STEPS " + json.dumps([steps, attrs["patient_name"], str(tags.get("PatientName", "")), attrs["series_uid"],
                             str(tags.get("SeriesInstanceUID", ""))]))
"""


def test_a_ct_series_is_read_without_pydicom(phantom_dir, tmp_path):
    """With the dicomsdl backend an ordinary CT series (native little endian slices) is opened, read,
    resized and augmented without importing pydicom (~0.3 s of a fresh process); the first call
    that needs a full dataset (getImageDcmTags) imports it then, still without ``requests``, and
    the study's attributes read from the raw headers are pydicom's values."""
    import shutil

    from grtv_nb.dicom.reader import available_backends

    if "dicomsdl" not in available_backends():
        import pytest

        pytest.skip("dicomsdl is not installed")
    ct = tmp_path / "ct"
    ct.mkdir()
    for p in sorted(phantom_dir.glob("CT_*.dcm")):
        shutil.copy(p, ct / p.name)
    p = subprocess.run([sys.executable, "-c", _CHILD_NO_PYDICOM, str(ct)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("STEPS ")), None)
    assert p.returncode == 0 and line, p.stdout[-2000:] + p.stderr[-3000:]
    steps, name, ref_name, uid, ref_uid = json.loads(line[6:])
    assert len(steps) == 7
    leaks = [(label, mods) for label, mods in steps[:-1] if mods]
    assert not leaks, f"pydicom/xarray/pandas/requests imported by: {leaks}"
    assert steps[-1] == ["getImageDcmTags", ["pydicom"]]
    assert name == ref_name and name and uid == ref_uid and uid


_CHILD_RT_NO_PYDICOM = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
folder = sys.argv[1]
steps = []
def check(label):
    steps.append([label, "pydicom" in sys.modules])

import grtv_nb
from grtv import *  # noqa: F403
st = grtv_nb.open_study(folder)
check("open_study")
g = pyGRTV()
for label, call in [
    ("readRTDir", lambda: g.readRTDir(folder)),
    ("getROIList", lambda: g.getROIList([])),
    ("readGRTVRaw roi", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_ROI, 0)),
    ("readGRTVRaw dose", lambda: g.readGRTVRaw(GRTV_DATA_TYPE_DOSE) if st.has_dose else GRTV_STATUS_OK),
    ("rtstruct dataset", lambda: (GRTV_STATUS_OK, str(st.source["rtstruct_ds"].StructureSetLabel))),
]:
    res = call()
    status = res[0] if isinstance(res, tuple) else res
    if status != GRTV_STATUS_OK:
        raise SystemExit(f"{label} failed: {g.lastError}")
    check(label)
tags = {}
tags_ok = st.image is None or g.getImageDcmTags(tags) == GRTV_STATUS_OK and bool(tags.get("PatientID"))
print("STEPS " + json.dumps([steps, [r.name for r in st.rois], st.has_dose,
                             str(st.source["rtstruct_ds"].SOPInstanceUID), tags_ok]))
"""


@pytest.mark.parametrize("folder", ["phantom", "cerr-radiomics-phantom/pat_1", "dicompyler-example/example_data"])
def test_a_folder_with_rtstruct_and_rtdose_is_read_without_pydicom(folder, phantom_dir):
    """With the dicomsdl backend a CT + RTSTRUCT (+ RTDOSE, RTPLAN) folder is opened, its ROIs and
    dose read, without importing pydicom; the RTSTRUCT's dataset (the study's source) imports it
    then and answers pydicom's attributes, and getImageDcmTags works. The ROI names are pydicom's
    (read here by pydicom, in this process)."""
    from grtv_nb.dicom.reader import available_backends

    if "dicomsdl" not in available_backends():
        pytest.skip("dicomsdl is not installed")
    path = phantom_dir if folder == "phantom" else ROOT.parent / "shared" / "data" / folder
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    p = subprocess.run([sys.executable, "-c", _CHILD_RT_NO_PYDICOM, str(path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("STEPS ")), None)
    assert p.returncode == 0 and line, p.stdout[-2000:] + p.stderr[-3000:]
    steps, names, has_dose, sop_uid, tags_ok = json.loads(line[6:])
    assert [s[0] for s in steps] == ["open_study", "readRTDir", "getROIList", "readGRTVRaw roi", "readGRTVRaw dose",
                                     "rtstruct dataset"]
    assert tags_ok
    assert [s[1] for s in steps] == [False] * 5 + [True], steps
    assert has_dose == (folder != "cerr-radiomics-phantom/pat_1")
    import pydicom

    rs = [ds for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(path.iterdir()) if f.is_file()
                        and f.suffix == ".dcm") if ds.get("Modality") == "RTSTRUCT"]
    assert len(rs) == 1 and sop_uid == rs[0].SOPInstanceUID
    assert set(names) <= {str(i.ROIName) for i in rs[0].StructureSetROISequence} and names


# What a script's first readRTDir imports beyond numpy and dicomsdl (which every reader of the
# series imports too) is part of the time it waits (issue 14): modules the reading never uses stay
# unimported. numpy.ma (np.median's first call), logging, the writers' hashlib/socket/secrets/
# shutil/json, tempfile (the numba cache's folder), pydicom (the exception of a non-DICOM file),
# dataclasses (the read path's records, grtv_nb._record), threading (a lock) and the rasteriser.
_CHILD_READ_ONLY = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy
try:
    import dicomsdl  # noqa: F401
except ImportError:
    pass
before = set(sys.modules)
from grtv import GRTV_STATUS_OK, pyGRTV
g = pyGRTV()
if g.readRTDir(sys.argv[1]) != GRTV_STATUS_OK:
    raise SystemExit(g.lastError)
print("NEW " + json.dumps(sorted(set(sys.modules) - before)))
"""
_READ_LAZY = ("numpy.ma", "logging", "hashlib", "socket", "secrets", "shutil", "json", "tempfile", "pydicom",
              "scipy", "numba", "xarray", "pandas", "requests", "skimage", "PIL", "dataclasses", "threading",
              "grtv_nb.raster")


@pytest.mark.parametrize("folder", ["phantom", "cerr-radiomics-phantom/pat_1", "dicompyler-example/example_data",
                                    "rt-utils-testdata/tests/oriented_data"])
def test_read_rt_dir_imports_only_what_reading_needs(folder, phantom_dir):
    from grtv_nb.dicom.reader import available_backends

    path = phantom_dir if folder == "phantom" else ROOT.parent / "shared" / "data" / folder
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    p = subprocess.run([sys.executable, "-c", _CHILD_READ_ONLY, str(path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("NEW ")), None)
    assert p.returncode == 0 and line, p.stdout[-2000:] + p.stderr[-3000:]
    new = json.loads(line[4:])
    lazy = [m for m in _READ_LAZY if m != "pydicom" or "dicomsdl" in available_backends()]
    leaks = sorted(m for m in new if any(m == x or m.startswith(x + ".") for x in lazy))
    assert not leaks, f"readRTDir of {folder} imported {leaks}"
    assert any(m.startswith("grtv_nb.dicom") for m in new)  # the check saw the reading's own imports


def test_warmup_writes_the_package_bytecode():
    """`grtv-nb warmup` writes grtv_nb's and grtv's bytecode, so that new processes read it even
    where PYTHONDONTWRITEBYTECODE is set (they would otherwise compile every module from source:
    ~35-45 ms of a fresh readRTDir). A removed .pyc must come back, and every module must have
    one that Python accepts (newer than its source)."""
    import importlib.util

    import grtv
    import grtv_nb
    from grtv_nb.warmup import compile_bytecode

    root = Path(grtv_nb.__file__).parent
    sources = sorted(root.rglob("*.py")) + [Path(grtv.__file__)]
    probe = Path(importlib.util.cache_from_source(str(root / "study.py")))
    probe.unlink(missing_ok=True)
    if not compile_bytecode():
        pytest.skip(f"{root} is not writable (an installed copy: pip wrote its bytecode)")
    for src in sources:
        pyc = Path(importlib.util.cache_from_source(str(src)))
        assert pyc.exists(), f"no bytecode for {src}"
        assert pyc.stat().st_mtime >= src.stat().st_mtime - 1e-3, f"stale bytecode for {src}"
