"""Plugins: discovery order, isolation of failures, conflicts, allow/deny lists, hook docs."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from nodegraph import Input, Node, NodeInputs, Output, PortType, Session, hookimpl, hookspecs
from nodegraph import plugins as plugin_loading

ROOT = Path(__file__).resolve().parents[2]


def make_node(type_name: str, value: int) -> type[Node]:
    class Made(Node):
        type = type_name

        class Inputs(NodeInputs):
            pass

        outputs = (Output("value", "INT"),)

        def run(self):
            return {"value": value}

    return Made


class NodesPlugin:
    def __init__(self, *nodes):
        self.nodes = list(nodes)

    @hookimpl
    def register_nodes(self):
        return self.nodes


class RaisingPlugin:
    @hookimpl
    def register_nodes(self):
        raise RuntimeError("cannot register")


class BadReturnPlugin:
    @hookimpl
    def register_nodes(self):
        return ["not a node"]


def test_failing_plugins_are_reported_and_skipped():
    """A raising hook and an invalid return are reported by name; other plugins still load."""
    session = Session(plugins=[("raises", RaisingPlugin()), ("bad", BadReturnPlugin()),
                               ("good", NodesPlugin(make_node("Good", 1)))])
    failed = {f.name: f for f in session.plugin_report.failed}
    assert set(failed) == {"raises", "bad"}
    assert "cannot register" in failed["raises"].error and "Traceback" in failed["raises"].traceback
    assert "not a nodegraph.Node" in failed["bad"].error
    assert "Good" in session.registry.nodes
    assert not session.plugin_manager.has_plugin("raises")


def test_clashing_node_types_are_namespaced_and_the_bare_name_is_ambiguous():
    """Two plugins registering one type: both qualified names work, the bare name names both plugins."""
    first, second = make_node("Twin", 1), make_node("Twin", 2)
    session = Session(plugins=[("alpha", NodesPlugin(first)), ("beta", NodesPlugin(second))])
    assert session.registry.nodes["alpha.Twin"] is first and session.registry.nodes["beta.Twin"] is second
    assert "Twin" not in session.registry.nodes
    (clash,) = session.registry.clashes
    assert (clash.type, clash.plugins, clash.preferred) == ("Twin", ("alpha", "beta"), None)
    assert "alpha" in str(clash) and "beta" in str(clash) and "--prefer-plugin Twin=alpha" in str(clash)


def test_a_plugin_cannot_silently_take_a_builtin_name():
    """A plugin declaring a built-in's type makes the bare name ambiguous; the qualified names keep working."""
    session = Session(plugins=[("shadow", NodesPlugin(make_node("Int", 5)))])
    assert session.registry.node_plugin["primitives.Int"] == "primitives"
    assert session.registry.node_plugin["shadow.Int"] == "shadow"
    assert session.registry.ambiguous["Int"] == ["primitives.Int", "shadow.Int"]


class FakeEntryPoint:
    def __init__(self, name, obj=None, error=None):
        self.name, self.obj, self.error, self.dist = name, obj, error, None

    def load(self):
        if self.error:
            raise self.error
        return self.obj


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Installed plugins 'zeta' (good), 'alpha' (good) and 'broken' (import fails)."""
    real = plugin_loading._entry_points
    installed = [FakeEntryPoint("zeta", NodesPlugin(make_node("Shared", 26))),
                 FakeEntryPoint("alpha", NodesPlugin(make_node("Shared", 1))),
                 FakeEntryPoint("broken", error=ImportError("No module named 'missing_dep'"))]

    def entry_points(group):
        if group == plugin_loading.PLUGIN_GROUP:
            return sorted(installed, key=lambda ep: ep.name)
        return real(group)

    monkeypatch.setattr(plugin_loading, "_entry_points", entry_points)


def test_installed_plugins_load_in_name_order_and_import_errors_are_isolated(fake_entry_points):
    """Autoloaded plugins load by name (alpha before zeta); a broken import is reported, not raised."""
    session = Session(autoload=True)
    assert [p.name for p in session.plugin_report.loaded if p.source == "entry_point"] == ["alpha", "zeta"]
    assert session.registry.ambiguous["Shared"] == ["alpha.Shared", "zeta.Shared"]
    assert [f.name for f in session.plugin_report.failed] == ["broken"]
    assert "missing_dep" in session.plugin_report.failed[0].error


def test_autoload_is_off_in_tests_unless_asked(fake_entry_points):
    """NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD (set by conftest) keeps installed plugins out."""
    session = Session()
    assert "Shared" not in session.registry.nodes
    assert {p.source for p in session.plugin_report.loaded} == {"builtin"}


def test_allow_and_deny_lists(fake_entry_points, monkeypatch):
    """Allow lists select installed plugins; deny lists exclude by name; env vars work too."""
    session = Session(autoload=True, allow=["zeta"])
    assert session.registry.node_plugin["Shared"] == "zeta"
    assert ("alpha", "not on the allow list") in session.plugin_report.skipped
    session = Session(autoload=True, deny=["alpha", "broken"])
    assert session.registry.node_plugin["Shared"] == "zeta" and not session.plugin_report.failed
    monkeypatch.setenv("NODEGRAPH_PLUGINS_DENY", "zeta,alpha")
    session = Session(autoload=True)
    assert "Shared" not in session.registry.nodes


def test_plugin_port_types_extend_the_registry():
    """register_types adds types that nodes of any plugin may use; a clash is a plugin failure."""
    class Types:
        @hookimpl
        def register_types(self):
            return [PortType("AUDIO", "Sound.")]

    class Clash:
        @hookimpl
        def register_types(self):
            return [PortType("LATENT", "Something else")]

    session = Session(plugins=[("types", Types()), ("clash", Clash())])
    assert "AUDIO" in session.registry.types
    assert [f.name for f in session.plugin_report.failed] == ["clash"]


def test_every_hook_is_documented():
    """Each hookspec has a one-line docstring and appears in docs/plugins.md."""
    docs = (ROOT / "docs" / "plugins.md").read_text()
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("register_")]
    assert hooks
    for name in hooks:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and "\n" not in doc, f"{name} needs a one-line docstring"
        assert f"`{name}`" in docs, f"docs/plugins.md does not document {name}"
