"""A plain user's FreeMemory node frees only what is theirs (an attacker's pass, finding 3).

It called the session's `free_memory` for the whole server: every user's cached results and loaded models went,
and everyone reloaded them — what the admin-only `free_memory` message forbids a plain user. Now a run with
`free_shared_memory=False` (the server's plain users) drops only its cache scope's entries, and warns so.
"""

from __future__ import annotations

from nodegraph import Session
from nodegraph.users import User, UserBook

from .test_server import Client, RunningServer

LOAD = {"format_version": 2, "nodes": {
    "ck": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
    "show": {"type": "ShowValue", "inputs": {"value": {"node": "ck", "output": "model"}}}}}
NUMBER = {"format_version": 2, "nodes": {
    "i": {"type": "Int", "inputs": {"value": 7}},
    "show": {"type": "ShowValue", "inputs": {"value": {"node": "i", "output": "value"}}}}}
FREE = {"format_version": 2, "nodes": {
    "i": {"type": "Int", "inputs": {"value": 1}},
    "free": {"type": "FreeMemory", "inputs": {"value": {"node": "i", "output": "value"}}},
    "show": {"type": "ShowValue", "inputs": {"value": {"node": "free", "output": "value"}}}}}


def test_a_plain_users_free_memory_keeps_the_models_and_other_users_results(tmp_path):
    """bob's loaded checkpoint and cached results stay through alice's FreeMemory; alice's own results go."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    plain = {"free_shared_memory": False}
    session.run(LOAD, cache_scope="bob", **plain)
    session.run(NUMBER, cache_scope="alice", **plain)
    assert "show" in session.run(NUMBER, cache_scope="alice", **plain).cached
    freed = session.run(FREE, cache_scope="alice", **plain)
    assert any("only this user's own cached results" in w["message"] for w in freed.warnings), freed.warnings
    again = session.run(LOAD, cache_scope="bob", **plain)
    assert again.executed == [] and "show" in again.cached          # bob's model and result: still cached
    assert "show" in session.run(NUMBER, cache_scope="alice", **plain).executed     # alice's own: dropped


def test_an_admins_or_single_users_free_memory_still_frees_everything(tmp_path):
    """Without free_shared_memory=False (a machine of one's own, an admin) FreeMemory drops every entry, as before."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    session.run(LOAD, cache_scope="bob")
    freed = session.run(FREE, cache_scope="root")
    assert not any("only this user's" in w["message"] for w in freed.warnings)
    assert "ck" in session.run(LOAD, cache_scope="bob").executed


def test_the_server_runs_a_plain_users_free_memory_in_their_scope_only(tmp_path):
    """On a server with users alice's FreeMemory left bob's checkpoint loaded (it made him reload it before)."""
    book = UserBook(path=tmp_path / "users.json")
    tokens = {name: book.add(User(name)) for name in ("alice", "bob")}
    running = RunningServer(tmp_path, users=book)
    try:
        alice, bob = (Client(running.url(f"/ws?token={tokens[name]}")) for name in ("alice", "bob"))
        for client, graph in ((bob, LOAD), (alice, FREE), (bob, LOAD)):
            client.send({"type": "submit", "graph": graph})
            run_id = client.next_of("submitted")["run_id"]
            finished = client.next_of("run_finished", run_id=run_id)
        assert finished["executed"] == [] and "show" in finished["cached"], finished
        alice.close()
        bob.close()
    finally:
        running.stop()
