"""Distributions as users give them: ``pig:0.55,sheep:0.25,snake:0.20``, a JSON or YAML file, or ``-`` (stdin).

Read strictly: a file under a size cap from a regular file only, JSON through the strict JSON reader, YAML
through the safe loader, weights checked one by one (:func:`distok_cli.files.distributions.weight`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from distok_cli.errors import BadInput
from distok_cli.files import distributions as dists
from distok_cli.files import frame, schema

#: Largest distribution file or stdin (a distribution over every class of a big vocabulary fits easily).
MAX_SPEC_BYTES = 1 << 20


def _structured(text: str, where: str, json_first: bool = False) -> dict[str, float]:
    """JSON through the strict JSON reader (duplicate keys, NaN and numbers beyond a double refused);
    YAML through the safe loader (duplicate keys refused too)."""
    import yaml

    from distok_cli.files.recipes import safe_yaml

    try:
        data = schema.loads(text)
    except ValueError as exc:
        if json_first:
            raise BadInput(f"{where}: not valid JSON ({exc})") from None
        try:
            data = safe_yaml(text)
        except yaml.constructor.ConstructorError as exc:
            raise BadInput(f"{where}: {exc.problem}") from None
        except (yaml.YAMLError, RecursionError, ValueError):
            raise BadInput(f"{where}: not valid JSON or YAML") from None
    if isinstance(data, dict) and isinstance(data.get("distribution"), dict):
        data = data["distribution"]
    if not isinstance(data, dict) or not data:
        raise BadInput(f"{where}: expected a mapping of class name to weight")
    out: dict[str, float] = {}
    for k, v in data.items():
        name = str(k).strip()
        if not name:
            raise BadInput(f"{where}: empty class name")
        out[name] = dists.weight(name, v, f"{where}: ")
    return out


def read_spec(spec: str) -> dict[str, float]:
    """Raw weights from ``pig:0.55,sheep:0.25``, a JSON/YAML file, or ``-`` (JSON/YAML on stdin).

    A file or stdin holds a mapping ``{name: weight}`` or ``{"distribution": {name: weight}}``.
    """
    if spec == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise BadInput("'-' reads the distribution from stdin, but stdin is a terminal")
        text = sys.stdin.read(MAX_SPEC_BYTES + 1)
        if len(text) > MAX_SPEC_BYTES:
            raise BadInput(f"stdin: a distribution larger than {MAX_SPEC_BYTES >> 10} KiB")
        return _structured(text, "stdin")
    p = Path(spec)
    if p.suffix.lower() in (".json", ".yaml", ".yml"):
        data = frame.read_regular(p, MAX_SPEC_BYTES, "distribution file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{spec}: not a readable UTF-8 text file") from None
        return _structured(text, spec, json_first=p.suffix.lower() == ".json")
    return dists.parse_spec(spec)
