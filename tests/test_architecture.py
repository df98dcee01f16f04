"""The package's architecture, read from the source with :mod:`ast` (nothing is imported):

- layers import downward only (the table ``LAYERS`` below: DICOM I/O, geometry, raster, DVH,
  mesh, transforms never import the study, the facade, the widgets, segmentation or batch);
- no import cycles (module-level and function-level imports alike);
- every module has a docstring; no private name is used outside the module that defines it;
- optional heavy packages (TensorFlow, Dask, VTK, matplotlib...) are imported lazily;
- library code does not ``print()``, loggers are module loggers (``logging.getLogger(__name__)``),
  and ``warnings.warn`` is only called with a :class:`grtv_nb.errors.GRTVWarning` category.

A new module must be placed in ``LAYERS``; the test says so when it is missing.
"""

from __future__ import annotations

import ast
import importlib.metadata
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "grtv_nb"

# Layers, lowest first. A module may import modules of its own layer or of the layers below it.
# Entries are module names or package prefixes (the longest matching entry wins); the package root
# "grtv_nb" names the root module only. Entries for modules that do not exist (yet) are harmless.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation: errors, input checks, the atomic writer, colours, tag names, numba and NumPy kernels, records, "
     "version, import helpers", [
        "grtv_nb.errors", "grtv_nb.validate", "grtv_nb.fileio", "grtv_nb.display", "grtv_nb.dicom.tags",
        "grtv_nb._kernels", "grtv_nb._dvh_kernels", "grtv_nb._numpy_kernels", "grtv_nb._version",
        "grtv_nb._xarray_nodask", "grtv_nb._lazyimports", "grtv_nb._numba_cache", "grtv_nb._record",
    ]),
    ("geometry and array transforms", ["grtv_nb.geometry", "grtv_nb.transforms"]),
    ("pure RT computations and file I/O (functions of arrays and grids)", [
        "grtv_nb.dicom", "grtv_nb.raster", "grtv_nb.planes", "grtv_nb.solid", "grtv_nb.contours", "grtv_nb.mesh",
        "grtv_nb.dvh", "grtv_nb.rawio", "grtv_nb.augment", "grtv_nb.export", "grtv_nb.phantom",
    ]),
    ("the model: the study, its Dataset and its ds.rt accessor", ["grtv_nb.study", "grtv_nb.study_ds",
                                                                    "grtv_nb.accessor"]),
    ("applications on a study", ["grtv_nb.segment", "grtv_nb.widgets", "grtv_nb.batch", "grtv_nb.datasets"]),
    ("entry points", ["grtv_nb", "grtv_nb.facade", "grtv_nb.cli", "grtv_nb.warmup"]),
]
ROOT_PACKAGE = "grtv_nb"

# Known cycles and upward imports that other work is removing (issue 13: the package root's
# __version__ read by dicom/common and segment/unet, segment/_common <-> segment/body,
# segment/__init__ <-> segment/unet, widgets/_render3d <-> widgets/view3d). Each entry is one
# import edge (importer, imported). Delete an entry when its import is gone
# (test_allow_lists_list_live_entries fails on an unused one).
ALLOWED_EDGES: set[tuple[str, str]] = {
    ("grtv_nb.segment.unet", "grtv_nb"),  # __version__ from the package root (lazy __init__ fix)
    ("grtv_nb.segment.body", "grtv_nb.segment._common"),  # segment cycle (segment fix)
}

# Private names used outside the module that defines them, as "module: expression" (delete an
# entry when its use is gone). sys._getframe is CPython's documented way to find the caller
# (grtv_nb.errors.warn); the other entries are debt to pay (make the name public or move the code).
ALLOWED_PRIVATE: set[str] = {
    "grtv_nb.errors: sys._getframe",
    "grtv_nb.dicom.reader: dataset._character_set",  # pydicom's private attribute
    "grtv_nb.dicom.folder: ds._dict",  # pydicom's private attribute (raw elements, unconverted)
    "grtv_nb._xarray_nodask: pycompat._cached_duck_array_modules",  # xarray's private cache
    "grtv_nb.rawio: from grtv_nb.transforms import _cast",
    "grtv_nb.segment.unet: _common._image_key",  # segment reorganisation (issue 13)
}

# Library modules allowed to print: command-line entry points.
PRINTING_MODULES = {
    "grtv_nb.cli",
    "grtv_nb.segment.unet",  # its train-seg command line (grtv-nb train-seg)
    "grtv_nb.warmup",  # grtv-nb warmup --verbose prints the compile times
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(_modules()[name].read_text(encoding="utf-8"), filename=str(_modules()[name]))


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (not imported at run time)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


@cache
def _imports(name: str) -> frozenset[str]:
    """The grtv_nb modules ``name`` imports (at module level or inside functions)."""
    mods = _modules()
    tree = _tree(name)
    package = name if mods[name].name == "__init__.py" else name.rpartition(".")[0]
    skip = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "grtv_nb":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in mods else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "grtv_nb")
    found.discard(name)
    return frozenset(found)


