"""Recipes: YAML files read with a safe YAML 1.2-style loader into frozen pydantic models.

Unknown keys and wrong types are errors (exit 2) naming the key. Command-line flags and
``--set section.key=value`` override recipe values. Recipes ship inside the package
(``distok_cli/recipes`` in a wheel, ``recipes/`` in a checkout), so a name like ``tiny`` works from a
regular install too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distok_cli.errors import BadInput
from distok_cli.limits import MIN_PRIOR_STEPS, MIN_SIZE

#: The paper's CangJie concept list is unpublished; this is our own 60-class animal vocabulary.
ANIMALS_60 = [
    "ant",
    "bear",
    "bee",
    "beetle",
    "bird",
    "butterfly",
    "camel",
    "cat",
    "chameleon",
    "cheetah",
    "chicken",
    "cow",
    "crab",
    "crocodile",
    "deer",
    "dog",
    "dolphin",
    "donkey",
    "duck",
    "eagle",
    "elephant",
    "fish",
    "flamingo",
    "fox",
    "frog",
    "giraffe",
    "goat",
    "gorilla",
    "hedgehog",
    "hippo",
    "horse",
    "jellyfish",
    "kangaroo",
    "koala",
    "ladybug",
    "lion",
    "lizard",
    "lobster",
    "monkey",
    "mouse",
    "octopus",
    "ostrich",
    "owl",
    "panda",
    "parrot",
    "peacock",
    "penguin",
    "pig",
    "rabbit",
    "raccoon",
    "seal",
    "shark",
    "sheep",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "tiger",
    "turtle",
    "zebra",
]
CLASS_SETS = {"animals60": ANIMALS_60}


#: The allowed values, defined once (the CLI's options and error messages use these too). What each render
#: backend is (its token's parts, widths, estimators) is declared by its module in ``backends/``.
ESTIMATOR_KINDS = ("blip-itm", "blip-vqa", "text", "prior")
IMAGE_ESTIMATORS = ("blip-itm", "blip-vqa")  # the ones that read images
DTYPES = ("auto", "float32", "float16", "bfloat16")

Backend = Literal["kandinsky21", "sd15", "sdxl", "flux"]
EstimatorKind = Literal["blip-itm", "blip-vqa", "text", "prior"]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
Scheduler = Literal["", "ddim", "ddpm", "euler", "dpm"]
#: Largest count a recipe may give (steps, sizes, batch sizes...): far above any real run, far below a
#: number that would overflow a tensor shape or hang a loop.
MAX_COUNT = 10**9
MAX_SEED = 2**63 - 1
MAX_RECIPE_BYTES = 1 << 20
Unit = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Real = Annotated[float, Field(ge=-1e12, le=1e12)]


class _Section(BaseModel):
    """Unknown keys and wrong types are errors; no coercion (a YAML string is not a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _one_token(value: str) -> str:
    if value.count("<>") != 1:
        raise ValueError("must contain '<>' exactly once")
    return value


Prompt = Annotated[str, AfterValidator(_one_token)]


class RenderConfig(_Section):
    """How tokens become images."""

    backend: Backend = "kandinsky21"
    prior: str = "kandinsky-community/kandinsky-2-1-prior"
    decoder: str = "kandinsky-community/kandinsky-2-1"
    sd: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    sdxl: str = "stabilityai/stable-diffusion-xl-base-1.0"
    flux: str = "black-forest-labs/FLUX.1-schnell"
    #: FLUX only: the T5 sequence length the pipeline pads to (schnell 256, dev 512, as trained).
    max_sequence_length: Annotated[int, Field(ge=8, le=512)] = 256
    prior_steps: Annotated[int, Field(ge=MIN_PRIOR_STEPS, le=MAX_COUNT)] = 25
    steps: Positive = 50
    prior_guidance: Annotated[float, Field(ge=0)] = 4.0
    guidance: Annotated[float, Field(ge=0)] = 4.0
    size: Annotated[int, Field(ge=MIN_SIZE, le=65536)] = 512
    scheduler: Scheduler = ""  # "" keeps the model's own
    batch_size: Positive = 8
    prompt: Prompt = "a photo of a <>"


class EstimatorConfig(_Section):
    """How a class distribution is read off images (or off text, for the text-side estimator)."""

    kind: EstimatorKind = "blip-itm"
    model: str = "Salesforce/blip-itm-large-coco"  # for blip-vqa e.g. Salesforce/blip-vqa-base
    question: str = "What animal is in the photo?"  # blip-vqa
    template: str = "a photo of a {}"
    temperature: Annotated[float, Field(gt=0)] = 1.0  # the training estimator's T
    images: Positive = 4
    prompt: Prompt = "a photo of a <>"

    @field_validator("template")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        if "{}" not in v:
            raise ValueError("must contain '{}' for the class name")
        return v


class EvalConfig(_Section):
    """How ``distok eval`` reads tokens (the training estimator's temperature is ``estimator.temperature``)."""

    temperature: Annotated[float, Field(ge=0)] = 0.0  # 0: calibrated on the class tokens; > 0: fixed
    calibrate_to: Annotated[float, Field(gt=0, lt=1)] = 0.9  # the own-class probability the calibrated T gives
    #: ``eval --metric``'s models: CLIPScore's CLIPs (the first reported as ``clipscore``, the others beside
    #: it as a bias check), PickScore's model and processor, VQAScore's and ImageReward's model names.
    clipscore_models: Annotated[list[str], Field(min_length=1, max_length=4)] = [
        "openai/clip-vit-large-patch14",
        "openai/clip-vit-base-patch16",
    ]
    pickscore_model: str = "yuvalkirstain/PickScore_v1"
    pickscore_processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    vqascore_model: str = "clip-flant5-xxl"
    imagereward_model: str = "ImageReward-v1.0"


#: The styles distok's objective trains in (each style S gives the prompt "S <>" and the class prompts
#: "S {}"). None of them is in ``recipes/eval/styles-v1.json``'s tuning or held-out styles.
TRAINING_STYLES = (
    "a photo of a",
    "a sketch of a",
    "a painting of a",
    "a cartoon of a",
    "a 3d render of a",
    "a close-up photo of a",
    "a black and white photo of a",
    "an illustration of a",
)
#: The paper's method as it was before distok's objective (the "paper" arm of bench/ablation.py and
#: bench/fidelity.py): ``--set`` each of these.
PAPER_METHOD = ("train.objective=paper", "train.residual=false", "train.fusion_input=sum", "train.reweight=false")


def check_style(value: str) -> str:
    """A style is a prompt prefix S ("a watercolor of a"): 1 to 200 characters, no '<>', braces or outer
    spaces. Recipes' ``train.styles`` and ``distok eval --styles`` files follow this one rule."""
    if not value.strip() or len(value) > 200 or any(ch in value for ch in "<>{}") or value != value.strip():
        raise ValueError("must be a prompt prefix such as 'a watercolor of a' (no '<>', braces or outer spaces)")
    return value


class TrainConfig(_Section):
    """DisTok training; names follow the paper (ε1, ε2, τ, α, β, γ). docs/method.md says what each does."""

    objective: Literal["distok", "paper"] = "distok"
    residual: bool = True
    reweight: bool = False  # learned weighting of the input mix: w_i ∝ p_i^α · exp(b_i) (distok objective, matching)
    reweight_arity: bool = False  # one exponent α per arity (2, 3, 4+ classes) instead of one for all
    reweight_lr: Annotated[float, Field(ge=0)] = 0.0  # the weighting's learning rate (0: train.lr), no weight decay
    styles: Annotated[list[Annotated[str, AfterValidator(check_style)]], Field(max_length=1000)] = Field(
        default_factory=lambda: list(TRAINING_STYLES)
    )
    p_match: Unit = 0.75
    # How often the matching task draws each arity (1, 2, … classes): relative weights; empty: 1 to 4, uniform
    match_arity: Annotated[list[Annotated[float, Field(ge=0, le=1e6)]], Field(max_length=16)] = Field(
        default_factory=list
    )
    match_temperature: Annotated[float, Field(ge=0)] = 0.0
    match_calibration: Literal["per_style", "first"] = "per_style"
    steps: Positive = 20000
    n: Positive = 8
    lr: Annotated[float, Field(gt=0)] = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    grad_clip: Annotated[float, Field(ge=0)] = 1.0
    hidden: Positive = 768
    heads: Literal["joint", "parts"] = "joint"
    latent_dim: Positive = 20
    eps1: Real = 0.85
    eps2: Real = 0.80
    tau: Unit = 0.85
    tau_min: Unit = 0.0
    alpha: Real = 1.0
    beta: Real = 1.0
    gamma: Real = 0.001
    reg_axis: Literal["batch", "dims"] = "batch"
    reg_anchor: bool = True
    latent_sampling: Literal["stats", "unit"] = "stats"
    latent_momentum: Unit = 0.99
    fusion_input: Literal["sum", "mean"] = "mean"
    p_consistency: Unit = 0.5
    p_recursive: Unit = 0.25
    estimate_every: Positive = 50
    estimate_n: Positive = 8
    pool_max: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 2000
    refined_every: Annotated[int, Field(ge=0)] = (
        0  # refined concepts join their own pool every this many steps (0: off)
    )
    refined_n: Positive = 8  # distributions refined per round
    refined_steps: Positive = 20  # refinement steps per round (one random training style per token and step)
    refined_max: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 2000  # the refined pool's size limit
    p_refined: Unit = 0.25  # probability of a refined-consistency step once the refined pool has concepts
    consistency: bool = True
    fusion: bool = True
    q_a: Prompt = "a photo of a <>"
    q_r: str = "a {c1} {c2}"
    q_s: str = "a photo of a cute pet"
    checkpoint_every: Positive = 1000
    log_every: Positive = 10
    keep_images: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.residual and self.fusion_input == "sum":
            raise ValueError(
                "train.residual needs train.fusion_input: mean (the token starts at its input, whose weights sum to 1)"
            )
        if self.objective == "distok" and not self.styles:
            raise ValueError("train.objective distok needs at least one style in train.styles")
        if self.reweight and self.objective != "distok":
            raise ValueError(
                "train.reweight is learned by the matching task, so it needs train.objective distok "
                "(for the paper's objective also set train.reweight=false)"
            )
        if self.match_arity and not sum(self.match_arity) > 0:
            raise ValueError("train.match_arity needs a weight above 0 for some arity")
        if self.reweight_arity and not self.reweight:
            raise ValueError(
                "train.reweight_arity gives the learned weighting one exponent per arity, so it needs train.reweight"
            )
        if self.refined_every and self.objective != "distok":
            raise ValueError(
                "train.refined_every refines against the matching task's styles, so it needs train.objective distok"
            )
        return self


class Recipe(_Section):
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    classes: list[str] = Field(default_factory=lambda: list(ANIMALS_60))
    text_encoder: str = ""  # "" = the renderer's: the prior's (kandinsky21), the pipeline's (sd15, sdxl, flux)
    render: RenderConfig = RenderConfig()
    estimator: EstimatorConfig = EstimatorConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    device: str = "auto"  # used when --device (DISTOK_DEVICE) is auto
    dtype: Dtype = "auto"  # used when --dtype (DISTOK_DTYPE) is auto
    source: str = Field(default="", exclude=True)

    @field_validator("classes")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v) or any(not c.strip() for c in v):
            raise ValueError("must be a non-empty list of distinct, non-empty names")
        return v

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def replace(self, **changes: Any) -> Recipe:
        """A validated copy with some top-level values or whole sections replaced."""
        return _validate(
            {**self.model_dump(), **{k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in changes.items()}},
            self.source,
        )


