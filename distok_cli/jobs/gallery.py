"""``distok gallery``: one self-contained static HTML page over token files and the PNGs rendered from them.

The page needs no network and no other file: CSS and JavaScript are inline and every render is embedded
as a thumbnail (a JPEG data URI) that links to the full image by a relative path. For each token it shows
its renders by prompt and seed, its source distribution beside its estimate as bars, KL/JS, its nearest
classes (cosine to a model's class embeddings, when a model in the token's space is given), its lineage,
and the command lines that re-render or export it. Plain JavaScript sorts and filters the cards by KL,
prior (or source kind) and source class. Tokens of one sweep (``distok sweep``) are also shown together, in
path order, as one strip above the cards.

No torch: numpy and Pillow only.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distok_cli.errors import BadInput
from distok_cli.files import distributions as dists
from distok_cli.files import pngrecord, tokenfile
from distok_cli.files.checkpoint import Checkpoint
from distok_cli.files.summary import source_distribution
from distok_cli.files.tokenfile import TOKEN_SUFFIXES, Token
from distok_cli.progress import Progress, log

THUMB = 192
DEFAULT_PROMPT = "a photo of a <>"


@dataclass
class Render:
    path: str
    prompt: str
    seed: int
    recipe: str


@dataclass
class Card:
    token: Token
    renders: list[Render] = field(default_factory=list)
    neighbours: list[tuple[str, float]] | None = None
    #: other files holding the same vector (same content id; e.g. a corner shared by two sweeps)
    duplicates: list[Token] = field(default_factory=list)


def collect(paths: list[str]) -> tuple[list[Token], list[tuple[str, dict[str, Any]]]]:
    """Token files and rendered PNGs under ``paths`` (files, or folders searched recursively).

    A file named on the command line must be readable (else :class:`BadInput`); inside a folder, a
    ``.safetensors`` that is not a token (a checkpoint, say) and a PNG without a distok record are skipped.
    """
    tokens: list[Token] = []
    pngs: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.name.startswith(".") or not f.is_file() or str(f.resolve()) in seen:
                    continue
                seen.add(str(f.resolve()))
                if f.suffix == ".png":
                    try:
                        pngs.append((str(f), pngrecord.read(str(f))))
                    except BadInput:
                        continue
                elif f.suffix in TOKEN_SUFFIXES:
                    try:
                        tokens.append(tokenfile.load(f))
                    except BadInput:
                        if f.suffix == ".distok":
                            raise
                        continue
        elif p.suffix.lower() == ".png":
            seen.add(str(p.resolve()))
            pngs.append((str(p), pngrecord.read(str(p))))
        else:
            seen.add(str(p.resolve()))
            tokens.append(tokenfile.load(p))
    return tokens, pngs


def cards_for(tokens: list[Token], pngs: list[tuple[str, dict[str, Any]]], model: Checkpoint | None) -> list[Card]:
    """One card per distinct token (by content id, first path wins); renders matched by the token id in
    their record. A render whose token was not given is loaded from the path its record names, when that
    file still holds the same token."""
    by_id: dict[str, Card] = {}
    for tok in tokens:
        if tok.id in by_id:
            by_id[tok.id].duplicates.append(tok)
        else:
            by_id[tok.id] = Card(tok)
    for path, meta in pngs:
        tid = meta["token"]["id"]
        if tid not in by_id and meta["token"]["path"]:
            try:
                tok = tokenfile.load(meta["token"]["path"])
            except BadInput:
                tok = None
            if tok is not None and tok.id == tid:
                by_id[tid] = Card(tok)
        if tid in by_id:
            by_id[tid].renders.append(Render(path, meta["prompt"], int(meta["seed"]), meta["recipe"]))
        else:
            log.warning(
                "distok: %s: its token (%s) is neither given nor at %s; left out", path, tid[:19], meta["token"]["path"]
            )
    cards = list(by_id.values())
    unit = _unit_rows(model.class_embeddings) if model is not None else None
    for card in cards:
        card.renders.sort(key=lambda r: (r.prompt, r.seed, r.path))
        card.neighbours = nearest_classes(card.token, model, unit) if model is not None else None
    return cards


def _unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def nearest_classes(
    token: Token, model: Checkpoint, unit: np.ndarray | None = None, k: int = 5
) -> list[tuple[str, float]] | None:
    """The ``k`` classes of ``model`` whose embeddings t_i have the highest cosine with the token (None when
    the token is not in the model's token space). ``unit``: the class embeddings already normalised."""
    if token.space is not None and not token.space.compatible(model.space):
        return None
    if token.dim != model.space.dim:
        return None
    m = _unit_rows(model.class_embeddings) if unit is None else unit
    v = token.vector / max(float(np.linalg.norm(token.vector)), 1e-12)
    sims = m @ v
    order = np.argsort(-sims, kind="stable")[:k]
    return [(model.classes[i], float(sims[i])) for i in order]


def thumbnail(path: str, size: int = THUMB) -> str:
    """A JPEG data URI of the image at ``path``, at most ``size`` pixels on its longer side."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------------- HTML


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _rel(path: str, page_dir: Path) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(page_dir))
    return "/".join(rel.split(os.sep))


def _bars(source: dict[str, float] | None, estimate: dict[str, float] | None, top: int = 8) -> str:
    src, est = source or {}, estimate or {}
    classes = sorted(set(src) | set(est), key=lambda c: (-max(src.get(c, 0.0), est.get(c, 0.0)), c))[:top]
    if not classes:
        return '<p class="muted">no distribution (a latent token not yet estimated: <code>distok estimate --write</code>)</p>'
    rows = []
    for c in classes:
        s, e = src.get(c, 0.0), est.get(c, 0.0)
        rows.append(
            f'<div class="bar-row"><span class="cls">{_e(c)}</span>'
            f'<span class="bar"><i class="src" style="width:{100 * s:.1f}%"></i></span><span class="v">{s:.2f}</span>'
            f'<span class="bar"><i class="est" style="width:{100 * e:.1f}%"></i></span><span class="v">{e:.2f}</span></div>'
        )
    legend = (
        '<div class="bar-row head"><span class="cls"></span><span class="bar">source</span><span class="v"></span>'
        '<span class="bar">estimate</span><span class="v"></span></div>'
    )
    return '<div class="bars">' + legend + "".join(rows) + "</div>"


def _lineage(tok: Token) -> str:
    src = tok.source or {}
    items = []
    kind = src.get("kind", "plain textual inversion" if tok.plain else "?")
    if kind == "latent":
        items.append(
            f"latent z ({len(src['z'])} dims) from a {src['prior']} prior"
            + (f", scale {src['scale']:g}" if "scale" in src else "")
            + (f", seed {src['seed']}" if "seed" in src else "")
            + (f", index {src['index']}" if "index" in src else "")
        )
    elif kind == "composition":
        parts = [
            f"{p['weight']:g} × {_e(p.get('class') or p.get('title') or p.get('id', '?')[:19])}" for p in src["parents"]
        ]
        items.append("composition: " + " + ".join(parts))
    elif kind in ("distribution", "pool"):
        items.append(f"{kind}: " + _e(", ".join(f"{c} {p:.2f}" for c, p in dists.top(src["distribution"], 5))))
    else:
        items.append(_e(kind))
    from distok_cli.files.summary import sweep_text

    where = sweep_text(tok)
    if where:
        items.append(_e(where))
    if tok.model:
        m = tok.model
        items.append(
            f"model <code>{_e(m['hash'][:19])}</code>"
            + (f", recipe {_e(m['recipe'])}" if m.get("recipe") else "")
            + (f", step {m['step']}" if "step" in m else "")
        )
    if tok.space is not None:
        shape = _e(tok.space.describe()) if tok.space.parts else f"{tok.space.dim}-d"
        items.append(f"space {_e(tok.space.encoder)} ({shape})")
    if tok.exported:
        items.append(
            f"exported for {_e(tok.exported['target'])} as <code>{_e(tok.exported['name'])}</code> "
            f"from <code>{_e(tok.exported['source_id'][:19])}</code>"
        )
    if tok.tool_version:
        items.append(f"written by distok {_e(tok.tool_version)}")
    return '<ul class="lineage">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def _export_targets(tok: Token) -> list[str]:
    """The export targets that would accept ``tok`` (ComfyUI first): the page offers no refused command."""
    from distok_cli.errors import BadInput
    from distok_cli.files import export

    ok = []
    for name in ("comfyui", "diffusers"):
        try:
            export.check_exportable(tok, export.TARGETS[name])
            ok.append(name)
        except BadInput:
            continue
    return ok


def _renderable(tok: Token) -> bool:
    """Whether `distok render` takes this token (a MiniLM token is refused: the page offers no line that fails)."""
    from distok_cli.jobs.rendering import check_renderable

    try:
        check_renderable([tok])
        return True
    except BadInput:
        return False


def _commands(tok: Token, renders: list[Render], page_dir: Path) -> str:
    """The command lines that make this card again, with paths relative to the page's folder."""
    path = _rel(tok.path, page_dir) if tok.path else "TOKEN.distok"
    prompts = list(dict.fromkeys(r.prompt for r in renders)) or [DEFAULT_PROMPT]
    seeds = sorted({r.seed for r in renders}) or [0]
    recipe = f" -r {shlex.quote(renders[0].recipe)}" if renders else ""
    lines = [
        *(
            [
                f"distok render {shlex.quote(path)} {' '.join(shlex.quote(p) for p in prompts)} "
                f"--seeds {','.join(map(str, seeds))}{recipe}"
            ]
            if _renderable(tok)
            else []
        ),
        *(f"distok export {shlex.quote(path)} --to {t}" for t in _export_targets(tok)[:1]),
        f"distok inspect {shlex.quote(path)}",
    ]
    return "".join(f'<pre class="cmd">{_e(line)}</pre>' for line in lines)


def _renders(card: Card, page_dir: Path, size: int) -> tuple[str, int]:
    if not card.renders:
        return '<p class="muted">no renders given for this token</p>', 0
    prompts: dict[str, list[Render]] = {}
    for r in card.renders:
        prompts.setdefault(r.prompt, []).append(r)
    rows = []
    for prompt, rs in prompts.items():
        cells = "".join(
            f'<figure><a href="{_e(_rel(r.path, page_dir))}"><img src="{thumbnail(r.path, size)}" alt="{_e(prompt)}, seed {r.seed}"'
            f' width="{size}" height="{size}" loading="eager"></a><figcaption>seed {r.seed}</figcaption></figure>'
            for r in rs
        )
        rows.append(f'<div class="prompt"><div class="ptext">{_e(prompt)}</div><div class="strip">{cells}</div></div>')
    return "".join(rows), len(card.renders)


def _card(card: Card, page_dir: Path, size: int) -> tuple[str, int]:
    tok = card.token
    est = tok.estimate or {}
    src_dist = source_distribution(tok)
    kl, js = est.get("kl"), est.get("js")
    src = tok.source or {}
    prior = src.get("prior") if src.get("kind") == "latent" else src.get("kind", "plain")
    classes = " ".join(sorted(src_dist)) if src_dist else ""
    renders, n = _renders(card, page_dir, size)
    neighbours = (
        ", ".join(f'{_e(c)} <span class="muted">{round(s, 3) + 0.0:.3f}</span>' for c, s in card.neighbours)
        if card.neighbours
        else '<span class="muted">— (give <code>-m RUN</code> with a model in this token\'s space)</span>'
    )
    title = tok.title or Path(tok.path or "token").stem
    metrics = (f"KL {kl:.3f}" if isinstance(kl, (int, float)) else "KL —") + (
        f" · JS {js:.3f}" if isinstance(js, (int, float)) else ""
    )
    body = f"""
<article class="card" id="card-{_e(tok.short_id)}" data-kl="{"" if kl is None else f"{kl:.6f}"}" data-prior="{_e(prior)}" data-classes="{_e(classes)}" data-title="{_e(title)}">
  <header><h2>{_e(title)}</h2><span class="id">{_e(tok.short_id)}</span><span class="tag">{_e(prior)}</span><span class="metric">{metrics}</span></header>
  <div class="path">{_e(_rel(tok.path, page_dir) if tok.path else "")}</div>
  <section class="renders">{renders}</section>
  <section class="grid2">
    <div><h3>source vs estimate</h3>{_bars(src_dist, est.get("distribution"))}
      <p class="small">estimator: {_e(est.get("estimator", "—"))}</p></div>
    <div><h3>nearest classes</h3><p>{neighbours}</p><h3>lineage</h3>{_lineage(tok)}</div>
  </section>
  <section><h3>again <span class="small">(from this page's folder)</span></h3>{_commands(tok, card.renders, page_dir)}</section>
</article>"""
    return body, n


CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f6f4;color:#222}
header.top{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:10px 20px;z-index:2;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header.top h1{font-size:18px;margin:0 12px 0 0}
label{font-size:13px;color:#555}select,input{font:inherit;padding:2px 6px}
main{padding:16px 20px;display:flex;flex-direction:column;gap:16px}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px 16px}
.card header{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.card h2{font-size:16px;margin:0}.id{font-family:monospace;color:#888}
.tag{background:#eef2fb;color:#345;border-radius:10px;padding:0 8px;font-size:12px}.metric{margin-left:auto;font-weight:600}
.path{font-family:monospace;font-size:12px;color:#777;margin:2px 0 8px}
.renders{display:flex;flex-wrap:wrap;gap:8px 28px}.prompt{margin:6px 0}.ptext{font-style:italic;color:#444;margin-bottom:4px}
.strip{display:flex;gap:8px;flex-wrap:wrap}figure{margin:0;text-align:center}figure img{display:block;border-radius:4px;background:#eee}
figcaption{font-size:11px;color:#777}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:24px;margin-top:8px}
h3{font-size:13px;margin:8px 0 4px;color:#555;text-transform:uppercase;letter-spacing:.04em}
.bars{display:flex;flex-direction:column;gap:2px}.bar-row{display:grid;grid-template-columns:90px 1fr 34px 1fr 34px;gap:6px;align-items:center;font-size:12px}
.bar-row.head{color:#777}.cls{text-align:right;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar{background:#f0f0f0;height:10px;border-radius:2px;overflow:hidden}.bar-row.head .bar{background:none;height:auto}
.bar i{display:block;height:100%}.bar i.src{background:#4c72b0}.bar i.est{background:#dd8452}.v{font-family:monospace;color:#555}
.lineage{margin:0;padding-left:18px;font-size:13px}.muted{color:#999}.small{font-size:12px;color:#666}
pre.cmd{background:#1e1e1e;color:#ddd;padding:6px 10px;border-radius:4px;margin:4px 0;overflow-x:auto;font-size:12px}
.hidden{display:none}
.sweeps{padding:16px 20px 0}.sweep{background:#fff;border:1px solid #ddd;border-radius:8px;padding:8px 16px;margin-bottom:12px}
.sweep .strip{flex-wrap:nowrap;overflow-x:auto}.sweep figcaption{white-space:nowrap}
.noimg{display:flex;align-items:center;justify-content:center;width:96px;height:96px;background:#eee;border-radius:4px;font-size:11px;color:#555}
"""

JS = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); document.body.dataset.errors = errors.join(' | '); });
  var cards = Array.prototype.slice.call(document.querySelectorAll('.card'));
  var main = document.querySelector('main');
  function apply() {
    var sort = document.getElementById('sort').value, prior = document.getElementById('prior').value;
    var cls = document.getElementById('cls').value.trim().toLowerCase(), shown = 0;
    var key = function (c) { return c.dataset.kl === '' ? Infinity : parseFloat(c.dataset.kl); };
    cards.sort(function (a, b) {
      if (sort === 'kl-asc') return key(a) - key(b);
      if (sort === 'kl-desc') return (key(b) === Infinity ? -1 : key(b)) - (key(a) === Infinity ? -1 : key(a));
      if (sort === 'prior') return a.dataset.prior.localeCompare(b.dataset.prior) || a.dataset.title.localeCompare(b.dataset.title);
      return a.dataset.title.localeCompare(b.dataset.title);
    });
    cards.forEach(function (c) {
      var ok = (!prior || c.dataset.prior === prior) && (!cls || (' ' + c.dataset.classes.toLowerCase() + ' ').indexOf(' ' + cls) >= 0);
      c.classList.toggle('hidden', !ok); if (ok) shown++; main.appendChild(c);
    });
    document.getElementById('count').textContent = shown + ' of ' + cards.length + ' tokens';
    document.body.dataset.shown = cards.filter(function (c) { return !c.classList.contains('hidden'); })
      .map(function (c) { return c.dataset.title; }).join(',');
  }
  // Initial values may come from the address: gallery.html#sort=kl-desc&prior=cauchy&cls=pig
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
    var p = kv.split('='), el = document.getElementById(p[0]);
    if (p.length === 2 && el && ['sort', 'prior', 'cls'].indexOf(p[0]) >= 0) el.value = decodeURIComponent(p[1]);
  });
  ['sort', 'prior', 'cls'].forEach(function (id) { document.getElementById(id).addEventListener('input', apply); });
  apply();
  window.addEventListener('load', function () {
    var imgs = document.querySelectorAll('img'), ok = 0;
    for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
    document.body.dataset.imagesLoaded = ok; document.body.dataset.imagesBroken = imgs.length - ok;
    document.body.dataset.errors = errors.join(' | ');
  });
})();
"""


def _sweeps(cards: list[Card], page_dir: Path, size: int) -> tuple[str, int]:
    """One strip per sweep among the cards: each token in path order, as its first render (or its label),
    linking to its card; captioned with its weights or t. Returns (html, number of strips)."""
    from distok_cli.jobs.rendering import sweep_groups, sweep_label

    by_id = {c.token.id: c for c in cards}
    strips = []
    for group in sweep_groups([t for c in cards for t in (c.token, *c.duplicates)]):
        rec = group[0].source["sweep"]  # type: ignore[index]
        cells, prompt = [], ""
        for tok in group:
            card = by_id[tok.id]
            first = sorted(card.renders, key=lambda r: (r.prompt, r.seed))[:1]
            if first and not prompt:
                prompt = _e(first[0].prompt)
            label = _e(sweep_label(tok))
            inner = (
                f'<img src="{thumbnail(first[0].path, size // 2)}" alt="{label}" width="{size // 2}" height="{size // 2}">'
                if first
                else f'<span class="noimg">{label}</span>'
            )
            cells.append(
                f'<figure><a href="#card-{_e(tok.short_id)}">{inner}</a><figcaption>{label}</figcaption></figure>'
            )
        shape = (
            f"triangle, grid {rec['grid']}" if rec["path"] == "triangle" else f"{rec['path']}, {rec['interpolation']}"
        )
        strips.append(
            f'<div class="sweep" data-count="{len(group)}"><h3>sweep: {len(group)} of {rec["count"]} tokens '
            f'({_e(shape)}) <span class="small">{prompt}</span></h3><div class="strip">{"".join(cells)}</div></div>'
        )
    if not strips:
        return "", 0
    return f'<section class="sweeps">{"".join(strips)}</section>', len(strips)


def page(
    cards: list[Card],
    page_dir: Path,
    title: str = "distok gallery",
    size: int = THUMB,
    progress: Progress | None = None,
) -> str:
    """The whole HTML page (a string); ``progress`` advances once per card."""
    bodies, images = [], 0
    for card in cards:
        body, n = _card(card, page_dir, size)
        bodies.append(body)
        images += n
        if progress is not None:
            progress(1)
    priors = sorted(
        {
            c.token.source.get("prior")
            if c.token.source and c.token.source.get("kind") == "latent"
            else (c.token.source or {}).get("kind", "plain")
            for c in cards
        }
    )
    options = "".join(f'<option value="{_e(p)}">{_e(p)}</option>' for p in priors)
    classes = sorted({cl for c in cards for cl in (source_distribution(c.token) or {})})
    datalist = "".join(f'<option value="{_e(c)}">' for c in classes)
    sweeps, n_sweeps = _sweeps(cards, page_dir, size)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="distok"><title>{_e(title)}</title><style>{CSS}</style></head>
<body data-tokens="{len(cards)}" data-images="{images}" data-sweeps="{n_sweeps}">
<header class="top"><h1>{_e(title)}</h1>
<label>sort <select id="sort"><option value="kl-asc">KL, low first</option><option value="kl-desc">KL, high first</option>
<option value="prior">prior / kind</option><option value="title">title</option></select></label>
<label>prior <select id="prior"><option value="">all</option>{options}</select></label>
<label>source class <input id="cls" list="classes" placeholder="e.g. pig" size="12"><datalist id="classes">{datalist}</datalist></label>
<span id="count" class="small"></span></header>
{sweeps}<main>{"".join(bodies) if bodies else '<p class="muted">no tokens found</p>'}</main>
<script>{JS}</script></body></html>
"""


def build(
    paths: list[str], output: Path, model: Checkpoint | None, size: int = THUMB, progress: Progress | None = None
) -> tuple[str, int, int]:
    """Collect, match and render the page; returns (html, tokens, renders). Nothing is written here."""
    if not 32 <= size <= 1024:
        raise BadInput(f"--thumb must be between 32 and 1024 pixels, got {size}")
    tokens, pngs = collect(paths)
    if not tokens and not pngs:
        raise BadInput("no token files or rendered PNGs found in " + ", ".join(paths))
    cards = cards_for(tokens, pngs, model)
    text = page(cards, output.parent, size=size, progress=progress)
    return text, len(cards), sum(len(c.renders) for c in cards)
