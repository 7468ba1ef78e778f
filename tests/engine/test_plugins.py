"""Plugins: discovery order, isolation of failures (with fixes), namespaced names and clashes, allow/deny/prefer, hook docs."""

from __future__ import annotations

import inspect
import itertools
import threading
import time
import json
import sys
import types
from pathlib import Path
from typing import Any, Literal

import pytest

from nodegraph import Input, Node, NodeInputs, Output, PortType, Session, hookimpl, hookspecs
from nodegraph import plugins as plugin_loading
from nodegraph.errors import ERROR_CODES, GraphValidationError, NodeExecutionError, PluginError

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
    """A plugin declaring a built-in's type does not get the bare name (the built-in keeps it, with a clash
    warning); both qualified names keep working."""
    session = Session(plugins=[("shadow", NodesPlugin(make_node("Int", 5)))])
    assert session.registry.node_plugin["primitives.Int"] == "primitives"
    assert session.registry.node_plugin["shadow.Int"] == "shadow"
    assert session.registry.node_plugin["Int"] == "primitives" and "Int" not in session.registry.ambiguous
    (clash,) = session.registry.clashes
    assert (clash.plugins, clash.builtin) == (("primitives", "shadow"), "primitives")
    # the plugin's inputs written under the bare name: the built-in's errors say the bare name means it
    (error,) = session.validate({"format_version": 2, "nodes": {"i": {"type": "Int", "inputs": {"wrong": 1}}}})[:1]
    assert "Note: 'Int' means 'primitives.Int' here; 'shadow.Int' also exists" in error.message
    assert error.details["also"] == ["shadow.Int"]


class FakeEntryPoint:
    def __init__(self, name, obj=None, error=None):
        self.name, self.obj, self.error, self.dist = name, obj, error, None

    def load(self):
        if self.error:
            raise self.error
        return self.obj


def install_entry_points(monkeypatch, installed) -> None:
    """Make `installed()` (evaluated at each look-up) the plugins installed under the `nodegraph` group; the
    built-in packs stay as they are."""
    real = plugin_loading._entry_points
    monkeypatch.setattr(plugin_loading, "_entry_points",
                        lambda group: installed() if group == plugin_loading.PLUGIN_GROUP else real(group))


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


def test_a_plugin_given_in_code_replaces_its_installed_copy(fake_entry_points, monkeypatch):
    """An author testing edited code against an installed copy got the installed one (the code's was skipped
    with a warning); a module that an entry point loads, passed bare, failed with pluggy's 'already registered
    under a different name' and a wrong fix. Code wins, under the entry point's name; said as a choice."""
    edited = NodesPlugin(make_node("Shared", 99))
    session = Session(autoload=True, plugins=[("alpha", edited)])
    assert session.run(twin_graph("alpha.Shared")).outputs["show0"]["value"] == 99
    (skipped,) = [w for w in session.plugin_warnings() if w["kind"] == "skipped" and w["plugin"] == "alpha"]
    assert skipped["level"] == "info" and "given in code" in skipped["message"]
    # an allow list naming others does not report the code's plugin as "not on the allow list" (it loaded);
    # denied, neither copy loads and the report says so once (it said "replaced by code" too)
    session = Session(autoload=True, plugins=[("alpha", edited)], allow=["zeta"])
    assert "alpha" in {p.name for p in session.plugin_report.loaded}
    assert not [w for w in session.plugin_warnings() if w["plugin"] == "alpha" and "allow" in w["message"]]
    session = Session(autoload=True, plugins=[("alpha", edited)], deny=["alpha"])
    assert "alpha" not in {p.name for p in session.plugin_report.loaded}
    assert [reason for name, reason in session.plugin_report.skipped if name == "alpha"] == ["on the deny list"]
    module = types.ModuleType("nodegraph_gamma")
    module.register_nodes = hookimpl(lambda: [make_node("GammaOnly", 7)])
    entry = FakeEntryPoint("gamma", module)
    entry.module, entry.attr = "nodegraph_gamma", None
    previous = plugin_loading._entry_points
    monkeypatch.setattr(plugin_loading, "_entry_points", lambda group: [*previous(group), entry]
                        if group == plugin_loading.PLUGIN_GROUP else previous(group))
    session = Session(autoload=True, plugins=[module])
    assert [f.name for f in session.plugin_report.failed] == ["broken"]       # the fixture's; not gamma
    assert "gamma" in {p.name for p in session.plugin_report.loaded}
    assert session.run(twin_graph("gamma.GammaOnly")).outputs["show0"]["value"] == 7


def test_a_plugin_needing_a_newer_api_is_told_to_update_nodegraph(monkeypatch):
    """api.require at import: the error said "install a nodegraph that does", the fix "its module raised"."""
    from nodegraph import api

    try:
        api.require("1.99")
    except api.ApiError as exc:
        needs_newer = exc
    real = plugin_loading._entry_points
    monkeypatch.setattr(plugin_loading, "_entry_points", lambda group: [FakeEntryPoint("future", error=needs_newer)]
                        if group == plugin_loading.PLUGIN_GROUP else real(group))
    (failure,) = Session(autoload=True).plugin_report.failed
    assert "needs a newer nodegraph" in failure.fix and "raised while being imported" not in failure.fix
    # made for an older major API (api.require("0.9") under API 1.x): nodegraph is not the one to update
    try:
        api.require("0.9")
    except api.ApiError as exc:
        needs_older = exc
    monkeypatch.setattr(plugin_loading, "_entry_points", lambda group: [FakeEntryPoint("past", error=needs_older)]
                        if group == plugin_loading.PLUGIN_GROUP else real(group))
    (failure,) = Session(autoload=True).plugin_report.failed
    assert "made for an older plugin API (0.x)" in failure.fix and "update nodegraph" not in failure.fix


def test_a_plugin_calling_sys_exit_fails_alone(monkeypatch):
    """A plugin that runs argparse (or sys.exit) at import or in a hook took every command down with it."""
    class ExitsInHook:
        @hookimpl
        def register_nodes(self):
            raise SystemExit(0)

    real = plugin_loading._entry_points
    installed = [FakeEntryPoint("exits", error=SystemExit("usage: exits [-h]")),
                 FakeEntryPoint("good", NodesPlugin(make_node("Fine", 3)))]
    monkeypatch.setattr(plugin_loading, "_entry_points",
                        lambda group: installed if group == plugin_loading.PLUGIN_GROUP else real(group))
    session = Session(autoload=True, plugins=[("hooked", ExitsInHook())])
    failed = {f.name: f.error for f in session.plugin_report.failed}
    assert set(failed) == {"exits", "hooked"} and "SystemExit" in failed["exits"]
    assert "good.Fine" in session.registry.nodes


def test_a_plugin_exiting_at_import_has_what_it_printed_in_its_failure(monkeypatch, capsys):
    """A plugin running argparse at module level printed `usage: cli.py [-h]` / `error: unrecognized arguments`
    on every command — read as nodegraph refusing the user's arguments — and its failure said only `SystemExit:
    2`. What it printed is now in its failure, not on stderr; what a plugin that loads prints is passed on."""
    import sys

    class ArgparseAtImport(FakeEntryPoint):
        def load(self):
            print("usage: cli.py [-h]\ncli.py: error: unrecognized arguments: --bogus", file=sys.stderr)
            raise SystemExit(2)

    class Chatty(FakeEntryPoint):
        def load(self):
            print("chatty: loaded", file=sys.stderr)
            print("chatty: said on stdout")          # would corrupt `plugins --json` / `run --events -`
            return self.obj

    installed = [ArgparseAtImport("argy"), Chatty("chatty", NodesPlugin(make_node("Talks", 1)))]
    install_entry_points(monkeypatch, lambda: installed)
    session = Session(autoload=True)
    (failure,) = session.plugin_report.failed
    assert failure.name == "argy" and failure.error.startswith("SystemExit: 2 (the plugin exited while it was imported")
    assert "unrecognized arguments: --bogus" in failure.error
    out, err = capsys.readouterr()
    assert "chatty: loaded" in err and "chatty: said on stdout" in err and "chatty" not in out


def test_a_plugin_sees_the_real_stderr_while_it_is_imported(monkeypatch, capfd):
    """Capturing stderr into a StringIO while plugins were imported broke ordinary plugins (a re-test): faulthandler
    (no fileno), `sys.stderr.encoding`, and logging handlers made at import — torch's among them — wrote into the
    discarded buffer for the rest of the process. What a plugin prints passes straight through and its handlers
    keep working after the import."""
    import faulthandler
    import logging
    import sys

    made: dict = {}

    class Ordinary(FakeEntryPoint):
        def load(self):
            faulthandler.enable(file=sys.stderr)
            faulthandler.disable()
            made["encoding"] = sys.stderr.encoding.lower()
            made["handler"] = logging.StreamHandler()          # bound to sys.stderr as it is now
            return self.obj

    installed = [Ordinary("ordinary", NodesPlugin(make_node("Plain", 1)))]
    install_entry_points(monkeypatch, lambda: installed)
    session = Session(autoload=True)
    assert not session.plugin_report.failed and made["encoding"]
    logger = logging.getLogger("plugin_after_import")
    logger.addHandler(made["handler"])
    try:
        logger.warning("said after the import")
    finally:
        logger.removeHandler(made["handler"])
    assert "said after the import" in capfd.readouterr().err


