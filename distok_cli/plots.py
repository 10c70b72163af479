"""PNG plots with matplotlib (Agg backend), imported only by the commands that draw.

- :func:`loss_png`: ``loss.png`` of a run, one panel per task (fusion L_mix, estimation L_reg,
  consistency L_cst) with the raw values faint and a moving average bold, and the concept pool's size.
- :func:`bar_pairs_png`: per item, two distributions side by side (source and estimate, or input and
  estimate) as horizontal bars, classes sorted by weight, with their names.

- :func:`contact_sheet`, :func:`triangle_sheet`: rendered images on a labelled grid (PIL images, for
  ``render`` and ``sweep``).

The plots return PNG bytes (callers write them atomically); fonts and sizes are fixed and metadata
is stripped, so the same data gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

A_COLOR, B_COLOR = "#4c72b0", "#dd8452"
TASKS = (  # (log field, title, which rows) — the DisTok tasks as the trainer logs them
    ("l_match", "distribution matching  KL(p ‖ estimate)  $L_{match}$", "match"),
    ("l_mix", "concept fusion  $L_{mix}$", "mix"),
    ("l_reg", "estimation: latent regularisation  $L_{reg}$", None),
    ("l_cst", "distribution consistency  $L_{cst}$", "cst"),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.hashsalt": "distok",
            "figure.dpi": 100,
        }
    )
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None}, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start): the bold line of a panel."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_png(rows: list[dict[str, Any]], title: str) -> bytes:
    """``loss.png`` from ``log.jsonl`` rows (``step``, ``task``, ``l_mix``, ``l_reg``, ``l_cst``, ``pool``)."""
    return _png(loss_figure(rows, title))


def loss_figure(rows: list[dict[str, Any]], title: str) -> Any:
    plt = _pyplot()
    # A run of the paper's objective shows its three panels (an empty one says so); a run of distok's
    # objective shows matching, L_reg, and fusion or consistency only if they ran (on minilm they never do).
    logged = {r.get("task") for r in rows}
    tasks = [t for t in TASKS if t[2] is None or t[2] in logged or ("match" not in logged and t[0] != "l_match")]
    fig, axes = plt.subplots(
        len(tasks) + 1, 1, figsize=(8, 2.25 * (len(tasks) + 1)), sharex=True, constrained_layout=True
    )
    fig.suptitle(title)
    for ax, (key, label, task) in zip(axes, tasks):
        pts = [
            (r["step"], r[key])
            for r in rows
            if (task is None or r.get("task") == task)
            and isinstance(r.get(key), (int, float))
            and math.isfinite(r[key])
        ]
        ax.set_title(label, loc="left")
        ax.set_ylabel("loss")
        if not pts:
            ax.text(0.5, 0.5, "no steps of this task logged", transform=ax.transAxes, ha="center", color="0.5")
            continue
        xs, ys = zip(*pts)
        window = max(1, min(25, len(ys) // 5))
        ax.plot(xs, ys, color=A_COLOR, alpha=0.25, linewidth=0.8, label="logged value")
        ax.plot(
            xs, moving_average(ys, window), color=A_COLOR, linewidth=2, label=f"moving average ({window} logged steps)"
        )
        if key == "l_reg" and min(ys) > 0 and max(ys) / min(ys) > 100:
            ax.set_yscale("log")
        ax.legend(loc="best", frameon=True, framealpha=0.85, edgecolor="none")
        ax.grid(alpha=0.3)
    ax = axes[-1]
    steps = [r["step"] for r in rows]
    ax.step(steps, [r.get("pool", 0) for r in rows], where="post", color=B_COLOR, linewidth=2)
    ax.set_title("concept pool (tokens admitted by the estimation task)", loc="left")
    ax.set_ylabel("concepts")
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
    return fig


def bar_pairs_png(
    panels: Sequence[tuple[str, Mapping[str, float], Mapping[str, float]]],
    labels: tuple[str, str],
    top: int = 10,
    title: str = "",
) -> bytes:
    """One panel per (title, a, b): the classes of a ∪ b sorted by their larger weight (the ``top`` first),
    a's and b's bars side by side with the class names on the axis and the values printed."""
    return _png(bar_pairs_figure(panels, labels, top, title))


def bar_pairs_figure(
    panels: Sequence[tuple[str, Mapping[str, float], Mapping[str, float]]],
    labels: tuple[str, str],
    top: int = 10,
    title: str = "",
) -> Any:
    plt = _pyplot()
    n = max(len(panels), 1)
    rows = [sorted(set(a) | set(b), key=lambda c: (-max(a.get(c, 0.0), b.get(c, 0.0)), c))[:top] for _, a, b in panels]
    heights = [max(len(r), 1) * 0.32 + 0.9 for r in rows] or [1.5]
    fig, axes = plt.subplots(
        n, 1, figsize=(7, sum(heights)), gridspec_kw={"height_ratios": heights}, squeeze=False, constrained_layout=True
    )
    if title:
        fig.suptitle(title)
    for ax, (name, a, b), classes in zip(axes[:, 0], panels, rows):
        ax.set_title(name, loc="left")
        if not classes:
            ax.text(0.5, 0.5, "nothing to show", transform=ax.transAxes, ha="center", color="0.5")
            ax.set_yticks([])
            continue
        ys = range(len(classes))
        h = 0.4
        for offset, dist, color, label in ((-h / 2, a, A_COLOR, labels[0]), (h / 2, b, B_COLOR, labels[1])):
            vals = [dist.get(c, 0.0) for c in classes]
            bars = ax.barh(
                [y + offset for y in ys], vals, height=h, color=color, label=label if dist else f"{label} (none)"
            )
            ax.bar_label(bars, labels=[f"{v:.2f}" if v >= 0.005 else "" for v in vals], padding=2, fontsize=7)
        ax.set_yticks(list(ys), classes)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.08)
        ax.set_xlabel("probability")
        ax.legend(loc="best", frameon=True, framealpha=0.85, edgecolor="none")
        ax.grid(axis="x", alpha=0.3)
    return fig


def grouped_bars_png(groups: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str, title: str) -> bytes:
    """Vertical bars: one group per label in ``groups``, one bar per series (e.g. KL per style and arm),
    each bar labelled with its value."""
    plt = _pyplot()
    colors = (A_COLOR, B_COLOR, "#55a868", "#8172b3", "#c44e52")
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(groups) + 2), 4.2), constrained_layout=True)
    for j, (name, values) in enumerate(series.items()):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(xs, values, width, label=name, color=colors[j % len(colors)])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.25 * max((v for vs in series.values() for v in vs), default=1.0))  # room for the legend
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.legend(loc="upper center", ncol=len(series), frameon=True, framealpha=0.85, edgecolor="none")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def lines_png(
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str,
    dashed: Mapping[str, Sequence[float]] | None = None,
) -> bytes:
    """One line per series over ``xs`` (e.g. each end class's estimated share along a sweep), markers at
    the points; ``dashed``: the same series' reference values (e.g. the source weights), thin and dashed."""
    plt = _pyplot()
    colors = (A_COLOR, B_COLOR, "#55a868", "#8172b3", "#c44e52", "#937860")
    fig, ax = plt.subplots(figsize=(7.0, 3.8), constrained_layout=True)
    for j, (name, ys) in enumerate(series.items()):
        color = colors[j % len(colors)]
        ax.plot(xs, ys, marker="o", markersize=3.5, color=color, label=name)
        if dashed and name in dashed:
            ax.plot(xs, dashed[name], linestyle="--", linewidth=0.9, color=color, alpha=0.7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, loc="left")
    ax.legend(loc="best", frameon=True, framealpha=0.85, edgecolor="none")
    ax.grid(alpha=0.3)
    return _png(fig)


# ------------------------------------------------------------------------------ contact sheets (Pillow)


def _font(size: int = 14) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def triangle_sheet(rows: list[list[Any]], labels: list[str], grid: int, prompts: list[str], cell: int = 128) -> Any:
    """A triangle sweep per prompt: row r holds r + 1 images (its grid points in path order), centred, each
    labelled with its weights; the prompts stacked, each under its own heading."""
    from PIL import Image, ImageDraw

    font, heading, pad, label_h, head = _font(11), _font(14), 6, 16, 24
    width = grid * (cell + pad) + pad
    tri_h = grid * (cell + label_h + pad) + pad
    sheet = Image.new("RGB", (width, len(prompts) * (tri_h + head)), "white")
    draw = ImageDraw.Draw(sheet)
    for q, (prompt, images) in enumerate(zip(prompts, rows)):
        top = q * (tri_h + head)
        draw.text((pad, top + 4), prompt[:80], fill="black", font=heading)
        idx = 0
        for r in range(grid):
            x0 = (width - (r + 1) * (cell + pad) + pad) // 2
            y = top + head + r * (cell + label_h + pad)
            for k in range(r + 1):
                x = x0 + k * (cell + pad)
                sheet.paste(images[idx].convert("RGB").resize((cell, cell)), (x, y))
                draw.text((x, y + cell + 2), labels[idx][:22], fill="black", font=font)
                idx += 1
    return sheet


def contact_sheet(images: list[list[Any]], row_labels: list[str], col_labels: list[str], cell: int = 160) -> Any:
    """A labelled grid: one row per token and one column per prompt, or (a sweep) one row per prompt and one
    column per token in path order."""
    from PIL import Image, ImageDraw

    font = _font(14)
    pad, top, left = 4, 28, 140
    rows, cols = len(images), max(len(r) for r in images)
    sheet = Image.new("RGB", (left + cols * (cell + pad) + pad, top + rows * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(col_labels):
        draw.text((left + j * (cell + pad) + pad, 6), label[:24], fill="black", font=font)
    for i, row in enumerate(images):
        y = top + i * (cell + pad) + pad
        draw.text((6, y + cell // 2 - 8), row_labels[i][:16], fill="black", font=font)
        for j, img in enumerate(row):
            sheet.paste(img.convert("RGB").resize((cell, cell)), (left + j * (cell + pad) + pad, y))
    return sheet
