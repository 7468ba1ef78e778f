"""What an operator sees (an operator's pass, findings 5, 6, 9-12): the sign-in cookie's path behind a prefix proxy,
`--allow-host` with a port, the token-refusal log behind a proxy, `/health`, the audit lines of the log, and the
counts that explain a plain user's wait."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from email.message import Message
from http.cookiejar import CookieJar

import pytest

import nodegraph.server as server_module
from nodegraph.protocol import LimitedLog
from nodegraph.run_queue import RunQueue
from nodegraph.server import build_parser, opening_url
from nodegraph.users import User, UserBook, users_changes

from .test_security import http_request as http_get
from .test_server import Client, RunningServer, wait_graph




@pytest.fixture
def users(tmp_path):
    book = UserBook(path=tmp_path / "users.json")
    tokens = {name: book.add(User(name, role="admin" if name == "root" else "user"))
              for name in ("alice", "bob", "carol", "root")}
    book.save()
    running = RunningServer(tmp_path, users=UserBook.load(tmp_path / "users.json"),
                            allowed_hosts=["gen.example.com"])
    running.tokens = tokens
    yield running
    running.stop()


def as_user(server, name: str) -> Client:
    return Client(server.url(f"/ws?token={server.tokens[name]}"))


# --- finding 5: the cookie's path ---------------------------------------------------------------------------------

class _Answer:
    """What http.cookiejar reads of a response: its headers."""

    def __init__(self, set_cookie: str):
        self._headers = Message()
        self._headers["Set-Cookie"] = set_cookie

    def info(self) -> Message:
        return self._headers


def browser_sends_cookie_to(set_cookie: str, signed_in_at: str, paths: list[str]) -> dict[str, bool]:
    """As a browser keeps a cookie (RFC 6265 path rules, http.cookiejar): which later request paths carry it."""
    jar = CookieJar()
    jar.extract_cookies(_Answer(set_cookie), urllib.request.Request(f"http://gen.example.com{signed_in_at}"))
    sent = {}
    for path in paths:
        request = urllib.request.Request(f"http://gen.example.com{path}")
        jar.add_cookie_header(request)
        sent[path] = request.has_header("Cookie")
    return sent


def test_the_sign_in_cookie_stays_under_the_editors_path(tmp_path):
    """`Path=/` sent the token to every other app behind the same proxy (`/grafana/`) and let two servers behind one
    proxy (`/a/`, `/b/`) sign each other out: no Path (the browser scopes it to the sign-in page's folder), or the
    proxy's X-Forwarded-Prefix. The editor's page, assets, websocket and files still get it, with and without one."""
    running = RunningServer(tmp_path, token="s3cret", allowed_hosts=["gen.example.com"])
    try:
        headers = {"Host": "gen.example.com"}
        plain = http_get(running.port, "/?token=s3cret", headers).getheader("Set-Cookie")
        assert "Path=" not in plain
        editor = ["/nodegraph/", "/nodegraph/assets/app.js", "/nodegraph/ws", "/nodegraph/files/output/a.png"]
        sent = browser_sends_cookie_to(plain, "/nodegraph/?token=s3cret", editor + ["/grafana/", "/b/", "/"])
        assert sent == {**{path: True for path in editor}, "/grafana/": False, "/b/": False, "/": False}
        at_root = browser_sends_cookie_to(plain, "/?token=s3cret", ["/", "/assets/app.js", "/ws", "/files/x.png"])
        assert all(at_root.values()), at_root          # no proxy: the whole (own) host, as before
        prefixed = http_get(running.port, "/?token=s3cret", {**headers, "X-Forwarded-Prefix": "/nodegraph/"})
        cookie = prefixed.getheader("Set-Cookie")
        assert cookie.endswith("; Path=/nodegraph")
        assert browser_sends_cookie_to(cookie, "/nodegraph/?token=s3cret", editor + ["/grafana/"]) == {
            **{path: True for path in editor}, "/grafana/": False}
        # a prefix that would add an attribute (or is no path) is not taken: no Path, never "; Domain=..."
        for bad in ("/x; Domain=evil.example", "nodegraph", "/a b", "//evil"):
            cookie = http_get(running.port, "/?token=s3cret", {**headers, "X-Forwarded-Prefix": bad}) \
                .getheader("Set-Cookie")
            assert "Path=" not in cookie and "Domain" not in cookie, bad
        # what the browser sends back is accepted on the page, its assets and the websocket
        name = f"nodegraph_token_{running.port}"
        assert http_get(running.port, "/", {"Cookie": f"{name}=s3cret"}).status != 401
        Client(running.url(), additional_headers={"Cookie": f"{name}=s3cret"}).close()
    finally:
        running.stop()


# --- finding 6: --allow-host NAME:PORT ------------------------------------------------------------------------

@pytest.mark.parametrize("given", ["gen.example.com:443", "gen.example.com:", "[::1]:8188", "10.0.0.5:80"])
def test_allow_host_with_a_port_is_refused_at_start(given, capsys):
    """A Host header is compared by its name (port stripped): NAME:443 was accepted and never matched (every
    proxied request got 421). Refused at start, with the bare name to give instead."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--allow-host", given])
    error = capsys.readouterr().err
    assert "has a port" in error and f"--allow-host {given.rsplit(':', 1)[0]}" in error