def _layer(name: str) -> int:
    best, rank = -1, None
    for i, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            prefix = entry != ROOT_PACKAGE and name.startswith(entry + ".")
            if (name == entry or prefix) and len(entry) > best:
                best, rank = len(entry), i
    if rank is None:
        raise AssertionError(f"module {name} has no layer: add it to LAYERS in {__file__}")
    return rank


def test_every_module_has_a_layer():
    missing = []
    for name in _modules():
        try:
            _layer(name)
        except AssertionError:
            missing.append(name)
    assert not missing, f"modules missing from LAYERS: {missing}"


def test_layers_import_downward_only():
    upward = []
    for name in _modules():
        for dep in _imports(name):
            if (name, dep) in ALLOWED_EDGES:
                continue
            if _layer(dep) > _layer(name):
                upward.append(f"{name} ({LAYERS[_layer(name)][0]}) imports {dep} ({LAYERS[_layer(dep)][0]})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_core_never_imports_the_applications():
    """The rule of the project guide, spelled out (the layer table implies it)."""
    core = ("grtv_nb.dicom", "grtv_nb.geometry", "grtv_nb.raster", "grtv_nb.dvh", "grtv_nb.fileio",
            "grtv_nb.mesh", "grtv_nb.transforms", "grtv_nb.contours")
    high = ("grtv_nb.study", "grtv_nb.facade", "grtv_nb.widgets", "grtv_nb.segment", "grtv_nb.batch", "grtv_nb.cli")
    bad = [(m, d) for m in _modules() if m.startswith(core) for d in _imports(m)
           if d.startswith(high) and (m, d) not in ALLOWED_EDGES]
    assert not bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = {m: {d for d in _imports(m) if (m, d) not in ALLOWED_EDGES} for m in _modules()}
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_import_reader_sees_imports():
    """The AST reader finds module-level, relative, function-level and ``from pkg import module`` imports."""
    assert {"grtv_nb.geometry", "grtv_nb.errors"} <= _imports("grtv_nb.study")
    assert "grtv_nb.raster" in _imports("grtv_nb.study")  # inside Study._append_roi
    assert "grtv_nb.dvh" in _imports("grtv_nb.study")  # "from . import dvh as _dvh"
    assert "grtv_nb.errors" in _imports("grtv_nb.dicom.image")  # "from ..errors import ..."


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_allow_lists_list_live_entries():
    """The allow-lists hold only live debt: an entry whose import or use is gone fails the test (a
    stale entry would let the debt come back unnoticed); the branch that pays a debt deletes its entry."""
    stale = sorted(f"{a} -> {b}" for a, b in ALLOWED_EDGES if a not in _modules() or b not in _imports(a))
    found = {f"{name}: {use}" for name in _modules() for use in _private_uses(name)}
    stale += sorted(ALLOWED_PRIVATE - found)
    for a, b in ALLOWED_EDGES:  # well-formed: two module names that have a layer
        _layer(a), _layer(b)
    assert all(": " in e and e.startswith("grtv_nb") for e in ALLOWED_PRIVATE)
    assert not stale, f"allow-list entries no longer used, delete them from {Path(__file__).name}: {stale}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(name: str) -> set[str]:
    """Private names ``name`` takes from elsewhere: ``from module import _x`` (a private module of
    the same package is fine) and ``something._x`` where ``_x`` is not defined in this module."""
    tree = _tree(name)
    mods = _modules()
    package = name if mods[name].name == "__init__.py" else name.rpartition(".")[0]
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            own.add(node.target.id)
    uses: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                if not _private(alias.name):
                    continue
                if f"{target}.{alias.name}" in mods and target == package:
                    continue  # a private module of the same package
                uses.add(f"from {target} import {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            owner = ast.unparse(node.value)
            if owner not in ("self", "cls") and not owner.startswith(("self.", "super(")):
                uses.add(f"{owner}.{node.attr}")
    return uses


def test_no_private_names_across_modules():
    found = {f"{name}: {use}" for name in _modules() for use in _private_uses(name)}
    assert not found - ALLOWED_PRIVATE, f"private names used outside their module: {sorted(found - ALLOWED_PRIVATE)}"
    assert "grtv_nb.errors: sys._getframe" in found  # the reader sees the uses


# Optional heavy packages: imported inside the functions that need them, never at module level
# (the project guide), except the widget toolkits inside grtv_nb.widgets (the widgets extra).
HEAVY = {"tensorflow", "keras", "torch", "dask", "distributed", "papermill", "matplotlib", "vtk", "pyvista",
         "trame", "trame_vtk", "ipywidgets", "anywidget", "itkwidgets", "itkwasm", "itk"}
HEAVY_AT_MODULE_LEVEL_OK = {"grtv_nb.widgets": {"ipywidgets", "anywidget"}}


def _module_level_imports(tree: ast.Module) -> set[str]:
    """Top-level package names imported when the module is imported (not inside functions)."""
    found: set[str] = set()
    skip = _type_checking_nodes(tree)
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if id(node) in skip or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        else:
            stack.extend(ast.iter_child_nodes(node))
    return found


def test_heavy_packages_are_imported_lazily():
    eager = []
    for name in _modules():
        allowed = next((ok for prefix, ok in HEAVY_AT_MODULE_LEVEL_OK.items()
                        if name == prefix or name.startswith(prefix + ".")), set())
        bad = (_module_level_imports(_tree(name)) & HEAVY) - allowed
        if bad:
            eager.append(f"{name}: {sorted(bad)}")
    assert not eager, f"heavy optional packages imported at module level: {eager}"
    assert "ipywidgets" in _module_level_imports(_tree("grtv_nb.widgets.slices"))  # the reader sees them


def test_every_module_has_a_docstring():
    missing = [name for name in _modules() if not (ast.get_docstring(_tree(name)) or "").strip()]
    assert not missing, f"modules without a docstring saying what they own: {missing}"


def _calls(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_no_print_in_library_code():
    printing = [f"{name}:{node.lineno}" for name in _modules() if name not in PRINTING_MODULES
                for node, func in _calls(_tree(name)) if func == "print"]
    assert not printing, f"print() in library code (use logging or return the text): {printing}"


def test_loggers_are_module_loggers():
    """A module's logger is ``logging.getLogger(__name__)``: never the root logger, never a
    hand-written grtv_nb name (quieting a third-party logger by its name is allowed)."""
    bad = []
    for name in _modules():
        tree = _tree(name)
        module_level = {id(n.value) for n in tree.body if isinstance(n, ast.Assign | ast.AnnAssign)}
        for node, func in _calls(tree):
            if func not in ("logging.getLogger", "getLogger"):
                continue
            arg = ast.unparse(node.args[0]) if node.args else ""
            if arg == "__name__":
                continue
            literal = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if not node.args or id(node) in module_level or str(literal).startswith("grtv"):
                bad.append(f"{name}:{node.lineno}")
    assert not bad, f"loggers must be logging.getLogger(__name__): {bad}"


def test_warnings_are_grtv_warnings():
    """``warnings.warn`` only with a GRTVWarning category (use grtv_nb.errors.warn, which also
    points the warning at the user's call)."""
    from grtv_nb import errors

    ours = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.GRTVWarning)}
    bad = []
    for name in _modules():
        for node, func in _calls(_tree(name)):
            if func != "warnings.warn":
                continue  # grtv_nb.errors.warn always emits a GRTVWarning
            cats = node.args[1:2] + [k.value for k in node.keywords if k.arg == "category"]
            if not cats or ast.unparse(cats[0]).rpartition(".")[2] not in ours:
                bad.append(f"{name}:{node.lineno}")
    assert not bad, f"warnings.warn without a GRTVWarning category: {bad}"


def test_one_version_source():
    """pyproject.toml reads the version from grtv_nb.__version__ (no second copy)."""
    import tomllib

    import grtv_nb

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "grtv_nb.__version__"}
    try:
        installed = importlib.metadata.version("grtv_nb")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("grtv_nb is not installed (no metadata to compare)")
    assert installed == grtv_nb.__version__


