"""MeshScene: an anywidget that draws triangle meshes with WebGL in the browser (no library, no
network: the shader program and an orbit camera are the ~250 lines of JavaScript below).

Meshes travel once, as binary float32 points and uint32 triangles (``meshes``, plus ``dose_mesh``
for the one isosurface that changes with its level); colour, opacity and visibility travel as a
small ``styles`` dict, so toggling or recolouring a ROI redraws without sending geometry again,
and the camera, held by the browser, is kept across every such change.

Conventions: points are patient coordinates (mm, LPS: x to the patient's left, y posterior, z
superior). The camera starts with an anterior view (patient's left on the viewer's right, head up).
Mouse: left drag rotates, shift or right drag pans, wheel zooms, double click resets the camera.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets as T

_ESM = r"""
const VS = `
attribute vec3 p; attribute vec3 n;
uniform mat4 mv; uniform mat4 pr;
varying vec3 vn; varying vec3 vp;
void main() { vec4 q = mv * vec4(p, 1.0); vp = q.xyz; vn = mat3(mv) * n; gl_Position = pr * q; }`;
const FS = `
precision mediump float;
varying vec3 vn; varying vec3 vp;
uniform vec3 c; uniform float a;
void main() {
  vec3 N = normalize(vn);
  vec3 V = normalize(-vp);
  float d = abs(dot(N, V));
  float s = pow(d, 40.0) * 0.2;
  gl_FragColor = vec4(c * (0.3 + 0.7 * d) + vec3(s), a);
}`;

function mul(a, b) {  // column-major 4x4
  const o = new Float32Array(16);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a[k * 4 + j] * b[i * 4 + k];
    o[i * 4 + j] = s;
  }
  return o;
}
function translate(x, y, z) { const m = ident(); m[12] = x; m[13] = y; m[14] = z; return m; }
function ident() { const m = new Float32Array(16); m[0] = m[5] = m[10] = m[15] = 1; return m; }
function rotX(t) {
  const m = ident(), c = Math.cos(t), s = Math.sin(t);
  m[5] = c; m[6] = s; m[9] = -s; m[10] = c;
  return m;
}
function rotY(t) {
  const m = ident(), c = Math.cos(t), s = Math.sin(t);
  m[0] = c; m[2] = -s; m[8] = s; m[10] = c;
  return m;
}
function persp(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2), m = new Float32Array(16);
  m[0] = f / aspect; m[5] = f; m[10] = (far + near) / (near - far); m[11] = -1; m[14] = 2 * far * near / (near - far);
  return m;
}
// world (LPS) -> eye for the anterior view: eye x = +x, eye y = +z, eye z = -y (camera on the anterior side)
const BASE = new Float32Array([1, 0, 0, 0,  0, 0, -1, 0,  0, 1, 0, 0,  0, 0, 0, 1]);

function floats(dv) { return new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength)); }
function uints(dv) { return new Uint32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength)); }

