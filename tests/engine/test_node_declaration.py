"""Node declaration: specs and JSON schemas derived from classes, bad declarations refused."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from nodegraph import Input, Node, NodeInputs, Output, PluginError, Session


class Example(Node):
    """An example node.

    With a longer description.
    """

    category = "test/examples"
    version = "2.1.0"

    class Inputs(NodeInputs):
        steps: int = Input(20, ge=1, le=1000, step=1, description="how many")
        cfg: float = Input(7.0, ge=0.0, le=30.0, step=0.5)
        prompt: str = Input(multiline=True)
        mode: Literal["fast", "slow"] = Input("fast")
        seed: int = Input(0, seed=True)
        ckpt: str = Input("model.safetensors", model_folder="checkpoints")
        flag: bool = Input(False)
        latent: Any = Input(port="LATENT")
        maybe: Any = Input(None, port="*", lazy=True)

    outputs = (Output("latent", "LATENT", "the result"), Output("count", "INT"))

    def run(self, **inputs):
        return {"latent": inputs["latent"], "count": 1}


def test_spec_is_derived_from_the_class():
    """Ports, requiredness, defaults, choices and flags come from the declaration."""
    spec = Example.spec
    assert (spec.type, spec.version, spec.category, spec.display_name) == ("Example", "2.1.0", "test/examples", "Example")
    assert spec.description.startswith("An example node.")
    ports = {name: s.port for name, s in spec.inputs.items()}
    assert ports == {"steps": "INT", "cfg": "FLOAT", "prompt": "STRING", "mode": "STRING", "seed": "INT",
                     "ckpt": "STRING", "flag": "BOOLEAN", "latent": "LATENT", "maybe": "*"}
    assert spec.inputs["prompt"].required and spec.inputs["latent"].required
    assert not spec.inputs["steps"].required and spec.inputs["steps"].default == 20
    assert spec.inputs["mode"].choices == ("fast", "slow")
    assert spec.inputs["maybe"].lazy
    assert spec.inputs["latent"].adapter is None and spec.inputs["steps"].adapter is not None
    assert spec.output_index == {"latent": 0, "count": 1}


def test_json_schema_carries_widgets_and_constraints():
    """The exported schema has ranges, steps, choices, seeds, multiline and model folders."""
    schema = Example.spec.to_json_schema(Example)
    steps = schema["inputs"]["steps"]
    assert steps["schema"]["minimum"] == 1 and steps["schema"]["maximum"] == 1000
    assert steps["widget"] == {"step": 1, "kind": "number"} and steps["default"] == 20
    assert schema["inputs"]["mode"]["choices"] == ["fast", "slow"]
    assert schema["inputs"]["seed"]["widget"]["kind"] == "seed"
    assert schema["inputs"]["seed"]["schema"]["maximum"] == 2**64 - 1
    assert schema["inputs"]["prompt"]["widget"] == {"multiline": True, "kind": "text"}
    assert schema["inputs"]["ckpt"]["model_folder"] == "checkpoints"
    assert schema["inputs"]["latent"]["widget"]["kind"] == "link"
    assert schema["outputs"][0] == {"name": "latent", "port": "LATENT", "description": "the result"}
    assert list(schema["inputs"]) == list(Example.Inputs.model_fields)


def test_every_builtin_node_exports_a_schema():
    """All registered nodes give JSON-serialisable schemas with inputs and outputs."""
    import json

    session = Session()
    schemas = session.node_schemas()
    assert {s["type"] for s in schemas} >= {"Int", "Switch", "ShowValue"}
    json.dumps(schemas)
    assert len(session.registry.schema_hash()) == 24


@pytest.mark.parametrize("body, match", [
    ({"version": "1.0"}, "semver"),
    ({"outputs": (Output("a", "INT"), Output("a", "INT"))}, "declared twice"),
    ({"outputs": ("INT",)}, "Output"),
    ({"type": "has space"}, "identifier"),
])
def test_bad_declarations_are_refused(body, match):
    """Invalid versions, duplicate outputs, bad output objects and type names raise PluginError."""
    with pytest.raises(PluginError, match=match):
        type("Bad", (Node,), {"__module__": __name__, **body})


@pytest.mark.parametrize("name, other", [("model_config", "config"), ("model_dump", "dump")])
def test_an_input_named_like_a_pydantic_member_that_breaks_is_refused_by_name(name, other):
    """An input named `model_config` failed when the class was defined with pydantic's "'FieldInfo' object is not
    iterable" (a plugin author's finding), `model_dump` with a protected-namespace error: both name the input and a
    fix. Names pydantic takes with a warning (`json`, `copy`, `model_name`) keep working (a re-test: refusing them
    broke plugins that loaded before)."""
    import warnings

    with pytest.raises(TypeError, match=f"input name\\(s\\) '{name}' are reserved .* e.g. '{other}'"):
        type("Inputs", (NodeInputs,), {"__annotations__": {name: int}, name: Input(1), "__module__": __name__})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kept in ("json", "copy", "model_name"):
            made = type("Inputs", (NodeInputs,), {"__annotations__": {kept: str}, kept: Input("x"),
                                                  "__module__": __name__})
            assert made.model_fields[kept].default == "x"


def test_comfyui_input_options_are_mapped_in_the_error():
    """`Input(1, min=0, max=5)` (ComfyUI's INPUT_TYPES options) got Python's bare "unexpected keyword argument
    'min'" (a ComfyUI porter's finding): the error maps each to ours, and suggests a close name for a typo."""
    with pytest.raises(TypeError, match=r"max → le=.*min → ge="):
        Input(1, min=0, max=5)
    with pytest.raises(TypeError, match="tooltip → description="):
        Input("", tooltip="shown on hover")
    with pytest.raises(TypeError, match="multilne → multiline="):
        Input("", multilne=True)


def test_non_primitive_input_needs_a_port():
    """An input annotated with a non-primitive type must name its port type."""
    with pytest.raises(PluginError, match="port"):
        class NoPort(Node):
            class Inputs(NodeInputs):
                thing: list = Input()


def test_types_are_checked_when_registered():
    """A node using an unregistered port type makes its plugin fail, by name."""
    class Odd(Node):
        class Inputs(NodeInputs):
            x: Any = Input(port="NOT_A_TYPE")

    from nodegraph import hookimpl

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [Odd]

    session = Session(plugins=[("odd", Plugin())])
    assert [f.name for f in session.plugin_report.failed] == ["odd"]
    assert "NOT_A_TYPE" in session.plugin_report.failed[0].error
    assert "Odd" not in session.registry.nodes


def test_display_names_keep_the_fields_whole_words():
    """Splitting at case changes gave "Load Lo RA", "Load U Net" and "K Sampler"."""
    from nodegraph.node import _split_words

    assert [_split_words(n) for n in ("LoadLoRA", "LoadUNet", "KSampler", "ApplyControlNet", "VAEDecode",
                                      "ImageToMask", "EncodeTextSDXL")] == [
        "Load LoRA", "Load UNet", "KSampler", "Apply ControlNet", "VAE Decode", "Image To Mask", "Encode Text SDXL"]


def test_an_input_without_a_type_annotation_is_named_with_the_fix():
    """`x = Input(1.0)` raised pydantic's PydanticUserError over several lines (it broke the `plugins` table),
    naming neither the node nor the fix (a plugin author's pass)."""
    with pytest.raises(TypeError) as info:
        type("Inputs", (NodeInputs,), {"x": Input(1.0), "__module__": __name__, "__qualname__": "Blur.Inputs"})
    text = str(info.value)
    assert "Blur.Inputs: input(s) 'x' need a type annotation" in text and "`x: float = Input(...)`" in text
    assert "\n" not in text


def test_a_tensor_input_without_a_port_is_shown_the_port_its_name_suggests():
    """A torch.Tensor input named `image` was told to declare `Input(port='LATENT')` (a plugin author's pass)."""
    import torch

    for name, port in (("image", "IMAGE"), ("mask", "MASK"), ("waveform", "LATENT")):
        inputs = type("Inputs", (NodeInputs,), {"__annotations__": {name: torch.Tensor}, name: Input(),
                                                "__module__": __name__})
        with pytest.raises(PluginError, match=rf"declare its port type: Input\(port='{port}'\)"):
            type("Bad", (Node,), {"__module__": __name__, "Inputs": inputs, "run": lambda self, **kw: {}})


def test_a_class_ported_with_comfyuis_attributes_is_refused_at_declaration():
    """RETURN_TYPES / FUNCTION / INPUT_TYPES loaded as a node with 0 outputs and failed at its first run with
    "run() returned 1 value(s) for its 0 output(s)" (a plugin author's pass); the declaration says what to write."""
    with pytest.raises(PluginError, match="declares ComfyUI's RETURN_TYPES, FUNCTION, INPUT_TYPES") as info:
        class Ported(Node):
            RETURN_TYPES = ("IMAGE",)
            FUNCTION = "go"

            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
    assert "outputs = (Output(" in str(info.value) and "Porting a ComfyUI node" in str(info.value)


def test_one_output_without_the_tuples_comma_is_named():
    """`outputs = Output('x', 'INT')` raised a bare "'Output' object is not iterable" from build_spec."""
    with pytest.raises(PluginError, match=r"found one Output: write `outputs = \(Output\(") as info:
        class Single(Node):
            class Inputs(NodeInputs):
                pass

            outputs = Output("x", "INT")

            def run(self):
                return {"x": 1}
    assert "Single" in str(info.value)
