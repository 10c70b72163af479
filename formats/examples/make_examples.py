"""Regenerate the golden example files in this folder: ``python formats/examples/make_examples.py``.

The vectors are exact in float32 (small integers over a power of two), so the bytes do not depend on
the platform's maths library. ``tests/test_tokenfile.py`` checks that the library writes these exact
bytes from these exact inputs. The examples live in a made-up token space whose fingerprint is all
zeros: no real encoder has it, so distok will refuse to render them (on purpose).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from distok_cli.files import tokenfile  # noqa: E402
from distok_cli.files.space import SpacePart, TokenSpace  # noqa: E402
from distok_cli.files.tokenfile import Token  # noqa: E402

TOOL_VERSION = "0.1.0"
SPACE = TokenSpace(
    encoder="kandinsky-community/kandinsky-2-1-prior",
    subfolder="text_encoder",
    dim=768,
    fingerprint="fp16-sha256:" + "0" * 64,
)
MODEL = {"hash": "sha256:" + "ab" * 32, "recipe": "kandinsky21-animals"}
#: A two-part (format 2.0) token space: SDXL's two text encoders, with made-up all-zero part fingerprints.
SDXL_SPACE = TokenSpace.with_parts(
    "stabilityai/stable-diffusion-xl-base-1.0",
    (
        SpacePart("clip_l", 768, "fp16-sha256:" + "0" * 64, "text_encoder"),
        SpacePart("clip_g", 1280, "fp16-sha256:" + "0" * 64, "text_encoder_2"),
    ),
)

#: FLUX.1's two text encoders (CLIP-L and T5-XXL), with made-up all-zero part fingerprints.
FLUX_SPACE = TokenSpace.with_parts(
    "black-forest-labs/FLUX.1-schnell",
    (
        SpacePart("clip_l", 768, "fp16-sha256:" + "0" * 64, "text_encoder"),
        SpacePart("t5", 4096, "fp16-sha256:" + "0" * 64, "text_encoder_2"),
    ),
)


def vector(mult: int, offset: int, dim: int = 768) -> np.ndarray:
    i = np.arange(dim)
    return (((i * mult + offset) % 101) - 50).astype(np.float32) / np.float32(2048)


def examples() -> dict[str, bytes | Token]:
    pig = Token(
        vector=vector(37, 0),
        space=SPACE,
        source={"kind": "distribution", "distribution": {"pig": 0.55, "sheep": 0.25, "snake": 0.2}},
        model=MODEL,
        title="pig55-sheep25-snake20",
        tool_version=TOOL_VERSION,
    )
    sampled = Token(
        vector=vector(53, 7),
        space=SPACE,
        source={
            "kind": "latent",
            "prior": "cauchy",
            "scale": 1.0,
            "seed": 0,
            "index": 3,
            "z": [
                0.5,
                -1.25,
                2.0,
                0.0,
                -0.75,
                1.5,
                -2.5,
                0.25,
                1.0,
                -0.5,
                0.125,
                -3.0,
                0.75,
                0.0,
                -1.0,
                2.25,
                -0.25,
                0.5,
                -1.5,
                1.25,
            ],
        },
        estimate={
            "estimator": "blip-itm:Salesforce/blip-itm-large-coco",
            "prompts": ["a photo of a <>"],
            "seeds": [0, 1, 2, 3],
            "temperature": 0.1,
            "distribution": {"fox": 0.5, "cat": 0.375, "owl": 0.125},
            "kl": None,
            "js": None,
        },
        model=MODEL,
        title="cauchy-s0-i3",
        tool_version=TOOL_VERSION,
    )
    pig_id = tokenfile.content_id(pig.vector)
    sampled_id = tokenfile.content_id(sampled.vector)
    composed = Token(
        vector=vector(11, 3),
        space=SPACE,
        source={
            "kind": "composition",
            "parents": [
                {"id": pig_id, "title": "pig55-sheep25-snake20", "weight": 0.75},
                {"id": sampled_id, "title": "cauchy-s0-i3", "weight": 0.25},
            ],
        },
        model=MODEL,
        title="composition-pig-cauchy",
        tool_version=TOOL_VERSION,
    )
    # A community textual-inversion file: one tensor, any key, shape [768], no distok metadata.
    plain = _plain_ti("<cat-toy>", vector(29, 1))
    # What `distok export pig-sheep-snake.distok --to comfyui --dtype float16` writes (§10 of the spec).
    from distok_cli.files import export

    exported = export.exported(
        pig, export.TARGETS["comfyui"], export.name_for(pig, export.DEFAULT_TEMPLATE, 0), "float16"
    )
    sdxl = Token(
        vector=vector(41, 5, 768 + 1280),
        space=SDXL_SPACE,
        source={"kind": "distribution", "distribution": {"pig": 0.55, "sheep": 0.25, "snake": 0.2}},
        model={"hash": "sha256:" + "cd" * 32, "recipe": "sdxl-animals"},
        title="pig55-sheep25-snake20",
        tool_version=TOOL_VERSION,
    )
    sdxl_exported = export.exported(
        sdxl, export.TARGETS["comfyui"], export.name_for(sdxl, export.DEFAULT_TEMPLATE, 0), "float16"
    )
    flux = Token(
        vector=vector(43, 9, 768 + 4096),
        space=FLUX_SPACE,
        source={"kind": "distribution", "distribution": {"pig": 0.55, "sheep": 0.25, "snake": 0.2}},
        model={"hash": "sha256:" + "ef" * 32, "recipe": "flux-animals"},
        title="pig55-sheep25-snake20",
        tool_version=TOOL_VERSION,
    )
    # What `distok export flux-pig-sheep-snake.distok --to comfyui --dtype float16` writes: format 2.1, the T5
    # part under ComfyUI's key t5xxl.
    flux_exported = export.exported(
        flux, export.TARGETS["comfyui"], export.name_for(flux, export.DEFAULT_TEMPLATE, 0), "float16", "flux"
    )
    return {
        "flux-pig-sheep-snake.distok": flux,
        f"{flux_exported.exported['name']}.safetensors": flux_exported,
        "sdxl-pig-sheep-snake.distok": sdxl,
        f"{sdxl_exported.exported['name']}.safetensors": sdxl_exported,
        "pig55-sheep25-snake20-447da2.safetensors": exported,
        "pig-sheep-snake.distok": pig,
        "sampled-cauchy.distok": sampled,
        "composition.distok": composed,
        "plain-textual-inversion.safetensors": plain,
    }


def _plain_ti(key: str, vec: np.ndarray) -> bytes:
    import json
    import struct

    data = vec.astype("<f4").tobytes()
    header = json.dumps(
        {"__metadata__": {"format": "pt"}, key: {"dtype": "F32", "shape": [768], "data_offsets": [0, len(data)]}},
        separators=(",", ":"),
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def render(item: bytes | Token) -> bytes:
    return item if isinstance(item, bytes) else tokenfile.to_bytes(item)


if __name__ == "__main__":
    for name, item in examples().items():
        (HERE / name).write_bytes(render(item))
        print(HERE / name)
