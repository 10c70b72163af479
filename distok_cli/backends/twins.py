"""Tiny random twins of the real models, built offline from configs and saved with ``save_pretrained``.

They have the real classes and the real folder layout (Kandinsky 2.1 prior and decoder, an SD 1.x
pipeline, SDXL, FLUX.1, BLIP image-text matching and question answering), so that ``recipes/tiny.yaml`` drives exactly the same
``from_pretrained`` code as the real recipes. Their weights are random: **the images they draw are
noise**. They are a pipeline check, not a model.

The twins are built once per cache folder (``$DISTOK_CACHE/twins/<version>``, default
``~/.cache/distok``) into a temporary folder that is renamed into place, so concurrent processes
never see half a twin. The prior's and the SD twin's text encoders share one token-embedding matrix,
as the real Kandinsky 2.1 prior and SD 1.x share CLIP ViT-L/14's: a token made for one renders on the other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: Bump when a twin's architecture changes, so old caches are not reused.
TWIN_VERSION = "v2"
NAMES = ("kandinsky21-prior", "kandinsky21-decoder", "sd15", "blip-itm", "blip-vqa", "sdxl", "flux", "clip")
#: Twins built on their own, in their own folder, when first asked for (so the other twins, and the
#: demo, never pay for them): name → its folder's version.
SEPARATE = {"sdxl": "sdxl-v1", "flux": "flux-v1", "clip": "clip-v1"}
BUILDERS: dict[str, Any] = {}  # name → builder of a SEPARATE twin (filled below)
#: The SDXL twin's two text-encoder widths (CLIP-L's and OpenCLIP-G's stand-ins): different on purpose, so
#: that a swap of clip_l and clip_g anywhere fails.
SDXL_WIDTHS = (32, 64)
#: The FLUX twin's CLIP-L and T5 widths: different from each other and from every other twin's (768, 32,
#: 64; MiniLM 384), so that a token of another space, or a swap of clip_l and t5, fails on a shape.
FLUX_WIDTHS = (48, 80)
#: The FLUX twin's T5 matrix has rows past its tokenizer's words, as the real one has (32,128 for 32,100).
T5_SPARE_ROWS = 8
#: Width of the twins' CLIP text encoder = the token dimension (768, as CLIP ViT-L/14).
DIM = 768
#: Words the tiny BLIP tokenizer knows whole (anything else is spelt out in characters).
BLIP_WORDS = ["a", "photo", "of", "the", "what", "animal", "is", "in", "cute", "pet"]


def cache_dir() -> Path:
    root = os.environ.get("DISTOK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "distok")
    return Path(root) / "twins" / TWIN_VERSION


def built_path(name: str) -> Path:
    """Where twin ``name`` is (or would be) built, without building it."""
    return cache_dir().parent / SEPARATE[name] / name if name in SEPARATE else cache_dir() / name


def twin_path(name: str) -> Path:
    """The folder of twin ``name``, building all twins first if the cache lacks them."""
    if name not in NAMES:
        from distok_cli.errors import BadInput

        raise BadInput(f"unknown twin {name!r} (known: {', '.join(NAMES)})")
    root = cache_dir()
    if name in SEPARATE:
        root = root.parent / SEPARATE[name]
        if not (root / "complete").is_file():
            build_all(root, lambda tmp: BUILDERS[name]().save_pretrained(tmp / name))
        return root / name
    if not (root / "complete").is_file():
        build_all(root)
    return root / name


def build_all(root: Path, build: Any = None) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".twins-", dir=root.parent))
    try:
        (build or build_into)(tmp)
        (tmp / "complete").write_text("tiny random twins; images are noise\n")
        try:
            os.replace(tmp, root)
        except OSError:  # another process won the race: keep its copy
            if not (root / "complete").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clip_tokenizer():
    """A byte-level CLIP BPE tokenizer with no merges (514 ids), built in memory."""
    from transformers import CLIPTokenizer

    ch = list(_bytes_to_unicode().values())
    vocab = ch + [c + "</w>" for c in ch] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=[], model_max_length=77)


def xlmr_tokenizer():
    from transformers import XLMRobertaTokenizer

    v = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    v += [(chr(c), -3.0) for c in range(33, 127)] + [("▁" + chr(c), -2.5) for c in range(33, 127)]
    v += [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=v, model_max_length=77)


def t5_tokenizer():
    """A T5 (unigram) tokenizer of single characters and ``▁``-prefixed characters, built in memory: no
    sentencepiece model, no download."""
    from transformers import T5TokenizerFast

    v = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    v += [(chr(c), -3.0) for c in range(33, 127)] + [("▁" + chr(c), -2.5) for c in range(33, 127)]
    return T5TokenizerFast(vocab=v, extra_ids=0, model_max_length=512)


def bert_tokenizer(words: list[str]):
    from transformers import BertTokenizer

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words)) + chars + ["##" + c for c in chars]
    tok = BertTokenizer(vocab={p: i for i, p in enumerate(dict.fromkeys(pieces))}, model_max_length=35)
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tok


def _clip_text_config(tok, legacy_eos: bool = False):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=DIM,
        projection_dim=DIM,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=tok.bos_token_id,
        eos_token_id=2 if legacy_eos else tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def build_prior(legacy_eos: bool = False):
    """A Kandinsky-2.1-shaped prior pipeline (``legacy_eos`` mimics configs with ``eos_token_id == 2``)."""
    import torch
    from diffusers import KandinskyPriorPipeline, PriorTransformer, UnCLIPScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(0)
    tok = clip_tokenizer()
    te = CLIPTextModelWithProjection(_clip_text_config(tok, legacy_eos)).eval()
    ie = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            image_size=32,
            patch_size=8,
            projection_dim=DIM,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
        )
    ).eval()
    prior = PriorTransformer(
        num_attention_heads=2, attention_head_dim=12, embedding_dim=DIM, num_layers=1, num_embeddings=77
    )
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))  # else post-processing gives zeros
    sched = UnCLIPScheduler(
        variance_type="fixed_small_log",
        prediction_type="sample",
        num_train_timesteps=1000,
        clip_sample=True,
        clip_sample_range=10.0,
    )
    proc = CLIPImageProcessor(
        size=32,
        crop_size=32,
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
    )
    return KandinskyPriorPipeline(
        prior=prior, image_encoder=ie, text_encoder=te, tokenizer=tok, scheduler=sched, image_processor=proc
    )


def build_decoder():
    import torch
    from diffusers import DDIMScheduler, KandinskyPipeline, UNet2DConditionModel, VQModel
    from diffusers.pipelines.kandinsky.text_encoder import MCLIPConfig, MultilingualCLIP

    torch.manual_seed(1)
    xt = xlmr_tokenizer()
    mclip = MultilingualCLIP(
        MCLIPConfig(
            transformerDimSize=32,
            imageDimSize=DIM,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(xt),
            pad_token_id=xt.pad_token_id,
            max_position_embeddings=80,
        )
    ).eval()
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=8,
        addition_embed_type="text_image",
        encoder_hid_dim_type="text_image_proj",
        encoder_hid_dim=32,
        cross_attention_dim=DIM,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
    )
    movq = VQModel(
        block_out_channels=[32, 64],
        down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
        up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        vq_embed_dim=4,
    )
    ddim = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        thresholding=False,
    )
    return KandinskyPipeline(text_encoder=mclip, tokenizer=xt, unet=unet, scheduler=ddim, movq=movq)


def build_sd(token_embedding=None):
    """An SD-1.x-shaped pipeline whose CLIP text encoder can share the prior twin's token embeddings."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(2)
    tok = clip_tokenizer()
    te = CLIPTextModel(_clip_text_config(tok)).eval()
    if token_embedding is not None:
        with torch.no_grad():
            te.get_input_embeddings().weight.copy_(token_embedding)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=DIM,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=8,
    )
    sched = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def build_sdxl():
    """An SDXL-shaped pipeline (diffusers' own tiny test configuration) whose two text encoders have
    different widths (:data:`SDXL_WIDTHS`): CLIP-L's stand-in a ``CLIPTextModel``, OpenCLIP-G's a
    ``CLIPTextModelWithProjection``, as in the real pipeline."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(4)
    tok, tok2 = clip_tokenizer(), clip_tokenizer()
    wl, wg = SDXL_WIDTHS

    def cfg(width: int) -> Any:
        return CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=width,
            projection_dim=width,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=3,
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            hidden_act="gelu",
        )

    te, te2 = CLIPTextModel(cfg(wl)).eval(), CLIPTextModelWithProjection(cfg(wg)).eval()
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + wg,
        cross_attention_dim=wl + wg,
        norm_num_groups=1,
    )
    sched = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=128,
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        text_encoder_2=te2,
        tokenizer_2=tok2,
        unet=unet,
        scheduler=sched,
        force_zeros_for_empty_prompt=True,
    )


def build_flux():
    """A FLUX.1-shaped pipeline (diffusers' own tiny test configuration) whose CLIP-L and T5 stand-ins have
    the widths :data:`FLUX_WIDTHS`; CLIP-L's config carries the legacy ``eos_token_id == 2`` of FLUX's real
    ``text_encoder/config.json``, and T5's matrix has spare rows past its words, as the real ones do."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(5)
    wl, wt = FLUX_WIDTHS
    tok, tok2 = clip_tokenizer(), t5_tokenizer()
    cfg = _clip_text_config(tok, legacy_eos=True)
    cfg.hidden_size, cfg.projection_dim = wl, wl
    te = CLIPTextModel(cfg).eval()
    te2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tok2) + T5_SPARE_ROWS,
            d_model=wt,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
            pad_token_id=tok2.pad_token_id,
            eos_token_id=tok2.eos_token_id,
        )
    ).eval()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=wt,
        pooled_projection_dim=wl,
        axes_dims_rope=[4, 4, 8],
    )
    vae = AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        text_encoder_2=te2,
        tokenizer_2=tok2,
        transformer=transformer,
    )