@pytest.mark.parametrize("given", ["gen.example.com", "::1", "[::1]", "10.0.0.5"])
def test_allow_host_takes_a_bare_name_or_address(given):
    assert build_parser().parse_args(["--allow-host", given]).allow_host == [given]


# --- finding 9: the token-refusal log behind a proxy ------------------------------------------------------------

def test_one_forwarded_clients_flood_does_not_hide_anothers_refusals(tmp_path, monkeypatch, caplog):
    """Behind a proxy every client has the proxy's address: 12 guesses from 10.0.0.66 used up that address's lines
    and 10.0.0.7's refusal was never logged. Keyed on the forwarded address (the proxy's own within a wider cap,
    so made-up X-Forwarded-For values still cannot flood the log)."""
    monkeypatch.setattr(server_module, "CLIENT_LOG", LimitedLog())
    running = RunningServer(tmp_path, token="s3cret", allowed_hosts=["gen.example.com"])
    try:
        with caplog.at_level(logging.WARNING, logger="nodegraph.server"):
            for n in range(12):
                http_get(running.port, f"/ws?token=guess{n}", {"Host": "gen.example.com",
                                                              "X-Forwarded-For": "10.0.0.66"})
            http_get(running.port, "/?token=typo", {"Host": "gen.example.com", "X-Forwarded-For": "10.0.0.7"})
            refused = [r.getMessage() for r in caplog.records if "without a valid token" in r.getMessage()]
            assert sum("10.0.0.66" in line for line in refused) == 10
            assert sum("10.0.0.7'" in line for line in refused) == 1
            caplog.clear()
            for n in range(120):     # each request a made-up forwarded address: the proxy's cap holds
                http_get(running.port, "/?token=x", {"Host": "gen.example.com", "X-Forwarded-For": f"10.1.{n}.1"})
            refused = [r for r in caplog.records if "without a valid token" in r.getMessage()]
            assert len(refused) == 10 * LimitedLog.WITHIN_BURSTS - 11
            caplog.clear()
            # not through the proxy (the Host is not an --allow-host name): X-Forwarded-For is not a key
            for n in range(12):
                http_get(running.port, "/?token=x", {"X-Forwarded-For": f"10.2.{n}.1"})
            assert len([r for r in caplog.records if "without a valid token" in r.getMessage()]) == 10
    finally:
        running.stop()


def test_limited_log_within_caps_the_wider_kind_and_counts_what_it_left_out():
    now = [0.0]
    limited = LimitedLog(burst=2, window=60, clock=lambda: now[0])
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("test_limited_log_within")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for n in range(6):
        for _ in range(3):
            limited.log(logger, logging.INFO, f"c{n}", f"line c{n}", within="proxy")
    assert lines == ["line c0", "line c0", "line c1", "line c1", "line c2", "line c2", "line c3", "line c3",
                     "line c4", "line c4"]                        # 2 per client, 10 (5 × 2) in all for the proxy
    now[0] = 61
    limited.log(logger, logging.INFO, "c5", "line c5", within="proxy")
    assert lines[-1] == "line c5 (3 more like this were not logged)"     # c5's 3 (the proxy's cap took them)


