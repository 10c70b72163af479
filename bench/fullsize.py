"""Full-size architectures with random weights, built in memory from the published configs (bench only).

Speed does not depend on weight values, so these give real timings where no weights can be downloaded:
  - CLIP ViT-L/14 text encoder with projection (the Kandinsky 2.1 prior's, = SD 1.x's without projection);
  - the Kandinsky 2.1 prior pipeline: that text encoder, the CLIP ViT-L/14 image encoder, PriorTransformer
    (its defaults are the real prior);
  - the Kandinsky 2.1 decoder pipeline: UNet and MoVQ (real configs), M-CLIP (XLM-R large);
  - BLIP image-text matching with a ViT-L/384 vision tower;
  - the SDXL base 1.0 pipeline: UNet, VAE, CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 text encoders (real configs);
  - the FLUX.1 pipeline: FluxTransformer2DModel (12 B), T5-XXL's encoder, CLIP ViT-L/14, the 16-channel VAE
    (real configs, built directly in bfloat16: 36 GB in float32 would not be worth the wait).
Tokenizers are the offline twins' (no files to download); ``clip_tokenizer`` adds the recipe's words as
whole tokens so that prompts have their real lengths ("a photo of a <>" is 7 positions, as in CLIP).
"""

from __future__ import annotations

import contextlib

import torch

UNET = dict(
    act_fn="silu",
    addition_embed_type="text_image",
    addition_embed_type_num_heads=64,
    attention_head_dim=64,
    block_out_channels=[384, 768, 1152, 1536],
    class_embed_type=None,
    cross_attention_dim=768,
    down_block_types=[
        "ResnetDownsampleBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
    ],
    encoder_hid_dim=1024,
    encoder_hid_dim_type="text_image_proj",
    in_channels=4,
    layers_per_block=3,
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    norm_num_groups=32,
    out_channels=8,
    resnet_time_scale_shift="scale_shift",
    sample_size=64,
    up_block_types=[
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "ResnetUpsampleBlock2D",
    ],
)
MOVQ = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
    up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
    num_vq_embeddings=16384,
    block_out_channels=(128, 256, 256, 512),
    vq_embed_dim=4,
    layers_per_block=2,
    norm_type="spatial",
)


def clip_tokenizer(words: list[str] = ()):
    """The twin's byte-level CLIP tokenizer, with ``words`` (and the recipes' prompt words) as whole tokens."""
    from tokenizers import AddedToken

    from distok_cli.backends import twins

    tok = twins.clip_tokenizer()
    base = "a an photo of cute pet and the painting watercolor".split()
    names = [w for name in words for w in name.split()]
    tok.add_tokens([AddedToken(w, single_word=True) for w in dict.fromkeys(base + names)])
    return tok


def clip_text(device: str, tok):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with torch.device(device):
        return CLIPTextModelWithProjection(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                projection_dim=768,
                hidden_act="quick_gelu",
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )
        ).eval()


def kandinsky_pipelines(device: str, words: list[str] = ()):
    """Kandinsky 2.1 prior and decoder pipelines with the real architectures and random weights."""
    from diffusers import (
        DDIMScheduler,
        KandinskyPipeline,
        KandinskyPriorPipeline,
        PriorTransformer,
        UnCLIPScheduler,
        UNet2DConditionModel,
        VQModel,
    )
    from diffusers.pipelines.kandinsky.text_encoder import MCLIPConfig, MultilingualCLIP
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from distok_cli.backends import twins

    tok = clip_tokenizer(words)
    te = clip_text(device, tok)
    with torch.device(device):
        ie = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=24,
                num_attention_heads=16,
                image_size=224,
                patch_size=14,
                projection_dim=768,
                hidden_act="quick_gelu",
            )
        ).eval()
        prior = PriorTransformer().eval()
    prior_pipe = KandinskyPriorPipeline(
        prior=prior,
        image_encoder=ie,
        text_encoder=te,
        tokenizer=tok,
        scheduler=UnCLIPScheduler(
            variance_type="fixed_small_log",
            prediction_type="sample",
            num_train_timesteps=1000,
            clip_sample=True,
            clip_sample_range=10.0,
        ),
        image_processor=CLIPImageProcessor(size=224, crop_size=224),
    )
    xt = twins.xlmr_tokenizer()
    with torch.device(device):
        mclip = MultilingualCLIP(
            MCLIPConfig(
                transformerDimSize=1024,
                imageDimSize=768,
                hidden_size=1024,
                intermediate_size=4096,
                num_attention_heads=16,
                num_hidden_layers=24,
                vocab_size=250002,
                pad_token_id=xt.pad_token_id,
                max_position_embeddings=514,
            )
        ).eval()
        unet = UNet2DConditionModel(**UNET).eval()
        movq = VQModel(**MOVQ).eval()
    ddim = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )
    dec = KandinskyPipeline(text_encoder=mclip, tokenizer=xt, unet=unet, scheduler=ddim, movq=movq)
    return prior_pipe, dec


