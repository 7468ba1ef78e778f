"""ComfyUI node classes that have an equivalent here, and how their inputs and outputs translate.

`import_foreign` (graph.py) turns a ComfyUI API-format prompt — or a UI-format workflow, first made one by
`workflow_to_prompt` (widget values named by position, `WIDGET_NAMES`) — into a graph: an entry whose
`class_type` is in `EQUIVALENTS` becomes our node (inputs renamed, a few values translated,
inputs set to their no-op value dropped, links to its outputs named by our output names in
ComfyUI's output order); any other entry keeps its ComfyUI type and data, and validation names
it as unknown (a red placeholder in the editor, round-tripped as it was).

Only equivalents are listed: the same operation, the same meaning of every kept input (ImageScale:
ours antialiases when it shrinks, ComfyUI's does not). Not listed, on purpose: KSamplerAdvanced
(start/end steps and leftover noise are SplitSigmas + Sample here), ControlNetApply (one
conditioning; ours applies to positive and negative together),
CLIPSetLastLayer (ours is EncodeText's `clip_skip`). Values are translated where ours is the same choice: sampler names,
and ImageScale's `nearest-exact` → our `nearest` (torch's `nearest`: on a non-integer scale it picks
source pixels up to half a pixel off from `nearest-exact`'s); anything else stays as it is and validation
suggests what is here. docs/editor.md ("ComfyUI files") lists the table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Equivalent:
    """Our node for one ComfyUI class."""

    type: str                                    # our node type
    outputs: tuple[str, ...]                     # our output names, in ComfyUI's output order
    inputs: dict[str, str] = field(default_factory=dict)           # ComfyUI input name → ours (others as they are)
    values: dict[str, dict[str, str]] = field(default_factory=dict)   # our input → {ComfyUI value: ours}
    no_ops: dict[str, Any] = field(default_factory=dict)           # ComfyUI input → the value that changes nothing


# ComfyUI's uni_pc is UniPC with B(h) = h (bh1), its uni_pc_bh2 ours (diffusers' default, bh2)
_SAMPLER_NAMES = {"uni_pc_bh2": "unipc", "uni_pc": "unipc_bh1",
                  # "_gpu": the same sampler with its Brownian noise drawn on the GPU (ours: on the latent's device)
                  "dpmpp_2m_sde_gpu": "dpmpp_2m_sde", "dpmpp_sde_gpu": "dpmpp_sde"}

#: ComfyUI classes with no equivalent, and what does their work here (said by validation's unknown-type error)
INSTEAD: dict[str, str] = {
    "CLIPSetLastLayer": "ComfyUI's CLIPSetLastLayer is EncodeText's `clip_skip` here: remove the node, link the "
                        "text encoder straight to each EncodeText and set its clip_skip (stop_at_clip_layer -2 is "
                        "clip_skip 2, -1 is 1)",
    "KSamplerAdvanced": "KSamplerAdvanced is KSampler here when it runs the whole schedule with add_noise on; "
                        "start_at_step / end_at_step and leftover noise are SplitSigmas + Sample (docs/editor.md, "
                        "'ComfyUI files')",
    "ControlNetApply": "ControlNetApply (one conditioning) is ApplyControlNet here, which takes positive and "
                       "negative together",
}


def subgraph_kind(node_type: str) -> str | None:
    """'subgraph' for a ComfyUI subgraph instance (its type is the definition's UUID), 'group node' for a
    legacy group node ('workflow>NAME' / 'workflow/NAME'), else None."""
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", node_type):
        return "subgraph"
    if node_type.startswith(("workflow>", "workflow/")):
        return "group node"
    return None

# The official Real-ESRGAN release files ComfyUI users have in models/upscale_models → the built-in of the same
# weights (nodes/upscale/ncnn.py); a graph naming them runs here without the file.
_UPSCALER_FILES = {f"{stem}.{ext}": ours for stem, ours in (
    ("RealESRGAN_x4plus", "realesrgan-x4plus"), ("RealESRGAN_x4plus_anime_6B", "realesrgan-x4plus-anime"),
    ("realesr-animevideov3", "realesr-animevideov3-x4")) for ext in ("pth", "safetensors")}

EQUIVALENTS: dict[str, Equivalent] = {
    "CheckpointLoaderSimple": Equivalent("LoadCheckpoint", ("model", "text_encoder", "vae")),
    "CLIPTextEncode": Equivalent("EncodeText", ("conditioning",), {"clip": "text_encoder"}),
    "EmptyLatentImage": Equivalent("EmptyLatent", ("latent",)),
    "KSampler": Equivalent("KSampler", ("latent",), {"latent_image": "latent", "sampler_name": "sampler"},
                           {"sampler": _SAMPLER_NAMES}),
    "VAEDecode": Equivalent("VAEDecode", ("image",), {"samples": "latent"}),
    "VAEEncode": Equivalent("VAEEncode", ("latent",), {"pixels": "image"}),
    "VAEEncodeForInpaint": Equivalent("VAEEncodeForInpaint", ("latent",), {"pixels": "image"}),
    "SetLatentNoiseMask": Equivalent("SetLatentNoiseMask", ("latent",), {"samples": "latent"}),
    "VAELoader": Equivalent("LoadVAE", ("vae",)),
    "LoraLoader": Equivalent("LoadLoRA", ("model", "text_encoder"), {"clip": "text_encoder",
                                                                      "strength_clip": "strength_text"}),
    "LoraLoaderModelOnly": Equivalent("LoadLoRAModelOnly", ("model",)),
    "ControlNetLoader": Equivalent("LoadControlNet", ("control_net",)),
    "ControlNetApplyAdvanced": Equivalent("ApplyControlNet", ("positive", "negative"),
                                          {"start_percent": "start", "end_percent": "end"}),
    "UpscaleModelLoader": Equivalent("LoadUpscaleModel", ("upscale_model",), values={"model_name": _UPSCALER_FILES}),
    "ImageUpscaleWithModel": Equivalent("UpscaleImageWithModel", ("image",)),
    "ImageScale": Equivalent("ImageScale", ("image",), {"image": "images", "upscale_method": "method"},
                             values={"method": {"nearest-exact": "nearest"}}),
    # ComfyUI's width / height are pixels at 8 a latent cell; ours are the latent's own pixels (an imported
    # EmptyLatent gets the graph's VAE), and as there one side 0 keeps the aspect ratio (LatentUpscale 1.2)
    "LatentUpscale": Equivalent("LatentUpscale", ("latent",), {"samples": "latent", "upscale_method": "method"},
                                values={"method": {"nearest-exact": "nearest"}}, no_ops={"crop": "disabled"}),
    "LoadImage": Equivalent("LoadImage", ("image", "mask"), no_ops={"upload": "image"}),
    "SaveImage": Equivalent("SaveImage", ()),
    "PreviewImage": Equivalent("PreviewImage", ()),
    # ComfyUI's core primitive nodes (comfy_extras): one `value` input, one output
    "PrimitiveInt": Equivalent("Int", ("value",)),
    "PrimitiveFloat": Equivalent("Float", ("value",)),
    "PrimitiveBoolean": Equivalent("Boolean", ("value",)),
    "PrimitiveString": Equivalent("String", ("value",)),
    "PrimitiveStringMultiline": Equivalent("String", ("value",)),
}
# Widgets of ComfyUI's UI, not inputs of a node (a hand-written or older API prompt may carry them): dropped.
UI_WIDGETS = frozenset({"control_after_generate", "control_before_generate"})


def translate_inputs(equivalent: Equivalent, inputs: dict[str, Any],
                     changed: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """A ComfyUI entry's inputs as our node's: renamed, known values translated, no-op inputs dropped.

    Each translated value is appended to `changed` as (our input, ComfyUI's value, ours), so an import
    can say what it changed (a file name that now means a built-in model, say)."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if (name in equivalent.no_ops and value == equivalent.no_ops[name]) or name in UI_WIDGETS:
            continue
        ours = equivalent.inputs.get(name, name)
        table = equivalent.values.get(ours)
        if table is not None and isinstance(value, str) and value in table:
            if changed is not None:
                changed.append((ours, value, table[value]))
            value = table[value]
        out[ours] = value
    return out


# --- UI-format workflows -----------------------------------------------------------------------------

# A UI workflow (what ComfyUI's Save writes, and the "workflow" chunk of its PNGs) lists each node's widget
# values by position; these are the positions of the classes above (and the seed's "control after
# generate" widget, which is the UI's, not an input). Other classes keep their values unnamed (`widgets_values`).
WIDGET_NAMES: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CLIPTextEncode": ("text",),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "KSampler": ("seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "VAEDecode": (), "VAEEncode": (), "SetLatentNoiseMask": (), "ImageUpscaleWithModel": (), "PreviewImage": (),
    "VAEEncodeForInpaint": ("grow_mask_by",),
    "VAELoader": ("vae_name",),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "ControlNetLoader": ("control_net_name",),
    "ControlNetApplyAdvanced": ("strength", "start_percent", "end_percent"),
    "UpscaleModelLoader": ("model_name",),
    "ImageScale": ("upscale_method", "width", "height", "crop"),
    "LatentUpscale": ("upscale_method", "width", "height", "crop"),
    "LoadImage": ("image", "upload"),
    "SaveImage": ("filename_prefix",),
    "PrimitiveInt": ("value", None), "PrimitiveFloat": ("value",), "PrimitiveBoolean": ("value",),
    "PrimitiveString": ("value",), "PrimitiveStringMultiline": ("value",),
}
_UI_ONLY = ("Note", "MarkdownNote", "PrimitiveNode", "Reroute")    # no node of the prompt: resolved or dropped
_MODES = {2: "mute", 4: "bypass"}                                    # ComfyUI's "never" and "bypass"


class WorkflowError(ValueError):
    """A UI workflow that cannot be read (its nodes or links are not what ComfyUI writes)."""


MAX_CANVAS = 10_000_000     # canvas coordinates beyond this are no layout a person made (a group there is left out)


def workflow_groups(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """A UI workflow's groups (`groups[]`: title, `bounding` [x, y, w, h], color) as our `ui.groups` entries
    ({id, title, color "#rrggbb", bounds}); malformed ones are left out, at most 500."""
    groups = []
    raw = workflow.get("groups")
    for group in raw[:500] if isinstance(raw, list) else []:
        if not isinstance(group, dict):
            continue
        bounds = group.get("bounding")
        if not (isinstance(bounds, list) and len(bounds) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        and abs(v) <= MAX_CANVAS for v in bounds)
                and bounds[2] > 0 and bounds[3] > 0):
            continue
        title = group.get("title") if isinstance(group.get("title"), str) else "Group"
        color = group.get("color") if isinstance(group.get("color"), str) else ""
        if re.fullmatch(r"#[0-9a-fA-F]{3}", color):
            color = "#" + "".join(ch * 2 for ch in color[1:])
        groups.append({"id": f"comfyui-group-{len(groups) + 1}", "title": title[:200],
                       "color": color.lower() if re.fullmatch(r"#[0-9a-fA-F]{6}", color) else "#3f789e",
                       "bounds": [round(v) for v in bounds]})
    return groups


def workflow_to_prompt(workflow: dict[str, Any]) -> dict[str, Any]:
    """A ComfyUI UI-format workflow → an API-format prompt (then imported like one: `graph.import_foreign`).

    Links become `[source id, output slot]` pairs (through Reroute nodes; a PrimitiveNode's value becomes the
    literal it feeds); widget values are named by `WIDGET_NAMES` (others are kept, unnamed, as
    `widgets_values`, and such a node stays a placeholder of its ComfyUI type); a muted or bypassed node keeps
    its mode (`_meta.mode`); notes are dropped. Each node's canvas position goes to `_meta.position` (the
    imported graph's `ui`: the editor shows ComfyUI's layout), its output names to `_meta.output_names` (a link
    out of a type nodegraph lacks is named by them, not by its slot number). A seed's "control after generate" is not carried:
    the imported seed is fixed, so the first run draws what ComfyUI drew with that seed (ComfyUI changes it
    after a run; ours would before). Raises WorkflowError naming what is not as ComfyUI writes it.
    """
    raw_nodes = workflow.get("nodes")
    if not isinstance(raw_nodes, list) or not all(
            isinstance(n, dict) and type(n.get("id")) in (int, str) and isinstance(n.get("type"), str)
            for n in raw_nodes):
        raise WorkflowError('"nodes" must be a list of objects with an "id" (a number) and a "type" (as ComfyUI '
                            'saves them)')
    nodes = {str(n["id"]): n for n in raw_nodes}
    links: dict[Any, tuple[str, int]] = {}
    for link in workflow.get("links") or []:     # [id, origin, slot, target, slot, type], or the same as an object
        if isinstance(link, list) and len(link) >= 5:
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, dict):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot", 0)
        else:
            continue
        if type(link_id) in (int, str) and type(origin) in (int, str):     # anything else links nothing
            links[link_id] = (str(origin), slot if type(slot) is int else 0)

    def source(link_id: Any) -> Any:
        """What a link carries: [origin id, slot], a primitive's literal, or None (dangling). A chain of Reroute
        nodes is followed to its end (a loop of them is a WorkflowError: it became "needs input 'model'")."""
        reroutes: list[str] = []
        seen: set[str] = set()
        while True:
            if type(link_id) not in (int, str) or link_id not in links:
                return None
            origin, slot = links[link_id]
            node = nodes.get(origin)
            if node is None or node["type"] != "Reroute":
                break
            if origin in seen:
                loop = " → ".join(reroutes[reroutes.index(origin):] + [origin])
                raise WorkflowError(f"Reroute nodes {loop} feed each other in a loop, so they carry nothing; "
                                    f"connect the first of them to an output in ComfyUI and save again")
            reroutes.append(origin)
            seen.add(origin)
            inputs = node.get("inputs")
            first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
            link_id = first.get("link")
        if node is not None and node["type"] == "PrimitiveNode":
            values = node.get("widgets_values")
            return {"literal": values[0] if isinstance(values, list) and values else None}
        return [origin, slot]

    prompt: dict[str, Any] = {}
    for node_id, node in nodes.items():
        if node["type"] in _UI_ONLY:
            continue
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        names = WIDGET_NAMES.get(node["type"])
        meta: dict[str, Any] = {}
        if names is not None and isinstance(values, list):
            if None in names and len(values) == len(names) - 1:     # written without the seed's control widget
                names = tuple(name for name in names if name is not None)
            inputs.update({name: value for name, value in zip(names, values) if name is not None})
        elif values not in (None, [], {}):
            inputs["widgets_values"] = values
        for slot in node.get("inputs") if isinstance(node.get("inputs"), list) else []:
            if not isinstance(slot, dict) or not isinstance(slot.get("name"), str) or slot.get("link") is None:
                continue
            carried = source(slot["link"])
            widget = slot.get("widget")         # an input made of a widget: named after it
            name = widget["name"] if isinstance(widget, dict) and isinstance(widget.get("name"), str) else slot["name"]
            if isinstance(carried, dict):
                inputs[name] = carried["literal"]
            elif carried is not None:
                inputs[name] = carried
        position = node.get("pos")
        if isinstance(position, dict):          # some ComfyUI versions write {"0": x, "1": y}
            position = [position.get("0"), position.get("1")]
        if (isinstance(position, list) and len(position) >= 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in position[:2])):
            meta["position"] = [round(position[0]), round(position[1])]
        if isinstance(node.get("title"), str):
            meta["title"] = node["title"]
        outputs = node.get("outputs")
        names_out = [slot.get("name") for slot in outputs if isinstance(slot, dict)] if isinstance(outputs, list) else []
        if names_out and all(isinstance(n, str) and n for n in names_out) and len(set(names_out)) == len(names_out):
            meta["output_names"] = names_out      # a type nodegraph lacks keeps its links' output names
        mode = node.get("mode")
        if type(mode) is int and mode in _MODES:       # anything else (a list, text) is no mode ComfyUI writes
            meta["mode"] = _MODES[mode]
        prompt[node_id] = {"class_type": node["type"], "inputs": inputs, **({"_meta": meta} if meta else {})}
    return prompt
