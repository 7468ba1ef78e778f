"""Plugin platform holes found porting a ComfyUI pack (fifth pass): one plugin's ComfyUI classes taking over another's
node types, `nodegraph.api` replaced at import, forceInput sockets and seed=True inputs shifting UI widget values,
renamed inputs, ComfyUI code given as a plugin, and how node classes given in code are named."""

from __future__ import annotations

import importlib.util
import types
import warnings
from typing import Any

import pytest

from nodegraph import Input, Node, NodeInputs, Output, Session, api, hookimpl
from nodegraph import plugins as plugin_loading
from nodegraph.comfyui import WidgetValuesWarning
from nodegraph.plugins import PluginOptionError


def _plugin(name: str, nodes: list | None = None, comfyui: dict | None = None) -> types.ModuleType:
    module = types.ModuleType(name)
    if nodes is not None:
        module.register_nodes = hookimpl(lambda: list(nodes))
        module.register_nodes.__name__ = "register_nodes"
    if comfyui is not None:
        def register_comfyui_classes():
            return dict(comfyui)
        module.register_comfyui_classes = hookimpl(register_comfyui_classes)
    return module


class MixThing(Node):
    type = "MixThing"

    class Inputs(NodeInputs):
        t: float = Input(0.5)

    outputs = (Output("value", "*"),)

    def run(self, t):
        return {"value": ("owner", t)}


class Evil(Node):
    class Inputs(NodeInputs):
        t: float = Input(0.5)

    outputs = (Output("value", "*"),)

    def run(self, t):
        return {"value": "grabbed"}


def _refused(session: Session, plugin: str) -> dict[str, str]:
    return {w["type"]: w["message"] for w in session.plugin_warnings()
            if w["kind"] == "comfyui_class" and w.get("refused") and w["plugin"] == plugin}


# --- 1. a ComfyUI class named as another plugin's node type -------------------------------------------------------

@pytest.mark.parametrize("grabber_first", [True, False])
def test_a_comfyui_class_named_as_another_plugins_node_type_is_refused(grabber_first):
    owner = ("owner", _plugin("owner", [MixThing], {"Mix Thing": api.ComfyUIClass("owner.MixThing", ("value",)),
                                                    "MixThing": api.ComfyUIClass("owner.MixThing", ("value",))}))
    grabber = ("grabber", _plugin("grabber", [Evil], {
        "MixThing": api.ComfyUIClass("grabber.Evil", ("value",)),
        "owner.MixThing": api.ComfyUIClass("grabber.Evil", ("value",)),
        "Evil Pack Class": api.ComfyUIClass("grabber.Evil", ("value",))}))
    session = Session(plugins=[grabber, owner] if grabber_first else [owner, grabber], autoload=False)
    refused = _refused(session, "grabber")
    assert set(refused) == {"MixThing", "owner.MixThing"}
    assert "node type of plugin 'owner' ('owner.MixThing')" in refused["MixThing"]
    assert _refused(session, "owner") == {}          # a plugin may name its own types
    assert set(session.comfyui_classes()) >= {"Evil Pack Class", "Mix Thing", "MixThing"}
    assert session.comfyui_classes()["MixThing"].type == "owner.MixThing"
    graph = session.import_comfyui({"1": {"class_type": "MixThing", "inputs": {"t": 0.25}}})
    assert graph.to_dict()["nodes"]["1"]["type"] in ("MixThing", "owner.MixThing")


# --- 2. nodegraph.api replaced by a plugin --------------------------------------------------------------------------

_PATCHER = '''
from nodegraph import api, hookimpl
_orig = api.sample
def sample(context, *args, **kwargs):
    kwargs["steps"] = 1
    return _orig(context, *args, **kwargs)
api.sample = sample
@hookimpl
def register_samplers():
    return {}
'''


def _import_file(tmp_path, name: str, source: str) -> types.ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_plugin_replacing_an_api_function_is_a_patched_warning(tmp_path, monkeypatch):
    original = api.sample
    monkeypatch.setattr(api, "sample", original)        # put back after the test, whatever happens
    module = _import_file(tmp_path, "patcher_pack", _PATCHER)      # the program imported it, then gives it
    session = Session(plugins=[("patcher", module)], autoload=False)
    [warning] = [w for w in session.plugin_warnings() if w["kind"] == "patched"]
    assert (warning["plugin"], warning["api"], warning["undone"], warning["level"]) == \
        ("patcher", "sample", None, "warning")
    assert "nodegraph.api.sample" in warning["message"] and "built-in" in warning["message"]
    assert api.sample is module.sample           # a loaded plugin's change is its own: shown, not undone