def test_warnings_point_at_the_users_call(tmp_path):
    """A GRTVWarning raised several calls deep inside grtv_nb names this file and line (the user's
    call), not a line of the library."""
    import sys
    import warnings

    import numpy as np

    from grtv_nb.errors import GRTVWarning
    from grtv_nb.rawio import write_raw

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1  # the next line
        write_raw(tmp_path / "v.raw", np.array([[[1e6, 0.0]]]), np.int16)
    ours = [w for w in caught if issubclass(w.category, GRTVWarning)]
    assert len(ours) == 1 and "clipped" in str(ours[0].message)
    assert Path(ours[0].filename) == Path(__file__)
    assert ours[0].lineno == line



def test_grtv_warns_fails_on_a_missing_or_an_unexpected_warning():
    """tests_support.grtv_warns, the suite's way to expect several GRTVWarnings, can fail."""
    import warnings

    from grtv_nb.errors import GRTVWarning
    from tests_support import grtv_warns

    with grtv_warns("first", "second") as rec:
        warnings.warn("the first", GRTVWarning, stacklevel=1)
        warnings.warn("the second", GRTVWarning, stacklevel=1)
    assert [str(w.message) for w in rec] == ["the first", "the second"]
    with pytest.raises(AssertionError, match="no GRTVWarning matching"), grtv_warns("first", "second"):
        warnings.warn("the first", GRTVWarning, stacklevel=1)
    with pytest.raises(AssertionError, match="unexpected GRTVWarnings"), grtv_warns("first"):
        warnings.warn("the first", GRTVWarning, stacklevel=1)
        warnings.warn("another", GRTVWarning, stacklevel=1)
