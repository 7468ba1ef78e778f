"""ComfyUI core classes on import: widget orders of same-named nodes, renamed inputs, the custom-sampling classes
translated, and what validation says of a core class with no equivalent (nodegraph/comfyui.py)."""

from __future__ import annotations

import warnings

import pytest

from nodegraph import Session
from nodegraph.comfyui import COMFYUI_CORE_CLASSES, EQUIVALENTS, WIDGET_NAMES, WidgetValuesWarning


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


def _nodes(session: Session, data: dict) -> dict:
    return session.import_comfyui(data).to_dict()["nodes"]


def _workflow(*nodes: dict, links: list | None = None) -> dict:
    return {"last_node_id": 99, "last_link_id": 99, "nodes": list(nodes), "links": links or [], "version": 0.4}


def test_every_builtin_named_as_a_comfyui_core_class_has_comfyuis_widget_order(session: Session) -> None:
    """A UI workflow writes ComfyUI's widget order; naming it by our input order put ModelSamplingFlux's max_shift
    on width. A built-in node type named as a core class must have the order written down (a new one fails here)."""
    builtins = {name.rpartition(".")[2] for name, cls in session.registry.node_types.items()
                if cls.__module__.startswith("nodes.")}
    missing = sorted(name for name in builtins & COMFYUI_CORE_CLASSES
                     if name not in WIDGET_NAMES and (EQUIVALENTS.get(name) is None or EQUIVALENTS[name].widgets is None))
    assert not missing, f"give these ComfyUI's widget order in comfyui.WIDGET_NAMES: {missing}"


def test_model_sampling_flux_widgets_are_named_in_comfyuis_order(session: Session) -> None:
    node = {"id": 30, "type": "ModelSamplingFlux", "inputs": [{"name": "model", "type": "MODEL", "link": None}],
            "outputs": [{"name": "MODEL", "type": "MODEL"}], "widgets_values": [1.15, 0.5, 64, 64]}
    inputs = _nodes(session, _workflow(node))["30"]["inputs"]
    assert (inputs["max_shift"], inputs["base_shift"], inputs["width"], inputs["height"]) == (1.15, 0.5, 64, 64)


@pytest.mark.parametrize("class_type", ["LoadImage", "LoadImageMask"])
def test_older_prompts_choose_file_to_upload_is_dropped(session: Session, class_type: str) -> None:
    prompt = {"1": {"class_type": class_type, "inputs": {"image": "a.png", "choose file to upload": "image"}}}
    assert "choose file to upload" not in _nodes(session, prompt)["1"]["inputs"]


@pytest.mark.parametrize("class_type, inputs, ours", [
    ("RandomNoise", {"noise_seed": 7}, {"seed": 7}),
    ("CFGGuider", {"model": ["9", 0], "positive": ["9", 0], "negative": ["9", 0], "cfg": 3.0}, {"cfg": 3.0}),
    ("FluxGuidance", {"conditioning": ["9", 0], "guidance": 3.5}, {"guidance": 3.5}),
    ("ModelSamplingFlux", {"model": ["9", 0], "max_shift": 1.15, "base_shift": 0.5, "width": 512, "height": 768},
     {"max_shift": 1.15, "base_shift": 0.5, "width": 512, "height": 768}),
    ("ModelSamplingSD3", {"model": ["9", 0], "shift": 3.0}, {"shift": 3.0}),
    ("SplitSigmas", {"sigmas": ["9", 0], "step": 4}, {"step": 4}),
])
def test_api_prompt_inputs_of_same_named_classes_are_ours(session: Session, class_type: str, inputs: dict,
                                                           ours: dict) -> None:
    """Each ComfyUI input name is one our node has (RandomNoise's noise_seed is our seed)."""
    node = _nodes(session, {"1": {"class_type": class_type, "inputs": inputs}})["1"]
    known = set(session.registry.nodes[node["type"]].spec.inputs)
    assert set(node["inputs"]) <= known, set(node["inputs"]) - known
    assert {k: node["inputs"][k] for k in ours} == ours