def test_two_distributions_with_one_plugin_name_load_the_same_one_anywhere(monkeypatch):
    """The winner no longer depends on the working folder (sys.path order); the warning names both
    distributions and a fix that can be carried out (allow/deny cannot tell them apart)."""
    class Dist:
        def __init__(self, name, version):
            self.name, self.version = name, version

    real = plugin_loading.metadata.entry_points
    first = FakeEntryPoint("fx", NodesPlugin(make_node("Real", 1)))
    second = FakeEntryPoint("fx", NodesPlugin(make_node("Impostor", 2)))
    first.dist, second.dist = Dist("nodegraph-fx", "0.1.0"), Dist("nodegraph-dup", "0.2.0")
    first.value = second.value = "x"
    for order in ([first, second], [second, first]):
        monkeypatch.setattr(plugin_loading.metadata, "entry_points",
                            lambda group, order=order: order if group == plugin_loading.PLUGIN_GROUP else real(
                                group=group))
        session = Session(autoload=True)
        assert "fx.Impostor" in session.registry.nodes and "fx.Real" not in session.registry.nodes
        warning = next(w for w in session.plugin_warnings() if w["kind"] == "skipped")
        message = warning["message"]
        assert "loaded: nodegraph-dup 0.2.0" in message and "skipped: nodegraph-fx 0.1.0" in message
        assert "pip uninstall nodegraph-fx" in warning["fix"]


def test_a_missing_module_of_an_installed_package_is_not_told_to_pip_install_a_guess():
    """An entry point naming a submodule that does not exist was told `pip install <package>` (installed already,
    and a guessed PyPI name is a typo-squatting risk)."""
    from nodegraph.plugins import _failure_fix

    fix = _failure_fix("hostile", ModuleNotFoundError("no", name="nodegraph.does_not_exist"), "import")
    assert "does not exist in the installed package 'nodegraph'" in fix and "pip install" not in fix
    assert "`pip install gone_dep`" in _failure_fix("x", ModuleNotFoundError("no", name="gone_dep"), "import")


def test_an_entry_point_naming_a_module_that_is_not_there_is_a_packaging_typo_not_a_package_to_install(monkeypatch):
    """`myplugin = "ngbad_missing_typo"` in a plugin's pyproject was told `pip install ngbad_missing_typo`: a name
    from a typo, which anyone may register on PyPI (a plugin author's finding). The entry point's own module
    missing is a packaging mistake; a module its code imports is still a dependency to install."""
    from importlib import metadata

    typo = metadata.EntryPoint("typo_pack", "ngbad_missing_typo_zz", plugin_loading.PLUGIN_GROUP)
    inner = metadata.EntryPoint("inner_pack", "ngbad_missing_pkg_zz.nodes:plugin", plugin_loading.PLUGIN_GROUP)
    install_entry_points(monkeypatch, lambda: [typo, inner])
    failures = {f.name: f for f in Session(autoload=True).plugin_report.failed}
    for name, module in (("typo_pack", "ngbad_missing_typo_zz"), ("inner_pack", "ngbad_missing_pkg_zz.nodes")):
        fix = failures[name].fix
        assert "pip install" not in fix, fix
        assert f"names module {module!r}, which is not installed" in fix and "[project.entry-points.nodegraph]" in fix
        assert f"--deny-plugin {name}" in fix

    from nodegraph.plugins import _failure_fix

    dependency = _failure_fix("typo_pack", ModuleNotFoundError("no", name="gone_dep"), "import", typo)
    assert "`pip install gone_dep`" in dependency