def test_a_plugin_that_fails_to_load_has_its_api_replacement_undone(tmp_path, monkeypatch):
    original = api.sample
    monkeypatch.setattr(api, "sample", original)
    module = _import_file(tmp_path, "patcher_failed_pack", _PATCHER + '''
@hookimpl
def register_nodes():
    return "not a node class"
''')
    assert api.sample is module.sample
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = Session(plugins=[("patcher_failed", module)], autoload=False)
    assert api.sample is original
    [warning] = [w for w in session.plugin_warnings() if w["kind"] == "patched"]
    assert (warning["api"], warning["undone"], warning["level"]) == ("sample", True, "info")


class _PatchingEntryPoint:
    """An installed plugin whose import replaces api.sample (keeping no original) and which then fails."""

    name, dist, module, value = "epatcher", None, "epatcher_mod", "epatcher_mod"

    def load(self):
        api.sample = lambda *args, **kwargs: None
        raise RuntimeError("broken after patching")


def test_an_installed_plugin_failing_at_import_has_its_api_change_undone(monkeypatch):
    original = api.sample
    monkeypatch.setattr(api, "sample", original)
    real = plugin_loading._entry_points
    monkeypatch.setattr(plugin_loading, "_entry_points", lambda group: [_PatchingEntryPoint()]
                        if group == plugin_loading.PLUGIN_GROUP else real(group))
    session = Session(autoload=True)
    assert api.sample is original
    [warning] = [w for w in session.plugin_warnings() if w["kind"] == "patched"]
    assert (warning["plugin"], warning["api"], warning["undone"]) == ("epatcher", "sample", True)


def test_no_patched_warning_without_a_replacement():
    session = Session(plugins=[("owner", _plugin("owner", [MixThing]))], autoload=False)
    assert [w for w in session.plugin_warnings() if w["kind"] == "patched"] == []


# --- 3. forceInput sockets and widget counts in UI workflows ----------------------------------------------------

class SaveTextW(Node):
    """WAS's Save Text File: `text` is forceInput in ComfyUI (a socket, no widget)."""

    type = "SaveTextW"

    class Inputs(NodeInputs):
        text: str = Input("")
        path: str = Input("./out")
        filename_prefix: str = Input("ComfyUI")

    outputs = (Output("text", "STRING"),)

    def run(self, text, path, filename_prefix):
        return {"text": text}


class TextSrc(Node):
    type = "TextSrc"

    class Inputs(NodeInputs):
        t: str = Input("hello")

    outputs = (Output("text", "STRING"),)

    def run(self, t):
        return {"text": t}


def _save_text_workflow(values: list) -> dict:
    return {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "links": [[1, 1, 0, 2, 0, "STRING"]],
            "nodes": [{"id": 1, "type": "TextSrc", "inputs": [], "widgets_values": ["hello"],
                       "outputs": [{"name": "STRING", "type": "STRING", "links": [1]}]},
                      {"id": 2, "type": "SaveTextW", "inputs": [{"name": "text", "type": "STRING", "link": 1}],
                       "outputs": [], "widgets_values": values}]}


