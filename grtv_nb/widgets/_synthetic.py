"""A small analytical study (xarray Dataset of the Study layout) for widget tests, the render
benchmark and demos: an elliptic body with lungs, a spine and ellipsoid ROIs, and a Gaussian dose."""

from __future__ import annotations

import numpy as np


def synthetic_dataset(
    shape: tuple[int, int, int] = (40, 128, 128),
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0),
    n_rois: int = 6,
    dose: bool = True,
    z: np.ndarray | None = None,
):
    """Build an xarray Dataset with ``image`` (int16 HU), ``dose`` (float32 Gy, optional) and
    ``masks`` (bool, ``roi, z, y, x``) with ``roi_color``, ``roi_number`` and ``roi_type`` coords.

    ``z`` overrides the slice positions (mm), e.g. for non-uniform spacing."""
    import xarray as xr

    nz, ny, nx = shape
    dz, dy, dx = spacing
    x = (np.arange(nx) - (nx - 1) / 2) * dx
    y = (np.arange(ny) - (ny - 1) / 2) * dy
    zc = np.asarray(z, dtype=np.float64) if z is not None else (np.arange(nz) - (nz - 1) / 2) * dz
    Z, Y, X = zc[:, None, None], y[None, :, None], x[None, None, :]
    ax, ay = 0.42 * nx * dx, 0.32 * ny * dy
    hz = max(abs(zc[-1] - zc[0]) / 2, 1.0)
    body = ((X / ax) ** 2 + (Y / ay) ** 2 <= 1.0) & np.ones_like(Z, dtype=bool)
    img = np.full((nz, ny, nx), -1000, np.int16)
    img[body] = 30
    lungs = []
    for sx in (-1, 1):
        lung = (
            ((X - sx * 0.45 * ax) / (0.3 * ax)) ** 2 + ((Y + 0.05 * ay) / (0.6 * ay)) ** 2 + (Z / (0.9 * hz)) ** 2
        ) <= 1
        img[lung] = -800
        lungs.append(lung)
    spine = ((X / (0.1 * ax)) ** 2 + ((Y - 0.6 * ay) / (0.15 * ay)) ** 2 <= 1) & body
    img[spine] = 700
    canal = ((X / (0.04 * ax)) ** 2 + ((Y - 0.6 * ay) / (0.06 * ay)) ** 2 <= 1) & body
    img[canal] = 40
    ptv = ((X - 0.1 * ax) / (0.18 * ax)) ** 2 + ((Y + 0.1 * ay) / (0.2 * ay)) ** 2 + (Z / (0.4 * hz)) ** 2 <= 1
    rois = [
        ("BODY", body, (0, 255, 0), "EXTERNAL"),
        ("PTV", ptv, (255, 0, 0), "PTV"),
        ("Lung_L", lungs[1], (0, 0, 255), "ORGAN"),
        ("Lung_R", lungs[0], (255, 0, 255), "ORGAN"),
        ("Spine", spine, (255, 255, 0), "ORGAN"),
        ("Canal", canal, (0, 255, 255), "ORGAN"),
    ]
    rng = np.random.default_rng(0)
    k = 0
    while len(rois) < n_rois:
        cx, cy = rng.uniform(-0.6, 0.6) * ax, rng.uniform(-0.6, 0.6) * ay
        r = rng.uniform(0.06, 0.15) * ax
        m = ((X - cx) / r) ** 2 + ((Y - cy) / r) ** 2 + ((Z - rng.uniform(-0.5, 0.5) * hz) / (1.5 * r)) ** 2 <= 1
        col = tuple(int(c) for c in rng.integers(40, 255, 3))
        rois.append((f"Organ_{k}", m, col, "ORGAN"))
        k += 1
    rois = rois[:n_rois]
    data = {"image": (("z", "y", "x"), img)}
    if dose:
        d = 60.0 * np.exp(
            -(((X - 0.1 * ax) / (0.3 * ax)) ** 2 + ((Y + 0.1 * ay) / (0.3 * ay)) ** 2 + (Z / (0.6 * hz)) ** 2)
        )
        data["dose"] = (("z", "y", "x"), (d * body).astype(np.float32))
    coords = {"z": zc, "y": y, "x": x}
    if rois:
        data["masks"] = (("roi", "z", "y", "x"), np.stack([np.broadcast_to(r[1], shape) for r in rois]))
        coords.update(
            roi=[r[0] for r in rois],
            roi_number=("roi", np.arange(1, len(rois) + 1)),
            roi_color=(("roi", "rgb"), np.array([r[2] for r in rois], np.uint8)),
            roi_type=("roi", [r[3] for r in rois]),
        )
    return xr.Dataset(data, coords=coords)
