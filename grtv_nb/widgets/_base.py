"""Building blocks shared by the widgets: the slice canvas (an anywidget showing server-rendered
PNG bytes and sending clicks, hover, wheel and key steps back), the ROI selection state shared
across views, the ROI legend, and the static-PNG fallback that puts an ``image/png`` next to the
widget view so notebooks executed headless (papermill, nbconvert) keep a picture."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

import ipywidgets as W
import traitlets as T

_CANVAS_ESM = r"""
function render({ model, el }) {
  el.classList.add("grtv-canvas");
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  const img = document.createElement("img");
  img.tabIndex = 0;
  img.draggable = false;
  img.alt = "slice";
  img.style.outline = "none";
  img.style.cursor = "crosshair";
  img.style.display = "block";
  img.style.background = "#000";
  img.style.imageRendering = "pixelated";  // exact overlay colours when scaled
  img.style.transformOrigin = "0 0";
  // viewport: zoom and pan are CSS transforms of the image inside it (no new picture needed)
  const box = document.createElement("div");
  box.className = "grtv-viewport";
  box.style.position = "relative";
  box.style.overflow = "hidden";
  box.style.lineHeight = "0";
  box.style.background = "#000";
  // the layer carries the picture and the crosshair lines and is what zoom/pan transform
  const layer = document.createElement("div");
  layer.style.position = "absolute";
  layer.style.left = "0";
  layer.style.top = "0";
  layer.style.transformOrigin = "0 0";
  const line = (vertical) => {
    const d = document.createElement("div");
    d.className = vertical ? "grtv-cross-v" : "grtv-cross-h";
    d.style.position = "absolute";
    d.style.pointerEvents = "none";
    d.style.borderColor = "rgba(255, 255, 0, 0.75)";
    d.style.borderStyle = "dashed";
    d.style.borderWidth = "0";
    if (vertical) { d.style.top = "0"; d.style.bottom = "0"; d.style.borderLeftWidth = "1px"; }
    else { d.style.left = "0"; d.style.right = "0"; d.style.borderTopWidth = "1px"; }
    return d;
  };
  const vline = line(true), hline = line(false);
  layer.appendChild(img);
  layer.appendChild(vline);
  layer.appendChild(hline);
  box.appendChild(layer);
  // orientation letters at the four edges, text readout in the lower left corner
  const tag = (cls, css) => {
    const d = document.createElement("div");
    d.className = cls;
    d.style.position = "absolute";
    d.style.pointerEvents = "none";
    d.style.color = "#ffd75e";
    d.style.font = "bold 13px sans-serif";
    d.style.lineHeight = "14px";
    d.style.textShadow = "0 0 2px #000, 0 0 2px #000";
    Object.assign(d.style, css);
    box.appendChild(d);
    return d;
  };
  const letters = {
    top: tag("grtv-orient grtv-orient-top", { top: "2px", left: "50%", transform: "translateX(-50%)" }),
    bottom: tag("grtv-orient grtv-orient-bottom", { bottom: "2px", left: "50%", transform: "translateX(-50%)" }),
    left: tag("grtv-orient grtv-orient-left", { left: "3px", top: "50%", transform: "translateY(-50%)" }),
    right: tag("grtv-orient grtv-orient-right", { right: "3px", top: "50%", transform: "translateY(-50%)" }),
  };
  const info = tag("grtv-info", { left: "4px", bottom: "3px", font: "11px monospace", color: "#fff",
                                   whiteSpace: "pre", textAlign: "left" });
  const zoomTag = tag("grtv-zoom", { right: "4px", top: "3px", font: "11px monospace", color: "#ccc" });
  // toolbar: zoom in / out / reset and enlarge
  const bar = document.createElement("div");
  bar.className = "grtv-toolbar";
  bar.style.display = "flex";
  bar.style.gap = "2px";
  bar.style.margin = "2px 0";
  const button = (label, title, cls, fn) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.title = title;
    b.className = "grtv-btn " + cls;
    b.style.font = "12px sans-serif";
    b.style.padding = "0 6px";
    b.style.cursor = "pointer";
    b.addEventListener("click", (ev) => { ev.preventDefault(); fn(); });
    bar.appendChild(b);
    return b;
  };
  const wrap = document.createElement("div");
  wrap.appendChild(box);
  wrap.appendChild(bar);
  el.appendChild(wrap);

  let zoom = 1, panX = 0, panY = 0;  // screen px; image shown at display size * zoom
  const W = () => model.get("display_width"), H = () => model.get("display_height");
  const clampPan = () => {
    const w = W(), h = H();
    panX = Math.min(0, Math.max(w - w * zoom, panX));
    panY = Math.min(0, Math.max(h - h * zoom, panY));
  };
  const view = () => {
    clampPan();
    layer.style.transform = `translate(${panX}px, ${panY}px) scale(${zoom})`;
    zoomTag.textContent = zoom > 1.001 ? `${zoom.toFixed(1)}x` : "";
    el.dataset.zoom = zoom.toFixed(3);
  };
  const zoomAt = (f, sx, sy) => {  // zoom by f about the viewport point (sx, sy)
    const nz = Math.min(16, Math.max(1, zoom * f));
    panX = sx - (sx - panX) * nz / zoom;
    panY = sy - (sy - panY) * nz / zoom;
    zoom = nz;
    view();
  };
  button("+", "zoom in (ctrl + wheel)", "grtv-zoom-in", () => zoomAt(1.5, W() / 2, H() / 2));
  button("\u2212", "zoom out", "grtv-zoom-out", () => zoomAt(1 / 1.5, W() / 2, H() / 2));
  button("1:1", "reset zoom and pan (double click)", "grtv-zoom-reset", () => { zoom = 1; panX = panY = 0; view(); });
  const big = button("\u2922", "enlarge this plane / show all planes", "grtv-enlarge",
                     () => model.send({ event: "enlarge" }));
  box.title = "click: go to point \u00b7 drag: window/level \u00b7 shift/middle drag: pan \u00b7 " +
              "wheel, arrows: slice \u00b7 ctrl+wheel, +/-: zoom \u00b7 double click: reset zoom";

  const cross = () => {
    const r = model.get("cross_row"), c = model.get("cross_col");
    const h = model.get("img_height") || 1, w = model.get("img_width") || 1;
    hline.style.display = r >= 0 ? "block" : "none";
    vline.style.display = c >= 0 ? "block" : "none";
    hline.style.top = ((r + 0.5) / h * 100) + "%";
    vline.style.left = ((c + 0.5) / w * 100) + "%";
  };
  const labels = () => {
    const l = model.get("labels") || [];
    letters.top.textContent = l[0] || "";
    letters.bottom.textContent = l[1] || "";
    letters.left.textContent = l[2] || "";
    letters.right.textContent = l[3] || "";
  };
  const showInfo = () => { info.textContent = model.get("info") || ""; };
  let url = null;
  const draw = () => {
    const v = model.get("png");
    const w = W(), h = H();
    box.style.width = w + "px";
    box.style.height = h + "px";
    layer.style.width = w + "px";
    layer.style.height = h + "px";
    img.style.width = w + "px";
    img.style.height = h + "px";
    big.textContent = model.get("enlarged") ? "\u2921" : "\u2922";
    view();
    cross();
    img.dataset.plane = model.get("plane");
    img.dataset.index = String(model.get("index"));
    img.classList.add("grtv-slice-" + model.get("plane"));
    if (!v || v.byteLength === 0) return;
    const u = URL.createObjectURL(new Blob([v], { type: "image/png" }));
    const old = url;
    url = u;
    img.onload = () => { if (old) URL.revokeObjectURL(old); };
    img.src = u;
  };
  const pix = (ev) => {
    const r = img.getBoundingClientRect();  // includes the zoom/pan transform
    const w = img.naturalWidth || 1, h = img.naturalHeight || 1;
    return {
      row: Math.min(h - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * h))),
      col: Math.min(w - 1, Math.max(0, Math.floor((ev.clientX - r.left) / r.width * w))),
    };
  };
  // mouse: a click (no movement) picks a point; left drag = window/level; shift or middle
  // drag = pan; ctrl + wheel = zoom; wheel = slice step; double click = reset zoom
  let drag = null, lastSend = 0, lastHover = 0;
  box.addEventListener("contextmenu", (ev) => ev.preventDefault());
  box.addEventListener("mousedown", (ev) => {
    if (ev.button !== 0 && ev.button !== 1) return;
    ev.preventDefault();
    img.focus();
    const pan = ev.button === 1 || ev.shiftKey;
    drag = { x: ev.clientX, y: ev.clientY, pan, moved: false, px: panX, py: panY, ev };
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 3) return;
    if (!drag.moved && !drag.pan) model.send({ event: "wl_start" });
    drag.moved = true;
    if (drag.pan) {
      panX = drag.px + dx;
      panY = drag.py + dy;
      view();
      return;
    }
    const t = performance.now();
    if (t - lastSend < 60) return;
    lastSend = t;
    model.send({ event: "wl", dx, dy });
  });
  window.addEventListener("mouseup", (ev) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (!d.moved) { model.send({ event: "click", ...pix(d.ev) }); return; }
    if (!d.pan) model.send({ event: "wl", dx: ev.clientX - d.x, dy: ev.clientY - d.y });
  });
  img.addEventListener("mousemove", (ev) => {
    if (drag) return;
    const t = performance.now();
    if (t - lastHover < 80) return;
    lastHover = t;
    model.send({ event: "hover", ...pix(ev) });
  });
  box.addEventListener("dblclick", (ev) => { ev.preventDefault(); zoom = 1; panX = panY = 0; view(); });
  box.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    if (ev.ctrlKey || ev.metaKey) {
      const r = box.getBoundingClientRect();
      zoomAt(ev.deltaY > 0 ? 1 / 1.2 : 1.2, ev.clientX - r.left, ev.clientY - r.top);
      return;
    }
    model.send({ event: "step", delta: ev.deltaY > 0 ? -1 : 1 });
  }, { passive: false });
  img.addEventListener("keydown", (ev) => {
    const up = { ArrowUp: 1, ArrowRight: 1, PageUp: 10, ArrowDown: -1, ArrowLeft: -1, PageDown: -10 };
    if (ev.key in up) {
      ev.preventDefault();
      ev.stopPropagation();
      model.send({ event: "step", delta: up[ev.key] });
    } else if (ev.key === "+" || ev.key === "=") {
      ev.preventDefault(); zoomAt(1.5, W() / 2, H() / 2);
    } else if (ev.key === "-") {
      ev.preventDefault(); zoomAt(1 / 1.5, W() / 2, H() / 2);
    }
  });
  model.on("change:png", draw);
  model.on("change:display_width", draw);
  model.on("change:display_height", draw);
  model.on("change:enlarged", draw);
  model.on("change:cross_row", cross);
  model.on("change:cross_col", cross);
  model.on("change:labels", labels);
  model.on("change:info", showInfo);
  labels();
  showInfo();
  draw();
  return () => { if (url) URL.revokeObjectURL(url); };
}
export default { render };
"""


def _canvas_class():
    try:
        import anywidget
    except ImportError:  # pragma: no cover - anywidget is in the widgets extra
        return None

    class SliceCanvas(anywidget.AnyWidget):
        """Shows PNG bytes with orientation letters, a text readout, zoom/pan (in the browser)
        and a toolbar. Sends ``{"event": "click"|"hover", "row", "col"}``, ``{"event": "step",
        "delta"}`` (wheel, arrow/page keys), ``{"event": "wl_start"}`` then ``{"event": "wl",
        "dx", "dy"}`` (screen px since the drag began) for a window/level drag, and
        ``{"event": "enlarge"}``."""

        _esm = _CANVAS_ESM
        png = T.Bytes(b"").tag(sync=True)
        display_width = T.Int(256).tag(sync=True)
        display_height = T.Int(256).tag(sync=True)
        plane = T.Unicode("").tag(sync=True)
        index = T.Int(0).tag(sync=True)
        img_width = T.Int(0).tag(sync=True)  # pixels of the PNG (for crosshair placement)
        img_height = T.Int(0).tag(sync=True)
        cross_row = T.Int(-1).tag(sync=True)  # crosshair lines in image pixels (-1: none)
        cross_col = T.Int(-1).tag(sync=True)
        labels = T.List(T.Unicode(), default_value=["", "", "", ""]).tag(sync=True)  # top, bottom, left, right
        info = T.Unicode("").tag(sync=True)  # readout shown in the lower left corner
        enlarged = T.Bool(False).tag(sync=True)

    return SliceCanvas


_CANVAS = None


def make_canvas(plane: str) -> W.DOMWidget:
    """A slice canvas for ``plane`` (anywidget when installed, else a plain ``ipywidgets.Image``
    without mouse events)."""
    global _CANVAS
    if _CANVAS is None:
        _CANVAS = _canvas_class() or False
    if _CANVAS:
        return _CANVAS(plane=plane)
    img = W.Image(format="png")
    img.add_class(f"grtv-slice-{plane}")
    return img


def draws_crosshair(canvas: W.DOMWidget) -> bool:
    """Whether the canvas draws crosshair lines itself (else they must be rendered in the image)."""
    return hasattr(canvas, "cross_row")


def set_canvas(
    canvas: W.DOMWidget,
    png: bytes | None,
    width: int,
    height: int,
    index: int,
    image_shape: tuple[int, int] | None = None,
    cross: tuple[int, int] | None = None,
) -> None:
    """Update a canvas in place (one message to the browser); ``png=None`` keeps the picture.

    ``cross`` = (row, col) in image pixels of the crosshair lines (anywidget canvas only)."""
    if isinstance(canvas, W.Image):
        with canvas.hold_sync():
            if png is not None:
                canvas.value = png
            canvas.layout.width = f"{width}px"
            canvas.layout.height = f"{height}px"
        return
    with canvas.hold_sync():
        if png is not None:
            canvas.png = png
        canvas.display_width = int(width)
        canvas.display_height = int(height)
        canvas.index = int(index)
        if image_shape is not None:
            canvas.img_height, canvas.img_width = (int(v) for v in image_shape)
        r, c = cross if cross is not None else (-1, -1)
        canvas.cross_row, canvas.cross_col = int(r), int(c)


def on_canvas_event(canvas: W.DOMWidget, callback) -> None:
    """Call ``callback(content_dict)`` for each event message a canvas sends."""
    if hasattr(canvas, "on_msg"):
        canvas.on_msg(lambda _w, content, _buffers: callback(content))


_CHART_ESM = r"""
function render({ model, el }) {
  el.classList.add("grtv-chart");
  const box = document.createElement("div");
  box.style.position = "relative";
  box.style.display = "inline-block";
  box.style.lineHeight = "0";
  const img = document.createElement("img");
  img.className = "grtv-dvh-image";
  img.alt = "DVH";
  img.draggable = false;
  img.style.cursor = "crosshair";
  const vline = document.createElement("div");
  vline.className = "grtv-dvh-cursor";
  vline.style.position = "absolute";
  vline.style.pointerEvents = "none";
  vline.style.borderLeft = "1px dashed #444";
  vline.style.display = "none";
  box.appendChild(img);
  box.appendChild(vline);
  el.appendChild(box);
  let url = null;
  const draw = () => {
    const v = model.get("value");
    if (!v || v.byteLength === 0) return;
    const u = URL.createObjectURL(new Blob([v], { type: "image/png" }));
    const old = url;
    url = u;
    img.onload = () => { if (old) URL.revokeObjectURL(old); };
    img.src = u;
  };
  let last = 0;
  img.addEventListener("mousemove", (ev) => {
    const r = img.getBoundingClientRect();
    const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    const [x0, y0, x1, y1] = model.get("axes_box");  // axes in image fractions (top-left origin)
    if (fx < x0 || fx > x1 || fy < y0 || fy > y1) { vline.style.display = "none"; return; }
    vline.style.display = "block";
    vline.style.left = (fx * 100) + "%";
    vline.style.top = (y0 * 100) + "%";
    vline.style.height = ((y1 - y0) * 100) + "%";
    const t = performance.now();
    if (t - last < 80) return;
    last = t;
    model.send({ event: "hover", fx, fy });
  });
  img.addEventListener("click", (ev) => {
    const r = img.getBoundingClientRect();
    model.send({ event: "click", fx: (ev.clientX - r.left) / r.width, fy: (ev.clientY - r.top) / r.height });
  });
  model.on("change:value", draw);
  draw();
  return () => { if (url) URL.revokeObjectURL(url); };
}
export default { render };
"""


def make_chart_canvas() -> W.DOMWidget:
    """A chart picture (PNG bytes in ``.value``) that draws a cursor line over its axes and sends
    ``{"event": "hover"|"click", "fx", "fy"}`` (pointer position as fractions of the picture);
    a plain ``ipywidgets.Image`` (no cursor) without anywidget."""
    try:
        import anywidget
    except ImportError:  # pragma: no cover - anywidget is in the widgets extra
        img = W.Image(format="png")
        img.add_class("grtv-dvh-image")
        return img

    class ChartCanvas(anywidget.AnyWidget):
        _esm = _CHART_ESM
        value = T.Bytes(b"").tag(sync=True)
        axes_box = T.List(T.Float(), default_value=[0.0, 0.0, 1.0, 1.0]).tag(sync=True)  # x0, y0, x1, y1

    return ChartCanvas()


class RoiState(T.HasTraits):
    """ROI selection shared by linked views: which ROIs are shown and which one is highlighted."""

    names = T.List(T.Unicode())
    colors = T.List()
    visible = T.List(T.Unicode())
    highlight = T.Unicode("")

    def __init__(self, names: list[str], colors: list[tuple[int, int, int]], **kw: Any):
        super().__init__(names=list(names), colors=[tuple(c) for c in colors], visible=list(names), **kw)

    def is_visible(self, name: str) -> bool:
        return name in self.visible

    def set_visible(self, name: str, on: bool) -> None:
        vis = [n for n in self.names if (n == name and on) or (n != name and n in self.visible)]
        self.visible = vis


def css_class(name: str) -> str:
    """A CSS-safe class suffix for a ROI name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def hex_color(c) -> str:
    r, g, b = (int(v) for v in c[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


class RoiLegend(W.VBox):
    """Checkbox per ROI (in its colour) driving a :class:`RoiState`, plus a highlight selector."""

    def __init__(self, state: RoiState, **kw: Any):
        self.state = state
        self.checkboxes: dict[str, W.Checkbox] = {}
        rows = []
        for name, col in zip(state.names, state.colors):
            cb = W.Checkbox(
                value=state.is_visible(name),
                description=f'<span style="color:{hex_color(col)}">&#9632;</span> {html.escape(name)}',
                description_allow_html=True,
                indent=False,
                layout=W.Layout(width="auto", margin="0"),
            )
            cb.add_class("grtv-roi-toggle")
            cb.add_class(f"grtv-roi-{css_class(name)}")
            cb.observe(lambda ch, n=name: state.set_visible(n, bool(ch["new"])), "value")
            self.checkboxes[name] = cb
            rows.append(cb)
        self.highlight = W.Dropdown(
            options=[("(none)", "")] + [(n, n) for n in state.names],
            value=state.highlight or "",
            description="Highlight",
            layout=W.Layout(width="220px"),
        )
        T.link((self.highlight, "value"), (state, "highlight"))
        state.observe(self._sync, "visible")
        box = W.VBox(rows, layout=W.Layout(max_height="320px", overflow="auto"))
        title = W.HTML("<b>ROIs</b>")
        children = [title, self.highlight, box] if state.names else [W.HTML("<i>no ROIs</i>")]
        super().__init__(children, **kw)
        self.add_class("grtv-legend")

    def _sync(self, _change=None) -> None:
        for name, cb in self.checkboxes.items():
            v = self.state.is_visible(name)
            if cb.value != v:
                cb.value = v


#: Shown with every static picture: hides the picture once the live widget that follows it has
#: rendered, and hides that widget's output while it cannot render (loading, or "model not found"
#: in a reopened notebook whose kernel is gone), so a saved notebook shows the picture instead.
#: (Needs a trusted notebook: untrusted HTML loses its <style>, and then both are shown.)
SETTLE_S = 120.0  # longest a cell's end waits for a widget's background work (see _settle_after_cell)
STATIC_CSS = (
    "<style>"
    ".jp-OutputArea-child:has(.grtv-static):has(+ .jp-OutputArea-child .grtv-live){display:none}"
    ".jp-OutputArea-child:has(.grtv-static) + .jp-OutputArea-child:not(:has(.grtv-live)){display:none}"
    "</style>"
)


class StaticPNGMixin:
    """The widget's static picture (``self.to_png_bytes()``) as its own output, displayed just
    before the live widget, so a notebook executed headless (papermill), converted by nbconvert or
    saved and reopened without a kernel still shows the study (see :data:`STATIC_CSS`).
    ``_repr_mimebundle_`` also carries the ``image/png`` for front ends that ask for it directly."""

    _static_handle = None

    def static_bundle(self) -> dict[str, str]:
        """``image/png`` and ``text/html`` (the same picture, marked ``grtv-static``) of the widget."""
        png = self.to_png_bytes()  # type: ignore[attr-defined]
        b64 = base64.b64encode(png).decode("ascii")
        name = type(self).__name__
        return {
            "image/png": b64,
            "text/html": f'<div class="grtv-static"><img alt="{name} (static picture)" '
            f'src="data:image/png;base64,{b64}"/></div>{STATIC_CSS}',
            "text/plain": f"<{name} static picture>",
        }

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self.add_class("grtv-live")  # type: ignore[attr-defined]
        try:
            self._static_handle = display(self.static_bundle(), raw=True, display_id=True)
        except Exception as exc:  # a broken picture must not hide the live widget
            display({"text/plain": f"(static picture failed: {exc})"}, raw=True)
        display(super()._repr_mimebundle_(), raw=True)  # type: ignore[misc]
        self._settle_after_cell()

    def _settle_after_cell(self) -> None:
        """When the widget computes parts in the background (``wait()``), hold the end of the cell
        until they are done (at most ``SETTLE_S``): the front end already shows the slices, and a
        headless run (papermill, nbclient) then records the complete static picture before it
        moves on or shuts the kernel down."""
        wait = getattr(self, "wait", None)
        try:
            from IPython import get_ipython

            ip = get_ipython()
        except ImportError:  # pragma: no cover - IPython comes with ipywidgets
            ip = None
        if wait is None or ip is None:
            return

        def settle(*_args: Any) -> None:
            ip.events.unregister("post_run_cell", settle)
            if wait(SETTLE_S):
                # redraw from the cell's own thread: an update sent by a worker thread may carry
                # another parent message and be dropped by headless clients (nbclient, papermill)
                self.update_static()

        ip.events.register("post_run_cell", settle)

    def update_static(self) -> None:
        """Redraw the static picture shown before the widget (e.g. once its 3D view is built)."""
        if self._static_handle is not None:
            self._static_handle.update(self.static_bundle(), raw=True)

    def _repr_mimebundle_(self, **kwargs):  # noqa: D401
        data = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if data is None:
            return None
        try:
            png = self.to_png_bytes()  # type: ignore[attr-defined]
        except Exception as exc:  # a broken picture must not hide the live widget
            data["text/plain"] = f"{data.get('text/plain', '')} (static image failed: {exc})"
            return data
        if png:
            data["image/png"] = base64.b64encode(png).decode("ascii")
        return data
