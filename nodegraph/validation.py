"""Semantic validation of a parsed graph against a node registry.

`validate(graph, registry, ...)` returns EVERY problem at once as a list of
`GraphError` (empty list = valid). It never raises for bad graphs. Checks, per
node: the type is registered (`unknown_node_type`, with "did you mean") and,
when it is a bare name that several plugins provide, not ambiguous
(`ambiguous_node_type`, naming the plugins and the qualified names); every
given input is declared (`unknown_input`); every required input is given
(`missing_input`); literals match their port type and constraints
(`type_mismatch`, `out_of_range`, `not_in_choices`, `invalid_value`), model
file names exist in their folder (`not_in_choices`, listing what is there), and
the node class's own `check_literals` passes (`invalid_value`; with model-folder
listings only, on the literals that passed the checks above: `literal_check_errors`);
links point at existing nodes (`dangling_link`) and outputs (`unknown_output`)
of a compatible type (`type_mismatch`, naming both ends and both types). Then,
for the whole graph: `cycle` (naming the nodes in it) and `no_outputs`.

Cost is linear in nodes + links: cycles are detected by a topological sort, and
only when one exists does networkx (Tarjan's SCC) name the nodes in it. "Did you
mean" suggestions (difflib, a cost per candidate) are given for the first
`SUGGESTED_ERRORS` errors of one validation only, so a graph of a thousand
misspelt links costs milliseconds, not a second (a server validates what any
client sends). A value outside a choice list gets `suggest_choice`: a different
case matches ("Euler" → 'euler'), and the A1111 / ComfyUI / diffusers display
names of samplers and schedulers in `CHOICE_ALIASES` ("Euler a", "DPM++ 2M
Karras", "DDIM") name the choice they mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from pydantic import ValidationError

from .errors import GraphError, PathConfinementError
from .graph import Graph, Link, topological_order
from .node import Node
from .paths import check_name, is_inside

if TYPE_CHECKING:
    from .registry import Registry

log = logging.getLogger(__name__)
_DEFAULT_CHECK_LITERALS = Node.check_literals.__func__

_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


SUGGESTED_ERRORS = 50      # errors per validation that get a "did you mean"
_suggestions_left: ContextVar[int | None] = ContextVar("suggestions_left", default=None)


class ChoiceListReader:
    """A plugin's choice lists (`register_choice_lists`) as one validation reads them.

    `Registry.choices` waits at most `Registry.CHOICES_WAIT` for a list still being read, then offers its last
    values (none the first time): right for the editor and a server's submit, which must answer quickly. Here
    each list is read once per validation (two nodes of one slow list waited twice: 4 s, not the documented 2),
    and a list still being read is waited for up to `wait` seconds (at least `CHOICES_WAIT`) — `run` passes
    `RUN_CHOICES_WAIT`, so a one-shot `nodegraph run` no longer fails on a list that answers in 3 s. The wait is
    handed to `Registry.choices` itself, which says a list was slow only when that wait ran out.
    """

    def __init__(self, registry: Registry, wait: float = 0.0):
        self.registry = registry
        self.wait = wait
        self._read: dict[str, list[str]] = {}     # lists read by this validation (answered, or their wait ran out)

    def choices(self, name: str, value: str | None = None) -> list[str]:
        """The choices of list `name` to check `value` against (read once per validation, whatever the value)."""
        if name not in self._read:
            self._read[name] = self.registry.choices(name, wait=max(self.wait, self.registry.CHOICES_WAIT))
        return self._read[name]


def _closest(name: str, candidates: Iterable[str]) -> list[str]:
    """Up to three close candidates (difflib), or none once a validation's suggestions are spent."""
    left = _suggestions_left.get()
    if left is not None:
        if left <= 0:
            return []
        _suggestions_left.set(left - 1)
    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)


def _did_you_mean(close: list[str]) -> str:
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""


