"""An input's declared limits hold for values that arrive through links, not only for literals.

A stranger's graph of three IntMath nodes (2**63 - 1 to the power 4096, that to the power 96) froze a
server for the whole run: a big-integer multiply holds the interpreter lock, and the range check of `a`
applied to literals only. Now IntMath keeps INT's 64-bit range and the executor checks every linked
number, text and choice against the input's limits before `run`.
"""

from __future__ import annotations

import time

import pytest

from nodegraph import NodeExecutionError, NodeInputError, Session

from .conftest import link


def _power_chain(first_power: int, second_power: int) -> dict:
    return {"format_version": 2, "nodes": {
        "p1": {"type": "IntMath", "inputs": {"a": 2**63 - 1, "b": first_power, "op": "power"}},
        "p2": {"type": "IntMath", "inputs": {"a": link("p1", "result"), "b": second_power, "op": "power"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("p2", "result")}}}}


def _failure(graph: dict) -> NodeExecutionError:
    with pytest.raises(NodeExecutionError) as info:
        Session().run(graph)
    return info.value


def test_the_power_chain_fails_at_once_naming_the_input():
    started = time.perf_counter()
    failure = _failure(_power_chain(4096, 96))
    assert time.perf_counter() - started < 5
    assert failure.node_id == "p1"
    assert isinstance(failure.exception, NodeInputError) and failure.exception.input == "b"
    assert "64 bits" in str(failure.exception) and "Math for floats" in str(failure.exception)


@pytest.mark.parametrize(("a", "op", "b"), [(2**63 - 1, "multiply", 3), (2**64 - 1, "add", 1),
                                            (-(2**63), "subtract", 1), (3, "power", 41)])
def test_int_math_results_stay_in_range(a, op, b):
    graph = {"format_version": 2, "nodes": {
        "m": {"type": "IntMath", "inputs": {"a": a, "b": b, "op": op}},
        "show": {"type": "ShowValue", "inputs": {"value": link("m", "result")}}}}
    failure = _failure(graph)
    assert "past INT's range" in str(failure.exception)


def test_int_math_in_range_is_unchanged():
    graph = {"format_version": 2, "nodes": {
        "m": {"type": "IntMath", "inputs": {"a": 3, "b": 39, "op": "power"}},
        "n": {"type": "IntMath", "inputs": {"a": link("m", "result"), "b": 2**63, "op": "add"}},  # unsigned
        "show": {"type": "ShowValue", "inputs": {"value": link("n", "result")}}}}
    assert Session().run(graph).outputs["show"]["value"] == 3**39 + 2**63


def test_a_linked_number_over_an_inputs_limit_is_refused_before_run():
    """IntMath may give 10 000 000 000; EmptyLatent's width takes at most 16 384."""
    graph = {"format_version": 2, "nodes": {
        "w": {"type": "IntMath", "inputs": {"a": 100_000, "b": 100_000, "op": "multiply"}},
        "latent": {"type": "EmptyLatent", "inputs": {"width": link("w", "result"), "height": 8}},
        "show": {"type": "ShowValue", "inputs": {"value": link("latent", "latent")}}}}
    failure = _failure(graph)
    assert failure.node_id == "latent"
    assert isinstance(failure.exception, NodeInputError) and failure.exception.input == "width"
    message = str(failure.exception)
    assert "from node 'w' output 'result'" in message and "must be <= 16384" in message and "10000000000" in message


def test_a_linked_text_over_its_length_and_a_linked_choice_outside_its_list():
    text = {"format_version": 2, "nodes": {
        "t": {"type": "String", "inputs": {"value": "x" * 300}},
        "load": {"type": "LoadImage", "inputs": {"image": link("t", "value")}},
        "show": {"type": "PreviewImage", "inputs": {"images": link("load", "image")}}}}
    failure = _failure(text)
    assert failure.node_id == "load" and failure.exception.input == "image"
    assert "from node 't' output 'value'" in str(failure.exception)

    choice = {"format_version": 2, "nodes": {
        "t": {"type": "String", "inputs": {"value": "cube"}},
        "m": {"type": "IntMath", "inputs": {"a": 2, "b": 3, "op": link("t", "value")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("m", "result")}}}}
    failure = _failure(choice)
    assert failure.node_id == "m" and failure.exception.input == "op"
    assert "must be one of" in str(failure.exception)


def test_a_huge_integer_is_described_not_printed():
    from nodegraph.validation import _short

    assert _short(10**5000) == "an integer of about 5001 digits"
    assert _short(12345) == "12345"


@pytest.mark.parametrize("node_type, name, extra", [
    ("LoadCheckpoint", "ckpt_name", {}),                                        # a model folder
    ("SaveImage", "filename_prefix", None),                                     # a place in the output folder
])
def test_a_linked_file_name_that_leaves_its_folder_is_refused_naming_the_input(node_type, name, extra):
    """A literal `../` name is refused at validation; one linked in from a String node reached the node, whose
    error (a LookupError from the folder lookup) named no input and asked the user to report it to the node's
    authors (a plugin author's finding). Linked file names get the literal's rule, naming the input."""
    nodes = {"s": {"type": "String", "inputs": {"value": "../../etc/passwd"}}}
    if extra is None:
        nodes["img"] = {"type": "RenderTinyWorld", "inputs": {"caption": "a red circle", "size": 32}}
        nodes["n"] = {"type": node_type, "inputs": {"images": link("img", "image"), name: link("s", "value")}}
    else:
        nodes["n"] = {"type": node_type, "inputs": {name: link("s", "value")}}
        nodes["show"] = {"type": "ShowValue", "inputs": {"value": link("n", "model")}}
    failure = _failure({"format_version": 2, "nodes": nodes})
    assert failure.node_id == "n" and failure.exception.input == name
    assert "from node 's' output 'value' does not fit" in str(failure.exception) and "'..'" in str(failure.exception)


def test_a_linked_model_file_name_gets_the_suffix_rule_too():
    """SaveLoRA's name must end in .safetensors: a literal `plain` was refused at validation, a linked one passed
    the linked check (a re-test) — the node failed later, or trained first."""
    from nodegraph.validation import linked_value_error

    session = Session()
    cls = next(c for c in (session.registry.nodes.get(t) for t in ("SaveLoRA", "SaveCheckpoint")) if c is not None)
    (name, spec) = next((n, s) for n, s in cls.spec.inputs.items() if s.file_suffix)
    problem = linked_value_error(cls.spec.type, name, spec, "plain", "s", "value")
    assert problem is not None and f"ending in {spec.file_suffix}" in problem
    assert linked_value_error(cls.spec.type, name, spec, f"ok{spec.file_suffix}", "s", "value") is None