def test_the_first_plugin_to_import_torch_is_told_that_is_most_of_its_time(monkeypatch):
    """The slow-import warning blamed whichever plugin imported torch first (3 s) although every plugin that uses
    torch shares that cost (a plugin author's finding): the warning says so."""
    import sys
    from types import SimpleNamespace

    now = [100.0]
    monkeypatch.setattr(plugin_loading, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.delitem(sys.modules, "torch")       # restored after the test (monkeypatch puts it back)

    class ImportsTorch(FakeEntryPoint):
        def load(self):
            now[0] += 3.2
            sys.modules["torch"] = SimpleNamespace()
            return self.obj

    installed = [ImportsTorch("torchy_pack", NodesPlugin(make_node("TorchyNode", 1)))]
    install_entry_points(monkeypatch, lambda: installed)
    session = Session(autoload=True)
    (slow,) = [w for w in session.plugin_warnings() if w["kind"] == "slow_import"]
    assert slow["imported_torch"] and "the first to import torch, at module level" in slow["message"], slow
    assert "inside the nodes' run()" in slow["fix"]


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


def test_allow_and_deny_names_that_match_no_plugin_are_warned_about(fake_entry_points):
    """A misspelt --deny-plugin / --allow-plugin name would choose nothing, silently: it is a warning with the
    closest installed name; names that exist give none."""
    session = Session(autoload=True, deny=["zetta"], allow=["alpha", "nonexistent"])
    warnings = {w["plugin"]: w for w in plugin_loading.plugin_warnings(session.plugin_report, session.registry)
                if w["kind"] == "unknown_name"}
    assert set(warnings) == {"zetta", "nonexistent"}
    assert warnings["zetta"]["option"] == "--deny-plugin" and "did you mean 'zeta'?" in warnings["zetta"]["fix"]
    assert warnings["nonexistent"]["level"] == "warning" and "alpha" in warnings["nonexistent"]["fix"]
    quiet = Session(autoload=True, deny=["broken"], allow=["zeta", "broken"])
    assert not quiet.plugin_report.unknown


def test_a_failure_after_denying_a_built_in_pack_says_so(fake_entry_points):
    """Denying a built-in pack another plugin needs: that plugin's failure names the denied pack first."""
    class Guided(Node):
        class Inputs(NodeInputs):
            pass

        outputs = (Output("guidance", "GUIDANCE"),)        # a port type the built-in sampling pack registers

        def run(self):
            return {"guidance": None}

    session = Session(plugins=[("needs_sampling", NodesPlugin(Guided))], deny=["sampling"])
    failed = [w for w in plugin_loading.plugin_warnings(session.plugin_report, session.registry)
              if w["kind"] == "failed" and w["plugin"] == "needs_sampling"]
    assert failed and failed[0]["fix"].startswith("you denied the built-in pack(s) 'sampling'"), failed


def test_plugin_port_types_extend_the_registry():
    """register_types adds types that nodes of any plugin may use; a clash (a built-in type redefined, another
    plugin's type with other connection rules) is a plugin failure."""
    class Types:
        @hookimpl
        def register_types(self):
            return [PortType("SPECTROGRAM", "A magnitude spectrogram.")]

    class Clash:
        @hookimpl
        def register_types(self):
            return [PortType("LATENT", "Something else")]

    class Again:
        @hookimpl
        def register_types(self):
            return [PortType("SPECTROGRAM", "Another definition", literal="string")]

    session = Session(plugins=[("types", Types()), ("clash", Clash()), ("again", Again())])
    assert "SPECTROGRAM" in session.registry.types
    assert [f.name for f in session.plugin_report.failed] == ["clash", "again"]
    clash, again = session.plugin_report.failed
    assert "already registered by nodegraph itself" in clash.error          # the owner is named, not only the loser
    assert "a built-in type's description and colour are part of it" in clash.error    # not "meanings" that read alike
    assert "already registered by plugin 'types'" in again.error


def test_two_plugins_defining_one_type_with_other_wording_share_it():
    """Two packs each defined PALETTE, one without the editor colour: the second whole pack failed to load
    (PortTypeClash on a description). Same connection rules → one shared type and a warning; another `accepts`
    or `literal` still fails, and so does any redefinition of a built-in type (its description is its layout)."""
    class First:
        @hookimpl
        def register_types(self):
            return [PortType("PALETTE", "A list of RGB colours.", color="#ff00ff")]

    class Second:
        @hookimpl
        def register_types(self):
            return [PortType("PALETTE", "Colours of a palette, 0-255 RGB triples.")]

    class Widening:
        @hookimpl
        def register_types(self):
            return [PortType("PALETTE", "A list of RGB colours.", color="#ff00ff", accepts=frozenset({"STRING"}))]

    session = Session(plugins=[("first", First()), ("second", Second()), ("widening", Widening())])
    assert [f.name for f in session.plugin_report.failed] == ["widening"]
    assert "accepts nothing else there; no literal, accepts STRING here" in session.plugin_report.failed[0].error
    assert session.registry.types["PALETTE"].color == "#ff00ff"        # the first definition is what is shown
    (shared,) = [w for w in session.plugin_warnings() if w["kind"] == "shared_type"]
    assert shared["level"] == "warning" and shared["owner"] == "first" and shared["plugin"] == "second"
    assert "name their types apart" in shared["fix"]

    class ListAccepts:          # the same meaning written as a list / in another order: shared, not a clash
        @hookimpl
        def register_types(self):
            return [PortType("PAL2", "x", accepts=["INT", "FLOAT"])]

    class TupleAccepts:
        @hookimpl
        def register_types(self):
            return [PortType("PAL2", "y", accepts=("FLOAT", "INT"))]

    session = Session(plugins=[("lists", ListAccepts()), ("tuples", TupleAccepts())])
    assert not session.plugin_report.failed
    assert session.registry.types["PAL2"].accepts == frozenset({"INT", "FLOAT"})
    assert PortType("ONE", accepts="INT").accepts == frozenset({"INT"})     # a lone name, not its letters


def test_a_hook_with_a_wrong_signature_fails_its_plugin_with_the_right_fix():
    """`def register_nodes(session)` failed as "its module raised while being imported" (it did not): the fix says
    the hooks take no arguments."""
    class WrongSignature:
        @hookimpl
        def register_nodes(self, session):
            return []

    session = Session(plugins=[("wrong_sig", WrongSignature())])
    (failure,) = session.plugin_report.failed
    assert failure.name == "wrong_sig" and "session" in failure.error
    assert "the hooks take no arguments" in failure.fix and "raised while being imported" not in failure.fix


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


# --- names, clashes and preferences ------------------------------------------------------

def twin_session(**kwargs) -> Session:
    """Plugins 'alpha' and 'beta' both provide a node called Twin (returning 1 and 2)."""
    return Session(plugins=[("alpha", NodesPlugin(make_node("Twin", 1))),
                            ("beta", NodesPlugin(make_node("Twin", 2)))], **kwargs)


def twin_graph(*types: str) -> dict:
    return {"format_version": 1, "nodes": {
        f"n{i}": {"type": t, "inputs": {}} for i, t in enumerate(types)} | {
        f"show{i}": {"type": "ShowValue", "inputs": {"value": {"node": f"n{i}", "output": "value"}}}
        for i in range(len(types))}}


def test_clashing_types_run_under_qualified_names_with_separate_cache_keys():
    """alpha.Twin and beta.Twin (same bare type, version and inputs) give their own results in one run."""
    session = twin_session()
    result = session.run(twin_graph("alpha.Twin", "beta.Twin"))
    assert (result.outputs["show0"]["value"], result.outputs["show1"]["value"]) == (1, 2)


def test_an_ambiguous_bare_name_fails_validation_naming_both_plugins_and_the_fixes():
    """A graph using the clashing bare name gets `ambiguous_node_type` with plugins, candidates and fixes."""
    session = twin_session()
    (error,) = session.validate(twin_graph("Twin"))
    assert (error.code, error.node_id) == ("ambiguous_node_type", "n0")
    assert error.details == {"type": "Twin", "plugins": ["alpha", "beta"], "candidates": ["alpha.Twin", "beta.Twin"]}
    for fix in ("'alpha.Twin'", "'beta.Twin'", "--deny-plugin beta", "--prefer-plugin Twin=alpha",
                "NODEGRAPH_PLUGINS_PREFER=Twin=alpha"):
        assert fix in error.message
    with pytest.raises(GraphValidationError, match="ambiguous"):
        session.run(twin_graph("Twin"))
    assert "ambiguous_node_type" in ERROR_CODES
    assert "`ambiguous_node_type`" in (ROOT / "docs" / "graph-format.md").read_text()


def test_a_preference_gives_the_bare_name_to_one_plugin(monkeypatch):
    """prefer= (or NODEGRAPH_PLUGINS_PREFER) picks the provider; the clash stays listed, as info."""
    session = twin_session(prefer={"Twin": "beta"})
    assert session.run(twin_graph("Twin")).outputs["show0"]["value"] == 2
    (clash,) = session.registry.clashes
    assert clash.preferred == "beta"
    (warning,) = [w for w in session.plugin_warnings() if w["kind"] == "clash"]
    assert warning["level"] == "info" and warning["preferred"] == "beta"
    schemas = {s["qualified_type"]: s for s in session.node_schemas()}
    assert schemas["beta.Twin"]["type"] == "beta.Twin" and schemas["beta.Twin"]["aliases"] == ["Twin"]
    assert schemas["alpha.Twin"]["type"] == "alpha.Twin" and schemas["alpha.Twin"]["aliases"] == []
    monkeypatch.setenv("NODEGRAPH_PLUGINS_PREFER", "Twin=alpha")
    assert twin_session().run(twin_graph("Twin")).outputs["show0"]["value"] == 1


def test_malformed_and_unused_preferences_are_reported():
    """A preference without '=' is refused naming it; one for a plugin that lacks the type is a warning."""
    with pytest.raises(plugin_loading.PluginOptionError, match="TYPE=PLUGIN"):
        plugin_loading.parse_preferences(["Twin"])
    with pytest.raises(plugin_loading.PluginOptionError, match="keep one"):
        plugin_loading.parse_preferences(["Twin=alpha", "Twin=beta"])
    session = twin_session(prefer={"Twin": "gamma"})
    assert "Twin" in session.registry.ambiguous
    (warning,) = [w for w in session.plugin_warnings() if w["kind"] == "preference"]
    assert warning["plugin"] == "gamma" and "'alpha', 'beta'" in warning["message"]
    assert "no plugin named 'gamma' is installed" in warning["message"]      # it said "provides no node type"
    assert "prefer one of the providers" in warning["fix"]
    (warning,) = [w for w in twin_session(prefer={"Twin": "primitives"}).plugin_warnings() if w["kind"] == "preference"]
    assert "plugin 'primitives' provides no node type of that name" in warning["message"]


def test_a_plugin_using_a_builtin_name_neither_takes_it_nor_breaks_saved_graphs():
    """A plugin's Int: bare `Int` stays the built-in's (graphs/arithmetic.json validates and runs the same; it
    broke every graph using Int), the plugin's node is `shadow.Int`, the clash is a warning naming both, and a
    preference gives the plugin the bare name."""
    shadow = ("shadow", NodesPlugin(make_node("Int", 5)))
    session = Session(plugins=[shadow])
    assert session.validate(ROOT / "graphs" / "arithmetic.json") == []
    assert session.registry.resolve("Int") == "primitives.Int"
    (clash,) = [w for w in session.plugin_warnings() if w["kind"] == "clash"]
    assert clash["level"] == "warning" and clash["plugin"] == "shadow"
    assert "stays the built-in 'primitives.Int'" in clash["message"] and "'shadow.Int'" in clash["message"]
    assert "--prefer-plugin Int=shadow" in clash["fix"]
    schemas = {s["qualified_type"]: s["type"] for s in session.node_schemas()}
    assert schemas["primitives.Int"] == "Int" and schemas["shadow.Int"] == "shadow.Int"
    graph = {"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}}, "b": {"type": "shadow.Int", "inputs": {}},
        "sa": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}},
        "sb": {"type": "ShowValue", "inputs": {"value": {"node": "b", "output": "value"}}}}}
    outputs = session.run(graph).outputs
    assert (outputs["sa"]["value"], outputs["sb"]["value"]) == (3, 5)
    preferred = Session(plugins=[shadow], prefer={"Int": "shadow"})
    assert preferred.registry.resolve("Int") == "shadow.Int"


def test_unique_bare_names_are_aliases_and_share_the_cache_with_qualified_names():
    """A bare name provided once resolves to the same node as `<plugin>.<Type>`; schemas list the alias."""
    session = Session(plugins=[("solo_pack", NodesPlugin(make_node("Solo", 3)))])
    registry = session.registry
    assert registry.nodes["Solo"] is registry.nodes["solo_pack.Solo"]
    assert registry.resolve("Solo") == "solo_pack.Solo" and registry.resolve("Nope") is None
    schemas = {s["qualified_type"]: s for s in session.node_schemas()}
    assert schemas["solo_pack.Solo"]["type"] == "Solo" and schemas["solo_pack.Solo"]["aliases"] == ["solo_pack.Solo"]
    assert schemas["primitives.Int"]["type"] == "Int" and schemas["primitives.Int"]["plugin"] == "primitives"
    first = session.run(twin_graph("Solo"))
    second = session.run(twin_graph("solo_pack.Solo"))
    assert first.outputs["show0"]["value"] == second.outputs["show0"]["value"] == 3
    assert second.executed == [] and second.cached == ["show0"]   # same cache key under either name
    assert not registry.clashes


def test_extension_name_conflicts_are_clash_warnings():
    """A plugin registering an existing sampler name is reported as a clash naming both plugins."""
    class SamplerPlugin:
        @hookimpl
        def register_samplers(self):
            return {"euler": lambda *args, **kwargs: None}

    session = Session(plugins=[("samplers_too", SamplerPlugin())])
    (warning,) = [w for w in session.plugin_warnings() if w["kind"] == "clash"]
    assert warning["extension"] == "samplers" and warning["plugin"] == "samplers_too"
    assert warning["plugins"] == ["sampling", "samplers_too"] and "--deny-plugin samplers_too" in warning["fix"]


# --- failures are isolated and explained -------------------------------------------------

def _unknown_port():
    class UnknownPort(Node):
        outputs = (Output("x", "NOT_A_PORT"),)

        def run(self):
            return {"x": 1}
    return UnknownPort


def _wrong_case_port():
    class WrongCasePort(Node):
        outputs = (Output("x", "Image"),)

        def run(self):
            return {"x": 1}
    return WrongCasePort


def _bad_inputs():
    class BadInputs(Node):
        Inputs = dict
    return BadInputs


def _untyped_input():
    class UntypedInput(Node):
        class Inputs(NodeInputs):
            thing: object = Input(None)
    return UntypedInput