def suggest(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean X?' for the closest candidates, or '' (also once a validation's suggestions are spent)."""
    return _did_you_mean(_closest(name, candidates))


def _first_word(name: str) -> str:
    """The first CamelCase word of a type name, lower case ("ShowText" → "show", "VAEDecode" → "vae")."""
    match = re.match(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return match.group(0).lower() if match else ""


def suggest_type(name: str, candidates: Iterable[str]) -> str:
    """`suggest` for a node type; when none is close as a whole, the types that start with the same word
    ("ShowText", a custom node ComfyUI users know → ShowValue, ShowImage)."""
    candidates = list(candidates)
    close = _closest(name, candidates)
    if not close and len(word := _first_word(name)) >= 3:
        close = sorted(c for c in candidates if "." not in c and _first_word(c) == word)[:3]
    return _did_you_mean(close)


#: Display names other tools use (A1111's sampler menu, its "Schedule type", ComfyUI's KSampler, diffusers
#: scheduler classes), normalised by `_alias_key` → (choice meant, scheduler that goes with it or None).
#: Only entries whose choice is in the list being checked are suggested.
CHOICE_ALIASES: dict[str, tuple[str, str | None]] = {
    "euler a": ("euler_ancestral", None), "euler ancestral": ("euler_ancestral", None),
    "eulerancestraldiscretescheduler": ("euler_ancestral", None), "eulerdiscretescheduler": ("euler", None),
    "heundiscretescheduler": ("heun", None), "lms karras": ("lms", "karras"),
    "lmsdiscretescheduler": ("lms", None), "ddimscheduler": ("ddim", None), "ddpmscheduler": ("ddpm", None),
    # A1111's "DPM++ 2M Karras" and the same written with underscores ("dpmpp_2m_karras"): `_alias_key` makes
    # "dpm++" "dpmpp"; the sampler with the karras (or exponential) schedule
    "dpmpp 2m karras": ("dpmpp_2m", "karras"), "dpmpp 2m sde karras": ("dpmpp_2m_sde", "karras"),
    "dpmpp 2m sde exponential": ("dpmpp_2m_sde", "exponential"),
    "dpmpp sde karras": ("dpmpp_sde", "karras"), "euler karras": ("euler", "karras"),
    "euler ancestral karras": ("euler_ancestral", "karras"), "euler a karras": ("euler_ancestral", "karras"),
    "heun karras": ("heun", "karras"),
    "dpmsolvermultistepscheduler": ("dpmpp_2m", None), "dpmsolversdescheduler": ("dpmpp_sde", None),
    "unipcmultistepscheduler": ("unipc", None), "lcmscheduler": ("lcm", None),
    "uni pc": ("unipc_bh1", None), "uni pc bh2": ("unipc", None), "unipc bh2": ("unipc", None),
    # A1111's "Schedule type" menu ("Karras", "Exponential", "SGM Uniform", "KL Optimal", ... match by name)
    "uniform": ("normal", None), "ddim": ("ddim_uniform", None),
    # ComfyUI's "_gpu" samplers are the same algorithm with the noise drawn on the GPU
    "dpmpp 2m sde gpu": ("dpmpp_2m_sde", None), "dpmpp sde gpu": ("dpmpp_sde", None),
}

_DPM2 = "DPM2 is not built in; 'heun' is the second-order sampler to use"
_DPM2_ANCESTRAL = "DPM2 a is not built in; 'euler_ancestral' or 'dpmpp_sde' are the stochastic samplers to use"
_DPMPP_2S_ANCESTRAL = ("DPM++ 2S ancestral is not built in; 'dpmpp_sde' (or 'euler_ancestral') is the stochastic "
                       "sampler to use")
_DPMPP_3M_SDE = "DPM++ 3M SDE is not built in; 'dpmpp_2m_sde' is the multistep SDE sampler to use"
_ALIGN_YOUR_STEPS = "Align Your Steps is not built in; 'karras' is the nearest"

#: names of other tools' samplers nodegraph does not have, with what to use instead (A1111's "… Karras" names
#: too: the schedule is KSampler's `scheduler` here, so the note is the sampler's)
UNSUPPORTED_CHOICES: dict[str, str] = {
    "pndmscheduler": "PNDM (diffusers' default for Stable Diffusion 1.x) is not built in; 'dpmpp_2m' (or 'euler') "
                     "draws comparable images in 20 steps",
    "plms": "PLMS is not built in; 'dpmpp_2m' (or 'lms') is the multistep sampler to use",
    "deismultistepscheduler": "DEIS is not built in; 'dpmpp_2m' or 'unipc' are the multistep samplers to use",
    "kdpm2discretescheduler": _DPM2,
    "kdpm2ancestraldiscretescheduler": _DPM2_ANCESTRAL,
    # ComfyUI's KSampler list; A1111's menu ("DPM2 a Karras"; `_alias_key` makes "DPM2" "dpm 2") and its old
    # API names ("k_dpm_2_a": `_alias_key` drops the "k_")
    **dict.fromkeys(("dpm 2", "dpm 2 karras"), _DPM2),
    **dict.fromkeys(("dpm 2 a", "dpm 2 a karras", "dpm 2 ancestral", "dpm 2 ancestral karras"), _DPM2_ANCESTRAL),
    **dict.fromkeys(("dpmpp 2s ancestral", "dpmpp 2s a", "dpmpp 2s a karras"), _DPMPP_2S_ANCESTRAL),
    **dict.fromkeys(("dpmpp 3m sde", "dpmpp 3m sde gpu", "dpmpp 3m sde karras", "dpmpp 3m sde exponential"),
                    _DPMPP_3M_SDE),
    **dict.fromkeys(("dpmpp 2m sde heun", "dpmpp 2m sde heun karras", "dpmpp 2m sde heun exponential"),
                    "DPM++ 2M SDE Heun (DPM++ 2M SDE with the heun solver) is not a choice here; 'dpmpp_2m_sde' "
                    "(its midpoint solver) is the nearest"),
    "euler cfg pp": "CFG++ samplers are not built in; 'euler' with a lower cfg is the nearest",
    **dict.fromkeys(("euler ancestral cfg pp", "euler a cfg pp"),
                    "CFG++ samplers are not built in; 'euler_ancestral' with a lower cfg is the nearest"),
    "ddim cfg pp": "CFG++ samplers are not built in; 'ddim' with a lower cfg is the nearest",
    "restart": "Restart sampling is not built in; 'heun' (the steps it takes between its restarts) is the nearest",
    "deis": "DEIS is not built in; 'dpmpp_2m' or 'unipc' are the multistep samplers to use",
    "ipndm": "iPNDM is not built in; 'dpmpp_2m' (or 'lms') is the multistep sampler to use",
    "ipndm v": "iPNDM is not built in; 'dpmpp_2m' (or 'lms') is the multistep sampler to use",
    "dpm fast": "DPM-Solver fast (fixed order 1-3) is not built in; 'dpmpp_2m' is the multistep solver to use",
    **dict.fromkeys(("dpm adaptive", "dpm ad"), "DPM-Solver adaptive (its own step count) is not built in; "
                                                "'dpmpp_2m' with more steps is the nearest"),
    "res multistep": "RES multistep is not built in; 'dpmpp_2m' is the multistep sampler to use",
    "gradient estimation": "the gradient-estimation sampler is not built in; 'dpmpp_2m' is the nearest",
    # ComfyUI's scheduler list and A1111's "Schedule type" menu
    "linear quadratic": "the linear-quadratic schedule is not built in; 'normal' or 'sgm_uniform' are the nearest "
                        "(a linear start, as for video models)",
    "kl optimal": "the KL-optimal schedule is not built in; 'karras' or 'exponential' are the nearest (dense near "
                  "the end)",
    **dict.fromkeys(("ays", "align your steps", "align your steps gits", "align your steps 11",
                     "align your steps 32"), _ALIGN_YOUR_STEPS),
    "polyexponential": "the polyexponential schedule is not built in, but at A1111's default rho of 1 it is the same "
                       "sigmas as 'exponential'; another rho has no counterpart",
    "automatic": "A1111's 'Automatic' is each sampler's own default schedule: 'karras' for DPM++ 2M, DPM++ SDE and "
                 "DPM2, 'exponential' for DPM++ 2M SDE, else 'normal' (A1111's 'Uniform'); choose one of them",
}


_SCHEDULE_NAMES = frozenset({"linear quadratic", "kl optimal", "ays", "align your steps", "align your steps gits",
                             "align your steps 11", "align your steps 32", "polyexponential",
                             "automatic"})     # the UNSUPPORTED_CHOICES that are schedules


def _alias_key(text: str) -> str:
    """Case, spaces, hyphens and underscores made uniform, and A1111's spellings made ComfyUI's: "DPM++ 2M  Karras"
    → "dpmpp 2m karras", "DDIM CFG++" → "ddim cfg pp", "DPM2 a" → "dpm 2 a", and its old API names without
    their "k_" ("k_euler_a" → "euler a"; "_ka" is Karras: "k_lms_ka" → "lms karras")."""
    key = " ".join(text.lower().replace("_", " ").replace("-", " ").split())
    key = key.replace("dpm++", "dpmpp").replace("cfg++", "cfg pp")
    key = re.sub(r"\bdpm(?=\d)", "dpm ", key)
    if key.startswith("k ") and len(key) > 2:
        key = re.sub(r" ka$", " karras", key[2:])
    return key


def suggest_choice(value: str, choices: Iterable[str]) -> str:
    """' Did you mean X?' for a value outside a choice list: a known display name ("Euler a"), the same
    name in another case ("DDIM"), else the closest choices; '' when nothing is close."""
    choices = [str(c) for c in choices]
    key = _alias_key(value)
    same = [c for c in choices if _alias_key(c) == key]
    if same:
        return _did_you_mean(same[:1])
    alias = CHOICE_ALIASES.get(key)
    if alias is None and key in UNSUPPORTED_CHOICES and ("euler" in choices) == (key not in _SCHEDULE_NAMES):
        return f" ({UNSUPPORTED_CHOICES[key]}.)"     # a sampler's hint for a sampler list, a schedule's for a schedule list
    if alias is not None and alias[0] in choices:
        choice, scheduler = alias
        also, what = (f" with scheduler {scheduler!r}", "that pair") if scheduler else ("", "it")
        return f" Did you mean {choice!r}{also}? ({value!r} is another tool's name for {what}.)"
    by_key = {_alias_key(c): c for c in choices}
    return _did_you_mean([by_key[key] for key in _closest(_alias_key(value), by_key)])


def validate(
    graph: Graph,
    registry: Registry,
    outputs: Iterable[str] | None = None,
    list_model_files: Callable[[str], tuple[list[str], list[str]]] | None = None,
    input_dir: str | Path | None = None,
    choices_wait: float = 0.0,
) -> list[GraphError]:
    """All problems in `graph`; `outputs` restricts which nodes must be runnable sinks.

    Args:
        graph: a parsed Graph.
        registry: node classes and port types.
        outputs: node ids to run; default every output node.
        list_model_files: folder name → (file names available, directories searched);
            when None, model file names are not checked.
        input_dir: the run's input folder: names of files in it (uploads, LoadImage's image, a
            dataset folder: inputs declared `file_name_in="input"`) must exist there; None: not checked.
        choices_wait: seconds to wait in all for a plugin's choice list that is still being read (`run`:
            `RUN_CHOICES_WAIT`); 0 waits `Registry.CHOICES_WAIT` once per list, then checks against the values
            it offers meanwhile (none the first time), as the editor's and a server's quick validation must.

    A graph with node modes or subgraphs is checked as its effective graph
    (effective_graph.py); errors inside a subgraph name the path to the inner node.
    """
    lists = ChoiceListReader(registry, choices_wait)
    if _suggestions_left.get() is not None:        # nested (a subgraph's effective graph): one budget
        return _validate(graph, registry, outputs, list_model_files, input_dir, lists)
    budget = _suggestions_left.set(SUGGESTED_ERRORS)
    try:
        return _validate(graph, registry, outputs, list_model_files, input_dir, lists)
    finally:
        _suggestions_left.reset(budget)


def _validate(graph: Graph, registry: Registry, outputs: Iterable[str] | None,
              list_model_files: Callable[[str], tuple[list[str], list[str]]] | None,
              input_dir: str | Path | None = None, lists: ChoiceListReader | None = None) -> list[GraphError]:
    lists = lists if lists is not None else ChoiceListReader(registry)
    if not graph.is_plain:
        from .effective_graph import effective_graph, requested_targets

        effective = effective_graph(graph, registry)
        outputs = requested_targets(graph, registry, outputs)
        return effective.annotate(_validate(effective.graph, registry, outputs, list_model_files, input_dir,
                                            lists))
    errors: list[GraphError] = []
    nodes = graph.nodes
    node_classes = registry.nodes
    for node_id, node in nodes.items():
        before = len(errors)
        cls = node_classes.get(node.type)
        if cls is None and node.type in registry.ambiguous:
            errors.append(ambiguous_type_error(node_id, node.type, registry.ambiguous[node.type],
                                               registry.failed_providers.get(node.type, ()),
                                               registry.unavailable))
            continue
        if cls is None:
            errors.append(unknown_type_error(node_id, node.type, registry))
            continue
        spec = cls.spec
        renamed = getattr(cls, "renamed_inputs", None) or {}
        for name in node.inputs:
            if name not in spec.inputs and renamed.get(name) in node.inputs:      # the old name beside the new one
                errors.append(GraphError(
                    "unknown_input",
                    f"{node.type}'s input {name!r} was renamed to {renamed[name]!r} (node version {cls.version}), "
                    f"and this node writes both; remove {name!r} (the value under {renamed[name]!r} is the one "
                    f"that counts).", node_id=node_id, input=name))
            elif name not in spec.inputs:
                errors.append(GraphError(
                    "unknown_input",
                    f"{node.type} has no input {name!r}.{suggest(name, spec.inputs)} "
                    f"Its inputs are: {', '.join(spec.inputs) or '(none)'}.",
                    node_id=node_id, input=name))
        for name, ispec in spec.inputs.items():
            if name not in node.inputs:
                if ispec.required:
                    errors.append(GraphError(
                        "missing_input",
                        f"{node.type} needs input {name!r} ({ispec.port}); "
                        f"connect {_article(ispec.port)} {ispec.port} output"
                        + (" or write a value" if ispec.adapter is not None else "") + " to it.",
                        node_id=node_id, input=name))
                    continue
                if ispec.default is None or not (ispec.model_folder or ispec.choices_from
                                                 or ispec.file_name_in == "input"):
                    continue
                value = ispec.default      # what the run gets: a file or choice it names must be there too
            else:
                value = node.inputs[name]
                if not isinstance(value, Link):
                    value = ispec.as_literal(value)
            if isinstance(value, Link):
                _check_link(graph, registry, node_id, node.type, name, ispec.port, value, errors)
            else:
                checked_from = len(errors)
                _check_literal(node_id, node.type, name, ispec, value, list_model_files, errors, input_dir,
                               plugin_node=_plugin_of(registry, node.type) not in registry.builtin_plugins)
                if ispec.choices_from is not None and isinstance(value, str) \
                        and value not in (choices := lists.choices(ispec.choices_from, value)):
                    problem = registry.choice_list_problem(ispec.choices_from)
                    shown = ", ".join(repr(c) for c in choices[:50]) + (f", … ({len(choices)} in all)"
                                                                         if len(choices) > 50 else "")
                    errors.append(GraphError(
                        "not_in_choices",
                        (f"input {name!r} of {node.type} must be one of {shown}; found {_short(value)}."
                         f"{suggest_choice(value, choices)}" if choices else
                         f"input {name!r} of {node.type} has no choices to offer now; found {_short(value)}.")
                        + (f" (The {problem}.)" if problem else ""),
                        node_id=node_id, input=name, details={"found": value, "choices": choices[:1000]}))
                if name not in node.inputs and len(errors) > checked_from:    # the value is the node's default
                    errors[checked_from:] = [_about_default(error, name) for error in errors[checked_from:]]
        if list_model_files is not None and has_literal_checks(cls):    # on the sound values
            unsound = {error.input for error in errors[before:]}     # a bad `style` hid a bad `text` before
            literals = {name: ispec.as_literal(node.inputs.get(name, ispec.default))
                        for name, ispec in spec.inputs.items()
                        if not isinstance(node.inputs.get(name), Link) and (name in node.inputs or not ispec.required)
                        and name not in unsound}
            errors.extend(literal_check_errors(node_id, cls, literals, list_model_files, partial=bool(unsound)))
        if len(errors) > before and "." not in node.type and len(registry.providers(node.type)) > 1:
            errors[before:] = _with_clash_note(errors[before:], node.type, registry)
    errors.extend(_check_cycles(graph))
    has_output_node = any(cls is not None and cls.spec.output_node
                          for cls in (node_classes.get(n.type) for n in nodes.values()))
    errors.extend(output_errors(nodes, has_output_node, outputs))
    return errors


def _plugin_of(registry: Registry, node_type: str) -> str | None:
    """The plugin a node type name (bare or qualified) is registered by."""
    prefix, _, bare = node_type.rpartition(".")
    return prefix or registry.node_plugin.get(bare)


def _about_default(error: GraphError, name: str) -> GraphError:
    """An error about a value the graph does not write: it is the node's declared default (a plugin author's
    wrong default was told as if the user had typed it)."""
    note = (f" (The graph does not set {name!r}: this is the node's default. Write a value for {name!r} in the "
            f"graph; if the default itself is wrong, the node's author should fix it.)")
    return dataclasses.replace(error, message=error.message + note, details={**error.details, "default": True})


def _with_clash_note(errors: list[GraphError], bare: str, registry: Registry) -> list[GraphError]:
    """A bare name several plugins provide means one of them (a built-in's, or the preferred one): a node's
    errors then say which, and the qualified names of the others — a plugin's `ImageScale` written bare got
    "ImageScale has no input 'image'" from the built-in with nothing about the clash."""
    meant = registry.resolve(bare)
    others = [f"{plugin}.{bare}" for plugin in registry.providers(bare) if f"{plugin}.{bare}" != meant]
    if meant is None or not others:
        return errors
    note = (f" (Note: {bare!r} means {meant!r} here; {' and '.join(repr(o) for o in others)} also exist"
            f"{'s' if len(others) == 1 else ''} — write the qualified name to use another.)")
    return [dataclasses.replace(error, message=error.message + note,
                                details={**error.details, "means": meant, "also": others}) for error in errors]


def has_literal_checks(cls: Any) -> bool:
    """Whether a node class overrides `Node.check_literals`."""
    return cls.check_literals.__func__ is not _DEFAULT_CHECK_LITERALS


def literal_check_errors(node_id: str, cls: Any, literals: dict[str, Any],
                         list_model_files: Callable[[str], tuple[list[str], list[str]]],
                         partial: bool = False) -> list[GraphError]:
    """`invalid_value` errors from a node class's own `check_literals` (none when it has no override). `partial`:
    inputs that failed the declared checks were left out of `literals` (a check that needs one of them and
    raises is only logged at debug level: those inputs' own errors are already said)."""
    if not has_literal_checks(cls):
        return []
    try:
        problems = cls.check_literals(dict(literals), list_model_files)
    except Exception:  # noqa: BLE001 — a node's check must not break validation
        if partial:
            log.debug("check_literals of %s failed on the inputs left after their errors", cls.spec.type,
                      exc_info=True)
        else:
            log.exception("check_literals of %s failed; its inputs are checked when it runs", cls.spec.type)
        return []
    if not problems:
        return []
    if not isinstance(problems, dict):
        log.warning("check_literals of %s returned %s, not a dict {input: message}; ignored",
                    cls.spec.type, type(problems).__name__)
        return []
    strays = [name for name in problems if name not in cls.spec.inputs]
    if strays and cls not in _STRAY_CHECK_KEYS_WARNED:       # its check never fired, silently (a porter's pass)
        _STRAY_CHECK_KEYS_WARNED.add(cls)
        log.warning("check_literals of %s returned a problem for %s, which is not one of its inputs (%s); the "
                    "problem is not shown: key each problem by the input it is about", cls.spec.type,
                    ", ".join(repr(str(n)[:60]) for n in strays[:5]), ", ".join(cls.spec.inputs))
    return [GraphError("invalid_value", f"input {name!r} of {cls.spec.type}: {str(message)[:2000]}",
                       node_id=node_id, input=name,
                       details={"found": _short(literals.get(name)), "rule": "check_literals"})
            for name, message in problems.items() if name in cls.spec.inputs and (name in literals or not partial)]


_STRAY_CHECK_KEYS_WARNED: set[type] = set()      # classes whose check_literals named a non-input (logged once)


def unknown_type_error(node_id: str, node_type: str, registry: Registry) -> GraphError:
    """The `unknown_node_type` error; says so when the type's plugin failed or was left out."""
    plugin = next((p for p in sorted(registry.unavailable, key=len, reverse=True)
                   if node_type.startswith(p + ".")), None)
    details: dict[str, Any] = {"type": node_type}
    prefix, _, bare = node_type.rpartition(".")
    loaded_plugins = {name.rpartition(".")[0] for name in registry.nodes if "." in name}
    candidates: Iterable[str] = registry.nodes
    if plugin is not None:
        details["plugin"] = plugin
        why = (f" Its plugin {plugin!r} is not loaded ({registry.unavailable[plugin]}); "
               f"`nodegraph plugins` shows why and how to fix it.")
    elif prefix in registry.not_autoloaded:
        details["plugin"] = prefix
        why = (f" Its plugin {prefix!r} is installed but installed plugins are not loaded here (--no-plugins, "
               f"NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD=1 or Session(autoload=False)): run without that.")
    elif prefix and prefix not in loaded_plugins and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", prefix):
        # a qualified name of a plugin that is not installed: name it; suggest only the same node of another
        # plugin (a close name of an unrelated plugin, 'threed.ImageToPoints' for 'edgekit.ImageToTone', is noise)
        details["plugin"] = prefix
        candidates = [name for name in registry.nodes if name.rpartition(".")[2] == bare and "." in name]
        why = (f" No plugin {prefix!r} is installed: install the plugin package that provides it (its plugin name "
               f"is {prefix!r}; `nodegraph plugins` lists what is installed), or replace the node.")
    elif prefix in registry.shadowed:       # another installed copy of that plugin may have it
        details["plugin"] = prefix
        why = (f" Two installed distributions provide a plugin named {prefix!r} and only one loads: "
               f"{registry.shadowed[prefix]}. The node may be the other's: uninstall the one you do not want "
               f"(`nodegraph plugins` lists both).")
    elif registry.unavailable:
        names = ", ".join(repr(p) for p in sorted(registry.unavailable))
        why = (f" Not loaded: {names} — it may come from one of them (`nodegraph plugins`, or `Session.plugin_warnings()` in Python, says why); "
               f"otherwise install the plugin that provides it, or replace the node.")
    elif registry.not_autoloaded and not prefix:
        names = ", ".join(repr(p) for p in sorted(registry.not_autoloaded))
        why = (f" Installed plugins are not loaded here (--no-plugins, NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD=1 or "
               f"Session(autoload=False)): it may come from one of {names} (run without that). Install the plugin "
               f"that provides it, or replace the node.")
    else:
        why = " Install the plugin that provides it, or replace the node."
    from .comfyui import COMFYUI_CORE_CLASSES, INSTEAD, comfyui_nearest, subgraph_kind

    kind = subgraph_kind(node_type)
    nearest = [name for name in comfyui_nearest(node_type) if name in registry.nodes]
    if node_type in COMFYUI_CORE_CLASSES or node_type in INSTEAD:
        # ComfyUI's own class: no plugin to install, and a name spelt alike (CLIPLoader → ClipConsistencyGuidance)
        # is no help; what does its work here is (the editor's search synonyms name the same nodes)
        why = (f" It is a ComfyUI core class: {INSTEAD[node_type]}." if node_type in INSTEAD
               else " It is a ComfyUI core class with no equivalent here" + (
                   f": use {' or '.join(repr(n) for n in nearest)} instead." if nearest else
                   "; replace the node, or remove it and link around it."))
        candidates = ()
    elif kind == "subgraph":          # an instance whose definition the file does not hold (else it is expanded)
        why, candidates = (" It is a ComfyUI subgraph instance whose definition is not in the file (a UI workflow "
                           "keeps them under `definitions.subgraphs`, and the import expands them): save the whole "
                           "workflow again in ComfyUI, or unpack the subgraph there (right-click → Unpack Subgraph)."
                           ), ()
    elif kind:
        why, candidates = (f" It is a ComfyUI {kind}, which is not expanded on import: in "
                           f"ComfyUI, unpack it (right-click → Convert to nodes) and save the "
                           f"workflow again."), ()
    shown = (suggest_type(node_type, candidates) if not (node_type in COMFYUI_CORE_CLASSES or node_type in INSTEAD)
             else "" if node_type in INSTEAD else _did_you_mean(nearest))     # INSTEAD says what to use
    return GraphError(
        "unknown_node_type",
        f"no node type {node_type!r} is registered.{shown}{why} "
        f"(The editor's node search, or `nodegraph nodes`, lists the available types.)",
        node_id=node_id, details=details)


def ambiguous_type_error(node_id: str, bare: str, qualified: list[str], failed: Iterable[str] = (),
                         unavailable: dict[str, str] | None = None) -> GraphError:
    """The `ambiguous_node_type` error: several plugins provide `bare`; name them and the three fixes. `failed`:
    those of them that failed to load (`Registry.failed_providers`), with why (`unavailable`)."""
    plugins = [q[: -len(bare) - 1] for q in qualified]
    failed = [p for p in failed if p in plugins]
    loaded = [p for p in plugins if p not in failed]
    names = " and ".join(repr(p) for p in plugins)
    if failed:
        why = "; ".join(f"{p!r} {(unavailable or {}).get(p, 'failed to load')}" for p in failed)
        return GraphError(
            "ambiguous_node_type",
            f"node type {bare!r} is provided by plugins {names}, but {' and '.join(repr(p) for p in failed)} "
            f"did not load ({why}), so the bare name does not quietly mean the other plugin's node. Fix or "
            f"update the plugin that failed (then the graph runs its node as written: `nodegraph plugins` says "
            f"why), or write the qualified name of a loaded one ({' or '.join(repr(f'{p}.{bare}') for p in loaded)}"
            f"), or choose it for the bare name (--prefer-plugin {bare}={loaded[0] if loaded else plugins[0]}).",
            node_id=node_id, details={"type": bare, "plugins": plugins, "candidates": list(qualified),
                                      "failed": failed})
    return GraphError(
        "ambiguous_node_type",
        f"node type {bare!r} is provided by plugins {names}, so the bare name is ambiguous. "
        f"Write the qualified name ({' or '.join(repr(q) for q in qualified)}), deny "
        f"{'one plugin' if len(plugins) == 2 else 'all but one'} ({' '.join(f'--deny-plugin {p}' for p in plugins[1:])}"
        f"), or choose one for the bare name "
        f"(--prefer-plugin {bare}={plugins[0]}, env NODEGRAPH_PLUGINS_PREFER={bare}={plugins[0]}).",
        node_id=node_id, details={"type": bare, "plugins": plugins, "candidates": list(qualified)})


def output_errors(node_ids: Iterable[str], has_output_node: bool,
                  requested: Iterable[str] | None) -> list[GraphError]:
    """`no_outputs` / `unknown_node` errors for what a run is asked to produce."""
    if requested is None:
        if has_output_node:
            return []
        return [GraphError(
            "no_outputs",
            "the graph has no output node, so nothing would run; add one "
            "(e.g. ShowValue, SaveImage, PreviewImage) and connect what you want to keep.")]
    requested = list(requested)
    ids = set(node_ids)
    errors = []
    if not requested:
        errors.append(GraphError("no_outputs", "no outputs were requested; name at least one node id"))
    for node_id in requested:
        if node_id not in ids:
            errors.append(GraphError("unknown_node", f"requested output {node_id!r} is not a node in the graph."
                                                     f"{suggest(node_id, ids)}", node_id=node_id))
    return errors


def _check_link(graph: Graph, registry: Registry, node_id: str, node_type: str, name: str,
                port: str, link: Link, errors: list[GraphError]) -> None:
    source = graph.nodes.get(link.node)
    if source is None:
        errors.append(GraphError(
            "dangling_link",
            f"input {name!r} links to node {link.node!r}, which is not in the graph.{suggest(link.node, graph.nodes)} "
            f"Reconnect it to an existing node.",
            node_id=node_id, input=name, details={"source_node": link.node}))
        return
    source_cls = registry.nodes.get(source.type)
    if source_cls is None:
        return  # reported as unknown_node_type on the source itself
    index = source_cls.spec.output_index.get(link.output)
    if index is None:
        names = ", ".join(o.name for o in source_cls.spec.outputs) or "(none)"
        errors.append(GraphError(
            "unknown_output",
            f"input {name!r} links to output {link.output!r} of node {link.node!r} ({source.type}), "
            f"which has no such output.{suggest(link.output, source_cls.spec.output_index)} Its outputs are: {names}.",
            node_id=node_id, input=name, details={"source_node": link.node, "output": link.output}))
        return
    source_port = source_cls.spec.outputs[index].port
    if not registry.types.is_compatible(source_port, port):
        errors.append(GraphError(
            "type_mismatch",
            f"input {name!r} of {node_type} expects {port}, but it is linked to output {link.output!r} "
            f"of node {link.node!r} ({source.type}), which gives {source_port}. "
            f"Connect {_article(port)} {port} output instead.",
            node_id=node_id, input=name,
            details={"expected": port, "found": source_port, "source_node": link.node, "output": link.output}))


def _check_literal(node_id: str, node_type: str, name: str, ispec: Any, value: Any,
                   list_model_files: Callable[[str], tuple[list[str], list[str]]] | None,
                   errors: list[GraphError], input_dir: str | Path | None = None, plugin_node: bool = True) -> None:
    """Append the errors of one literal input value. `plugin_node`: the node is a plugin's, not built in (a hint
    for its author may help; a built-in's user could do nothing with it)."""
    if ispec.adapter is None:
        comfy_link = (isinstance(value, list) and len(value) == 2 and type(value[0]) in (str, int)
                      and type(value[1]) is int)
        hint = (f" [{json.dumps(value[0])}, {value[1]}] is how ComfyUI writes a link; here a link is "
                f'{{"node": "{value[0]}", "output": "<output name>"}}' if comfy_link else "")
        takes = (f"takes {_article(ispec.port)} {ispec.port}, which only comes from another node's output" if
                 ispec.port != "*" else "takes any type, but only from another node's output (a link)")
        wanted = f"{_article(ispec.port)} {ispec.port} output" if ispec.port != "*" else "an output (an Int node's, …)"
        errors.append(GraphError(
            "type_mismatch",
            f"input {name!r} of {node_type} {takes}; found a literal {_short(value)}. Connect {wanted} to it.{hint}",
            node_id=node_id, input=name, details={"expected": ispec.port, "found": "literal"}))
        return
    if isinstance(value, float) and not math.isfinite(value):      # pydantic would say "must be <= 100; found nan"
        errors.append(GraphError("invalid_value", f"input {name!r} of {node_type} got {value}, which is not a "
                                                  f"number any input takes; give a finite number",
                                 node_id=node_id, input=name, details={"found": str(value)}))
        return
    try:
        ispec.adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        errors.append(_literal_error(node_id, node_type, name, ispec, value, exc.errors()[0]))
        return
    except (RecursionError, TypeError, ValueError) as exc:  # pathological values
        errors.append(GraphError("invalid_value", f"value {_short(value)} cannot be checked: {exc}",
                                 node_id=node_id, input=name))
        return
    if ispec.file_name_in and isinstance(value, str):
        folder_input = is_folder_input(ispec)
        try:
            if not (folder_input and value == INPUT_FOLDER_ITSELF):     # '.': the input folder itself, for a dataset
                check_name(value, what="folder name" if folder_input else "file name", input_name=name,
                           subfolders=ispec.subfolders, where=f"the {ispec.file_name_in} folder")
        except PathConfinementError as exc:
            author = (" (This plugin node takes plain file names only: put the file directly in the folder. "
                      "A plugin's author allows folders with `Input(..., subfolders=True)`.)"
                      if exc.rule == "subfolder" and plugin_node else "")
            if folder_input and value.strip("/") in ("", "."):       # "./", "/": meant the input folder itself
                author = f"; the input folder itself is named {INPUT_FOLDER_ITSELF!r}"
            errors.append(GraphError("invalid_value", f"input {name!r} of {node_type}: {exc.message}{author}",
                                     node_id=node_id, input=name, details={"found": _short(value), "rule": exc.rule}))
            return
        suffix = ispec.file_suffix
        if suffix and (not value.endswith(suffix) or value.rsplit("/", 1)[-1].startswith(".")):
            errors.append(GraphError("invalid_value", f"input {name!r} of {node_type}: expected a file name ending in "
                                                      f"{suffix} (and not starting with '.'), found {_short(value)}; "
                                                      f"e.g. 'my_model{suffix}'",
                                     node_id=node_id, input=name, details={"found": _short(value), "rule": "suffix"}))
            return
        if ispec.file_name_in == "input" and input_dir is not None:
            missing = input_file_error(node_id, node_type, name, value, Path(input_dir), ispec.subfolders,
                                       ispec.widget.get("upload"))
            if missing is not None:
                errors.append(missing)
                return
    if ispec.model_folder and list_model_files is not None:
        available, searched = list_model_files(ispec.model_folder)
        if value not in available:
            errors.append(model_file_error(node_id, name, ispec.model_folder, value, available, searched))


FILE_FOLDERS = ("input", "output")     # `file_name_in` values that are not model folders
MAX_INPUT_LISTED = 2000      # entries of the input folder read for "did you mean" and the listing
INPUT_FOLDER_ITSELF = "."     # what a folder input names the input folder itself by (a server user's own one)


def is_folder_input(ispec: Any) -> bool:
    """Whether an input names a folder inside the input folder (a dataset's `folder`): `file_name_in="input"`,
    `subfolders=True` and no upload kind (one with an upload kind names a file: LoadMesh's `file`). Only such an
    input takes '.' (the input folder itself), and it must name a folder, not a file."""
    return ispec.file_name_in == "input" and bool(ispec.subfolders) and not ispec.widget.get("upload")


def _of_kind(file_name: str, kind: str | None) -> bool:
    """Whether a file may be of upload kind `kind` (its extension names another kind: no; unknown: yes)."""
    if kind is None or file_name.endswith("/"):
        return True
    from .results import MIME_TYPES

    known = MIME_TYPES.get(os.path.splitext(file_name)[1].lower())
    # an audio input reads a video's sound track too (LoadAudio takes .mkv / .mp4 / .webm)
    wanted = {"mask": ("image",), "audio": ("audio", "video")}.get(kind, (kind,))
    return known is None or any(part in known[0] for part in wanted)


def missing_input_message(input_dir: Path, name: str, what: str = "file", folders: bool = False,
                          kind: str | None = None) -> str:
    """Why `name` is not a file in the input folder, with close names and what is there (no absolute path: a
    server sends it to its clients). What validation and the input-file resolver (`Session.resolve_file`) say.
    With an upload `kind` ("image", "audio", ...), files whose extension is of another kind are not offered."""
    folder = re.fullmatch(r"(.+) \[(output|temp)\]", name)
    if folder is not None:      # ComfyUI's LoadImage names a result as "x.png [output]": another folder here
        return (f"no {what} {name!r} in the input folder: ComfyUI's \"[{folder.group(2)}]\" names a file of its "
                f"{folder.group(2)} folder, and an input is read from the input folder only here; copy "
                f"{folder.group(1)!r} into the input folder and name it without the suffix (in the editor, the image "
                f"viewer's Use as input does both for a result)")
    if not input_dir.is_dir():
        state = "is not a folder" if input_dir.exists() else "does not exist yet (nothing was uploaded or put there)"
        shown = shown_folder(str(input_dir))       # a server's user folder (absolute, or in/<user>) is not shown
        where = f" ({shown})" if not os.path.isabs(shown) and "/" not in shown else ""
        if folders:
            return (f"no {what} {name!r}: the input folder{where} {state}. {_UPLOAD_A_FOLDER} "
                    f"(`nodegraph run --input-dir` chooses another)")
        return (f"no {what} {name!r}: the input folder{where} {state}. Upload the {what} (the editor), or put it "
                f"into the input folder (`nodegraph run --input-dir` chooses another)")
    present: list[str] = []
    files_here = 0      # a folder input's: files directly in the input folder ('.' names them)
    try:
        with os.scandir(input_dir) as entries:
            for entry in entries:
                if entry.is_symlink() and not is_inside(input_dir, entry.path):   # refused if named: not offered
                    continue
                if entry.name.startswith("."):      # hidden: a save in progress (.partial-…), .DS_Store, …
                    continue
                if folders:      # a folder input names a folder: files are not offered, but counted
                    if entry.is_dir():
                        present.append(entry.name + "/")
                    elif entry.is_file():
                        files_here += 1
                elif entry.is_file():
                    present.append(entry.name)
                if len(present) >= MAX_INPUT_LISTED:
                    break
    except OSError:
        pass
    others = [p for p in present if not _of_kind(p, kind)]
    present = sorted(p for p in present if _of_kind(p, kind))
    listed = ", ".join(repr(p) for p in present[:20]) + (", …" if len(present) > 20 else "")
    if others:
        listed = (listed + "; " if listed else "") + f"{len(others)} file(s) of other kinds than {kind}"
    candidates = [p.rstrip("/") for p in present]
    if folders:
        itself = (f" ({INPUT_FOLDER_ITSELF!r}, the input folder itself, holds {files_here} file(s))"
                  if files_here else "")
        return (f"no {what} {name!r} in the input folder.{suggest(name, candidates)} Folders there: "
                f"{listed or 'none'}{itself}. {_UPLOAD_A_FOLDER} (--input-dir).")
    return (f"no {what} {name!r} in the input folder.{suggest(name, candidates)} "
            f"Files there: {listed or 'none'}. "
            f"Upload it (the editor) or copy it into the input folder (--input-dir).")


# a folder cannot be uploaded as such: its files are, each with the upload's `subfolder` naming the folder
_UPLOAD_A_FOLDER = ("Upload its files with an upload `subfolder` naming it (captions as `caption` uploads beside "
                    "them: docs/training.md, \"Training on a server\"), or copy the folder into the input folder")


def input_file_error(node_id: str, node_type: str, name: str, value: str, input_dir: Path,
                     subfolders: bool, kind: str | None = None) -> GraphError | None:
    """`not_in_choices` when `value` names nothing in the input folder (a file, or a dataset's folder: `subfolders`
    without an upload `kind`, which must be a folder, '.' the input folder itself), or something of the other sort;
    `invalid_value` when it leads out of the folder through a symbolic link (what the run would refuse); None
    when it is there."""
    from .paths import confine

    # a folder is what a dataset names (subfolders, no upload kind); an upload kind (image, mesh, ...) names a file
    folder = subfolders and kind is None
    try:
        target = (input_dir if folder and value == INPUT_FOLDER_ITSELF
                  else confine(input_dir, value, input_name=name, subfolders=subfolders))
        if target.is_dir() if folder else target.is_file():
            return None
        if target.exists():      # a file where a folder is named fails only at run time: said now
            found = "a file" if target.is_file() else "a folder" if target.is_dir() else "not a regular file"
            wanted = (f"name a folder (the dataset's images are the files inside it; "
                      f"{INPUT_FOLDER_ITSELF!r} is the input folder itself)" if folder else "name a file")
            return GraphError("not_in_choices", f"input {name!r} of {node_type}: {value!r} in the input folder is "
                                                f"{found}; {wanted}", node_id=node_id, input=name,
                              details={"found": _short(value), "folder": "input"})
    except PathConfinementError as exc:
        return GraphError("invalid_value", f"input {name!r} of {node_type}: {exc.message}", node_id=node_id,
                          input=name, details={"found": _short(value), "rule": exc.rule})
    except OSError:
        return None
    message = missing_input_message(input_dir, value, "folder" if folder else "file", folder, kind)
    return GraphError("not_in_choices", f"input {name!r} of {node_type}: {message}",
                      node_id=node_id, input=name, details={"found": _short(value), "folder": "input"})


def model_write_errors(plan: Any) -> list[GraphError]:
    """`model_write_forbidden` for every node of a compiled plan that writes a model file: a node with a
    file-name input declared in a model folder (`Input(file_name_in="checkpoints")`, as every save node
    of a model does). A server refuses these for its plain users (docs/security.md)."""
    errors = []
    for node_id, node_plan in plan.nodes.items():
        spec = node_plan.cls.spec
        for name, ispec in spec.inputs.items():
            if ispec.file_name_in and ispec.file_name_in not in FILE_FOLDERS:
                errors.append(GraphError(
                    "model_write_forbidden",
                    f"node {node_id!r} ({spec.type}) writes a model file into the model folder "
                    f"{ispec.file_name_in!r}; on this server only admins may add or replace models, which every "
                    f"user loads. Save the result as an output instead, ask an admin to run the graph, or run it "
                    f"on your own nodegraph.",
                    node_id=node_id, input=name, details={"folder": ispec.file_name_in}))
                break
    return errors


def shown_folder(folder: str) -> str:
    """A folder as error messages show it, so a server's clients do not learn where it is installed: relative
    to the working folder when inside it ("models/loras"), "<nodegraph>/models/loras" inside the project (the
    shipped models' fallback folder), absolute otherwise (a folder the owner added)."""
    from .model_paths import PROJECT_ROOT

    path = Path(folder)
    for base, prefix in ((Path.cwd(), ""), (PROJECT_ROOT, "<nodegraph>/")):
        try:
            return prefix + path.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return str(folder)


def model_file_error(node_id: str, name: str, folder: str, value: str,
                     available: list[str], searched: list[str]) -> GraphError:
    """The `not_in_choices` error for a model file name that is not in its folder."""
    dangling = next((d for d in searched if isinstance(value, str) and _dangling_link(d, value)), None)
    searched = [shown_folder(folder) for folder in searched]
    where = ", ".join(searched) or "(no folders configured)"
    have = ", ".join(repr(a) for a in available[:20]) or "none"
    if dangling is not None:
        return GraphError(
            "not_in_choices",
            f"{value!r} in model folder {folder!r} is a link that points nowhere (its target is missing or the link "
            f"loops: a disk that is not mounted, a moved file?); mount or restore its target, or remake the link. "
            f"Available: {have}.", node_id=node_id, input=name,
            details={"folder": folder, "available": available, "searched": searched, "dangling_link": True})
    suffix_listed = any(name.lower().endswith(Path(value).suffix.lower()) for name in available) \
        if Path(value).suffix else False
    unlisted = None if suffix_listed else unlisted_ending_problem(folder, value, searched)
    if unlisted is not None:        # there, but of an ending the folder does not list
        return GraphError(
            "not_in_choices", f"{unlisted} Available: {have}.", node_id=node_id, input=name,
            details={"folder": folder, "available": available, "searched": searched,
                     "unlisted_suffix": Path(value).suffix or "(no ending)"})
    return GraphError(
        "not_in_choices",
        f"no file {value!r} in model folder {folder!r}.{suggest(value, available)} "
        f"Available: {have}. Looked in: {where}. Pick one of those, put the file there, or add its folder to the "
        f"model paths (--model-paths FILE or NODEGRAPH_MODEL_PATHS where the server or command starts: "
        f"docs/models.md).",
        node_id=node_id, input=name,
        details={"folder": folder, "available": available, "searched": searched})


def unlisted_ending_problem(folder: str, value: str, directories: Iterable[Any]) -> str | None:
    """When file `value` is in one of model folder `folder`'s directories but the folder lists no files of its
    ending: what to say (the plugin registers the ending); else None."""
    there = next((d for d in directories if _plain_file_in(d, value)), None)
    if there is None:
        return None
    suffix = Path(value).suffix or "(no ending)"
    return (f"{value!r} is in {there}, but model folder {folder!r} lists no files ending in {suffix}. A plugin "
            f"that reads such files registers the folder's endings (`register_model_folders`: {{{folder!r}: "
            f"[{suffix!r}]}}); a model file of another format: convert it.")


def _stays_inside(name: str) -> bool:
    """A name that cannot leave its folder by its text (no `..`, not absolute, no NUL): links are not looked at."""
    return not (os.path.isabs(name) or ".." in name.replace("\\", "/").split("/") or "\0" in name)


def _plain_file_in(directory: str | Path, name: str) -> bool:
    """Whether `directory/name` is a file, for a name that stays inside the folder (no `..`, not absolute)."""
    if not _stays_inside(name):
        return False
    try:
        return (Path(directory) / name).is_file()
    except (OSError, ValueError):
        return False


def _dangling_link(directory: str | Path, name: str) -> bool:
    """Whether `directory/name` is a symlink whose target does not exist (or that loops); False for a name that
    could leave the folder (`..`, absolute): nothing is said of paths outside it."""
    if not _stays_inside(name):
        return False
    try:
        path = Path(directory) / name
        return path.is_symlink() and not path.exists()
    except (OSError, ValueError):
        return False


def _article(word: str) -> str:
    """'a' or 'an' before a port name read as a word ("an INT", "an IMAGE", "a STRING")."""
    return "an" if str(word)[:1].upper() in "AEIOU" else "a"


def _literal_error(node_id: str, node_type: str, name: str, ispec: Any, value: Any,
                   err: dict[str, Any]) -> GraphError:
    kind = err.get("type", "")
    ctx = err.get("ctx", {})
    if kind in _RANGE_ERRORS:
        bound = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}",
                 "less_than": "< {lt}", "less_than_equal": "<= {le}"}[kind].format(**ctx)
        fix = "Use a value in range."
        if "seed" in name and value == -1:         # A1111 / InvokeAI: -1 means "a random seed"
            fix = ("-1 is A1111's 'random seed', which a saved graph cannot repeat: give a seed, or connect a "
                   "RandomInt node to it (the seed it draws is written into the saved image's graph).")
        return GraphError(
            "out_of_range",
            f"input {name!r} of {node_type} must be {bound}; found {_short(value)}. {fix}",
            node_id=node_id, input=name, details={"found": value, **{k: v for k, v in ctx.items()}})
    if kind == "multiple_of":
        return GraphError(
            "invalid_value",
            f"input {name!r} of {node_type} must be a multiple of {ctx.get('multiple_of')}; found {_short(value)}.",
            node_id=node_id, input=name, details={"found": value, "multiple_of": ctx.get("multiple_of")})
    if kind == "literal_error":
        choices = list(ispec.choices or ())
        return GraphError(
            "not_in_choices",
            f"input {name!r} of {node_type} must be one of {', '.join(repr(c) for c in choices)}; "
            f"found {_short(value)}.{suggest_choice(str(value), choices)}",
            node_id=node_id, input=name, details={"found": value, "choices": choices})
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("bool_type", "is_instance_of"):
        hint = ""
        if ispec.port == "STRING" and not isinstance(value, str):
            hint = " Text goes in quotes (in a graph file: \"123\"; with --set, any value of a text input is text)."
        elif ispec.port in ("INT", "FLOAT") and isinstance(value, str):
            hint = _number_text_hint(value, ispec.port)
        elif ispec.port == "INT" and isinstance(value, float) and value.is_integer():
            hint = (" A number with a decimal point or exponent this large is a float, which cannot hold every "
                    "integer past 2**53; write the integer itself (digits only).")
        return GraphError(
            "type_mismatch",
            f"input {name!r} of {node_type} expects {_article(ispec.port)} {ispec.port} value; found "
            f"{_short(value)}.{hint}",
            node_id=node_id, input=name, details={"expected": ispec.port, "found": type(value).__name__})
    return GraphError(
        "invalid_value",
        f"input {name!r} of {node_type}: {err.get('msg', 'invalid value')}; found {_short(value)}.",
        node_id=node_id, input=name, details={"found": _short(value)})


