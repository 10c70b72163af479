"""Rich views of tokens, token pairs and estimates for people (the library returns plain dicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distok_cli.api import Token, describe, source_distribution, sweep_text, top


def bars(dist: dict[str, float], width: int = 30, limit: int = 12) -> Any:
    from rich.table import Table

    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right")
    table.add_column()
    table.add_column(justify="right")
    items = top(dist, limit)
    for name, p in items:
        table.add_row(name, "█" * round(p * width) or "▏", f"{p:.3f}")
    rest = len(dist) - len(items)
    if rest > 0:
        table.add_row("…", f"{rest} more", f"{1 - sum(p for _, p in items):.3f}")
    return table


def token_panel(token: Token, neighbors: Any = None) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    d = describe(token)
    s = d["stats"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", justify="right")
    grid.add_column()
    grid.add_row("id", token.id)
    grid.add_row("title", str(token.title))
    if token.space:
        shape = f"parts {token.space.describe()}" if token.space.parts else f"dim {token.space.dim}"
        grid.add_row("token space", f"{token.space.encoder} ({shape}, fingerprint {token.space.fingerprint[:23]})")
    else:
        shape = f"parts {' + '.join(f'{n} ({d})' for n, d in token.layout)}" if token.layout else f"dim {token.dim}"
        grid.add_row("token space", f"unknown: plain textual-inversion file ({shape}), no provenance")
    grid.add_row("vector", f"norm {s['norm']:.4f}  min {s['min']:.4f}  max {s['max']:.4f}  mean {s['mean']:.5f}")
    for name, ps in d.get("parts", {}).items():
        grid.add_row(name, f"norm {ps['norm']:.4f}  min {ps['min']:.4f}  max {ps['max']:.4f}  mean {ps['mean']:.5f}")
    src = token.source
    if src:
        line = src["kind"]
        if src["kind"] == "latent":
            line += (
                f": {src['prior']} prior, scale {src.get('scale')}, seed {src.get('seed')}, index {src.get('index')}"
            )
        grid.add_row("source", line)
        if source_distribution(token):
            grid.add_row("", bars(source_distribution(token) or {}))
        for p in src.get("parents") or []:
            who = p.get("class") or p.get("title") or p.get("id", "?")
            grid.add_row("parent", f"{p['weight']:.3f} × {who}" + (f" ({p['id'][:19]})" if p.get("id") else ""))
        if sweep_text(token):
            grid.add_row("sweep", sweep_text(token) or "")
        ref = src.get("refine")
        if isinstance(ref, dict) and isinstance(ref.get("steps"), int):
            kl = (
                f": KL {ref['kl_before']:.3f} -> {ref['kl_after']:.3f}"
                if isinstance(ref.get("kl_before"), (int, float)) and isinstance(ref.get("kl_after"), (int, float))
                else ""
            )
            grid.add_row("refined", f"{ref['steps']} steps in {len(ref.get('styles') or [])} styles{kl}")
    est = token.estimate
    if est:
        grid.add_row(
            "estimate", f"{est['estimator']}" + (f", {len(est.get('seeds') or [])} seeds" if est.get("seeds") else "")
        )
        grid.add_row("", bars(est["distribution"]))
        if est.get("kl") is not None:
            grid.add_row("divergence", f"KL(source‖estimate) {est['kl']:.4f}  JS {est.get('js', float('nan')):.4f}")
    if token.model:
        grid.add_row("model", f"{token.model.get('hash', '?')[:19]}  recipe {token.model.get('recipe', '?')}")
    if token.exported:
        e = token.exported
        grid.add_row("exported", f"for {e['target']} as {e['name']} ({e['dtype']}) from {e['source_id'][:19]}")
    if token.tool_version:
        grid.add_row("written by", f"distok {token.tool_version}")
    if isinstance(neighbors, dict):
        for part, rows in neighbors.items():
            grid.add_row(f"neighbours {part}", ", ".join(f"{t} ({c:.3f})" for t, c in rows))
    elif neighbors is not None:
        grid.add_row("neighbours", ", ".join(f"{t} ({c:.3f})" for t, c in neighbors))
    return Panel(grid, title=str(token.path), title_align="left")


def diff_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", justify="right")
    t.add_column()
    t.add_row("A", f"{result['a']['path']} ({result['a']['id'][:19]})")
    t.add_row("B", f"{result['b']['path']} ({result['b']['id'][:19]})")
    t.add_row("cosine", f"{result['cosine']:.4f}")
    t.add_row("L2", f"{result['l2']:.4f}")
    for name, part in (result.get("parts") or {}).items():
        t.add_row(name, f"cosine {part['cosine']:.4f}  L2 {part['l2']:.4f}")
    if result["norm_ratio"] is not None:
        t.add_row("norm B/A", f"{result['norm_ratio']:.4f}")
    if result["latent_distance"] is not None:
        t.add_row("latent distance", f"{result['latent_distance']:.4f}")
    if result["same_token_space"] is False:
        t.add_row("warning", "the tokens come from different token spaces")
    for key in ("source", "estimate"):
        part = result[key]
        if part:
            t.add_row(f"{key} JS", f"{part['js']:.4f}")
            moved = sorted(part["per_class"].items(), key=lambda kv: -abs(kv[1]))[:8]
            t.add_row("", "  ".join(f"{n} {v:+.3f}" for n, v in moved))
    return t


def result_view(r: dict[str, Any]) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", justify="right")
    grid.add_column()
    how = ""
    if r.get("prompt"):
        text_side = r["estimator"].startswith("text:")
        how = f" (text-side: {r['prompt']})" if text_side else f" ({len(r['seeds'])} renders of {r['prompt']})"
    grid.add_row("estimator", r["estimator"] + how)
    grid.add_row("", bars(r["distribution"]))
    if r.get("kl") is not None:
        grid.add_row("vs source", f"KL {r['kl']:.4f}  JS {r['js']:.4f}")
    return Panel(grid, title=str(Path(r["path"])), title_align="left")