SDXL_UNET = dict(
    act_fn="silu",
    addition_embed_type="text_time",
    addition_embed_type_num_heads=64,
    addition_time_embed_dim=256,
    attention_head_dim=[5, 10, 20],
    block_out_channels=[320, 640, 1280],
    cross_attention_dim=2048,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    in_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=4,
    projection_class_embeddings_input_dim=2816,
    sample_size=128,
    transformer_layers_per_block=[1, 2, 10],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    use_linear_projection=True,
)
SDXL_VAE = dict(
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    sample_size=1024,
    scaling_factor=0.13025,
    up_block_types=["UpDecoderBlock2D"] * 4,
    force_upcast=True,
)


def sdxl_pipeline(device: str, words: list[str] = ()):
    """SDXL base 1.0 with the real architectures (UNet 2.6 B parameters) and random weights."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tok, tok2 = clip_tokenizer(words), clip_tokenizer(words)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.device(device):
        te = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
                **ids,
            )
        ).eval()
        te2 = CLIPTextModelWithProjection(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=1280,
                intermediate_size=5120,
                num_hidden_layers=32,
                num_attention_heads=20,
                max_position_embeddings=77,
                projection_dim=1280,
                hidden_act="gelu",
                **ids,
            )
        ).eval()
        unet = UNet2DConditionModel(**SDXL_UNET).eval()
        vae = AutoencoderKL(**SDXL_VAE).eval()
    sched = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        num_train_timesteps=1000,
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


def t5_tokenizer(words: list[str] = ()):
    """The twin's character-level T5 tokenizer with the prompt words (and ``words``) as whole tokens."""
    from tokenizers import AddedToken

    from distok_cli.backends import twins

    tok = twins.t5_tokenizer()
    base = "a an photo of cute pet and the painting watercolor".split()
    names = [w for name in words for w in name.split()]
    tok.add_tokens([AddedToken(w, single_word=True) for w in dict.fromkeys(base + names)])
    return tok


def flux_pipeline(device: str, words: list[str] = (), guidance_embeds: bool = False):
    """FLUX.1 with the real architectures (schnell's; ``guidance_embeds`` for dev's) and random bf16 weights."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tok, tok2 = clip_tokenizer(words), t5_tokenizer(words)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            te = CLIPTextModel(
                CLIPTextConfig(
                    vocab_size=49408,
                    hidden_size=768,
                    intermediate_size=3072,
                    num_hidden_layers=12,
                    num_attention_heads=12,
                    max_position_embeddings=77,
                    hidden_act="quick_gelu",
                    bos_token_id=tok.bos_token_id,
                    eos_token_id=2,  # the legacy value of FLUX's text_encoder/config.json
                    pad_token_id=tok.pad_token_id,
                )
            ).eval()
            te2 = T5EncoderModel(
                T5Config(
                    vocab_size=32128,
                    d_model=4096,
                    d_kv=64,
                    d_ff=10240,
                    num_layers=24,
                    num_heads=64,
                    relative_attention_num_buckets=32,
                    feed_forward_proj="gated-gelu",
                    is_encoder_decoder=False,
                    pad_token_id=tok2.pad_token_id,
                    eos_token_id=tok2.eos_token_id,
                )
            ).eval()
            transformer = FluxTransformer2DModel(
                patch_size=1,
                in_channels=64,
                num_layers=19,
                num_single_layers=38,
                attention_head_dim=128,
                num_attention_heads=24,
                joint_attention_dim=4096,
                pooled_projection_dim=768,
                guidance_embeds=guidance_embeds,
                axes_dims_rope=(16, 56, 56),
            ).eval()
            vae = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                latent_channels=16,
                block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                layers_per_block=2,
                norm_num_groups=32,
                use_quant_conv=False,
                use_post_quant_conv=False,
                scaling_factor=0.3611,
                shift_factor=0.1159,
                sample_size=1024,
            ).eval()
    finally:
        torch.set_default_dtype(before)
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxPipeline(
        scheduler=sched,
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        text_encoder_2=te2,
        tokenizer_2=tok2,
        transformer=transformer,
    )


def blip_itm(device: str):
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    from distok_cli.backends import twins
    from distok_cli.files.recipes import ANIMALS_60

    tok = twins.bert_tokenizer(twins.BLIP_WORDS + ANIMALS_60)
    cfg = BlipConfig(
        vision_config=dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=384,
            patch_size=16,
        ),
        text_config=dict(
            vocab_size=30524,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            encoder_hidden_size=1024,
            pad_token_id=tok.pad_token_id,
        ),
    )
    with torch.device(device):
        model = BlipForImageTextRetrieval(cfg).eval()
    return model, BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}), tokenizer=tok)


@contextlib.contextmanager
def padded_to_77(text):
    """Within the block, ``text`` (a TextSide) runs CLIP over all 77 positions, as before 0.2.0 trimmed
    after the last EOS: the baseline of that speed-up. Its tokenization cache is dropped on both sides."""
    from distok_cli.backends.textside import TextSide

    original = TextSide._trim
    TextSide._trim = lambda self, ids: ids
    text._inputs_cache.clear()
    try:
        yield
    finally:
        TextSide._trim = original
        text._inputs_cache.clear()