def _bad_version():
    class BadVersion(Node):
        version = "1.0"
    return BadVersion


def _duplicate_outputs():
    class DuplicateOutputs(Node):
        outputs = (Output("x", "INT"), Output("x", "FLOAT"))
    return DuplicateOutputs


def _run_misses_an_input():
    class RunMissesAnInput(Node):
        class Inputs(NodeInputs):
            a: int = Input(0)
            b: int = Input(0)

        outputs = (Output("x", "INT"),)

        def run(self, a):
            return {"x": a}
    return RunMissesAnInput


def _run_wants_more():
    class RunWantsMore(Node):
        class Inputs(NodeInputs):
            a: int = Input(0)

        outputs = (Output("x", "INT"),)

        def run(self, a, scale):
            return {"x": a * scale}
    return RunWantsMore


def _no_run():
    class NoRun(Node):
        outputs = (Output("x", "INT"),)
    return NoRun


def _comfyui_layout():
    class ComfyStyle(Node):
        outputs = (Output("x", "INT"),)

        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802 — ComfyUI's name
            return {"required": {"a": ("INT", {"default": 1})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "go"

        def go(self, a):
            return (a,)
    return ComfyStyle


def _comfyui_class_as_is():
    class ComfyOnly:                 # not a Node at all: returned from register_nodes as written for ComfyUI
        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802 — ComfyUI's name
            return {"required": {}}

        RETURN_TYPES = ("INT",)
    return ComfyOnly


def _two_of_one_type():
    return make_node("Same", 1), make_node("Same", 2)


def test_every_bad_node_of_a_plugin_is_named_at_once():
    """An author saw one bad node per try; the failure now lists each with its fix."""
    class BadPlugin:
        @hookimpl
        def register_nodes(self):
            return [_unknown_port(), make_node("Fine", 1), _run_misses_an_input(), _no_run()]

    (failure,) = Session(plugins=[("bad_pack", BadPlugin())]).plugin_report.failed
    assert "3 problems: (1) " in failure.error
    for expected in ("unknown port type 'NOT_A_PORT'", "no parameter for input(s) b", "does not implement run()"):
        assert expected in failure.error


def test_bad_declarations_of_an_installed_plugin_are_named_together(monkeypatch):
    """A non-semver version, an input without a port and twice-declared outputs raised where each class was
    defined, so an author met them one import at a time; imported by the loader, they are named together (with
    every unknown port of a node, not the first)."""
    class LoadsBadModule:
        name, error, dist = "decl_pack", None, None

        def load(self):            # the classes are defined while the loader imports the plugin, like a module
            bad = [_bad_version(), _untyped_input(), _duplicate_outputs()]

            class TwoUnknown(Node):
                class Inputs(NodeInputs):
                    a: Any = Input(port="WIDGET")

                outputs = (Output("y", "GADGET"),)

                def run(self, a):
                    return {"y": a}

            return NodesPlugin(*bad, TwoUnknown, make_node("Fine", 1))

    install_entry_points(monkeypatch, lambda: [LoadsBadModule()])
    (failure,) = Session(autoload=True).plugin_report.failed
    assert failure.name == "decl_pack" and "5 problems: (1) " in failure.error, failure.error
    for expected in ("must be semver", "declare its port type", "output name 'x' is declared twice",
                     "unknown port type 'WIDGET'", "unknown port type 'GADGET'"):
        assert expected in failure.error
    with pytest.raises(PluginError, match="must be semver"):     # defined outside the loader: raised at once
        _bad_version()


@pytest.mark.parametrize(("make", "expected"), [
    (_unknown_port, "unknown port type 'NOT_A_PORT'; register it with register_types"),
    (_wrong_case_port, "unknown port type 'Image' (did you mean 'IMAGE'? port type names are case-sensitive)"),
    (_bad_inputs, "Inputs must subclass nodegraph.NodeInputs"),
    (_untyped_input, "declare its port type"),
    (_bad_version, "must be semver"),
    (_duplicate_outputs, "output name 'x' is declared twice"),
    (_run_misses_an_input, "no parameter for input(s) b"),
    (_run_wants_more, "required parameter(s) scale that are not declared inputs"),
    (_no_run, "does not implement run()"),
    (_comfyui_layout, "is laid out as a ComfyUI node (INPUT_TYPES, RETURN_TYPES, FUNCTION): here inputs are fields"),
    (_comfyui_class_as_is, "ComfyOnly, a ComfyUI node class (INPUT_TYPES / RETURN_TYPES): nodegraph nodes subclass"),
    (_two_of_one_type, "give each a distinct `type`"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "")
def test_a_bad_node_declaration_fails_only_its_plugin(make, expected):
    """Each kind of bad node fails its plugin with a message naming plugin and fix; the next plugin loads."""
    class BadPlugin:
        @hookimpl
        def register_nodes(self):
            made = make()
            return list(made) if isinstance(made, tuple) else [made]

    session = Session(plugins=[("bad_pack", BadPlugin()), ("good_pack", NodesPlugin(make_node("Fine", 7)))])
    (failure,) = session.plugin_report.failed
    assert failure.name == "bad_pack" and expected in failure.error
    (warning,) = [w for w in session.plugin_warnings() if w["kind"] == "failed"]
    assert warning["plugin"] == "bad_pack" and "'bad_pack'" in warning["message"]
    assert "--deny-plugin bad_pack" in warning["fix"]
    assert not any(name.startswith("bad_pack.") for name in session.registry.nodes)
    assert session.run(twin_graph("Fine")).outputs["show0"]["value"] == 7


def test_run_signatures_that_take_every_input_are_accepted():
    """`def run(self, **inputs)` and extra parameters with defaults are fine."""
    class Kwargs(Node):
        class Inputs(NodeInputs):
            a: int = Input(2)

        outputs = (Output("value", "INT"),)

        def run(self, **inputs):
            return {"value": inputs["a"]}

    class WithDefault(Node):
        class Inputs(NodeInputs):
            a: int = Input(3)

        outputs = (Output("value", "INT"),)

        def run(self, a, extra=10):
            return {"value": a + extra}

    session = Session(plugins=[("ok", NodesPlugin(Kwargs, WithDefault))])
    assert not session.plugin_report.failed
    assert session.run(twin_graph("Kwargs", "WithDefault")).outputs["show1"]["value"] == 13


def _write_distribution(site: Path, dist: str, plugin: str, module: str, source: str) -> None:
    """An installed distribution on `site`: a module and a dist-info with a `nodegraph` entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[nodegraph]\n{plugin} = {module}\n")


GOOD_PLUGIN_SOURCE = '''
from nodegraph import Node, NodeInputs, Output, hookimpl

class FromDisk(Node):
    outputs = (Output("value", "INT"),)

    def run(self):
        return {"value": 42}

@hookimpl
def register_nodes():
    return [FromDisk]
'''


@pytest.fixture
def installed_site(tmp_path, monkeypatch):
    """Three real installed distributions: one good, one raising at import, one with a missing dependency."""
    site = tmp_path / "site"
    site.mkdir()
    _write_distribution(site, "ng-disk-good", "disk_good", "ng_disk_good", GOOD_PLUGIN_SOURCE)
    _write_distribution(site, "ng-disk-raises", "disk_raises", "ng_disk_raises",
                        "raise RuntimeError('plugin exploded while importing')\n")
    _write_distribution(site, "ng-disk-needs", "disk_needs", "ng_disk_needs",
                        "import ng_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(site))
    yield ["disk_good", "disk_raises", "disk_needs"]
    for module in ("ng_disk_good", "ng_disk_raises", "ng_disk_needs"):
        sys.modules.pop(module, None)


def test_real_installed_plugins_that_fail_at_import_never_stop_the_others(installed_site):
    """Entry points of installed distributions: import errors are reported with fixes; the good one runs."""
    session = Session(autoload=True, allow=installed_site)
    loaded = {p.name: p for p in session.plugin_report.loaded}
    assert loaded["disk_good"].distribution == "ng-disk-good" and loaded["disk_good"].nodes == ("disk_good.FromDisk",)
    failed = {f.name: f for f in session.plugin_report.failed}
    assert set(failed) == {"disk_raises", "disk_needs"}
    assert "plugin exploded while importing" in failed["disk_raises"].error
    assert "--deny-plugin disk_raises" in failed["disk_raises"].fix
    assert "ng_dependency_that_is_not_installed" in failed["disk_needs"].error
    assert "pip install ng_dependency_that_is_not_installed" in failed["disk_needs"].fix
    assert session.run(twin_graph("FromDisk")).outputs["show0"]["value"] == 42


def test_a_node_that_raises_in_run_names_its_plugin_and_the_session_goes_on():
    """An exception inside a plugin node's run becomes a NodeExecutionError naming the plugin."""
    class Flaky(Node):
        outputs = (Output("value", "INT"),)

        def run(self):
            raise ZeroDivisionError("division by zero in the plugin")

    session = Session(plugins=[("flaky_pack", NodesPlugin(Flaky)), ("good_pack", NodesPlugin(make_node("Fine", 7)))])
    with pytest.raises(NodeExecutionError) as info:
        session.run(twin_graph("Flaky"))
    assert info.value.plugin == "flaky_pack" and info.value.node_id == "n0"
    assert "from plugin 'flaky_pack'" in str(info.value) and "division by zero" in str(info.value)
    assert session.run(twin_graph("Fine")).outputs["show0"]["value"] == 7


def test_plugin_warnings_are_plain_structured_data():
    """Session.plugin_warnings() lists failed, clashing and skipped plugins as JSON-able dicts with fixes."""
    session = Session(plugins=[("raises", RaisingPlugin()),
                               ("alpha", NodesPlugin(make_node("Twin", 1))),
                               ("beta", NodesPlugin(make_node("Twin", 2))),
                               ("alpha", NodesPlugin(make_node("Other", 3))),
                               ("denied", NodesPlugin(make_node("Gone", 4)))], deny=["denied"])
    warnings = session.plugin_warnings()
    json.dumps(warnings)
    by_kind = {}
    for w in warnings:
        assert {"kind", "level", "plugin", "message", "fix"} <= set(w)
        assert w["plugin"] in w["message"] or w["kind"] == "clash"
        by_kind.setdefault(w["kind"], []).append(w)
    assert [w["plugin"] for w in by_kind["failed"]] == ["raises"] and by_kind["failed"][0]["level"] == "error"
    assert by_kind["clash"][0]["plugins"] == ["alpha", "beta"] and by_kind["clash"][0]["level"] == "warning"
    skipped = {w["plugin"]: w for w in by_kind["skipped"]}
    assert skipped["denied"]["level"] == "info"
    assert skipped["alpha"]["level"] == "warning" and "already loaded" in skipped["alpha"]["message"]


def test_a_missing_type_says_when_its_plugin_failed_or_was_denied():
    """unknown_node_type names the failed plugin of a qualified type, and lists unloaded plugins for bare ones."""
    session = Session(plugins=[("raises", RaisingPlugin()), ("denied", NodesPlugin(make_node("Gone", 4)))],
                      deny=["denied"])
    errors = session.validate(twin_graph("raises.Thing", "Gone", "Elsewhere"))
    by_node = {e.node_id: e for e in errors if e.code == "unknown_node_type"}
    assert "plugin 'raises' is not loaded (failed to load: register_nodes: RuntimeError: cannot register)" \
        in by_node["n0"].message and by_node["n0"].details["plugin"] == "raises"
    assert "Not loaded: 'denied', 'raises'" in by_node["n1"].message
    assert Session().validate(twin_graph("Elsewhere"))[0].message.count("Install the plugin") == 1
    # a qualified name of a plugin that is not installed names that plugin, and suggests no unrelated node
    # ('threed.ImageToPoints' was offered for 'edgekit.ImageToTone'); the same node of a loaded plugin is offered
    errors = {e.node_id: e for e in Session().validate(twin_graph("edgekit.ImageToTone", "edgekit.ImageScale"))}
    assert "No plugin 'edgekit' is installed" in errors["n0"].message and errors["n0"].details["plugin"] == "edgekit"
    assert "Did you mean" not in errors["n0"].message
    assert "Did you mean 'image.ImageScale'" in errors["n1"].message
    # an installed plugin left out by --no-plugins / autoload=False was "No plugin 'example' is installed"
    (error,) = Session(autoload=False).validate(twin_graph("example.ColorSwatch"))
    assert "'example' is installed but installed plugins are not loaded here (--no-plugins" in error.message
    (warning,) = [w for w in Session(autoload=False, prefer={"Foo": "example"}).plugin_warnings()
                  if w["kind"] == "preference"]                              # it said "no plugin named 'example'"
    assert "'example' is installed but installed plugins are not loaded here" in warning["message"]
    (error,) = Session(autoload=False).validate(twin_graph("ColorSwatch"))        # bare: which ones are left out
    assert "Installed plugins are not loaded here" in error.message and "'example'" in error.message


def test_a_plugin_ships_model_files_through_register_model_dirs(tmp_path):
    """register_model_dirs adds the plugin's own folder after the user's: its files list and resolve."""
    from nodegraph.model_paths import ModelPaths

    shipped = tmp_path / "plugin_models"
    shipped.mkdir()
    (shipped / "motion_v1.safetensors").write_bytes(b"x")
    user_root = tmp_path / "user"
    (user_root / "motion_modules").mkdir(parents=True)
    (user_root / "motion_modules" / "mine.safetensors").write_bytes(b"y")

    class Shipper:
        @hookimpl
        def register_model_folders(self):
            return {"motion_modules": [".safetensors"]}

        @hookimpl
        def register_model_dirs(self):
            return {"motion_modules": [str(shipped)]}

    session = Session(plugins=[("shipper", Shipper())], builtins=False,
                      model_paths=ModelPaths(roots=[user_root]))
    names, searched = session.model_paths.list("motion_modules")
    assert sorted(names) == ["mine.safetensors", "motion_v1.safetensors"]
    assert searched == [str(user_root / "motion_modules"), str(shipped)]
    assert session.model_paths.resolve("motion_modules", "motion_v1.safetensors") == shipped / "motion_v1.safetensors"


@pytest.mark.parametrize("value, message", [
    ({"motion_modules": ["relative/models"]}, "not an absolute path"),
    ({"motion_modules": "/abs/models"}, "must map to a list"),
    ({"../up": ["/abs"]}, "not a model folder name"),
])
def test_bad_register_model_dirs_fail_the_plugin_with_the_fix(value, message):
    """A relative path, a bare string or a bad folder name fails that plugin (named, with the fix), not start-up."""

    class Bad:
        @hookimpl
        def register_model_dirs(self):
            return value

    session = Session(plugins=[("bad_dirs", Bad())], builtins=False)
    failed = {f.name: f for f in session.plugin_report.failed}
    assert message in failed["bad_dirs"].error
    assert "model_dirs" not in session.registry.extensions


def test_plugins_own_graphs_name_their_nodes_qualified():
    """docs/plugins.md: a plugin's saved graphs write its node types qualified (`video.SaveVideo`), so they keep
    working when another installed plugin has a node of the same name (the video plugin's bare names became
    `ambiguous_node_type` as soon as a second `SaveVideo` was installed)."""
    session = Session(autoload=True)
    registry = session.registry
    plugin_owned = {name.split(".", 1)[1]: name.split(".", 1)[0] for name in registry.nodes
                    if "." in name and name.split(".", 1)[0] not in registry.builtin_plugins}
    bare = []
    for path in sorted(ROOT.glob("plugins/*/graphs/*.json")):
        for node_id, node in json.loads(path.read_text())["nodes"].items():
            if "." not in node["type"] and node["type"] in plugin_owned:
                bare.append(f"{path.relative_to(ROOT)}: {node_id} {node['type']} (write "
                            f"{plugin_owned[node['type']]}.{node['type']})")
    assert not bare, "\n".join(bare)


def test_one_node_class_with_several_declaration_faults_names_them_all():
    """A class with a non-semver version, an untyped input and a twice-declared output named only the first;
    the author fixed one and met the next on every reload. All three are in one error now."""
    with pytest.raises(PluginError) as info:
        class ManyFaults(Node):
            version = "1.0"

            class Inputs(NodeInputs):
                a: Any = Input()

            outputs = (Output("x", "INT"), Output("x", "INT"))

            def run(self, a):
                return {"x": 1}
    message = str(info.value)
    assert message.count("ManyFaults") == 1, message
    for expected in ("must be semver", "input 'a'", "output name 'x' is declared twice"):
        assert expected in message, message


class TypesAndNodesPlugin(NodesPlugin):
    def __init__(self, port_type, *nodes):
        super().__init__(*nodes)
        self.port_type = port_type

    @hookimpl
    def register_types(self):
        return [self.port_type]


def test_a_plugin_knocked_out_by_another_does_not_lend_it_its_graphs():
    """Plugin 'pixclash' defines PALETTE differently and a node 'Pixelate' too; loading first, it knocks 'pixelart'
    out. A graph saved with pixelart's bare 'Pixelate' ran pixclash's node as if nothing were wrong (a plugin
    author's finding); now it does not validate and says why, and the fix names both plugins."""
    mine, theirs = make_node("Pixelate", 1), make_node("Pixelate", 2)
    session = Session(plugins=[("pixclash", TypesAndNodesPlugin(PortType("PALETTE", "theirs"), theirs)),
                               ("pixelart", TypesAndNodesPlugin(PortType("PALETTE", "mine", literal="string"), mine))])
    (failure,) = session.plugin_report.failed
    assert failure.name == "pixelart" and "PALETTE" in failure.error
    assert "--deny-plugin pixclash keeps 'pixelart'" in failure.fix and "pixclash" in failure.fix
    assert "Pixelate" not in session.registry.nodes and session.registry.nodes["pixclash.Pixelate"] is theirs
    errors = session.validate({"format_version": 2, "nodes": {
        "p": {"type": "Pixelate", "inputs": {}}, "s": {"type": "ShowValue", "inputs": {"value": {"node": "p",
                                                                                                "output": "value"}}}}})
    (error,) = [e for e in errors if e.node_id == "p"]
    assert error.code == "ambiguous_node_type" and error.details["failed"] == ["pixelart"]
    assert "did not load" in error.message and "PALETTE" in error.message and "'pixclash.Pixelate'" in error.message
    # the qualified name of the loaded one still works
    result = session.run({"format_version": 2, "nodes": {
        "p": {"type": "pixclash.Pixelate", "inputs": {}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "p", "output": "value"}}}}})
    assert result.outputs["s"]["value"] == 2


def test_a_failed_builtin_pack_does_not_hand_its_names_to_a_plugin():
    """Had both loaded, the built-in would keep the bare name; with it failed, the plugin does not get it."""
    from nodegraph.registry import Registry

    registry = Registry()
    registry.builtin_plugins.add("primitives")
    registry.add_node(make_node("Int", 5), "shadow")
    assert registry.resolve("Int") == "shadow.Int"
    registry.add_failed_provider("Int", "primitives")
    assert registry.resolve("Int") is None and registry.ambiguous["Int"] == ["shadow.Int", "primitives.Int"]
    registry.prefer["Int"] = "shadow"          # the user's own choice still settles it
    registry._update_alias("Int")
    assert registry.resolve("Int") == "shadow.Int"


def test_defaults_the_input_itself_refuses_fail_the_plugin_naming_each():
    """`Input("abc")` on an int, `Input(500, le=10)`, a Literal default outside it, NaN, `Input(3, multiple_of=2)`,
    `Input(1)` on a bool, a misspelt `choices_from`: each loaded and reached `run` (a plugin author's finding)."""
    class BadDefaults(Node):
        class Inputs(NodeInputs):
            a: int = Input("abc")
            b: int = Input(500, le=10)
            c: Literal["x", "y"] = Input("z")
            d: float = Input(float("nan"))
            e: int = Input(3, multiple_of=2)
            f: bool = Input(1)
            g: str = Input("euler", choices_from="sampler")
            h: str = Input("../up.png", file_name_in="output")

        outputs = (Output("value", "INT"),)

        def run(self, a, b, c, d, e, f, g, h):
            return {"value": 1}

    session = Session(plugins=[("defaults", NodesPlugin(BadDefaults, make_node("Fine", 1)))])
    (failure,) = session.plugin_report.failed
    for name in "abcdefgh":
        assert f"input {name!r}" in failure.error, (name, failure.error)
    assert "did you mean 'samplers'" in failure.error and "8 problems" in failure.error
    assert "Fine" not in session.registry.nodes      # a plugin registers all its nodes or none


def test_a_default_naming_a_model_file_or_choice_is_checked_at_validation(tmp_path):
    """A graph that leaves a model-file input at its default is validated as if it had written it: a missing
    file is found before the run, as the docs promise for model_folder inputs."""
    class Loads(Node):
        class Inputs(NodeInputs):
            model: str = Input("nope.safetensors", model_folder="checkpoints")
            sampler: str = Input("euler", choices_from="samplers")

        outputs = (Output("value", "INT"),)

        def run(self, model, sampler):
            return {"value": 1}

    from nodegraph.model_paths import ModelPaths

    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    session = Session(plugins=[("loads", NodesPlugin(Loads))], model_paths=ModelPaths(roots=[tmp_path / "models"]))
    graph = {"format_version": 2, "nodes": {"l": {"type": "Loads", "inputs": {}}, "s": {
        "type": "ShowValue", "inputs": {"value": {"node": "l", "output": "value"}}}}}
    errors = session.validate(graph)
    assert [(e.node_id, e.input) for e in errors] == [("l", "model")], [e.message for e in errors]
    assert "nope.safetensors" in errors[0].message
    graph["nodes"]["l"]["inputs"]["sampler"] = "eulr"       # a written value is checked as before
    assert {e.input for e in session.validate(graph)} == {"model", "sampler"}


def test_a_misspelt_hook_is_a_warning_that_names_the_right_one():
    """`register_node` (no s) was reported as info ("registers no nodes, only register_node: nothing to do"), and a
    misspelt hook beside correct ones not at all."""
    class Typo:
        @hookimpl
        def register_node(self):
            return [make_node("Lost", 1)]

    class HalfTypo:
        @hookimpl
        def register_nodes(self):
            return [make_node("Kept", 1)]

        @hookimpl
        def register_model_folder(self):
            return {"palettes": [".safetensors"]}

    session = Session(plugins=[("typo", Typo()), ("halftypo", HalfTypo())])
    warnings = session.plugin_warnings()
    unknown = {(w["plugin"], w["hook"]): w for w in warnings if w["kind"] == "unknown_hook"}
    assert set(unknown) == {("typo", "register_node"), ("halftypo", "register_model_folder")}
    assert "did you mean 'register_nodes'" in unknown[("typo", "register_node")]["message"]
    assert unknown[("halftypo", "register_model_folder")]["level"] == "warning"
    (no_nodes,) = [w for w in warnings if w["kind"] == "no_nodes"]
    assert no_nodes["plugin"] == "typo" and no_nodes["level"] == "warning" and "register_node" in no_nodes["message"]
    assert "Kept" in session.registry.nodes


@pytest.mark.parametrize("hook, value, words", [
    ("register_samplers", {"pix_sampler": 42}, "'pix_sampler' must be a function"),
    ("register_schedules", {"pix": "karras"}, "'pix' must be a function"),
    ("register_model_folders", {"pix": "safetensors"}, "list of file extensions"),
    ("register_model_folders", {"pix": ["safetensors"]}, "list of file extensions"),
    ("register_api", {"sampel": lambda *a: None}, "did you mean 'sample'"),
    ("register_samplers", {"../x": lambda *a: None}, "is not a name"),
])
def test_what_extension_hooks_return_is_checked_at_load(hook, value, words):
    """A sampler registered as 42 loaded, validated, and failed in KSampler with `KeyError: 42`, blamed on the
    built-in sampling pack; now the plugin that returned it fails to load, saying what is wrong."""
    plugin = type("Ext", (), {hook: hookimpl(lambda self: value)})()
    session = Session(plugins=[("ext", plugin)])
    (failure,) = session.plugin_report.failed
    assert failure.name == "ext" and words in failure.error, failure.error
    assert session.registry.extension_names("samplers")      # the built-ins' are still there


def test_many_classes_with_one_type_are_one_problem():
    """Classes made in a loop that all end up with one type gave 18 chained pairwise errors; now one names them all."""
    classes = [make_node("Same", i) for i in range(4)]
    session = Session(plugins=[("loop", NodesPlugin(*classes))])
    (failure,) = session.plugin_report.failed
    assert "4 classes with type 'Same' (make_node.<locals>.Made, " in failure.error
    assert "problems" not in failure.error        # one problem, not one per pair


def test_defaults_a_graph_could_not_write_fail_the_plugin():
    """bytes, sets, objects and a 400-digit integer loaded as defaults and were sent to the editor as
    "b'\\\\xff'", "<object at 0x…>" (a schema hash that changed on every start) and a number JavaScript cannot hold."""
    class Unwritable(Node):
        class Inputs(NodeInputs):
            a: Any = Input(b"\xff", port="*")
            b: int = Input(10**400)
            c: Any = Input({1, 2}, port="*")

        outputs = (Output("value", "INT"),)

        def run(self, a, b, c):
            return {"value": 1}

    session = Session(plugins=[("unwritable", NodesPlugin(Unwritable))])
    (failure,) = session.plugin_report.failed
    assert "3 problems" in failure.error and "could not write" in failure.error


def test_a_renamed_input_keeps_saved_graphs_running(tmp_path, capsys):
    """A plugin renamed `pixel_size` to `block_size` at 2.0.0 and its users' saved graphs failed with unknown_input
    (docs promised "write a graph migration", which had no mechanism). `renamed_inputs` maps the old name."""
    class Pixelate(Node):
        version = "2.0.0"
        renamed_inputs = {"pixel_size": "block_size"}

        class Inputs(NodeInputs):
            block_size: int = Input(4, ge=1, le=64)

        outputs = (Output("value", "INT"),)

        def run(self, block_size):
            return {"value": block_size}

    session = Session(plugins=[("pix", NodesPlugin(Pixelate))])
    saved = {"format_version": 2, "nodes": {
        "p": {"type": "Pixelate", "inputs": {"pixel_size": 8}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "p", "output": "value"}}}}}
    assert session.validate(saved) == []
    assert session.run(saved).outputs["s"]["value"] == 8
    assert session.run(saved, overrides={"p.pixel_size": 16}).outputs["s"]["value"] == 16    # old name, --set too
    saved["nodes"]["p"]["inputs"]["pixel_size"] = 100                                        # checked as the new
    assert [e.code for e in session.validate(saved)] == ["out_of_range"]
    (schema,) = [n for n in session.node_schemas() if n["type"] == "Pixelate"]
    assert schema["renamed_inputs"] == {"pixel_size": "block_size"}       # for clients that load old graphs
    nested = {"format_version": 2, "subgraphs": {"pix": {                 # inside a subgraph: unknown_input before
        "outputs": {"v": {"node": "p", "output": "value"}},
        "nodes": {"p": {"type": "Pixelate", "inputs": {"pixel_size": 6}}}}},
        "nodes": {"g": {"type": "subgraph:pix", "inputs": {}},
                  "s": {"type": "ShowValue", "inputs": {"value": {"node": "g", "output": "v"}}}}}
    assert session.validate(nested) == []
    assert session.run(nested).outputs["s"]["value"] == 6
    from nodegraph.graph import parse_graph, renamed_input_uses
    assert renamed_input_uses(parse_graph(nested), session.registry.input_renames()) == [
        ("pix/p", "Pixelate", "pixel_size", "block_size")]          # what `nodegraph run/validate` note
    both = {"format_version": 2, "nodes": {"p": {"type": "Pixelate", "inputs": {"pixel_size": 8, "block_size": 7}}}}
    import json as json_module

    from nodegraph.cli import _load
    saved_file = tmp_path / "old.json"
    saved_file.write_text(json_module.dumps(saved))
    assert _load(session, str(saved_file)).nodes["p"].inputs == {"block_size": 100}
    assert "note: node 'p' (Pixelate) writes input 'pixel_size', which is now 'block_size'" in capsys.readouterr().err
    (error, _no_outputs) = session.validate(both)      # was "Pixelate has no input 'pixel_size'", naming neither the rename
    assert error.code == "unknown_input" and error.input == "pixel_size"
    assert "was renamed to 'block_size' (node version 2.0.0), and this node writes both" in error.message

    class Broken(Node):
        renamed_inputs = {"size": "nowhere", "kept": "kept"}

        class Inputs(NodeInputs):
            kept: int = Input(1)

        outputs = ()

        def run(self, kept):
            return {}

    (failure,) = Session(plugins=[("broken", NodesPlugin(Broken))]).plugin_report.failed
    assert "'nowhere' is no input of it" in failure.error and "'kept' is still an input" in failure.error

    class Chained(Node):            # renamed twice over two versions, written as a chain
        renamed_inputs = {"pixel_size": "block_size", "block_size": "cell"}

        class Inputs(NodeInputs):
            cell: int = Input(1)

        outputs = ()

        def run(self, cell):
            return {}

    (failure,) = Session(plugins=[("chained", NodesPlugin(Chained))]).plugin_report.failed
    assert ("'block_size' is no input of it (it was renamed in turn to 'cell'): map every old name straight to "
            "today's, {'pixel_size': 'cell', 'block_size': 'cell'}") in failure.error


