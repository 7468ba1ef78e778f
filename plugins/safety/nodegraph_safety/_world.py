"""`world`: the tiny world kit of the public API (`nodegraph.api.tiny_world()`), looked up on first use.

The plugin's modules write ``world.render(...)``, ``world.SceneSpec`` ... as before; the lookup is
lazy so importing the plugin (during plugin loading) does not load the built-in packs a second time.
"""

from __future__ import annotations

from typing import Any

from nodegraph import api


class _TinyWorld:
    """Attribute access goes to `api.tiny_world()` (fetched once)."""

    _kit: Any = None

    def __getattr__(self, name: str) -> Any:
        if _TinyWorld._kit is None:
            _TinyWorld._kit = api.tiny_world()
        return getattr(_TinyWorld._kit, name)


world = _TinyWorld()
