"""ComfyUI's file-name prefix tokens, expanded when an output file is named.

A ComfyUI workflow's SaveImage prefix often holds tokens such as `%date:yyyy-MM-dd%/ComfyUI` or
`ComfyUI_%KSampler.seed%`; a user who imports it expects them to work. The tokens (ComfyUI's front end
expands the first and last kinds, its server the middle ones; here all at saving time):

    %date:FORMAT%                    the time of saving; FORMAT's letters as ComfyUI's: yyyy yy MM M dd d
                                     hh h mm m ss s (24-hour clock); other characters are kept
    %year% %month% %day% %hour% %minute% %second%    the time of saving (all but the year two digits)
    %width% %height%                 the saved image's size (where the saver knows it)
    %batch_num%                      the image's index in its batch (SaveImage: each image named apart)
    %NODE.INPUT%                     input INPUT of the run's node whose id, title or type is NODE (a value
                                     written in the graph; a linked or unset input is refused, naming it)

Any other `%...%` is left as written (as ComfyUI does). What a token gives is then checked like any
prefix (nodegraph/paths.py): a value that would leave the output folder is refused there.

    has_tokens(prefix)       whether there is anything to expand
    expand(prefix, ...)      the prefix with its tokens replaced; PrefixTokenError naming the token
    without_date_tokens(s)   `s` with its `%date:...%` tokens taken out (their ':' is not a file name's)
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

TOKEN = re.compile(r"%(date:[^%]{0,100}|[^%/\\\s]{1,100})%")
DATE_TOKEN = re.compile(r"%date:([^%]{0,100})%")
DATE_FIELDS = re.compile(r"yyyy|yy|MM|M|dd|d|hh|h|mm|m|ss|s")
TIME_NAMES = ("year", "month", "day", "hour", "minute", "second")


class PrefixTokenError(ValueError):
    """A token that cannot be expanded; the message names it and what to write instead."""


def has_tokens(prefix: str) -> bool:
    return "%" in prefix and TOKEN.search(prefix) is not None


def without_date_tokens(text: str) -> str:
    return DATE_TOKEN.sub("", text)


def format_date(pattern: str, now: datetime) -> str:
    """ComfyUI's date format: `yyyy-MM-dd` → 2026-12-06 (M, d, h, m, s unpadded; doubled: two digits)."""
    values = {"yyyy": f"{now.year:04d}", "yy": f"{now.year % 100:02d}", "MM": f"{now.month:02d}",
              "M": str(now.month), "dd": f"{now.day:02d}", "d": str(now.day), "hh": f"{now.hour:02d}",
              "h": str(now.hour), "mm": f"{now.minute:02d}", "m": str(now.minute), "ss": f"{now.second:02d}",
              "s": str(now.second)}
    return DATE_FIELDS.sub(lambda match: values[match.group(0)], pattern)


def expand(prefix: str, *, now: datetime | None = None, width: int | None = None, height: int | None = None,
           batch_num: int | None = None, graph: Any = None) -> str:
    """`prefix` with the tokens above replaced (module docstring). `graph`: the run's Graph (for %NODE.INPUT%)."""
    if not has_tokens(prefix):
        return prefix
    now = now or datetime.now()

    def replace(match: re.Match) -> str:
        token = match.group(1)
        if token.startswith("date:"):
            return format_date(token[len("date:"):], now)
        if token in TIME_NAMES:
            value = getattr(now, token)
            return str(value) if token == "year" else f"{value:02d}"
        if token in ("width", "height", "batch_num"):
            value = {"width": width, "height": height, "batch_num": batch_num}[token]
            if value is None:
                raise PrefixTokenError(f"%{token}% has no value here (this node does not save an image batch); "
                                       f"take it out of the prefix")
            return str(value)
        if "." in token and graph is not None:
            return _node_value(token, graph)
        return match.group(0)

    return TOKEN.sub(replace, prefix)


def _node_value(token: str, graph: Any) -> str:
    node_name, _, input_name = token.rpartition(".")
    nodes = graph.nodes
    node_id = node_name if node_name in nodes else next(
        (nid for nid, node in nodes.items() if node.title == node_name), None) or next(
        (nid for nid, node in nodes.items() if node.type == node_name or node.type.rpartition(".")[2] == node_name),
        None)
    if node_id is None:
        raise PrefixTokenError(f"%{token}% names node {node_name!r}, which the graph does not have (a node is "
                               f"named by its id, title or type); fix the token or take it out of the prefix")
    value = nodes[node_id].inputs.get(input_name)
    if value is None or not isinstance(value, (str, int, float, bool)):
        state = "is linked to another node" if value is not None else "is not written in the graph"
        raise PrefixTokenError(f"%{token}%: input {input_name!r} of node {node_id!r} ({nodes[node_id].type}) "
                               f"{state}; only a value written on the node can go into a file name")
    return str(value)
