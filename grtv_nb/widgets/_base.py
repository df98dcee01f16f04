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
  // crosshair lines drawn by the browser over the image (moving them needs no new picture)
  const box = document.createElement("div");
  box.style.position = "relative";
  box.style.display = "inline-block";
  box.style.lineHeight = "0";
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
  box.appendChild(img);
  box.appendChild(vline);
  box.appendChild(hline);
  el.appendChild(box);
  const cross = () => {
    const r = model.get("cross_row"), c = model.get("cross_col");
    const h = model.get("img_height") || 1, w = model.get("img_width") || 1;
    hline.style.display = r >= 0 ? "block" : "none";
    vline.style.display = c >= 0 ? "block" : "none";
    hline.style.top = ((r + 0.5) / h * 100) + "%";
    vline.style.left = ((c + 0.5) / w * 100) + "%";
  };
  let url = null;
  const draw = () => {
    const v = model.get("png");
    img.style.width = model.get("display_width") + "px";
    img.style.height = model.get("display_height") + "px";
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
    const r = img.getBoundingClientRect();
    const w = img.naturalWidth || 1, h = img.naturalHeight || 1;
    return {
      row: Math.min(h - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * h))),
      col: Math.min(w - 1, Math.max(0, Math.floor((ev.clientX - r.left) / r.width * w))),
    };
  };
  img.addEventListener("click", (ev) => { img.focus(); model.send({ event: "click", ...pix(ev) }); });
  let last = 0;
  img.addEventListener("mousemove", (ev) => {
    const t = performance.now();
    if (t - last < 80) return;
    last = t;
    model.send({ event: "hover", ...pix(ev) });
  });
  img.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    model.send({ event: "step", delta: ev.deltaY > 0 ? -1 : 1 });
  }, { passive: false });
  img.addEventListener("keydown", (ev) => {
    const up = { ArrowUp: 1, ArrowRight: 1, PageUp: 10, ArrowDown: -1, ArrowLeft: -1, PageDown: -10 };
    if (ev.key in up) {
      ev.preventDefault();
      ev.stopPropagation();
      model.send({ event: "step", delta: up[ev.key] });
    }
  });
  model.on("change:png", draw);
  model.on("change:display_width", draw);
  model.on("change:display_height", draw);
  model.on("change:cross_row", cross);
  model.on("change:cross_col", cross);
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
        """Shows PNG bytes; sends ``{"event": "click"|"hover", "row", "col"}`` and
        ``{"event": "step", "delta"}`` messages (wheel, arrow/page keys)."""

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


class StaticPNGMixin:
    """Adds ``image/png`` (from ``self.to_png_bytes()``) to the widget's display bundle, so a
    notebook executed without a browser keeps a static picture of the widget."""

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