def test_a_socket_only_input_takes_no_widget_value():
    session = Session(plugins=[("wasp", [SaveTextW, TextSrc])], autoload=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", WidgetValuesWarning)     # the counts match: no warning
        graph = session.import_comfyui(_save_text_workflow(["./mytexts", "notes"]))
    inputs = graph.to_dict()["nodes"]["2"]["inputs"]
    assert (inputs["path"], inputs["filename_prefix"]) == ("./mytexts", "notes")
    assert inputs["text"] == {"node": "1", "output": "text"}


def test_extra_widget_values_are_a_warning_not_dropped_silently():
    session = Session(plugins=[("wasp", [SaveTextW, TextSrc])], autoload=False)
    with pytest.warns(WidgetValuesWarning, match=r"node 2 \(SaveTextW\) has 3 widget values for 2 widgets"):
        graph = session.import_comfyui(_save_text_workflow(["./mytexts", "notes", 99]))
    assert graph.to_dict()["nodes"]["2"]["inputs"]["filename_prefix"] == "notes"


# --- 4. a seed=True input of any name gets ComfyUI's control widget --------------------------------------------------

class SeedNamed(Node):
    type = "SeedNamed"

    class Inputs(NodeInputs):
        detail_seed: int = Input(0, ge=0, seed=True)
        strength: float = Input(0.5)

    outputs = (Output("value", "*"),)

    def run(self, detail_seed, strength):
        return {"value": strength}


def test_a_seed_input_of_any_name_is_followed_by_its_control_widget():
    session = Session(plugins=[("probe", [SeedNamed])], autoload=False)
    assert session.widget_names("probe.SeedNamed") == ("detail_seed", None, "strength")
    graph = session.import_comfyui({"last_node_id": 1, "last_link_id": 0, "version": 0.4, "links": [], "nodes": [
        {"id": 1, "type": "SeedNamed", "inputs": [], "outputs": [], "widgets_values": [123, "randomize", 0.7]}]})
    node = graph.to_dict()["nodes"]["1"]
    assert node["inputs"] == {"detail_seed": 123, "strength": 0.7}


# --- 6. a ComfyUI mapping naming a renamed input by its old name -------------------------------------------------

class Pixelate(Node):
    version = "2.0.0"
    renamed_inputs = {"pixel_size": "block_size"}

    class Inputs(NodeInputs):
        image: Any = Input(port="IMAGE")
        block_size: int = Input(8, ge=1, le=64)

    outputs = (Output("image", "IMAGE"),)

    def run(self, image, block_size):
        return {"image": image}


def test_a_mapping_using_an_input_s_old_name_gets_no_broken_import_warning():
    module = _plugin("pix", [Pixelate], {
        "Image Pixelate": api.ComfyUIClass("pix.Pixelate", ("image",), widgets=("pixel_size",)),
        "Image Pixelate Old": api.ComfyUIClass("pix.Pixelate", ("image",), inputs={"size": "pixel_size"}),
        "Image Pixelate Typo": api.ComfyUIClass("pix.Pixelate", ("image",), inputs={"size": "pixel_sise"})})
    session = Session(plugins=[("pix", module)], autoload=False)
    broken = {w["type"] for w in session.plugin_warnings() if w["kind"] == "comfyui_class"}
    assert broken == {"Image Pixelate Typo"}
    graph = session.import_comfyui({"2": {"class_type": "Image Pixelate Old", "inputs": {"size": 4}}})
    assert graph.to_dict()["nodes"]["2"]["inputs"] == {"block_size": 4}


# --- 7. ComfyUI code given as a plugin ------------------------------------------------------------------------------

class WASBlur:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "radius": ("INT", {"default": 1})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "blur"

    def blur(self, image, radius):
        return (image,)


@pytest.mark.parametrize("plugins", [[WASBlur], [("was", [WASBlur])]], ids=["bare", "named"])
def test_a_comfyui_class_given_in_code_says_it_is_comfyui_code(plugins):
    with pytest.raises(PluginOptionError) as info:
        Session(plugins=plugins, autoload=False)
    message = str(info.value)
    assert "WASBlur" in message and "ComfyUI code" in message and "Porting a ComfyUI node" in message


def test_a_comfyui_pack_module_says_it_is_comfyui_code():
    pack = types.ModuleType("comfypack")
    pack.WASBlur = WASBlur
    pack.NODE_CLASS_MAPPINGS = {"WASBlur": WASBlur}
    session = Session(plugins=[("comfypack", pack)], autoload=False)
    [warning] = [w for w in session.plugin_warnings() if w["kind"] == "no_nodes"]
    assert "NODE_CLASS_MAPPINGS" in warning["message"] and "ComfyUI code" in warning["message"]
    assert "entry point" not in warning["message"]


# --- 9. node classes given in code are named after their top-level package ---------------------------------------

def _node_in(module: str, type_name: str) -> type[Node]:
    class Named(Node):
        type = type_name

        class Inputs(NodeInputs):
            x: int = Input(1)

        outputs = (Output("x", "INT"),)

        def run(self, x):
            return {"x": x}

    Named.__module__ = module
    return Named


def test_node_classes_given_in_code_are_named_after_their_top_level_package():
    session = Session(plugins=[_node_in("pack_a.nodes", "TextA"), _node_in("pack_b.nodes", "TextB"),
                               _node_in("__main__", "Mine")], autoload=False)
    assert {"pack_a.TextA", "pack_b.TextB", "script.Mine"} <= set(session.registry.nodes)
    assert not any(name.startswith("nodes.") for name in session.registry.node_types)


# --- 10. refusals that say what the import does instead --------------------------------------------------------------

def test_refusals_say_what_the_built_in_import_translates_to():
    module = _plugin("badmap", [Evil], {
        "KSamplerAdvanced": api.ComfyUIClass("badmap.Evil", ("value",)),
        "ImageCompositeMasked": api.ComfyUIClass("badmap.Evil", ("value",)),
        "CLIPSetLastLayer": api.ComfyUIClass("badmap.Evil", ("value",))})
    session = Session(plugins=[("badmap", module)], autoload=False)
    refused = _refused(session, "badmap")
    assert set(refused) == {"KSamplerAdvanced", "ImageCompositeMasked", "CLIPSetLastLayer"}
    assert "'KSampler'" in refused["KSamplerAdvanced"] and "'CompositeImages'" in refused["ImageCompositeMasked"]
    assert not any("a node here" in message for message in refused.values())
    assert "clip_skip" in refused["CLIPSetLastLayer"]
    assert "CLIPSetLastLayer" not in session.comfyui_classes()
