"""Stable Diffusion model architectures and checkpoint loading, in plain torch.

No engine imports: usable and testable on its own. Node adapters live in ``nodes.py``.

Map
- ``unet.py``      the LDM / SD UNet (SD 1.x, 2.x, SDXL base / refiner configs), eps / v network;
                   inpainting UNets (9 input channels) take the mask and masked image as ``concat``
- ``controlnet.py`` ControlNet (the UNet's encoder copy + hint encoder + zero convs) and
                   ``ControlStack``, the ControlNets applied to a prompt
- ``vae.py``       the KL autoencoder (f=8): encode / decode, tiling, cheap latent previews
- ``clip.py``      CLIP text encoders (CLIP-L, OpenCLIP-H, OpenCLIP-bigG) and ``PromptEncoder``,
                   prompt -> ``TextConditioning(context, pooled)`` with clip skip and weights
- ``tokenizer.py`` CLIP BPE tokenizer, 77-token chunking, ``(word:1.3)`` weighting syntax
- ``detect.py``    family / config detection from key names and shapes; ``ModelLoadError``
- ``convert.py``   key maps: diffusers -> LDM (UNet, VAE, ControlNet), OpenCLIP <-> HF CLIP
- ``loading.py``   lazy safetensors reading, ``load_checkpoint`` / ``load_unet`` /
                   ``load_vae`` / ``load_text_encoder``, ``save_checkpoint``,
                   ``load_controlnet`` / ``save_controlnet``
- ``lora.py``      LoRA files (kohya / diffusers / peft) and exact, stackable, removable patching
- ``patches.py``   model patches as values: wrap / replace UNet blocks and layers, attention
                   processors and maps, inserted modules; composition order, removal
- ``flux.py``      Flux (FLUX.1 dev / schnell): double / single-stream transformer, 3-axis RoPE, packing,
                   resolution shift, diffusers key map, loading; T5 + CLIP-L ``FluxTextEncoder``; ``FLUX_VAE``
- ``precision.py`` weights stored in FP8, computed in bf16 / fp16 / fp32 per layer (upcast on use)
- ``embeddings.py`` textual-inversion files (A1111, SDXL, diffusers) for ``embedding:name`` in prompts
- ``mmdit.py``     SD3 / SD3.5 MMDiT (joint attention, adaLN, q/k RMS norm, dual attention), diffusers key
                   map, detection from shapes
- ``sd3.py``       SD3 detection and loading (single file, diffusers folder, separate CLIP / T5 files),
                   ``SD3TextEncoder`` (CLIP-L + CLIP-G + T5, each optional), ``SD3_VAE`` lives in vae.py
- ``t5.py``        T5 v1.1 encoder (T5-XXL: relative position bias, gated GELU, RMS norm)
- ``t5_tokenizer.py`` T5's SentencePiece tokenizer from the checkpoint's ``spiece.model``
- ``sd3_nodes.py`` LoadSD3TextEncoders, ModelSamplingSD3 (EncodeTextSD3 is in nodes.py)
- ``merge_nodes.py`` MergeModels / MergeTextEncoders (ComfyUI's ModelMergeSimple / CLIPMergeSimple), registered
                   by nodes.py
- ``flux_nodes.py`` the Flux node adapters (LoadFlux, LoadFluxTextEncoders, EncodeTextFlux, FluxGuidance,
                   ModelSamplingFlux), registered by nodes.py
- ``nodes.py``     the node adapters (LoadCheckpoint, LoadLoRA, EncodeText, VAEEncode/Decode,
                   LoadControlNet, ApplyControlNet, ...)

See docs/models.md for the contracts (conditioning shapes, ControlNet residuals, weighting).
"""
