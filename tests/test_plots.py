"""The PNGs a person looks at: loss.png (a panel per task, raw and averaged, pool size) and the
source-vs-estimate bars, drawn by matplotlib with real axes."""

from __future__ import annotations

import io
import json

import pytest

from distok_cli import plots

from .conftest import run_cli

ROWS = [
    {"step": 2, "task": "mix", "l_mix": 0.4, "l_cst": None, "l_reg": 10.0, "pool": 0},
    {"step": 4, "task": "cst", "l_mix": None, "l_cst": 0.05, "l_reg": 8.0, "pool": 0},
    {"step": 6, "task": "mix", "l_mix": 0.3, "l_cst": None, "l_reg": 6.0, "pool": 4},
    {"step": 8, "task": "mix", "l_mix": 0.2, "l_cst": None, "l_reg": 4.0, "pool": 4},
    {"step": 10, "task": "cst", "l_mix": None, "l_cst": 0.03, "l_reg": 2.0, "pool": 8},
]


def test_moving_average_by_hand():
    assert plots.moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert plots.moving_average([4.0, 2.0], 5) == [4.0, 3.0]


def test_loss_figure_has_a_panel_per_task_and_the_pool():
    fig = plots.loss_figure(ROWS, "t")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == [
        "concept fusion  $L_{mix}$",
        "estimation: latent regularisation  $L_{reg}$",
        "distribution consistency  $L_{cst}$",
        "concept pool (tokens admitted by the estimation task)",
    ]
    mix, reg, cst, pool = fig.axes
    raw, avg = mix.get_lines()
    assert list(raw.get_xdata()) == [2, 6, 8] and list(raw.get_ydata()) == [0.4, 0.3, 0.2]  # mix steps only
    assert raw.get_alpha() == 0.25 and avg.get_linewidth() == 2  # faint raw values, bold average
    assert list(cst.get_lines()[0].get_xdata()) == [4, 10]
    assert list(reg.get_lines()[0].get_ydata()) == [10.0, 8.0, 6.0, 4.0, 2.0]  # L_reg is logged on every step
    assert list(pool.get_lines()[0].get_ydata()) == [0, 0, 4, 4, 8]
    assert pool.get_xlabel() == "training step" and mix.get_ylabel() == "loss"
    assert [t.get_text() for t in pool.get_xticklabels()]  # real axes: ticks carry numbers


def test_a_matching_run_shows_only_the_tasks_it_ran():
    rows = [
        {"step": i, "task": "match", "l_match": 1.0 / i, "l_mix": None, "l_cst": None, "l_reg": 1.0, "pool": 0}
        for i in range(1, 6)
    ]
    titles = [ax.get_title(loc="left") for ax in plots.loss_figure(rows, "t").axes]
    assert titles == [
        "distribution matching  KL(p ‖ estimate)  $L_{match}$",
        "estimation: latent regularisation  $L_{reg}$",
        "concept pool (tokens admitted by the estimation task)",
    ]
    rows.append({"step": 6, "task": "mix", "l_match": None, "l_mix": 0.4, "l_cst": None, "l_reg": 1.0, "pool": 0})
    titles = [ax.get_title(loc="left") for ax in plots.loss_figure(rows, "t").axes]
    assert (
        titles[:3]
        == [
            "distribution matching  KL(p ‖ estimate)  $L_{match}$",
            "concept fusion  $L_{mix}$",
            "estimation: latent regularisation  $L_{reg}$",
        ]
        and len(titles) == 4
    )


def test_bar_pairs_sort_classes_and_label_them():
    fig = plots.bar_pairs_figure(
        [("tok.distok: KL 0.5", {"pig": 0.55, "sheep": 0.25, "snake": 0.2}, {"cat": 0.7, "pig": 0.2, "snake": 0.1})],
        ("source", "estimate"),
    )
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "pig", "sheep", "snake"]  # by larger weight
    source, estimate = ax.containers
    assert [round(b.get_width(), 2) for b in source] == [0.0, 0.55, 0.25, 0.2]
    assert [round(b.get_width(), 2) for b in estimate] == [0.7, 0.2, 0.0, 0.1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["source", "estimate"]


def test_pngs_are_deterministic_and_real_images():
    from PIL import Image

    a, b = plots.loss_png(ROWS, "t"), plots.loss_png(ROWS, "t")
    assert a == b and a.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(a)) as im:
        assert im.width > 500 and im.height > 600


@pytest.mark.parametrize("what", ["loss", "estimate"])
def test_commands_write_the_plots(tmp_path, what, kandinsky):
    if what == "loss":
        r = run_cli(
            [
                "train",
                "-o",
                tmp_path / "run",
                "--steps",
                "6",
                "-q",
                "--set",
                "estimator.kind=text",
                "--set",
                "train.log_every=1",
                "--set",
                "train.estimate_every=3",
            ]
        )
        assert r.code == 0, r.err
        png = tmp_path / "run" / "loss.png"
        rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
        assert png.read_bytes() == plots.loss_png(rows, f"tiny: DisTok training, 6 steps, pool {rows[-1]['pool']}")
    else:
        from distok_cli.files import tokenfile

        from .conftest import make_token

        tok = tmp_path / "t.distok"
        tokenfile.save(make_token(kandinsky.text.space, [0.01] * 768), tok)
        r = run_cli(
            ["estimate", tok, "--estimator", "text", "-r", "tiny", "--plot", tmp_path / "e.png", "-q", "--json"]
        )
        assert r.code == 0, r.err
        res = json.loads(r.out)
        want = plots.bar_pairs_png(
            [(f"t.distok: KL {res['kl']:.3f}", res["source"], res["distribution"])], ("source", "estimate")
        )
        assert (tmp_path / "e.png").read_bytes() == want