function render({ model, el }) {
  el.classList.add("grtv-3d");
  const canvas = document.createElement("canvas");
  canvas.className = "grtv-3d-canvas";
  canvas.style.border = "1px solid #ccc";
  canvas.style.cursor = "grab";
  canvas.style.display = "block";
  canvas.title = "drag: rotate \u00b7 shift/right drag: pan \u00b7 wheel: zoom \u00b7 double click: reset";
  el.appendChild(canvas);
  const gl = canvas.getContext("webgl", { antialias: true, preserveDrawingBuffer: true, alpha: false });
  if (!gl || !gl.getExtension("OES_element_index_uint")) {
    el.textContent = "3D view: this browser has no WebGL";
    return;
  }
  const sh = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, sh(gl.VERTEX_SHADER, VS));
  gl.attachShader(prog, sh(gl.FRAGMENT_SHADER, FS));
  gl.linkProgram(prog);
  const loc = {
    p: gl.getAttribLocation(prog, "p"), n: gl.getAttribLocation(prog, "n"),
    mv: gl.getUniformLocation(prog, "mv"), pr: gl.getUniformLocation(prog, "pr"),
    c: gl.getUniformLocation(prog, "c"), a: gl.getUniformLocation(prog, "a"),
  };
  let items = {};  // id -> {pb, nb, ib, count, centre}
  let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  let uploads = 0, frames = 0;
  const upload = (m) => {
    const pos = floats(m.pos), idx = uints(m.idx);
    const nrm = new Float32Array(pos.length);
    for (let t = 0; t < idx.length; t += 3) {
      const a = idx[t] * 3, b = idx[t + 1] * 3, c = idx[t + 2] * 3;
      const ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
      const vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
      const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      for (const k of [a, b, c]) { nrm[k] += nx; nrm[k + 1] += ny; nrm[k + 2] += nz; }
    }
    const centre = [0, 0, 0];
    for (let i = 0; i < pos.length; i += 3) for (let k = 0; k < 3; k++) {
      lo[k] = Math.min(lo[k], pos[i + k]); hi[k] = Math.max(hi[k], pos[i + k]); centre[k] += pos[i + k];
    }
    for (let k = 0; k < 3; k++) centre[k] /= Math.max(1, pos.length / 3);
    const buf = (target, data) => {
      const b = gl.createBuffer();
      gl.bindBuffer(target, b);
      gl.bufferData(target, data, gl.STATIC_DRAW);
      return b;
    };
    uploads += 1;
    return { pb: buf(gl.ARRAY_BUFFER, pos), nb: buf(gl.ARRAY_BUFFER, nrm), ib: buf(gl.ELEMENT_ARRAY_BUFFER, idx),
             count: idx.length, centre };
  };
  const free = (it) => { gl.deleteBuffer(it.pb); gl.deleteBuffer(it.nb); gl.deleteBuffer(it.ib); };
  const load = () => {
    for (const id in items) if (id !== "__dose__") { free(items[id]); delete items[id]; }
    lo = [Infinity, Infinity, Infinity]; hi = [-Infinity, -Infinity, -Infinity];
    for (const m of model.get("meshes") || []) items[m.id] = upload(m);
    loadDose(false);
    el.dataset.uploads = String(uploads);
    resetCamera(false);
    draw();
  };
  const loadDose = (redraw = true) => {
    if (items.__dose__) { free(items.__dose__); delete items.__dose__; }
    const d = model.get("dose_mesh");
    if (d && d.pos && d.pos.byteLength) items.__dose__ = upload({ ...d, id: "__dose__" });
    el.dataset.uploads = String(uploads);
    if (redraw) draw();
  };
  // camera: orbit about the scene centre
  let cam = null;
  const resetCamera = (redraw = true) => {
    if (!isFinite(lo[0])) { cam = { yaw: 0, pitch: 0, dist: 500, target: [0, 0, 0], radius: 200 }; }
    else {
      const target = [0, 1, 2].map((k) => (lo[k] + hi[k]) / 2);
      const radius = Math.max(1, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2);
      cam = { yaw: 0, pitch: 0, dist: radius / Math.sin(15 * Math.PI / 180) * 1.05, target, radius };
    }
    if (redraw) draw();
  };
  const size = () => {
    const w = model.get("width"), h = model.get("height"), r = window.devicePixelRatio || 1;
    canvas.style.width = w + "px"; canvas.style.height = h + "px";
    canvas.width = Math.round(w * r); canvas.height = Math.round(h * r);
  };
  const draw = () => {
    if (!cam) resetCamera(false);
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.useProgram(prog);
    const t = cam.target;
    const view = mul(translate(cam.pan ? cam.pan[0] : 0, cam.pan ? cam.pan[1] : 0, -cam.dist),
                     mul(rotX(cam.pitch), mul(rotY(cam.yaw), mul(BASE, translate(-t[0], -t[1], -t[2])))));
    const near = Math.max(cam.dist - 2 * cam.radius, cam.dist / 100), far = cam.dist + 2 * cam.radius;
    gl.uniformMatrix4fv(loc.mv, false, view);
    gl.uniformMatrix4fv(loc.pr, false, persp(30 * Math.PI / 180, canvas.width / canvas.height, near, far));
    const styles = model.get("styles") || {};
    const shown = [];
    for (const id in items) {
      const s = styles[id];
      if (!s || !s.visible || s.opacity <= 0) continue;
      const c = items[id].centre;
      const z = view[2] * c[0] + view[6] * c[1] + view[10] * c[2] + view[14];
      shown.push({ it: items[id], s, z });
    }
    const opaque = shown.filter((x) => x.s.opacity >= 0.99), glass = shown.filter((x) => x.s.opacity < 0.99);
    glass.sort((a, b) => a.z - b.z);  // far first
    gl.enable(gl.DEPTH_TEST);
    const one = (x) => {
      gl.uniform3f(loc.c, x.s.color[0] / 255, x.s.color[1] / 255, x.s.color[2] / 255);
      gl.uniform1f(loc.a, x.s.opacity);
      gl.bindBuffer(gl.ARRAY_BUFFER, x.it.pb);
      gl.enableVertexAttribArray(loc.p);
      gl.vertexAttribPointer(loc.p, 3, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, x.it.nb);
      gl.enableVertexAttribArray(loc.n);
      gl.vertexAttribPointer(loc.n, 3, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, x.it.ib);
      gl.drawElements(gl.TRIANGLES, x.it.count, gl.UNSIGNED_INT, 0);
    };
    gl.disable(gl.BLEND);
    gl.depthMask(true);
    opaque.forEach(one);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.depthMask(false);
    glass.forEach(one);
    gl.depthMask(true);
    frames += 1;
    el.dataset.frames = String(frames);
    el.dataset.shown = shown.map((x) => x.s.name || "").join(",");
  };
  let drag = null;
  canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  canvas.addEventListener("mousedown", (ev) => {
    ev.preventDefault();
    drag = { x: ev.clientX, y: ev.clientY, pan: ev.shiftKey || ev.button === 2, yaw: cam.yaw, pitch: cam.pitch,
             p: cam.pan ? [...cam.pan] : [0, 0] };
    canvas.style.cursor = "grabbing";
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (drag.pan) {
      const k = 2 * cam.dist * Math.tan(15 * Math.PI / 180) / model.get("height");
      cam.pan = [drag.p[0] + dx * k, drag.p[1] - dy * k];
    } else {
      cam.yaw = drag.yaw + dx * 0.01;
      cam.pitch = Math.max(-1.55, Math.min(1.55, drag.pitch + dy * 0.01));
    }
    requestAnimationFrame(draw);
  });
  window.addEventListener("mouseup", () => { drag = null; canvas.style.cursor = "grab"; });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    cam.dist *= ev.deltaY > 0 ? 1.1 : 1 / 1.1;
    requestAnimationFrame(draw);
  }, { passive: false });
  canvas.addEventListener("dblclick", () => resetCamera());
  model.on("change:meshes", load);
  model.on("change:dose_mesh", () => loadDose());
  model.on("change:styles", draw);
  model.on("change:width", () => { size(); draw(); });
  model.on("change:height", () => { size(); draw(); });
  size();
  load();
  return () => { for (const id in items) free(items[id]); };
}
export default { render };
"""


def mesh_payload(name: str, points: np.ndarray, triangles: np.ndarray) -> dict[str, Any]:
    """One mesh as the widget sends it: ``{"id", "pos": float32 bytes, "idx": uint32 bytes}``."""
    pts = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
    tri = np.ascontiguousarray(triangles, dtype=np.uint32).reshape(-1, 3)
    return {"id": name, "pos": pts.tobytes(), "idx": tri.tobytes()}


def _scene_class():
    import anywidget

    class MeshScene(anywidget.AnyWidget):
        """Triangle meshes drawn by WebGL in the browser; see the module docstring."""

        _esm = _ESM
        meshes = T.List(T.Dict()).tag(sync=True)  # [{"id", "pos", "idx"}], sent once
        dose_mesh = T.Dict().tag(sync=True)  # {"pos", "idx"} or {} (id "__dose__")
        styles = T.Dict().tag(sync=True)  # id -> {"name", "color": [r, g, b], "opacity", "visible"}
        width = T.Int(480).tag(sync=True)
        height = T.Int(400).tag(sync=True)

    return MeshScene


_CLASS = None


def mesh_scene(width: int, height: int):
    """A new :class:`MeshScene` widget of the given size (px)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _scene_class()
    return _CLASS(width=int(width), height=int(height))
