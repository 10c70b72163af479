"""The JSON Schema subset distok's file formats use, checked without a third-party library.

Every metadata object distok reads (a token's ``distok.*`` values, a checkpoint's config, a PNG record)
is validated here against the schemas shipped in ``distok_cli/files/schemas/`` before any field is
used, so a field of the wrong type or range is a one-line :class:`BadInput`, never a crash later on.
The same schema files are the normative ones in ``formats/`` (a test keeps them byte-identical) and
``tests/test_schema_agreement.py`` runs one set of probes through this checker and through the
``jsonschema`` library and requires the same verdict.

Keywords understood: ``type``, ``enum``, ``const``, ``required``, ``properties``,
``additionalProperties``, ``minProperties``, ``propertyNames``, ``items``, ``minItems``, ``maxItems``,
``minimum``, ``maximum``, ``exclusiveMinimum``, ``minLength``, ``maxLength``, ``pattern``, ``allOf``,
``anyOf``, ``if``/``then`` and local ``$ref``; annotations (``description``, ``title``, ``content*``) are
ignored, as draft 2020-12 validators do. A schema using any other keyword is refused when loaded.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from importlib import resources
from typing import Any

from distok_cli.errors import BadInput

_ANNOTATIONS = {"$schema", "$id", "title", "description", "contentMediaType", "contentSchema", "$defs", "default"}
_KEYWORDS = {
    "type",
    "enum",
    "const",
    "required",
    "properties",
    "additionalProperties",
    "minProperties",
    "propertyNames",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "maxLength",
    "pattern",
    "allOf",
    "anyOf",
    "if",
    "then",
    "$ref",
}


class Invalid(ValueError):
    """A value does not match its schema; the message names where (``a.b[2]``) and why."""


@cache
def load(name: str) -> dict[str, Any]:
    """A schema shipped with distok (``distok-token-v1``, ``distok-png-record-v1``, ``distok-checkpoint-v1``)."""
    text = resources.files("distok_cli.files").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    schema = json.loads(text)
    _check_keywords(schema)
    return schema


def _check_keywords(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _check_keywords(sub)
            elif key in _KEYWORDS or key == "contentSchema":
                _check_keywords(value)
        bad = {k for k in node if k not in _KEYWORDS and k not in _ANNOTATIONS}
        if bad:
            raise RuntimeError(f"schema keyword(s) not supported by distok's checker: {sorted(bad)}")
    elif isinstance(node, list):
        for sub in node:
            _check_keywords(sub)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "number":
        return True
    if kind == "integer":
        return isinstance(value, int) or value.is_integer()
    raise RuntimeError(f"unknown JSON type {kind!r}")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def check(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, where: str = "") -> None:
    """Raise :class:`Invalid` if ``value`` does not match ``schema`` (``root`` holds the ``$defs``)."""
    root = schema if root is None else root
    at = where or "value"
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise RuntimeError(f"only local $defs references are supported, not {ref}")
        check(value, root["$defs"][ref[len("#/$defs/") :]], root, where)
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, k) for k in kinds):
            raise Invalid(f"{at} must be {' or '.join(kinds)}, not {_describe(value)}")
    if "const" in schema and not _equal(value, schema["const"]):
        raise Invalid(f"{at} must be {_describe(schema['const'])}")
    if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
        raise Invalid(f"{at} must be one of {', '.join(_describe(e) for e in schema['enum'])}, not {_describe(value)}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise Invalid(f"{at} must not be empty" if schema["minLength"] == 1 else f"{at} is too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise Invalid(f"{at} is longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise Invalid(f"{at} {_describe(value)} does not match {schema['pattern']}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise Invalid(f"{at} must be at least {schema['minimum']}, not {_describe(value)}")
        if "maximum" in schema and value > schema["maximum"]:
            raise Invalid(f"{at} must be at most {schema['maximum']}, not {_describe(value)}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise Invalid(f"{at} must be more than {schema['exclusiveMinimum']}, not {_describe(value)}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise Invalid(f"{at} needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise Invalid(f"{at} has more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                check(item, schema["items"], root, f"{where}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise Invalid(f"{at} lacks {key!r}")
        if len(value) < schema.get("minProperties", 0):
            raise Invalid(
                f"{at} needs at least {schema['minProperties']} entr{'y' if schema['minProperties'] == 1 else 'ies'}"
            )
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if "propertyNames" in schema:
                check(key, schema["propertyNames"], root, f"{where}.<key {key!r}>" if where else f"<key {key!r}>")
            sub = f"{where}.{key}" if where else key
            if key in props:
                check(item, props[key], root, sub)
            elif extra is False:
                raise Invalid(f"{at} has an unknown key {key!r}")
            elif isinstance(extra, dict):
                check(item, extra, root, sub)
    for sub in schema.get("allOf", []):
        check(value, sub, root, where)
    if "anyOf" in schema:
        errors = []
        for sub in schema["anyOf"]:
            try:
                check(value, sub, root, where)
                break
            except Invalid as exc:
                errors.append(str(exc))
        else:
            raise Invalid(" or ".join(errors))
    if "if" in schema:
        try:
            check(value, schema["if"], root, where)
        except Invalid:
            pass
        else:
            if "then" in schema:
                check(value, schema["then"], root, where)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 308:
        raise ValueError("an integer with more than 308 digits")
    return int(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads(text: str | bytes) -> Any:
    """Strict JSON: duplicate keys, NaN/Infinity, numbers beyond a double and nesting too deep for the
    parser are refused (``ValueError`` with a short reason), so every number read is finite."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return json.loads(
            text, parse_constant=_reject_constant, parse_float=_float, parse_int=_int, object_pairs_hook=_no_duplicates
        )
    except RecursionError:  # the C scanner recurses once per level: a hostile file can nest 100,000 deep
        raise ValueError("nested too deeply") from None


def decode(text: str | bytes, definition: str, schema_name: str, what: str) -> Any:
    """``text`` as strict JSON checked against ``$defs/definition`` of a shipped schema (``""``: the
    whole schema). Raises :class:`BadInput` naming ``what``."""
    try:
        value = loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} is not valid JSON ({exc})") from None
    validate(value, definition, schema_name, what)
    return value


def validate(value: Any, definition: str, schema_name: str, what: str) -> None:
    root = load(schema_name)
    try:
        check(value, root["$defs"][definition] if definition else root, root)
    except Invalid as exc:
        raise BadInput(f"{what}: {exc}") from None