# --- finding 10: /health ----------------------------------------------------------------------------------------

def test_health_answers_without_a_token_and_says_only_ok_or_degraded(tmp_path, monkeypatch):
    running = RunningServer(tmp_path, token="s3cret")
    try:
        response = http_get(running.port, "/health")
        assert response.status == 200 and json.loads(response.body) == {"status": "ok"}
        assert response.getheader("Content-Type") == "application/json"
        assert response.getheader("Cache-Control") == "no-store"
        assert http_get(running.port, "/health?details=1").status == 401
        details = json.loads(http_get(running.port, "/health?details=1",
                                      {"Authorization": "Bearer s3cret"}).body)
        assert details["status"] == "ok" and details["worker"] == "alive" and details["queued"] == 0
        assert details["running"] is None and details["running_total"] == 0 and details["uptime_seconds"] >= 0
        assert details["version"] == server_module.__version__
        # a long run: its age and the node it is in
        client = Client(running.url("/ws?token=s3cret"))
        client.send({"type": "submit", "graph": wait_graph(3)})
        run_id = client.next_of("submitted")["run_id"]
        client.next_of("node_started", run_id=run_id, node_id="w")
        details = json.loads(http_get(running.port, "/health?details=1", {"Authorization": "Bearer s3cret"}).body)
        assert details["running"]["run_id"] == run_id and details["running"]["node"] == "w"
        assert details["running"]["age_seconds"] >= 0 and details["running_total"] == 1
        client.next_of("run_finished", run_id=run_id)
        client.close()
        # the data folder takes no write (read-only, full): 503 with the reason, to anyone
        monkeypatch.setattr(server_module, "database_problem", lambda folder: "database_unwritable")
        running.server._health_checked = (float("-inf"), None)
        response = http_get(running.port, "/health")
        assert response.status == 503
        assert json.loads(response.body) == {"status": "degraded", "reason": "database_unwritable"}
        monkeypatch.undo()
        running.server._health_checked = (float("-inf"), None)
        assert http_get(running.port, "/health").status == 200
        # the worker thread is dead: nothing queued would ever run
        worker = running.server._worker
        dead = threading.Thread(target=lambda: None)
        dead.start()
        dead.join()
        running.server._worker = dead
        try:
            response = http_get(running.port, "/health")
            assert response.status == 503 and json.loads(response.body)["reason"] == "worker_stopped"
        finally:
            running.server._worker = worker
    finally:
        running.stop()


def test_health_details_are_an_admins(users, caplog, monkeypatch):
    """A plain user's token gets the 401 a wrong one gets (a 403 told a valid token from a guess), each refusal is
    logged as on every other path (none was: an unlogged token oracle), and only details=1/true asks for details
    (hostile5, finding 6)."""
    monkeypatch.setattr(server_module, "CLIENT_LOG", LimitedLog())
    assert http_get(users.port, "/health").status == 200
    with caplog.at_level(logging.WARNING, logger="nodegraph.server"):
        plain = http_get(users.port, "/health?details=1", {"Authorization": f"Bearer {users.tokens['bob']}"})
        wrong = http_get(users.port, "/health?details=true", {"Authorization": "Bearer guess"})
    assert (plain.status, plain.body) == (401, wrong.body) and wrong.status == 401
    refused = [r.getMessage() for r in caplog.records if "without a valid token" in r.getMessage()]
    assert len(refused) == 2 and all("/health?details=1" in line for line in refused)
    admin = http_get(users.port, "/health?details=1", {"Authorization": f"Bearer {users.tokens['root']}"})
    assert admin.status == 200 and json.loads(admin.body)["worker"] == "alive"
    for value in ("0", "false", ""):
        plain = http_get(users.port, f"/health?details={value}", {"Authorization": f"Bearer {users.tokens['root']}"})
        assert plain.status == 200 and json.loads(plain.body) == {"status": "ok"}


# --- finding 11: the audit lines of the log ---------------------------------------------------------------------