_SECTIONS: dict[str, type[_Section]] = {
    "render": RenderConfig,
    "estimator": EstimatorConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


def _message(err: dict[str, Any], model: type[BaseModel]) -> str:
    """One line for the first pydantic error, naming the key as it is spelt in the YAML."""
    loc = ".".join(str(x) for x in err["loc"])
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        from distok_cli.files.distributions import suggest

        section = _SECTIONS.get(str(err["loc"][0])) if len(err["loc"]) > 1 else Recipe
        known = sorted(section.model_fields) if section else []
        return f"unknown recipe key {loc!r}{suggest(str(err['loc'][-1]), known)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"recipe section {loc or 'top level'} must be a mapping"
    if kind == "literal_error":
        return f"recipe key {loc} must be one of {err['ctx']['expected'].replace(' or ', ', ')}, got {value!r}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "greater than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(err["ctx"].values()))
        return f"recipe key {loc} must be {words} {bound}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = kind.split("_")[0].replace("string", "str").replace("list", "list").replace("bool", "bool")
        return f"recipe key {loc} must be {expected}, got {type(value).__name__} {value!r}"
    if kind == "missing":
        return f"recipe key {loc} is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith(f"{loc}."):  # a check across keys of one section names its keys itself
        return f"recipe key {msg}"
    return f"recipe key {loc} {msg}"


