"""The plugin surface: every hook a plugin may implement, in one place.

Plugins (and the built-in node packs) implement these with `@nodegraph.hookimpl`
and are found through the entry-point group `nodegraph` (built-ins: group
`nodegraph.builtins`). Each hook takes no arguments and returns a list or dict
that the engine merges; a hook that raises is reported against its plugin and
the plugin is skipped. See docs/plugins.md.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("nodegraph")
hookimpl = pluggy.HookimplMarker("nodegraph")


@hookspec
def register_types() -> list[Any]:
    """Return the `PortType`s this plugin adds (registered before any node)."""


@hookspec
def register_nodes() -> list[Any]:
    """Return the `Node` subclasses this plugin adds."""


@hookspec
def register_samplers() -> dict[str, Any]:
    """Return sampler functions by name (k-diffusion signature) to offer in sampler choices."""


@hookspec
def register_schedules() -> dict[str, Any]:
    """Return sigma-schedule functions by name to offer in schedule choices."""


@hookspec
def register_choice_lists() -> dict[str, Any]:
    """Return choice lists by name → a function returning the current choices (`Input(choices_from=name)`)."""


@hookspec
def register_model_folders() -> dict[str, list[str]]:
    """Return model folder names this plugin uses, each with its accepted file extensions."""


@hookspec
def register_model_dirs() -> dict[str, list[str]]:
    """Return model folder name → absolute directories the plugin ships (e.g. its models/), searched last."""


@hookspec
def register_comfyui_classes() -> dict[str, Any]:
    """Return ComfyUI class name → `api.ComfyUIClass(...)`: how that class imports as this plugin's node."""


@hookspec
def register_api() -> dict[str, Any]:
    """Return implementations of `nodegraph.api` functions by name (built-in packs; first registration wins)."""