def test_the_log_says_who_started_interrupted_deleted_and_changed_what(users, caplog):
    caplog.set_level(logging.INFO, logger="nodegraph")
    alice, root = as_user(users, "alice"), as_user(users, "root")
    alice.send({"type": "submit", "graph": wait_graph(30)})
    run_id = alice.next_of("submitted")["run_id"]
    alice.next_of("node_started", run_id=run_id, node_id="w")
    root.send({"type": "interrupt", "run_id": run_id})
    root.next_of("interrupting")
    alice.next_of("run_interrupted", run_id=run_id)
    alice.send({"type": "get_outputs", "run_id": run_id})
    error = alice.next_of("outputs")["error"]
    assert error["message"].startswith("interrupted by admin root") and error["interrupted_by"] == "root"
    root.send({"type": "delete_run", "run_id": run_id})
    root.next_of("run_deleted")
    root.send({"type": "set_cache_policy", "policy": "none"})
    root.next_of("cache_policy")
    root.send({"type": "free_memory"})
    root.next_of("memory_freed")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"run {run_id} (user alice) started: 3 node(s)" in text
    assert f"admin root interrupted run {run_id} of user alice" in text
    assert f"run {run_id} (user alice) interrupted after" in text and "(interrupted by admin root)" in text
    assert f"admin root deleted run {run_id} of user alice" in text
    assert "admin root set the cache policy to none" in text
    assert "admin root freed the server's memory" in text
    alice.close()
    root.close()


def test_an_admins_cancel_of_another_users_queued_run_is_stored_with_the_run(users):
    """An admin's cancel of another user's queued run was only logged: its owner's history showed a cancel they
    never made. The run's stored error says who (`cancelled_by`), as an admin's interrupt does; a user's own cancel
    stores no error."""
    alice, root = as_user(users, "alice"), as_user(users, "root")
    alice.send({"type": "submit", "graph": wait_graph(30)})
    running = alice.next_of("submitted")["run_id"]
    queued = []
    for _ in range(2):
        alice.send({"type": "submit", "graph": wait_graph(0)})
        queued.append(alice.next_of("submitted")["run_id"])
    root.send({"type": "cancel", "run_id": queued[0]})
    root.next_of("cancelled")
    alice.send({"type": "cancel", "run_id": queued[1]})
    alice.next_of("cancelled")
    by_admin, own = users.server.queue.get(queued[0]), users.server.queue.get(queued[1])
    assert by_admin.status == "cancelled" and by_admin.error == {
        "code": "cancelled_by_admin", "message": "cancelled by admin root", "cancelled_by": "root"}
    assert own.status == "cancelled" and own.error is None
    alice.send({"type": "get_outputs", "run_id": queued[0]})
    assert alice.next_of("outputs")["error"]["cancelled_by"] == "root"
    alice.send({"type": "interrupt", "run_id": running})
    alice.close()
    root.close()


def test_a_users_file_change_names_who_was_added_removed_or_changed():
    before = {"alice": (User("alice"), "h1"), "bob": (User("bob"), "h2"), "dave": (User("dave"), "h4")}
    after = {"alice": (User("alice", role="admin"), "h1"), "carol": (User("carol"), "h3"),
             "dave": (User("dave", max_queued=1), "h5")}
    changes = users_changes(before, after)
    assert changes == ("added carol (user); removed bob; alice: role user → admin; dave: limits changed; "
                       "dave: new token")
    assert "h5" not in changes and "h4" not in changes
    assert users_changes(before, dict(before)) == "nothing that counts"


def test_the_start_says_how_many_queued_runs_were_kept(tmp_path, caplog):
    (tmp_path / "data").mkdir()
    queue = RunQueue(tmp_path / "data" / "runs.sqlite")
    for _ in range(2):
        queue.enqueue(wait_graph(0))
    queue.close()
    caplog.set_level(logging.INFO, logger="nodegraph.server")
    running = RunningServer(tmp_path)
    running.stop()
    assert any("2 queued run(s) kept from before this start" in r.getMessage() for r in caplog.records)


