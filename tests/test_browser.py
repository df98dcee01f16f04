"""The dashboard notebook in a real browser: JupyterLab on 127.0.0.1 driven by headless Chromium
(playwright), checked from the DOM and from screenshots (kept in ``test-artifacts/browser/``)."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "dashboard.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",  # software WebGL for the vtk.js 3D view (no GPU here)
]
TOKEN = "grtv-browser-test-token"
BODY_GREEN = (0, 200, 0)  # the phantom's BODY colour: no other overlay uses it

pytestmark = pytest.mark.browser


def _need():
    """Skip only when the browser itself is missing; a missing Python package is a setup error."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed at {CHROMIUM} (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _need()
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOK, root / "dashboard.ipynb")
    cfg = root / ".jupyter-config"
    (cfg / "labconfig").mkdir(parents=True)
    # no "Jupyter news" question in the screenshots (and no fetch of it)
    (cfg / "labconfig" / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
    )
    port = _free_port()
    env = dict(os.environ)
    env.update(
        GRTV_NB_CACHE=str(root / ".cache"),
        JUPYTER_CONFIG_DIR=str(cfg),
        JUPYTERLAB_SETTINGS_DIR=str(root / ".lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(root / ".lab-workspaces"),
        JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        # the kernel imports grtv_nb from this checkout (not from wherever the venv points)
        PYTHONPATH=os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.open_browser=False",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
        "--ServerApp.allow_root=True",
    ]
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("JupyterLab did not start:\n" + (root / "lab.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "lab.log", ARTIFACTS / "lab.log")


def _end_sessions(url: str) -> None:
    """Shut down every kernel session of the server (REST API)."""
    import json

    with urllib.request.urlopen(f"{url}/api/sessions?token={TOKEN}", timeout=10) as r:
        sessions = json.loads(r.read())
    for s in sessions:
        req = urllib.request.Request(f"{url}/api/sessions/{s['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(req, timeout=30).close()


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def _count_color(img: np.ndarray, color, tol: int = 40) -> int:
    return int((np.abs(img - np.asarray(color, np.int16)).max(axis=2) <= tol).sum())


_KERNEL_READY = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.connectionStatus === 'connected' && k.status === 'idle');
}"""


def _run_all(page) -> None:
    """Run all cells once the kernel is connected and idle; run again if the first request was
    lost while the kernel's websocket was (re)connecting."""
    for attempt in range(3):
        page.wait_for_function(_KERNEL_READY, timeout=60_000)
        page.wait_for_timeout(500)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                ".every(p => /\\[(\\d+|\\*)\\]/.test(p.textContent))",
                timeout=20_000,
            )
            return
        except Exception:
            if attempt == 2:
                raise


def _wait_3d(page) -> None:
    """The WebGL 3D view has its meshes (built in the background after the slices) and has drawn."""
    page.locator("canvas.grtv-3d-canvas").wait_for(state="visible", timeout=60_000)
    page.wait_for_function(
        "() => { const e = document.querySelector('.grtv-3d'); return e && +(e.dataset.uploads || 0) > 0"
        " && +(e.dataset.frames || 0) > 0; }",
        timeout=120_000,
    )
    page.wait_for_timeout(300)


def _check_3d(page, name: str) -> np.ndarray:
    canvas = page.locator("canvas.grtv-3d-canvas")
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    canvas.screenshot(path=str(ARTIFACTS / name))
    # the canvas's own pixels (exact, unlike a screenshot of its sub-pixel-placed box)
    url = page.evaluate("() => document.querySelector('canvas.grtv-3d-canvas').toDataURL('image/png')")
    s3 = _png(base64.b64decode(url.split(",", 1)[1]))
    distinct = len(np.unique((s3 // 16).reshape(-1, 3), axis=0))
    nonbg = (np.abs(s3 - s3[5, 5]).max(axis=2) > 40).mean()
    assert distinct > 20 and nonbg > 0.02, f"3D canvas looks blank ({distinct} colours, {nonbg:.3f} non-background)"
    return s3


def _drag(page, locator, dx: float, dy: float, shift: bool = False) -> None:
    box = locator.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    if shift:
        page.keyboard.down("Shift")
    page.mouse.down()
    for k in range(1, 6):
        page.mouse.move(x + dx * k / 5, y + dy * k / 5)
        page.wait_for_timeout(80)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def test_dashboard_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    url, _root = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1500})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            external: list[str] = []
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:", "ws://127.0.0.1"))
                    else external.append(r.url)
                ),
            )
            page.goto(f"{url}/lab/tree/dashboard.ipynb?token={TOKEN}", timeout=60_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
            page.wait_for_function("window.jupyterapp && window.jupyterapp.commands", timeout=30_000)
            page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
            _run_all(page)
            axial = page.locator("img.grtv-slice-axial")
            try:
                axial.wait_for(state="visible", timeout=120_000)
                page.wait_for_function(
                    "() => { const i = document.querySelector('img.grtv-slice-axial');"
                    " return i && i.complete && i.naturalWidth > 0; }",
                    timeout=30_000,
                )
                page.locator(".grtv-dvh-image").wait_for(state="visible", timeout=30_000)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "failed.png"), full_page=True)
                raise
            _wait_3d(page)
            page.screenshot(path=str(ARTIFACTS / "01_dashboard.png"), full_page=True)

            text = page.inner_text("body")
            assert "Error displaying widget" not in text, "a widget failed to render"
            assert page.locator(".grtv-dashboard").count() == 1
            # the default preset survives the browser echoing the slider values back
            assert "soft tissue" in page.locator(".grtv-slice-viewer select").first.input_value()

            for plane in ("coronal", "sagittal"):
                size = page.evaluate(
                    f"() => {{ const i = document.querySelector('img.grtv-slice-{plane}');"
                    " return [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight]; }"
                )
                assert min(size) > 0, (plane, size)

            # --- live widgets replace the static pictures; letters, positions in mm -------------
            assert page.locator(".grtv-static").count() >= 1
            assert not page.locator(".grtv-static img").first.is_visible(), "static picture shown beside the widget"
            letters = [page.locator(f".grtv-slice-viewer .grtv-orient-{e}").first.inner_text()
                       for e in ("top", "bottom", "left", "right")]
            assert letters == ["A", "P", "R", "L"], letters
            assert " mm" in page.locator(".grtv-pos-axial").inner_text()

            # --- 3D view: WebGL canvas drawn; the camera survives ROI toggles -------------------
            _check_3d(page, "02_view3d.png")
            scene = page.locator("canvas.grtv-3d-canvas")
            _drag(page, scene, 80, 30)  # rotate
            page.wait_for_timeout(500)
            rot = _check_3d(page, "02b_view3d_rotated.png")
            uploads = page.evaluate("() => document.querySelector('.grtv-3d').dataset.uploads")

            # --- axial slice: move the slider, the picture must change ---------------------------
            axial.scroll_into_view_if_needed()
            pos0 = page.locator(".grtv-pos-axial").inner_text()
            idx0 = int(axial.get_attribute("data-index"))
            shot0 = axial.screenshot(path=str(ARTIFACTS / "03_axial_before.png"))
            handle = page.locator(".grtv-slider-axial .noUi-handle")
            handle.focus()
            for _ in range(6):
                handle.press("ArrowLeft")
            page.wait_for_function(
                f"() => document.querySelector('img.grtv-slice-axial').dataset.index == '{idx0 - 6}'", timeout=15_000
            )
            page.wait_for_timeout(500)
            shot1 = axial.screenshot(path=str(ARTIFACTS / "04_axial_slider_moved.png"))
            a0, a1 = _png(shot0), _png(shot1)
            assert a0.shape == a1.shape
            changed = (np.abs(a0 - a1).max(axis=2) > 30).mean()
            assert changed > 0.01, f"axial slice did not change visibly ({changed:.4f} of pixels)"
            assert page.locator(".grtv-pos-axial").inner_text() != pos0  # the mm position follows

            # --- hover readout in the canvas corner; window/level by mouse drag -----------------
            axial.hover()
            page.wait_for_function(
                "() => document.querySelector('.grtv-info').innerText.includes('HU')", timeout=15_000
            )
            _drag(page, axial, 120, 0)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.grtv-slice-viewer select')][0].value === 'custom'",
                timeout=15_000,
            )
            page.wait_for_timeout(500)
            wide = _png(axial.screenshot(path=str(ARTIFACTS / "04b_axial_window_dragged.png")))
            assert (np.abs(wide - a1).max(axis=2) > 20).mean() > 0.05, "window/level drag did not change the picture"
            page.locator(".grtv-slice-viewer select").first.select_option("soft tissue")
            page.wait_for_timeout(800)

            # --- enlarge one plane and back ------------------------------------------------------
            w_small = page.evaluate("() => document.querySelector('img.grtv-slice-axial').clientWidth")
            page.locator(".grtv-canvas .grtv-enlarge").first.click()
            page.wait_for_function(
                f"() => document.querySelector('img.grtv-slice-axial').clientWidth > {w_small} * 1.5", timeout=15_000
            )
            assert not page.locator("img.grtv-slice-coronal").is_visible()
            page.screenshot(path=str(ARTIFACTS / "04c_enlarged.png"))
            page.locator(".grtv-canvas .grtv-enlarge").first.click()
            page.wait_for_function(
                f"() => document.querySelector('img.grtv-slice-axial').clientWidth == {w_small}", timeout=15_000
            )

            # --- DVH cursor readout ------------------------------------------------------------
            dvh = page.locator(".grtv-dvh-image")
            dvh.scroll_into_view_if_needed()
            dvh.hover()
            page.wait_for_function(
                "() => document.querySelector('.grtv-dvh-cursor-readout').innerText.includes('Gy:')", timeout=15_000
            )
            assert "PTV" in page.locator(".grtv-dvh-query").inner_text()
            axial.scroll_into_view_if_needed()

            # --- click readout and keyboard stepping on the slice itself ------------------------
            axial.click()
            page.wait_for_function(
                "() => document.querySelector('.grtv-readout').innerText.includes(' mm')", timeout=15_000
            )
            readout = page.locator(".grtv-readout").inner_text()
            assert "HU" in readout and "dose" in readout, readout
            axial.press("ArrowUp")
            page.wait_for_function(
                f"() => document.querySelector('img.grtv-slice-axial').dataset.index == '{idx0 - 5}'", timeout=15_000
            )

            axial.hover()
            page.mouse.wheel(0, 120)  # scroll down = one slice down
            page.wait_for_function(
                f"() => document.querySelector('img.grtv-slice-axial').dataset.index == '{idx0 - 6}'", timeout=15_000
            )

            # --- ROI toggle from the legend: BODY's green disappears and comes back --------------
            page.wait_for_timeout(500)
            n_on = _count_color(_png(axial.screenshot()), BODY_GREEN)
            dvh_src = page.locator(".grtv-dvh-image").get_attribute("src")
            body = page.locator(".grtv-roi-BODY input[type=checkbox]")
            body.uncheck()
            try:  # the DVH chart redraws without BODY (a new picture)
                page.wait_for_function(
                    f"() => document.querySelector('.grtv-dvh-image').getAttribute('src') !== {dvh_src!r}",
                    timeout=20_000,
                )
            except Exception:
                pass  # reported by the assertion below
            page.wait_for_timeout(500)
            n_off = _count_color(_png(axial.screenshot(path=str(ARTIFACTS / "05_axial_body_off.png"))), BODY_GREEN)
            assert page.locator(".grtv-dvh-image").get_attribute("src") != dvh_src, "DVH chart not linked to legend"
            page.locator(".grtv-dvh-image").screenshot(path=str(ARTIFACTS / "06_dvh_body_off.png"))
            body.check()
            page.wait_for_timeout(1500)
            n_on2 = _count_color(_png(axial.screenshot(path=str(ARTIFACTS / "07_axial_body_on.png"))), BODY_GREEN)
            assert n_on > 200, f"BODY colour not found on the axial slice ({n_on} px)"
            assert n_off < 0.05 * n_on, f"BODY colour still shown after toggling off ({n_off} vs {n_on} px)"
            assert n_on2 > 0.9 * n_on, f"BODY colour did not come back ({n_on2} vs {n_on} px)"

            # --- the 3D view: same camera after the toggles, no mesh sent again ----------------
            after = _check_3d(page, "08_view3d_after.png")
            assert page.evaluate("() => document.querySelector('.grtv-3d').dataset.uploads") == uploads
            same = (np.abs(after - rot).max(axis=2) <= 8).mean()
            assert same > 0.99, f"3D view changed after toggling BODY off and on ({same:.3f} of pixels kept)"
            page.screenshot(path=str(ARTIFACTS / "09_final.png"), full_page=True)
            assert "Error displaying widget" not in page.inner_text("body")
            assert not external, f"the page tried to reach the network: {external[:5]}"
            errors = [m for m in console if m.startswith("error:")]
            assert not errors, f"JavaScript console errors: {errors[:5]}"

            # --- saved and reopened with a fresh kernel: the static pictures, no widget error ---
            page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:save'); }")
            page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
            page.close()
            _end_sessions(url)  # the kernel (and every widget model) is gone
            page = browser.new_page(viewport={"width": 1600, "height": 1500})
            page.on("console", lambda m: console.append(f"reopened {m.type}: {m.text}"))
            page.goto(f"{url}/lab/tree/dashboard.ipynb?token={TOKEN}", timeout=60_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
            page.wait_for_function(_KERNEL_READY, timeout=60_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(ARTIFACTS / "10_reopened.png"), full_page=True)
            static = page.locator(".grtv-static img").first
            static.scroll_into_view_if_needed()
            assert static.is_visible(), "reopened notebook shows no static picture"
            assert "model not found" not in page.inner_text("body"), "reopened notebook shows a widget error"
        finally:
            (ARTIFACTS / "console.log").write_text("\n".join(console))
            browser.close()