def test_a_plugin_slow_to_import_is_named_with_its_time(monkeypatch):
    """A plugin that took 6 s to import made every command 6 s slower, and nothing named it (a plugin author's
    finding): `plugins --json` has each plugin's import time and a `slow_import` warning names the slow one."""
    from types import SimpleNamespace

    now = [100.0]
    clock = SimpleNamespace(perf_counter=lambda: now[0])

    class TakesTime(FakeEntryPoint):
        def __init__(self, name, obj, seconds):
            super().__init__(name, obj)
            self.seconds = seconds

        def load(self):
            now[0] += self.seconds
            return self.obj

    installed = [TakesTime("quick_pack", NodesPlugin(make_node("QuickNode", 2)), 0.1),
                 TakesTime("slow_pack", NodesPlugin(make_node("SlowNode", 1)), 4.5)]
    install_entry_points(monkeypatch, lambda: installed)
    monkeypatch.setattr(plugin_loading, "time", clock)
    session = Session(autoload=True)
    seconds = {p.name: p.import_seconds for p in session.plugin_report.loaded if p.source != "builtin"}
    assert seconds == {"slow_pack": 4.5, "quick_pack": 0.1}
    (slow,) = [w for w in session.plugin_warnings() if w["kind"] == "slow_import"]
    assert slow["plugin"] == "slow_pack" and slow["seconds"] == 4.5 and "4.5 s to load (import 4.5 s" in slow["message"]
    assert "--deny-plugin slow_pack" in slow["fix"]

    # the time spent in its hooks counts too: a register_nodes that imports heavy modules went unnamed
    class SlowHook:
        @hookimpl
        def register_nodes(self):
            now[0] += 3.5
            return [make_node("LateNode", 3)]

    installed[:] = [TakesTime("hooked_pack", SlowHook(), 0.0)]
    session = Session(autoload=True)
    (slow,) = [w for w in session.plugin_warnings() if w["kind"] == "slow_import"]
    assert slow["plugin"] == "hooked_pack" and "import 0.0 s, hooks 3.5 s" in slow["message"], slow