def test_the_banner_opens_the_proxys_address_when_one_is_named():
    assert opening_url("http://127.0.0.1:8188/", ["gen.example.com"]) == "https://gen.example.com/"
    assert opening_url("http://127.0.0.1:8188/?token=T", []) == "http://127.0.0.1:8188/"
    assert opening_url("http://127.0.0.1:8188/", ["::1"]) == "https://[::1]/"


# --- finding 12: a plain user's wait ----------------------------------------------------------------------------

def test_a_plain_user_behind_another_users_run_sees_counts_not_ids(users):
    """bob saw `running: None`, position 0, while alice's run held the only worker: `running_total` and
    `ahead_total` (other users' runs that start first) explain the wait without another user's ids."""
    alice, bob, carol = as_user(users, "alice"), as_user(users, "bob"), as_user(users, "carol")
    alice.send({"type": "submit", "graph": wait_graph(30)})
    first = alice.next_of("submitted")["run_id"]
    alice.next_of("node_started", run_id=first, node_id="w")
    bob.send({"type": "submit", "graph": wait_graph(0)})
    submitted = bob.next_of("submitted")
    assert submitted["position"] == 0 and submitted["running_total"] == 1 and submitted["ahead_total"] == 0
    carol.send({"type": "submit", "graph": wait_graph(0)})
    submitted = carol.next_of("submitted")
    assert submitted["running_total"] == 1 and submitted["ahead_total"] == 1      # bob's run goes first
    carol.send({"type": "queue_status"})
    status = carol.next_of("queue")
    assert status["running"] is None and status["running_all"] == []            # whose: still not told
    assert status["running_total"] == 1 and status["ahead_total"] == 1 and status["pending_total"] == 2
    assert first not in json.dumps(status)
    alice.send({"type": "interrupt", "run_id": first})
    alice.next_of("run_interrupted", run_id=first)
    for client in (alice, bob, carol):
        client.close()


# --- an interrupt of a node that never checks for it ------------------------------------------------------------

def test_the_interrupting_reply_names_the_running_node_and_whether_it_checks(tmp_path):
    """Interrupting a node that never checks for interrupts showed "interrupting…" for as long as it ran, with no
    word why. The reply names the running node (id, type) and says when it has not checked since it started."""
    from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl

    gate = threading.Event()

    class Stubborn(Node):
        """Waits for the test's gate and never checks for interrupts."""

        class Inputs(NodeInputs):
            value: int = Input(1)

        outputs = (Output("value", "INT"),)

        def run(self, value):
            gate.wait(20)
            return {"value": value}

    class Pack:
        @hookimpl
        def register_nodes(self):
            return [Stubborn]

    session = Session(plugins=[("stubborn_pack", Pack())], autoload=False, output_dir=tmp_path / "out",
                      input_dir=tmp_path / "in")
    running = RunningServer(tmp_path, session=session)
    client = Client(running.url())
    try:
        client.send({"type": "submit", "graph": {"format_version": 2, "nodes": {
            "slow": {"type": "Stubborn", "inputs": {"value": 3}},
            "s": {"type": "ShowValue", "inputs": {"value": {"node": "slow", "output": "value"}}}}}})
        run_id = client.next_of("submitted")["run_id"]
        client.next_of("node_started", run_id=run_id, node_id="slow")
        client.send({"type": "interrupt", "run_id": run_id})
        reply = client.next_of("interrupting")
        assert reply["node"] == {"node_id": "slow", "type": "Stubborn", "checks": False}
        assert "does not check for interrupts" in reply["message"] and "'slow'" in reply["message"]
        gate.set()
        client.next_of("run_interrupted", run_id=run_id)
        client.send({"type": "submit", "graph": wait_graph(30)})         # Wait checks while it waits
        run_id = client.next_of("submitted")["run_id"]
        client.next_of("node_started", run_id=run_id, node_id="w")
        time.sleep(0.3)
        client.send({"type": "interrupt", "run_id": run_id})
        reply = client.next_of("interrupting")
        assert reply["node"] == {"node_id": "w", "type": "Wait", "checks": True} and "message" not in reply
        client.next_of("run_interrupted", run_id=run_id)
    finally:
        gate.set()
        client.close()
        running.stop()
