"""A node that runs out of memory fails with a message naming what to lower, not the allocator's C++ words.

A newcomer's 16384×16384 txt2img ended in `RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0.
DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes.`
"""

from __future__ import annotations

import sys
import types

import pytest

from nodegraph import Input, Node, NodeExecutionError, NodeInputs, Output, Session, hookimpl
from nodegraph.errors import NodeOutOfMemory


class Allocate(Node):
    output_node = True

    class Inputs(NodeInputs):
        width: int = Input(64)
        height: int = Input(64)
        how: str = Input("cpu")

    outputs = (Output("value", "INT"),)

    def run(self, width: int, height: int, how: str) -> dict:
        if how == "cpu":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 8589934592 bytes. Error code 12")
        if how == "python":
            raise MemoryError()
        raise RuntimeError("some other failure")


@pytest.fixture
def session():
    plugin = types.ModuleType("oom_test_plugin")
    plugin.register_nodes = hookimpl(lambda: [Allocate])
    sys.modules[plugin.__name__] = plugin
    return Session(plugins=[plugin])


def _graph(how: str) -> dict:
    return {"format_version": 2, "nodes": {"big": {"type": "Allocate",
                                                   "inputs": {"width": 16384, "height": 16384, "how": how}}}}


@pytest.mark.parametrize("how", ["cpu", "python"])
def test_out_of_memory_names_the_size_inputs(session, how):
    with pytest.raises(NodeExecutionError) as info:
        session.run(_graph(how))
    failure = info.value
    assert isinstance(failure.exception, NodeOutOfMemory) and failure.exception_type == "NodeOutOfMemory"
    message = str(failure.exception)
    assert "lower width=16384, height=16384" in message and "alloc_cpu" not in message
    if how == "cpu":
        assert "8.0 GiB" in message


def test_other_errors_are_left_as_they_are(session):
    with pytest.raises(NodeExecutionError) as info:
        session.run(_graph("other"))
    assert info.value.exception_type == "RuntimeError"