def build_blip(words: list[str] | None = None, vqa: bool = False):
    """Tiny BLIP: image-text matching, or (``vqa``) question answering with the same sizes."""
    import torch
    from transformers import (
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
    )

    from distok_cli.files.recipes import ANIMALS_60

    torch.manual_seed(3)
    tok = bert_tokenizer(BLIP_WORDS + [w for name in (words or ANIMALS_60) for w in name.split()])
    cfg = BlipConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            encoder_hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=64,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            sep_token_id=tok.sep_token_id,
            initializer_range=0.3,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            initializer_range=0.3,
        ),
        image_text_hidden_size=16,
        initializer_range=0.3,
    )
    model = (BlipForQuestionAnswering if vqa else BlipForImageTextRetrieval)(cfg).eval()
    proc = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    return model, proc


class _Saved:
    """Several objects saved into one folder (a CLIP model and its processor)."""

    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    def save_pretrained(self, path: Path) -> None:
        for part in self.parts:
            part.save_pretrained(path)


def build_clip() -> _Saved:
    """A tiny CLIP (image and text towers, 32 wide) with its processor: the stand-in for the metric models
    that are CLIPs (CLIPScore's, PickScore's) in ``eval --metric``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(6)
    tok = clip_tokenizer()
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    proc = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok,
    )
    return _Saved(CLIPModel(cfg).eval(), proc)


BUILDERS.update(sdxl=build_sdxl, flux=build_flux, clip=build_clip)


def build_into(root: Path) -> None:
    prior = build_prior()
    prior.save_pretrained(root / "kandinsky21-prior")
    build_decoder().save_pretrained(root / "kandinsky21-decoder")
    build_sd(prior.text_encoder.get_input_embeddings().weight).save_pretrained(root / "sd15")
    for name, vqa in (("blip-itm", False), ("blip-vqa", True)):
        model, proc = build_blip(vqa=vqa)
        model.save_pretrained(root / name)
        proc.save_pretrained(root / name)