def test_a_clash_of_three_plugins_is_told_to_deny_all_but_one():
    """With three providers the fix said "deny one plugin (--deny-plugin gamma)", which leaves two clashing."""
    from nodegraph.validation import ambiguous_type_error

    error = ambiguous_type_error("n", "Twin", ["alpha.Twin", "beta.Twin", "gamma.Twin"])
    assert "deny all but one (--deny-plugin beta --deny-plugin gamma)" in error.message
    assert "deny one plugin (--deny-plugin beta)" in ambiguous_type_error("n", "Twin", ["alpha.Twin", "beta.Twin"]).message


@pytest.mark.parametrize("given, words", [(42, "42 is not a plugin"), (None, "None is not a plugin"),
                                          (("bad name!", NodesPlugin()), "'bad name!' is not a plugin name")])
def test_a_plugin_given_in_code_must_be_one(given, words):
    """`plugins=[42]` loaded a plugin named 'int', `("bad name!", mod)` registered 'bad name!.Foo' node types."""
    with pytest.raises(plugin_loading.PluginOptionError, match=words):
        Session(plugins=[given], autoload=False)


def test_a_type_missing_from_a_plugin_whose_name_another_copy_also_has_names_that_copy():
    """Two installed distributions named a plugin 'example'; the one loaded lacked `example.ColorSwatch`, and the
    error listed unrelated failed plugins instead of the skipped copy (a plugin author's pass)."""
    session = Session(plugins=[("raises", RaisingPlugin()),
                               ("example", NodesPlugin(make_node("HexColor", 1))),
                               ("example", NodesPlugin(make_node("ColorSwatch", 2)))])
    (error,) = [e for e in session.validate(twin_graph("example.ColorSwatch")) if e.code == "unknown_node_type"]
    assert "Two installed distributions provide a plugin named 'example'" in error.message, error.message
    assert "already loaded" in error.message and "'raises'" not in error.message
    assert error.details["plugin"] == "example"


