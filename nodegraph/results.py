"""Turning a run's outputs into JSON and file references (for the CLI, server and history).

Output nodes that write files report them in their result under the key
`files`: a list of `{"path": str, "kind": "image" | ..., "format": "png" | ...}`.
`collect_files` gathers them (with the node id) so that the server can send
them as binary frames and serve them by id; `jsonable` makes every other value
JSON-ready (tensors and arrays become `{type, shape, dtype}` summaries).
"""

from __future__ import annotations

from typing import Any


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready rendering of a node output (large values summarised, never serialised whole)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 16:
        return repr(value)[:200]
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value[:1000]]
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in list(value.items())[:1000]}
    shape = getattr(value, "shape", None)
    if shape is not None:
        return {"type": type(value).__name__, "shape": list(shape), "dtype": str(getattr(value, "dtype", ""))}
    if hasattr(value, "size") and hasattr(value, "mode"):   # PIL image
        return {"type": "Image", "size": list(value.size), "mode": value.mode}
    return repr(value)[:200]


def collect_files(outputs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every file that output nodes reported, as `{node_id, path, kind, format, index}`."""
    found = []
    for node_id, values in outputs.items():
        files = values.get("files") if isinstance(values, dict) else None
        if not isinstance(files, list):
            continue
        for index, item in enumerate(files):
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                found.append({"node_id": node_id, "path": item["path"], "kind": item.get("kind", "file"),
                              "format": item.get("format"), "index": index})
    return found
