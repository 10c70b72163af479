"""Recipes: YAML files read with ``yaml.safe_load`` into typed, frozen dataclasses.

Unknown keys and wrong types are errors (exit 2) naming the key. Command-line flags and
``--set section.key=value`` override recipe values. Recipes ship inside the package
(``distok_cli/recipes`` in a wheel, ``recipes/`` in a checkout), so a name like ``tiny`` works from a
regular install too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distok_cli.errors import BadInput
from distok_cli.progress import log

#: The paper's CangJie concept list is unpublished; this is our own 60-class animal vocabulary.
ANIMALS_60 = [
    "ant", "bear", "bee", "beetle", "bird", "butterfly", "camel", "cat", "chameleon", "cheetah",
    "chicken", "cow", "crab", "crocodile", "deer", "dog", "dolphin", "donkey", "duck", "eagle",
    "elephant", "fish", "flamingo", "fox", "frog", "giraffe", "goat", "gorilla", "hedgehog", "hippo",
    "horse", "jellyfish", "kangaroo", "koala", "ladybug", "lion", "lizard", "lobster", "monkey", "mouse",
    "octopus", "ostrich", "owl", "panda", "parrot", "peacock", "penguin", "pig", "rabbit", "raccoon",
    "seal", "shark", "sheep", "snail", "snake", "spider", "squirrel", "tiger", "turtle", "zebra",
]
CLASS_SETS = {"animals60": ANIMALS_60}


@dataclass(frozen=True)
class RenderConfig:
    """How tokens become images."""

    backend: str = "kandinsky21"  # kandinsky21 | sd15
    prior: str = "kandinsky-community/kandinsky-2-1-prior"
    decoder: str = "kandinsky-community/kandinsky-2-1"
    sd: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    prior_steps: int = 25
    steps: int = 50
    prior_guidance: float = 4.0
    guidance: float = 4.0
    size: int = 512
    scheduler: str = ""  # "" keeps the model's own; else ddim | ddpm | euler | dpm
    batch_size: int = 8
    prompt: str = "a photo of a <>"


@dataclass(frozen=True)
class EstimatorConfig:
    """How a class distribution is read off images (or off text, for the text-side estimator)."""

    kind: str = "blip-itm"  # blip-itm | blip-vqa | text | prior
    model: str = "Salesforce/blip-itm-large-coco"  # for blip-vqa e.g. Salesforce/blip-vqa-base
    question: str = "What animal is in the photo?"  # blip-vqa
    template: str = "a photo of a {}"
    temperature: float = 1.0
    images: int = 4
    prompt: str = "a photo of a <>"


@dataclass(frozen=True)
class EvalConfig:
    """How ``distok eval`` reads tokens (the training estimator's temperature is ``estimator.temperature``)."""

    temperature: float = 0.0  # 0: calibrated on the class tokens (see distok_cli/evaluation.py); > 0: fixed
    calibrate_to: float = 0.9  # the mean own-class probability the calibrated T gives the class tokens


@dataclass(frozen=True)
class TrainConfig:
    """DisTok training; names follow the paper (ε1, ε2, τ, α, β, γ)."""

    steps: int = 20000
    n: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm (0: off)
    hidden: int = 768
    latent_dim: int = 20
    eps1: float = 0.85
    eps2: float = 0.80
    tau: float = 0.85
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.001
    reg_axis: str = "batch"  # batch | dims
    reg_anchor: bool = True  # L_reg + (log σ²)²: holds the latent scale near 1 (the paper's ratio alone drifts)
    latent_sampling: str = "stats"  # stats: z = mean + std·ε in the latents' tracked scale; unit: z ~ N(0, I)
    latent_momentum: float = 0.99
    fusion_input: str = "sum"  # sum: t1 + t2 (the paper); mean: (t1 + t2) / 2, the scale of Σ p_i t_i
    p_consistency: float = 0.5
    p_recursive: float = 0.25
    estimate_every: int = 50
    estimate_n: int = 8
    pool_max: int = 2000
    consistency: bool = True
    fusion: bool = True
    q_a: str = "a photo of a <>"
    q_r: str = "a {c1} {c2}"
    q_s: str = "a photo of a cute pet"
    checkpoint_every: int = 1000
    log_every: int = 10
    keep_images: bool = True


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    classes: list[str] = field(default_factory=lambda: list(ANIMALS_60))
    text_encoder: str = ""  # "" = the prior's (kandinsky21) or the SD pipeline's (sd15) text encoder
    render: RenderConfig = RenderConfig()
    estimator: EstimatorConfig = EstimatorConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d


_SECTIONS = {"render": RenderConfig, "estimator": EstimatorConfig, "train": TrainConfig, "eval": EvalConfig}
#: The allowed values, defined once (the CLI's options and error messages use these too).
BACKENDS = ("kandinsky21", "sd15")
ESTIMATOR_KINDS = ("blip-itm", "blip-vqa", "text", "prior")
IMAGE_ESTIMATORS = ("blip-itm", "blip-vqa")  # the ones that read images
DTYPES = ("auto", "float32", "float16", "bfloat16")

_CHOICES = {
    ("render", "backend"): BACKENDS,
    ("render", "scheduler"): ("", "ddim", "ddpm", "euler", "dpm"),
    ("estimator", "kind"): ESTIMATOR_KINDS,
    ("train", "reg_axis"): ("batch", "dims"),
    ("train", "fusion_input"): ("sum", "mean"),
    ("train", "latent_sampling"): ("stats", "unit"),
    ("", "dtype"): DTYPES,
}


def recipe_dirs() -> list[Path]:
    package = Path(__file__).resolve().parents[1]  # distok_cli/
    return [package / "recipes", package.parent / "recipes"]  # inside a wheel; a checkout


def available() -> list[str]:
    names: set[str] = set()
    for d in recipe_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def find(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not p.is_file():
            raise BadInput(f"recipe file {name_or_path} does not exist")
        return p
    for d in recipe_dirs():
        if (d / f"{name_or_path}.yaml").is_file():
            return d / f"{name_or_path}.yaml"
    from distok_cli.files.distributions import suggest

    raise BadInput(f"unknown recipe {name_or_path!r}{suggest(name_or_path, available())} (known: {', '.join(available())})")


def _coerce(where: str, value: Any, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (inner,) = typing.get_args(typ)
        if isinstance(value, list):
            return [_coerce(f"{where}[{i}]", v, inner) for i, v in enumerate(value)]
    elif isinstance(origin, type) and origin is types.UnionType:  # pragma: no cover
        pass
    name = getattr(typ, "__name__", str(typ))
    raise BadInput(f"recipe key {where} must be {name}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise BadInput(f"recipe section {where or 'top level'} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known or key == "source":
            from distok_cli.files.distributions import suggest

            raise BadInput(f"unknown recipe key {path!r}{suggest(str(key), sorted(known))}")
        if key in _SECTIONS:
            kwargs[key] = _build(_SECTIONS[key], value, key)
            continue
        kwargs[key] = _coerce(path, value, hints[key])
        choices = _CHOICES.get((where, key))
        if choices and kwargs[key] not in choices:
            raise BadInput(f"recipe key {path} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return cls(**kwargs)


def _check(recipe: Recipe) -> Recipe:
    if not recipe.classes or len(set(recipe.classes)) != len(recipe.classes):
        raise BadInput("recipe classes must be a non-empty list of distinct names")
    if any(not c.strip() for c in recipe.classes):
        raise BadInput("recipe classes must not be empty strings")
    t = recipe.train
    for name in ("steps", "n", "hidden", "latent_dim", "estimate_every", "estimate_n", "checkpoint_every", "log_every"):
        if getattr(t, name) < 1:
            raise BadInput(f"recipe key train.{name} must be at least 1")
    for name in ("p_consistency", "p_recursive", "tau", "latent_momentum"):
        if not 0 <= getattr(t, name) <= 1:
            raise BadInput(f"recipe key train.{name} must be between 0 and 1")
    if t.lr <= 0:
        raise BadInput("recipe key train.lr must be positive")
    for name in ("q_a",):
        if getattr(t, name).count("<>") != 1:
            raise BadInput(f"recipe key train.{name} must contain '<>' exactly once")
    r = recipe.render
    if r.size < 8 or r.steps < 1 or r.batch_size < 1:
        raise BadInput("recipe render size, steps and batch_size must be positive (size at least 8)")
    if r.prior_steps < 2:
        raise BadInput("recipe key render.prior_steps must be at least 2")
    if r.prompt.count("<>") != 1 or recipe.estimator.prompt.count("<>") != 1:
        raise BadInput("recipe prompts must contain '<>' exactly once")
    if "{}" not in recipe.estimator.template:
        raise BadInput("recipe key estimator.template must contain '{}' for the class name")
    if recipe.estimator.temperature <= 0 or recipe.estimator.images < 1:
        raise BadInput("recipe estimator temperature and images must be positive")
    if recipe.eval.temperature < 0 or not 0 < recipe.eval.calibrate_to < 1:
        raise BadInput("recipe key eval.temperature must be ≥ 0 (0 calibrates) and eval.calibrate_to between 0 and 1")
    return recipe


def parse(text: str, source: str = "<string>", name: str | None = None) -> Recipe:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BadInput(f"recipe {source} is not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"recipe {source} must be a YAML mapping")
    data = dict(data)
    data.setdefault("name", name or Path(source).stem)
    classes = data.get("classes")
    if isinstance(classes, str):
        if classes not in CLASS_SETS:
            raise BadInput(f"unknown class set {classes!r} (known: {', '.join(CLASS_SETS)})")
        data["classes"] = list(CLASS_SETS[classes])
    recipe = _build(Recipe, data, "")
    return _check(dataclasses.replace(recipe, source=source))


def placement(recipe: Recipe, device: str, dtype: str) -> tuple[str, str]:
    """The device and dtype to load with: the flag (or its environment variable) unless it is ``auto``,
    else the recipe's ``device``/``dtype`` (themselves ``auto`` by default)."""
    return (device if device != "auto" else recipe.device), (dtype if dtype != "auto" else recipe.dtype)


def for_tokens(given: str | None, tokens: list[Any]) -> str:
    """The recipe to render/estimate ``tokens`` with: ``given``, else the one their model was trained with
    (when all agree and it is a known recipe), else ``tiny``."""
    if given:
        return given
    recorded = {t.model.get("recipe") for t in tokens if getattr(t, "model", None) and t.model.get("recipe")}
    if len(recorded) == 1:
        name = next(iter(recorded))
        if name in available():
            log.info(f"using recipe {name} (recorded in the token; --recipe chooses another)")
            return name
    return "tiny"


def load(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    """Load a recipe by name or path and apply ``section.key=value`` overrides."""
    path = find(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read recipe {path}: {exc}") from None
    recipe = parse(text, str(path), path.stem)
    return override(recipe, overrides or [])


def override(recipe: Recipe, assignments: list[str]) -> Recipe:
    """Apply ``key=value`` / ``section.key=value`` (values parsed as YAML scalars)."""
    import yaml

    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadInput(f"override {item!r} is not key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if value is None:
            value = ""
        section, _, leaf = key.rpartition(".")
        if section:
            if section not in _SECTIONS:
                raise BadInput(f"unknown recipe section {section!r} in override {item!r}")
            current = getattr(recipe, section)
            new = _build(_SECTIONS[section], {**dataclasses.asdict(current), leaf: value}, section)
            recipe = dataclasses.replace(recipe, **{section: new})
        else:
            data = {leaf: value}
            if leaf == "classes" and isinstance(value, str):
                data[leaf] = [c.strip() for c in value.split(",") if c.strip()]
            base = _build(Recipe, {"name": recipe.name, **data}, "")
            recipe = dataclasses.replace(recipe, **{leaf: getattr(base, leaf)})
    return _check(recipe)


def with_section(recipe: Recipe, section: str, values: dict[str, Any]) -> Recipe:
    """Replace a whole section (e.g. the ``render`` settings recorded in a PNG), validated like a file."""
    return _check(dataclasses.replace(recipe, **{section: _build(_SECTIONS[section], values, section)}))


def dump(recipe: Recipe) -> str:
    import yaml

    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)