def _module_plugin(package: str, *nodes: type[Node]) -> types.ModuleType:
    """A plugin module named `package` whose register_nodes returns `nodes`."""
    module = types.ModuleType(package)

    def register_nodes():
        return list(nodes)

    module.register_nodes = hookimpl(register_nodes)
    return module


def test_a_plugin_that_changes_another_plugins_node_is_named(monkeypatch):
    """A plugin replaced another plugin's MixColors.run at import, and `plugins` listed both as loaded with no word
    (a plugin author's finding): a `patched` warning names the node, both plugins and what changed; a plugin that
    registers a class another plugin defines is named too. Plugins that keep to their own code get none."""
    victim_node = make_node("Swatch", 1)
    victim_node.__module__ = "victim_pkg.nodes"
    own_node = make_node("Own", 2)
    own_node.__module__ = "patcher_pkg.nodes"

    def swapped_run(self):
        return {"value": 99}

    swapped_run.__module__ = "patcher_pkg.evil"

    class Patching(FakeEntryPoint):
        def load(self):
            victim_node.run = swapped_run              # what the patcher's module does when imported
            return self.obj

    installed = [Patching("patcher", _module_plugin("patcher_pkg", own_node)),
                 FakeEntryPoint("victim", _module_plugin("victim_pkg", victim_node))]
    install_entry_points(monkeypatch, lambda: installed)
    session = Session(autoload=True)
    (patched,) = [w for w in session.plugin_warnings() if w["kind"] == "patched"]
    assert patched["plugin"] == "patcher" and patched["changed_plugin"] == "victim" and patched["level"] == "warning"
    assert patched["node"] == "victim.Swatch" and "its run() comes from 'patcher'" in patched["message"]
    assert "--deny-plugin patcher" in patched["fix"]

    taken = make_node("Taken", 3)
    taken.__module__ = "patcher_pkg.nodes"
    installed[:] = [FakeEntryPoint("patcher", _module_plugin("patcher_pkg", own_node)),
                    FakeEntryPoint("victim", _module_plugin("victim_pkg", taken))]      # registers patcher's class
    (patched,) = [w for w in Session(autoload=True).plugin_warnings() if w["kind"] == "patched"]
    assert patched["node"] == "victim.Taken" and "its class comes from 'patcher'" in patched["message"]

    victim_node.run = make_node("Swatch", 1).run
    installed[:] = [FakeEntryPoint("patcher", _module_plugin("patcher_pkg", own_node)),
                    FakeEntryPoint("victim", _module_plugin("victim_pkg", victim_node))]
    assert not [w for w in Session(autoload=True).plugin_warnings() if w["kind"] == "patched"]