def _validate(data: Any, source: str) -> Recipe:
    if not isinstance(data, dict):
        raise BadInput(f"recipe {source} must be a YAML mapping")
    try:
        return Recipe.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise BadInput(_message(exc.errors()[0], Recipe)) from None


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
        if not p.exists():
            raise BadInput(f"recipe file {name_or_path} does not exist")
        return p
    for d in recipe_dirs():
        if (d / f"{name_or_path}.yaml").is_file():
            return d / f"{name_or_path}.yaml"
    from distok_cli.files.distributions import suggest

    raise BadInput(
        f"unknown recipe {name_or_path!r}{suggest(name_or_path, available())} (known: {', '.join(available())})"
    )


def _yaml_loader() -> Any:
    """``yaml.SafeLoader`` that also reads ``1e-5`` as a number (YAML 1.2; YAML 1.1 needs ``1.0e-5``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, "a key must be a plain value, not a list or mapping", key_node.start_mark
                    )
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep)

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def safe_yaml(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


def parse(text: str, source: str = "<string>", name: str | None = None) -> Recipe:
    import yaml

    try:
        data = safe_yaml(text)
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
    return _validate(data, source)


def device_and_dtype(recipe: Recipe, device: str, dtype: str) -> tuple[str, str]:
    """The device and dtype to load with: the flag (or its environment variable) unless it is ``auto``,
    else the recipe's ``device``/``dtype`` (themselves ``auto`` by default)."""
    device = device if device != "auto" else recipe.device
    dtype = dtype if dtype != "auto" else recipe.dtype
    if not re.fullmatch(r"auto|cpu|mps|cuda(?::\d+)?", device):
        raise BadInput(f"--device must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
    if dtype not in DTYPES:
        raise BadInput(f"--dtype must be {', '.join(DTYPES[:-1])} or {DTYPES[-1]}, got {dtype!r}")
    return device, dtype


def load(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    """Load a recipe by name or path and apply ``section.key=value`` overrides."""
    from distok_cli.files.frame import read_regular

    path = find(name_or_path)
    try:
        text = read_regular(path, MAX_RECIPE_BYTES, "recipe").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"cannot read recipe {path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    recipe = parse(text, str(path), path.stem)
    return override(recipe, overrides or [])


def override(recipe: Recipe, assignments: list[str]) -> Recipe:
    """Apply ``key=value`` / ``section.key=value`` (values parsed as YAML scalars), validated like a file."""
    import yaml

    data = recipe.model_dump()
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadInput(f"override {item!r} is not key=value")
        try:
            value = safe_yaml(raw)
        except yaml.YAMLError:
            value = raw
        if value is None:
            value = ""
        section, _, leaf = key.rpartition(".")
        if section:
            if section not in _SECTIONS:
                raise BadInput(f"unknown recipe section {section!r} in override {item!r}")
            data[section] = {**data[section], leaf: value}
        else:
            if leaf == "classes" and isinstance(value, str):
                value = (
                    list(CLASS_SETS[value])
                    if value in CLASS_SETS
                    else [c.strip() for c in value.split(",") if c.strip()]
                )
            data[leaf] = value
    return _validate(data, recipe.source)


def with_section(recipe: Recipe, section: str, values: dict[str, Any]) -> Recipe:
    """Replace a whole section (e.g. the ``render`` settings recorded in a PNG), validated like a file."""
    return _validate({**recipe.model_dump(), section: values}, recipe.source)


def dump(recipe: Recipe) -> str:
    import yaml

    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)
