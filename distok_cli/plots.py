"""Small PNG plots drawn with Pillow (no plotting dependency): loss curves and distribution bars."""

from __future__ import annotations

import io
import math
from typing import Any

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def _font(size: int = 13) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def line_plot(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, w: int = 720, h: int = 360) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    f = _font()
    left, right, top, bottom = 60, 20, 30, 40
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    d.text((left, 8), title, fill="black", font=f)
    if not pts:
        return _png(img)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def X(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def Y(y: float) -> float:
        return h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)

    d.rectangle([left, top, w - right, h - bottom], outline="#888")
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        d.text((4, Y(yv) - 7), f"{yv:.3g}", fill="#444", font=f)
        d.line([left, Y(yv), w - right, Y(yv)], fill="#eee")
    d.text((left, h - bottom + 6), f"{x0:g}", fill="#444", font=f)
    d.text((w - right - 50, h - bottom + 6), f"{x1:g}", fill="#444", font=f)
    d.text(((w - left) // 2, h - bottom + 20), xlabel, fill="#444", font=f)
    for i, (name, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        s = [p for p in s if math.isfinite(p[1])]
        if len(s) > 1:
            d.line([(X(x), Y(y)) for x, y in s], fill=color, width=2)
        elif s:
            d.ellipse([X(s[0][0]) - 2, Y(s[0][1]) - 2, X(s[0][0]) + 2, Y(s[0][1]) + 2], fill=color)
        d.text((w - right - 110, top + 6 + 16 * i), f"- {name}", fill=color, font=f)
    return _png(img)


def bar_pairs(panels: list[tuple[str, dict[str, float], dict[str, float]]], labels: tuple[str, str], w: int = 900) -> bytes:
    """One panel per (title, p, q): grouped bars of p and q per class (e.g. input vs estimate)."""
    from PIL import Image, ImageDraw

    f = _font(12)
    ph = 170
    img = Image.new("RGB", (w, 30 + ph * len(panels)), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 8), f"{labels[0]} (blue) vs {labels[1]} (red)", fill="black", font=f)
    for n, (title, p, q) in enumerate(panels):
        oy = 30 + n * ph
        classes = sorted(set(p) | set(q), key=lambda c: -(p.get(c, 0) + q.get(c, 0)))[:12]
        d.text((10, oy), title[:100], fill="black", font=f)
        base, height = oy + ph - 28, ph - 50
        bw = (w - 40) / max(len(classes), 1)
        for i, c in enumerate(classes):
            x = 20 + i * bw
            for j, (dist, color) in enumerate(((p, COLORS[0]), (q, COLORS[1]))):
                v = dist.get(c, 0.0)
                bx = x + 4 + j * (bw - 8) / 2
                d.rectangle([bx, base - v * height, bx + (bw - 8) / 2 - 2, base], fill=color)
            d.text((x + 2, base + 4), c[:10], fill="#333", font=f)
    return _png(img)


def _png(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