def test_custom_sampling_classes_are_translated(session: Session) -> None:
    prompt = {
        "1": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "uni_pc_bh2"}},
        "2": {"class_type": "BasicScheduler", "inputs": {"model": ["9", 0], "scheduler": "simple", "steps": 4,
                                                         "denoise": 1.0}},
        "3": {"class_type": "BasicGuider", "inputs": {"model": ["9", 0], "conditioning": ["8", 0]}},
        "4": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["5", 0], "guider": ["3", 0],
                                                                "sampler": ["1", 0], "sigmas": ["2", 0],
                                                                "latent_image": ["6", 0]}},
        "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "7": {"class_type": "InvertMask", "inputs": {"mask": ["9", 1]}},
    }
    nodes = _nodes(session, prompt)
    assert nodes["1"] == {"type": "SelectSampler", "inputs": {"sampler": "unipc"}}
    assert nodes["2"]["type"] == "Schedule" and nodes["2"]["inputs"]["steps"] == 4
    assert nodes["3"]["type"] == "CFGGuider"
    assert nodes["3"]["inputs"]["cfg"] == 1.0 and "negative" not in nodes["3"]["inputs"]    # the positive only
    assert nodes["3"]["inputs"]["positive"] == {"node": "8", "output": "0"}
    assert nodes["4"]["type"] == "Sample"
    assert nodes["4"]["inputs"]["latent"] == {"node": "6", "output": "latent"}
    assert nodes["4"]["inputs"]["guider"] == {"node": "3", "output": "guider"}
    assert nodes["6"] == {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                           "channels": 16}}
    assert nodes["7"]["type"] == "MaskOperation" and nodes["7"]["inputs"]["operation"] == "invert"


@pytest.mark.parametrize("names, clip, t5", [
    (("t5xxl_fp16.safetensors", "clip_l.safetensors"), "clip_l.safetensors", "t5xxl_fp16.safetensors"),
    (("clip_l.safetensors", "T5XXL.safetensors"), "clip_l.safetensors", "T5XXL.safetensors"),
])
def test_dual_clip_loader_of_type_flux_is_load_flux_text_encoders(session: Session, names: tuple, clip: str,
                                                                   t5: str) -> None:
    inputs = {"clip_name1": names[0], "clip_name2": names[1], "type": "flux", "device": "default"}
    node = _nodes(session, {"1": {"class_type": "DualCLIPLoader", "inputs": inputs}})["1"]
    assert node == {"type": "LoadFluxTextEncoders", "inputs": {"clip_name": clip, "t5_name": t5}}


def test_dual_clip_loader_of_another_type_stays_a_placeholder(session: Session) -> None:
    inputs = {"clip_name1": "clip_g.safetensors", "clip_name2": "clip_l.safetensors", "type": "sdxl"}
    assert _nodes(session, {"1": {"class_type": "DualCLIPLoader", "inputs": inputs}})["1"]["type"] == "DualCLIPLoader"


@pytest.mark.parametrize("class_type, meant, not_meant", [
    ("CLIPLoader", "LoadTextEncoder", "ClipConsistencyGuidance"),
    ("ConditioningZeroOut", "ComfyUI core class", "Install the plugin"),
])
def test_unknown_core_class_says_it_is_comfyuis_and_what_to_use(session: Session, class_type: str, meant: str,
                                                                 not_meant: str) -> None:
    graph = session.import_comfyui({"1": {"class_type": class_type, "inputs": {}}})
    message = next(e.message for e in session.validate(graph) if e.code == "unknown_node_type")
    assert meant in message and not_meant not in message and "core class" in message


def _widget_warnings(session: Session, node: dict) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session.import_comfyui(_workflow(node))
    return [str(w.message) for w in caught if issubclass(w.category, WidgetValuesWarning)]


def test_no_widget_count_warning_for_comfyuis_cfg_guider_or_a_trailing_ui_value(session: Session) -> None:
    guider = {"id": 1, "type": "CFGGuider", "inputs": [], "outputs": [], "widgets_values": [4.0]}
    assert _widget_warnings(session, guider) == []
    webp = {"id": 2, "type": "SaveAnimatedWEBP", "inputs": [], "outputs": [],
            "widgets_values": ["ComfyUI", 16, False, 90, "default", ""]}
    assert _widget_warnings(session, webp) == []


def test_widget_count_warning_for_a_core_class_does_not_blame_a_plugin() -> None:
    from nodegraph.comfyui import _widget_count_message

    message = _widget_count_message("3", "ImageBlur", ("blur_radius", "sigma"), [1])
    assert "core class" in message and "plugin" not in message


def test_unet_loader_is_load_unet_with_comfyuis_dtypes(session: Session) -> None:
    """ComfyUI's Load Diffusion Model: LoadUNet tells Flux / MMDiT / SD UNet apart by the weights, as ComfyUI does."""
    inputs = {"unet_name": "flux1-dev.safetensors", "weight_dtype": "fp8_e4m3fn_fast"}
    node = _nodes(session, {"1": {"class_type": "UNETLoader", "inputs": inputs}})["1"]
    assert node == {"type": "LoadUNet", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "fp8_e4m3fn"}}
    default = _nodes(session, {"1": {"class_type": "UNETLoader", "inputs": {**inputs, "weight_dtype": "default"}}})
    assert default["1"]["inputs"]["weight_dtype"] == "auto"
