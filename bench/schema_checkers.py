"""distok's hand-written JSON Schema checker (``distok_cli/files/schema.py``) against ``fastjsonschema``
(issue 31): what each costs a fresh process to import and get ready, what a check costs, and whether they
give the same verdicts, with the ``jsonschema`` library as the referee.

    pip install fastjsonschema                 # not a dependency of distok: only this comparison needs it
    python bench/schema_checkers.py            # writes bench/results/schema-checkers.{md,json}

Verdicts: the 52 schema probes of ``tests/test_strict_inputs.py`` (one field of a golden token changed to a
wrong type, range, pattern or shape), plus every golden file's metadata as it is, each metadata value
checked against its ``$defs`` entry and the whole metadata map against the schema's root. fastjsonschema
gets each schema without its ``$schema`` and ``$id``: with the ``$id`` (an https URL) it resolves every local
``$ref`` against it over the network.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMAS = ["distok-token-v1", "distok-token-v2", "distok-checkpoint-v1", "distok-png-record-v1"]

HAND = """
import time; t = time.perf_counter()
from distok_cli.files import schema
for n in {names!r}:
    schema.load(n)
print(time.perf_counter() - t)
"""
FAST = """
import time; t = time.perf_counter()
import json, fastjsonschema
from importlib import resources
for n in {names!r}:
    root = json.loads(resources.files("distok_cli.files").joinpath("schemas", n + ".schema.json").read_text())
    root.pop("$schema", None); root.pop("$id", None)
    fastjsonschema.compile(root)
    for d in root.get("$defs", {{}}):
        fastjsonschema.compile({{**root["$defs"][d], "$defs": root["$defs"]}})
print(time.perf_counter() - t)
"""
HAND_ONE = """
import time; t = time.perf_counter()
from distok_cli.files import schema
schema.load("distok-token-v2")
print(time.perf_counter() - t)
"""
FAST_ONE = """
import time; t = time.perf_counter()
import json, fastjsonschema
from importlib import resources
root = json.loads(resources.files("distok_cli.files").joinpath("schemas", "distok-token-v2.schema.json").read_text())
root.pop("$schema", None); root.pop("$id", None)
fastjsonschema.compile(root)
for d in ("token_space", "source", "estimate", "model"):
    fastjsonschema.compile({{**root["$defs"][d], "$defs": root["$defs"]}})
print(time.perf_counter() - t)
"""


def fresh(code: str, runs: int = 7) -> float:
    """Median seconds a fresh interpreter takes for ``code`` (timed inside it: the interpreter's own start excluded)."""
    out = []
    for _ in range(runs):
        r = subprocess.run(
            [sys.executable, "-c", code.format(names=SCHEMAS)], capture_output=True, text=True, cwd=ROOT, check=True
        )
        out.append(float(r.stdout.strip().splitlines()[-1]))
    return statistics.median(out)


def main() -> None:
    import fastjsonschema
    import jsonschema

    from distok_cli.files import schema
    from tests.test_strict_inputs import PROBES, TOKEN_DEFS, _probe

    roots = {n: schema.load(n) for n in SCHEMAS}

    def fast_validator(name: str, definition: str):
        # Without "$id": with it, fastjsonschema resolves "#/$defs/..." against that URL over the network.
        root = {k: v for k, v in roots[name].items() if k not in ("$schema", "$id")}
        return fastjsonschema.compile({**root["$defs"][definition], "$defs": root["$defs"]} if definition else root)

    fast = {(n, d): fast_validator(n, d) for n in SCHEMAS for d in ["", *roots[n].get("$defs", {})]}

    def verdicts(meta: dict, name: str, defs: dict) -> tuple[bool, bool, bool]:
        root = roots[name]
        checks = [(meta, "")] + [(json.loads(meta[k]), d) for k, d in defs.items() if k in meta]
        hand = fj = ref = True
        for value, d in checks:
            sub = root["$defs"][d] if d else root
            try:
                schema.check(value, sub, root)
            except schema.Invalid:
                hand = False
            try:
                fast[(name, d)](value)
            except fastjsonschema.JsonSchemaException:
                fj = False
            try:
                jsonschema.validate(value, {**sub, "$defs": root["$defs"]} if d else root)
            except jsonschema.ValidationError:
                ref = False
        return hand, fj, ref

    cases = [_probe(*p)[1] for p in PROBES]
    golden = []
    for f in sorted((ROOT / "formats" / "examples").glob("*.distok")):
        data = f.read_bytes()
        n = int.from_bytes(data[:8], "little")
        golden.append(json.loads(data[8 : 8 + n])["__metadata__"])
    rows = [verdicts(m, "distok-token-v2", TOKEN_DEFS) for m in cases + golden]
    hand_disagrees = [i for i, (h, _, r) in enumerate(rows) if h != r]
    fast_disagrees = [i for i, (_, f, r) in enumerate(rows) if f != r]

    meta = golden[0]
    values = [(json.loads(meta[k]), d) for k, d in TOKEN_DEFS.items() if k in meta]
    root = roots["distok-token-v2"]

    def per_check(fn, reps: int = 2000) -> float:
        t = time.perf_counter()
        for _ in range(reps):
            for value, d in values:
                fn(value, d)
        return (time.perf_counter() - t) / (reps * len(values))

    hand_check = per_check(lambda v, d: schema.check(v, root["$defs"][d], root))
    fast_check = per_check(lambda v, d: fast[("distok-token-v2", d)](v))
    hand_ready, fast_ready = fresh(HAND), fresh(FAST)
    hand_one, fast_one = fresh(HAND_ONE), fresh(FAST_ONE)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core CPU",
        "python": sys.version.split()[0],
        "fastjsonschema": fastjsonschema.VERSION,
        "cases": len(rows),
        "probes": len(cases),
        "golden": len(golden),
        "ready_s": {"hand": hand_ready, "fastjsonschema": fast_ready},
        "ready_one_token_s": {"hand": hand_one, "fastjsonschema": fast_one},
        "check_us": {"hand": hand_check * 1e6, "fastjsonschema": fast_check * 1e6},
        "disagree_with_jsonschema": {"hand": len(hand_disagrees), "fastjsonschema": len(fast_disagrees)},
        "fast_disagreements": [
            {"case": i, "hand": rows[i][0], "fastjsonschema": rows[i][1], "jsonschema": rows[i][2]}
            for i in fast_disagrees
        ],
    }
    out = ROOT / "bench" / "results"
    (out / "schema-checkers.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "schema-checkers.md").write_text(
        f"# Schema checkers ({result['date']}, {result['machine']}, Python {result['python']}, fastjsonschema {result['fastjsonschema']})\n\n"
        "`python bench/schema_checkers.py`\n\n"
        "| | hand-written (`files/schema.py`) | fastjsonschema |\n|---|---|---|\n"
        f"| a fresh process: import and get the 4 schemas ready (median of 7) | {hand_ready * 1000:.1f} ms | {fast_ready * 1000:.1f} ms |\n"
        f"| a fresh process: import and get ready to read one token file (token v2: root and 4 definitions) | {hand_one * 1000:.1f} ms | {fast_one * 1000:.1f} ms |\n"
        f"| one check of a golden token's metadata value | {hand_check * 1e6:.1f} µs | {fast_check * 1e6:.1f} µs |\n"
        f"| verdicts differing from `jsonschema`, of {len(rows)} ({len(cases)} probes, {len(golden)} golden files) | "
        f"{len(hand_disagrees)} | {len(fast_disagrees)} |\n"
    )
    print((out / "schema-checkers.md").read_text())


if __name__ == "__main__":
    main()