def _number_text_hint(text: str, port: str) -> str:
    """The fix for text where a number goes: NaN / infinity are no graph value; a number in quotes is text."""
    try:
        number = float(text)
    except ValueError:
        return " Give a whole number (e.g. 7)." if port == "INT" else " Give a number (e.g. 7.5)."
    if number != number or number in (float("inf"), float("-inf")):
        return " Give a finite number (NaN and infinity are not values a graph can hold)."
    return " Write the number without quotes."


def _short(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it, shortened: JSON for true / false / null, lists and objects (not
    Python's True / None / ['a', 1]), quoted text, numbers as they are."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"   # repr stops at 4300
    try:
        text = (json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (bool, list, dict))
                or value is None else repr(value))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CHECKED_LINK_VALUES = (int, float, str)


def linked_value_error(node_type: str, name: str, ispec: Any, value: Any, source: str, output: str) -> str | None:
    """Why a value arriving through a link breaks the input's declared limits (range, multiple, choices, length),
    or None. Literals are checked at validation; a linked number is known only when its source has run, so the
    executor asks here before `run` (an IntMath power chain must not hand a 250 000-bit integer onward).
    Only the limits are checked: a value of another type is left to the node, as before. A text linked into
    an input that names a file (`file_name_in=`, `model_folder=`) must stay inside its folder, as a literal must
    (the node, or the API it calls, would refuse it too, but naming no input); a folder input's '.' is the input
    folder itself, as a literal's is."""
    folder = ispec.file_name_in or ispec.model_folder
    if folder and type(value) is str and not (value == INPUT_FOLDER_ITSELF and is_folder_input(ispec)):
        try:
            check_name(value, what="file name", input_name=name, subfolders=bool(ispec.subfolders or ispec.model_folder),
                       where=f"the {folder} folder")
        except PathConfinementError as exc:
            return f"the value from node {source!r} output {output!r} does not fit: {exc.message}"
        suffix = ispec.file_suffix if ispec.file_name_in else None
        if suffix and (not value.endswith(suffix) or value.rsplit("/", 1)[-1].startswith(".")):
            return (f"the value from node {source!r} output {output!r} does not fit: a file name ending in {suffix} "
                    f"(and not starting with '.') is expected, found {_short(value)}; e.g. 'my_model{suffix}'")
    if ispec.adapter is None or type(value) not in _CHECKED_LINK_VALUES:
        return None
    try:
        ispec.adapter.validate_python(value)
    except ValidationError as exc:
        error = _literal_error("", node_type, name, ispec, value, exc.errors()[0])
        if error.code == "type_mismatch":
            return None
        return f"the value from node {source!r} output {output!r} does not fit: {error.message}"
    except (RecursionError, TypeError, ValueError):
        return None
    return None


def _check_cycles(graph: Graph) -> list[GraphError]:
    """One `cycle` error per strongly connected component (networkx names the nodes)."""
    _, left_over = topological_order(graph.nodes)
    if not left_over:
        return []
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(left_over)
    for node_id in left_over:
        for value in graph.nodes[node_id].inputs.values():
            if isinstance(value, Link) and value.node in g:
                g.add_edge(value.node, node_id)
    errors = []
    for component in nx.strongly_connected_components(g):
        if len(component) == 1:
            (only,) = component
            if not g.has_edge(only, only):
                continue
        cycle = [u for u, _ in nx.find_cycle(g.subgraph(component))]
        path = " → ".join(cycle + [cycle[0]])
        errors.append(GraphError(
            "cycle",
            f"links form a cycle: {path}. A graph must be acyclic; remove one of these links.",
            node_id=cycle[0], details={"nodes": cycle}))
    return errors