def test_run_records_name_the_plugins_and_node_versions_a_result_came_from(monkeypatch):
    """A run record held nodegraph's and torch's versions but not the plugin's: a plugin upgrade that changes a
    result could not be told apart afterwards (a plugin author's finding). It now lists each installed plugin the
    graph uses, its version and its nodes' versions; built-in packs (nodegraph's version) and unused plugins
    are left out."""
    from types import SimpleNamespace

    from nodegraph import provenance
    from nodegraph.graph import parse_graph

    used, unused = make_node("Posterize", 1), make_node("Other", 2)
    used.version = "2.0.0"
    posterize = FakeEntryPoint("poster", NodesPlugin(used))
    posterize.dist = SimpleNamespace(name="poster-nodes", version="1.1.0")
    installed = [posterize, FakeEntryPoint("idle", NodesPlugin(unused))]
    install_entry_points(monkeypatch, lambda: installed)
    session = Session(autoload=True)
    graph = parse_graph({"format_version": 2, "nodes": {"p": {"type": "Posterize"},
                                                        "n": {"type": "PrimitiveInt", "inputs": {"value": 1}}}})
    record = provenance.run_record(SimpleNamespace(graph=graph, services=session.services))
    assert record["plugins"] == {"poster": {"version": "1.1.0", "nodes": {"poster.Posterize": "2.0.0"}}}
    only_builtin = parse_graph({"format_version": 2, "nodes": {"n": {"type": "PrimitiveInt", "inputs": {"value": 1}}}})
    assert "plugins" not in provenance.run_record(SimpleNamespace(graph=only_builtin, services=session.services))


# --- choice lists a plugin computes (register_choice_lists) ---------------------------------------------------


class Styled(Node):
    """Applies a named style (the list is the plugin's, read when asked)."""

    class Inputs(NodeInputs):
        style: str = Input("plain", choices_from="styles")

    outputs = (Output("text", "STRING"),)

    def run(self, style):
        return {"text": style}


def styled_session(function, monkeypatch) -> Session:
    class StylesPlugin(NodesPlugin):
        @hookimpl
        def register_choice_lists(self):
            return {"styles": function}

    monkeypatch.setattr("nodegraph.registry.Registry.CHOICES_TTL", 0.0)      # read at every use
    return Session(plugins=[("styles_pack", StylesPlugin(Styled))], autoload=False)


def styled_graph(style: str) -> dict:
    return {"format_version": 2, "nodes": {
        "s": {"type": "Styled", "inputs": {"style": style}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "s", "output": "text"}}}}}


def test_a_plugins_choice_list_is_read_when_it_is_needed(monkeypatch):
    """ComfyUI computes a combo's values in INPUT_TYPES when they are asked for (styles from a file the user
    edits); a plugin's `Literal` is fixed at import. `register_choice_lists` gives a function that validation and
    the node list call again (at most every CHOICES_TTL)."""
    styles = ["plain", "noir"]
    session = styled_session(lambda: styles, monkeypatch)
    assert not session.plugin_report.failed, session.plugin_warnings()
    assert session.run(styled_graph("noir")).outputs["show"]["value"] == "noir"
    (error,) = [e for e in session.validate(styled_graph("sepia")) if e.input == "style"]
    assert error.code == "not_in_choices" and error.details["choices"] == ["plain", "noir"]
    styles.append("sepia")                                          # the user adds a style: no restart
    assert session.validate(styled_graph("sepia")) == []
    (schema,) = [s for s in session.registry.node_schemas() if s["type"] == "Styled"]
    assert schema["inputs"]["style"]["choices"] == ["plain", "noir", "sepia"]


def test_a_choice_list_that_fails_is_named_in_the_error_and_checked_at_load(monkeypatch):
    def broken():
        raise OSError("styles.csv: no such file")

    session = styled_session(broken, monkeypatch)
    (error,) = [e for e in session.validate(styled_graph("plain")) if e.input == "style"]
    assert "has no choices to offer now" in error.message
    assert "choice list 'styles' of plugin 'styles_pack' raised OSError: styles.csv: no such file" in error.message
    session = styled_session(lambda: ["ok", 3, "", "x" * 2000, "ok"], monkeypatch)
    assert session.registry.choices("styles") == ["ok"]
    assert "3 value(s) that are not strings" in session.registry.choice_list_problem("styles")
    session = styled_session(lambda: (f"style {n}" for n in itertools.count()), monkeypatch)     # never ends
    assert len(session.registry.choices("styles")) == session.registry.MAX_CHOICES
    assert "more than 10000 choices" in session.registry.choice_list_problem("styles")
    def exits():
        raise SystemExit(3)                       # an argparse inside the list's function: took a server down

    session = styled_session(exits, monkeypatch)
    assert session.registry.choices("styles") == [] and "raised SystemExit: 3" in \
        session.registry.choice_list_problem("styles")
    session = styled_session(lambda: "plain", monkeypatch)       # a str, not a list of them
    assert session.registry.choices("styles") == [] and "returned a str" in session.registry.choice_list_problem("styles")
    session = styled_session(lambda: None, monkeypatch)          # said "raised TypeError: 'NoneType' ..."
    assert session.registry.choices("styles") == [] and "returned None" in session.registry.choice_list_problem("styles")

    def interrupts():
        raise KeyboardInterrupt               # the plugin's own (read on a thread of its own): it stopped a server
    session = styled_session(interrupts, monkeypatch)
    assert session.registry.choices("styles") == []
    assert session.registry.choice_list_problem("styles") == \
        "choice list 'styles' of plugin 'styles_pack' raised KeyboardInterrupt: "
    from nodegraph.registry import read_choice_list

    with pytest.raises(KeyboardInterrupt):    # read on the main thread, it is Ctrl+C, and goes on
        read_choice_list(interrupts, 10, 10)


def test_a_slow_choice_list_does_not_hold_its_readers(monkeypatch):
    """A list that took 20 s held every editor's hello (which hashes the node list) for 20 s. A reader waits at
    most CHOICES_WAIT; the list is read on in the background, its last choices offered meanwhile."""
    gate = threading.Event()
    answers = [["plain"], ["plain", "noir"]]

    def slow():
        gate.wait(10)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    session = styled_session(slow, monkeypatch)
    monkeypatch.setattr("nodegraph.registry.Registry.CHOICES_WAIT", 0.05)
    started = time.monotonic()
    assert session.registry.choices("styles") == []                     # first read: nothing known yet
    assert time.monotonic() - started < 5
    assert "took more than 0.05 s to answer; no choices are offered" in session.registry.choice_list_problem("styles")
    gate.set()
    for _ in range(200):                                                # the background read lands
        if session.registry.choice_list_problem("styles") is None:
            break
        time.sleep(0.01)
    assert session.registry.choice_list_problem("styles") is None
    assert session.registry.choices("styles") == ["plain", "noir"]     # TTL 0: read again, quickly this time

    class Misnamed(Node):
        class Inputs(NodeInputs):
            style: str = Input("plain", choices_from="stlyes")

        outputs = (Output("text", "STRING"),)

        def run(self, style):
            return {"text": style}

    class BadPlugin(NodesPlugin):
        @hookimpl
        def register_choice_lists(self):
            return {"styles": lambda: ["plain"]}

    session = Session(plugins=[("bad", BadPlugin(Misnamed))], autoload=False)
    (failure,) = session.plugin_report.failed
    assert "choices_from='stlyes'" in failure.error and "did you mean 'styles'" in failure.error


def test_a_plugin_cannot_replace_the_sampler_and_schedule_lists_and_a_slow_list_is_read_once_per_ttl(monkeypatch):
    """A choice list named 'samplers' replaced KSampler's choices (the shipped graphs failed; a fake sampler passed
    validation); a list slower than the TTL was read at every use, twice per node list (a hostile re-test)."""
    class Hijack(NodesPlugin):
        @hookimpl
        def register_choice_lists(self):
            return {"samplers": lambda: ["euler", "totally_fake"]}

    session = Session(plugins=[("hijack", Hijack())], autoload=False)
    (failure,) = session.plugin_report.failed
    assert "is the name of the built-in samplers list" in failure.error
    assert "totally_fake" not in session.registry.choices("samplers")
    calls, clock = [], [0.0]

    def slow():                                         # every read takes 3 s, longer than the 2 s TTL
        calls.append(1)
        clock[0] += 3.0
        return ["plain"]

    monkeypatch.setattr("nodegraph.registry.time.monotonic", lambda: clock[0])
    session = Session(plugins=[("styles_pack", type("P", (NodesPlugin,), {
        "register_choice_lists": hookimpl(lambda self: {"styles": slow})})(Styled))], autoload=False)
    session.registry.node_schemas()
    session.registry.schema_hash()
    assert len(calls) == 1


def test_comfyui_attributes_a_port_kept_are_named():
    """A port that kept IS_CHANGED (NaN: always run), VALIDATE_INPUTS or check_lazy_status lost their meaning
    without a word: nodegraph reads fingerprint, check_literals and lazy_inputs_needed. A plugin warning names each
    attribute kept and what does its work here."""
    class Ported(Node):
        class Inputs(NodeInputs):
            text: str = Input("x")

        outputs = (Output("text", "STRING"),)
        CATEGORY = "utils"
        INPUT_IS_LIST = True

        @classmethod
        def IS_CHANGED(cls, **kwargs):
            return float("nan")

        def run(self, text):
            return {"text": text}

    session = Session(plugins=[("porting", NodesPlugin(Ported))], autoload=False)
    (warning,) = [w for w in session.plugin_warnings() if w["kind"] == "comfyui_leftover"]
    assert warning["plugin"] == "porting" and warning["attributes"] == ["IS_CHANGED", "CATEGORY", "INPUT_IS_LIST"]
    assert "IS_CHANGED → @classmethod fingerprint" in warning["fix"] and "CATEGORY → category" in warning["fix"]
    assert not [w for w in Session(autoload=False).plugin_warnings() if w["kind"] == "comfyui_leftover"]
