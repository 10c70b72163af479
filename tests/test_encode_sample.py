"""Making tokens with a trained model: encode (specs, files, stdin, stdout, composition), sample (priors,
names, the pool), the default model, and the recipe a token records."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from distok_cli.files import checkpoint, tokenfile
from distok_cli.jobs import rendering
from distok_cli.method import generate

from .conftest import FAST, ROOT, assert_one_line_error, run_cli


def test_encode_is_deterministic_and_records_its_source(run, tmp_path):
    a, b = tmp_path / "a.distok", tmp_path / "b.distok"
    assert run_cli(["encode", "pig:0.55,sheep:0.25,snake:0.20", "-m", run, "-o", a]).out.strip() == str(a)
    assert run_cli(["encode", "snake:0.20,pig:0.55,sheep:0.25", "-m", run, "-o", b]).code == 0
    assert a.read_bytes() == b.read_bytes()
    t = tokenfile.load(a)
    assert t.source["kind"] == "distribution" and t.source["distribution"] == {"pig": 0.55, "sheep": 0.25, "snake": 0.2}
    assert t.title == "pig55-sheep25-snake20" and t.model["hash"] == checkpoint.load(run).hash
    # The token is D_tok(E_dis(Σ p_i t_i)), computed here by hand from the checkpoint.
    ck = checkpoint.load(run)
    T = ck.class_embeddings
    mix = 0.55 * T[2] + 0.25 * T[3] + 0.20 * T[4]
    np.testing.assert_allclose(t.vector, ck.decode(ck.encode_inputs(mix[None]))[0], rtol=1e-6, atol=1e-6)


def test_encode_normalises_with_a_notice(run, tmp_path):
    r = run_cli(["encode", "pig:2,sheep:1", "-m", run, "-o", tmp_path / "x.distok"])
    assert r.code == 0 and "weights sum to 3; normalised to pig:0.6667, sheep:0.3333" in r.err
    assert tokenfile.load(tmp_path / "x.distok").source["distribution"] == pytest.approx({"pig": 2 / 3, "sheep": 1 / 3})
    r = run_cli(["encode", "pig:2,sheep:1", "-m", run, "-o", tmp_path / "y.distok", "--no-normalize", "-q"])
    src = tokenfile.load(tmp_path / "y.distok").source
    assert r.err == "" and src["kind"] == "composition" and "distribution" not in src


def test_encode_composes_token_files_with_lineage(run, tmp_path):
    a = tmp_path / "a.distok"
    run_cli(["encode", "pig:0.5,sheep:0.5", "-m", run, "-o", a])
    r = run_cli(["encode", f"cat:0.5,{a}:0.5", "-m", run, "-o", tmp_path / "c.distok"])
    assert r.code == 0, r.err
    src = tokenfile.load(tmp_path / "c.distok").source
    assert src["kind"] == "composition"
    assert src["parents"] == [
        {"class": "cat", "weight": 0.5},
        {"id": tokenfile.load(a).id, "title": "pig50-sheep50", "weight": 0.5},
    ]
    assert src["distribution"] == {"cat": 0.5, "pig": 0.25, "sheep": 0.25}


def test_encode_reads_json_and_yaml_from_files_and_stdin(run, tmp_path):
    (tmp_path / "d.json").write_text('{"distribution": {"pig": 0.5, "owl": 0.5}}')
    (tmp_path / "d.yaml").write_text("pig: 0.5\nowl: 0.5\n")
    outs = []
    for spec, stdin in ((str(tmp_path / "d.json"), ""), (str(tmp_path / "d.yaml"), ""), ("-", "owl: 0.5\npig: 0.5\n")):
        p = tmp_path / f"o{len(outs)}.distok"
        assert run_cli(["encode", spec, "-m", run, "-o", p], stdin=stdin).code == 0
        outs.append(p.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_encode_to_stdout_streams_the_token_bytes(run, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "distok_cli", "encode", "pig:1", "-m", str(run), "-o", "-"],
        capture_output=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert tokenfile.from_bytes(r.stdout).source["distribution"] == {"pig": 1.0}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("pig:-0.5,sheep:1.5", "weight of 'pig' is negative (-0.5)"),
        ("pig:nan,sheep:1", "weight of 'pig' is not finite"),
        ("pig:abc", "weight of 'pig' is not a number: 'abc'"),
        ("", "empty distribution"),
        ("pig:0.5,,sheep:0.5", "empty component"),
        ("pgi:0.5,sheep:0.5", "unknown class 'pgi' (did you mean: pig?)"),
        ("pig:0,sheep:0", "weights sum to zero"),
        ("pig:0.5,pig:0.5", "class 'pig' appears twice"),
        ("missing.distok:1", "missing.distok: no such file"),
        ("nope.json", "nope.json: no such file"),
    ],
)
def test_malformed_specs_exit_2(run, tmp_path, spec, message):
    r = run_cli(["encode", spec, "-m", run, "-o", tmp_path / "x.distok"])
    assert_one_line_error(r, 2, message)
    assert not (tmp_path / "x.distok").exists()


def test_encode_needs_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert_one_line_error(
        run_cli(["encode", "pig:1"]),
        2,
        "no model: pass -m RUN, set DISTOK_MODEL, or make a default with `distok model RUN`",
    )
    assert_one_line_error(run_cli(["encode", "pig:1", "-m", tmp_path]), 2, "not a distok run folder")


def test_default_model_is_set_by_train_shown_changed_and_loses_to_m_and_env(run, tmp_path, monkeypatch, kandinsky):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(run_cli(["model"]), 1, "no default model (set one with `distok model RUN`")
    r = run_cli(["train", "-o", "r2", "--steps", "1", *sum((["--set", s] for s in FAST), [])])
    assert r.code == 0, r.err
    assert f"{tmp_path / 'r2'} is now the default model" in r.err
    assert run_cli(["model"]).out == f"{tmp_path / 'r2'}\n"  # absolute, though -o was relative
    conf = json.loads((tmp_path / "xdg" / "distok" / "config.json").read_text())
    assert conf == {"default_model": str(tmp_path / "r2")}
    monkeypatch.chdir(ROOT)  # survives a moved working directory
    r = run_cli(["encode", "pig:1", "-o", tmp_path / "a.distok"])
    assert r.code == 0 and f"distok: using model {tmp_path / 'r2'} (the default; `distok model` changes it)" in r.err
    assert tokenfile.load(tmp_path / "a.distok").model["hash"] == checkpoint.load(tmp_path / "r2").hash
    monkeypatch.setenv("DISTOK_MODEL", str(run))  # the environment beats the default ...
    r = run_cli(["encode", "pig:1", "-o", tmp_path / "b.distok", "--overwrite"])
    assert (
        f"using model {run} ($DISTOK_MODEL)" in r.err
        and tokenfile.load(tmp_path / "b.distok").model["hash"] == checkpoint.load(run).hash
    )
    r = run_cli(["encode", "pig:1", "-m", tmp_path / "r2", "-o", tmp_path / "b.distok", "--overwrite", "-q"])
    assert (
        r.err == "" and tokenfile.load(tmp_path / "b.distok").model["hash"] == checkpoint.load(tmp_path / "r2").hash
    )  # ... and -m both
    monkeypatch.delenv("DISTOK_MODEL")
    assert run_cli(["model", str(run)]).out == f"{run}\n" and run_cli(["model"]).out == f"{run}\n"
    assert_one_line_error(run_cli(["model", str(tmp_path)]), 2, "not a distok run folder")
    import shutil

    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes())
    run_cli(["model", str(tmp_path / "gone")])
    shutil.rmtree(tmp_path / "gone")
    assert_one_line_error(
        run_cli(["sample", "--n", "1"]),
        2,
        f"the default model {tmp_path / 'gone'} no longer exists (set another with `distok model RUN`",
    )
    assert run_cli(["model", "--unset"]).code == 0
    assert_one_line_error(run_cli(["model"]), 1, "no default model")


def test_sample_is_deterministic_with_stable_names(run, tmp_path):
    r1 = run_cli(["sample", "--n", "3", "--prior", "cauchy", "--seed", "7", "-m", run, "-o", tmp_path / "a"])
    r2 = run_cli(["sample", "--n", "5", "--prior", "cauchy", "--seed", "7", "-m", run, "-o", tmp_path / "b"])
    assert r1.out.split() == [str(tmp_path / "a" / f"cauchy-s7-{i:04d}.distok") for i in range(3)]
    for i in range(3):  # token i does not depend on --n
        assert (tmp_path / "a" / f"cauchy-s7-{i:04d}.distok").read_bytes() == (
            tmp_path / "b" / f"cauchy-s7-{i:04d}.distok"
        ).read_bytes()
    t = tokenfile.load(r2.out.split()[4])
    assert t.source == {"kind": "latent", "prior": "cauchy", "scale": 1.0, "seed": 7, "index": 4, "z": t.source["z"]}
    # z is the latent D_tok decoded: the prior draw in the latents' trained scale (mean + std · ε).
    ck = checkpoint.load(run)
    eps = generate.latent("cauchy", 7, 4, 20, 1.0)
    np.testing.assert_array_equal(np.float32(t.source["z"]), ck.tensors["latent_mean"] + ck.tensors["latent_std"] * eps)
    ck = checkpoint.load(run)
    np.testing.assert_array_equal(t.vector, ck.decode(np.float32(t.source["z"])[None])[0])
    assert_one_line_error(
        run_cli(["sample", "--n", "3", "--seed", "7", "--prior", "cauchy", "-m", run, "-o", tmp_path / "a"]),
        2,
        "exists (use --overwrite to replace)",
    )


def test_sample_priors_have_the_documented_spread():
    z = np.stack([generate.latent("laplace", 0, i, 20, 1.0) for i in range(2000)])
    assert z.var() == pytest.approx(1.0, rel=0.08) and abs(z.mean()) < 0.03
    g = np.stack([generate.latent("gaussian", 0, i, 20, 2.0) for i in range(2000)])
    assert g.std() == pytest.approx(2.0, rel=0.05)


def test_sample_from_pool_and_bad_prior(run, tmp_path):
    r = run_cli(["sample", "--n", "2", "--from-pool", "-m", run, "-o", tmp_path])
    assert r.code == 0 and len(r.out.split()) == 2
    assert tokenfile.load(r.out.split()[0]).source["kind"] == "pool"
    assert_one_line_error(
        run_cli(["sample", "--prior", "normal", "-m", run]), 2, "--prior must be one of gaussian, laplace, cauchy"
    )
    assert_one_line_error(
        run_cli(["sample", "--scale", "-1", "-m", run, "-o", tmp_path / "z"]), 2, "--scale must be a positive"
    )


def test_inspect_a_checkpoint_file(run):
    r = run_cli(["inspect", "--json", run / "model.safetensors"])
    d = json.loads(r.out)
    assert r.code == 0 and d["kind"] == "checkpoint" and d["model_hash"] == checkpoint.load(run).hash


def test_render_and_estimate_use_the_recipe_recorded_in_the_token(run, tmp_path):
    tok = tmp_path / "t.distok"
    run_cli(["encode", "pig:1", "-m", run, "-o", tok])
    assert tokenfile.load(tok).model["recipe"] == "tiny"
    r = run_cli(["render", tok, "a photo of a <>", "-o", tmp_path / "r"])
    assert r.code == 0 and "using recipe tiny (recorded in the token" in r.err
    assert rendering.recipe_for_tokens("sd15-animals", [tokenfile.load(tok)]) == "sd15-animals"
    assert (
        rendering.recipe_for_tokens(
            None, [tokenfile.load(tok).with_estimate({"estimator": "x", "distribution": {"a": 1.0}})]
        )
        == "tiny"
    )


def test_sample_streams_one_token_at_a_time(run):
    ck = checkpoint.load(run)
    it = generate.sample(ck, 10**12, "gaussian", 1.0, 0)  # a list of 10¹² tokens would never come back
    first = next(it)
    assert first.title == "gaussian-s0-0000" and next(it).title == "gaussian-s0-0001"
    with pytest.raises(Exception, match="--n must be at least 1"):
        generate.sample(ck, 0, "gaussian", 1.0, 0)  # checked before the first token, not on iteration


def test_sample_with_an_overflowing_scale_is_one_line_exit_2(run, tmp_path):
    for scale in ("1e30", "0", "nan", "-1"):
        r = run_cli(["sample", "--n", "2", "--scale", scale, "-m", run, "-o", tmp_path / "o"])
        assert_one_line_error(r, 2, "--scale must be a positive number at most 1000")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # long (CI runs the slow tests too)
def test_no_overwrite_is_atomic_when_two_writers_race(run, tmp_path):
    """Two processes write the same name at once, many times: exactly one wins each time, the other exits 2."""
    code = (
        "import sys; from distok_cli.cli.app import main; "
        f"sys.exit(main(['encode', sys.argv[1], '-m', {str(run)!r}, '-o', sys.argv[2], '-q']))"
    )
    for i in range(8):
        target = tmp_path / f"same{i}.distok"
        procs = [
            subprocess.Popen([sys.executable, "-c", code, spec, str(target)], stderr=subprocess.PIPE, text=True)
            for spec in ("pig:1", "owl:1")
        ]
        codes = sorted(p.wait() for p in procs)
        errs = [p.stderr.read() for p in procs]
        assert codes == [0, 2], errs
        assert any("exists (use --overwrite to replace)" in e for e in errs)
        winner = tokenfile.load(target).source["distribution"]
        assert winner in ({"pig": 1.0}, {"owl": 1.0})
        assert not list(tmp_path.glob(f".same{i}.distok.*.tmp"))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.json", '{"pig": 1e-1, "owl": 9e-1}', None),  # JSON numbers, read by json
        ("d.json", '{"pig": 0.5, "pig": 0.5}', "d.json: not valid JSON (duplicate key 'pig')"),
        ("d.yaml", "pig: 0.5\npig: 0.5\n", "d.yaml: key 'pig' appears twice"),
        ("d.json", '{"pig": NaN}', "d.json: not valid JSON (NaN is not a JSON number)"),
        ("d.json", '{"pig": 1e308, "owl": 1e308}', "weights sum to more than a float can hold"),
        ("d.json", "[" * 100000, "d.json: not valid JSON"),
    ],
)
def test_distribution_files_are_read_strictly(run, tmp_path, name, text, message):
    f = tmp_path / name
    f.write_text(text)
    r = run_cli(["encode", str(f), "-m", run, "-o", tmp_path / "x.distok"])
    if message is None:
        assert r.code == 0, r.err
        assert tokenfile.load(tmp_path / "x.distok").source["distribution"] == pytest.approx({"pig": 0.1, "owl": 0.9})
    else:
        assert_one_line_error(r, 2, message)
        assert not (tmp_path / "x.distok").exists()


def test_a_distribution_file_over_the_cap_is_refused(run, tmp_path):
    f = tmp_path / "big.json"
    f.write_text('{"pig": 1' + " " * (1 << 20) + "}")
    assert_one_line_error(
        run_cli(["encode", str(f), "-m", run]), 2, "big.json: larger than a distribution file can be (1 MiB)"
    )


@pytest.mark.parametrize(
    "hostile", ["../../x/ESCAPED", "/abs/path", "sub/dir/name", "nul\x00byte", "x" * 300, ".hidden"]
)
def test_class_names_from_a_checkpoint_never_become_paths(run, tmp_path, monkeypatch, hostile):
    """A checkpoint whose class is named like a path: encode without -o writes one plain file, here."""
    ck = checkpoint.load(run)
    cfg = dict(ck.config, classes=[hostile, *ck.classes[1:]])
    bad = checkpoint.Checkpoint(ck.tensors, cfg)
    (tmp_path / "m").mkdir()
    bad.save(tmp_path / "m" / "model.safetensors")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = run_cli(["encode", "-", "-m", str(tmp_path / "m"), "-q"], stdin=json.dumps({hostile: 1.0}))
    assert r.code == 0, r.err
    written = list(work.iterdir())
    assert len(written) == 1 and written[0].parent == work and written[0].suffix == ".distok"
    assert r.out.strip() == written[0].name and len(written[0].name) <= 128
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "work"]
