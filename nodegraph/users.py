"""Named users of a shared server: a token file, roles and per-user limits.

    nodegraph users add alice --file users.json [--admin] [--max-queued 20] [--max-bytes 2e9] [--max-run-seconds 3600]
    nodegraph users set alice --file users.json [--admin | --role user] [--max-...]   (keeps the token)
    nodegraph users list --file users.json
    nodegraph users remove alice --file users.json
    nodegraph serve --users users.json

The file (JSON, written by the commands above; edit by hand if you like) maps
user names to their settings. Tokens are never stored, only their SHA-256:
tokens are 32 random bytes (`secrets.token_urlsafe`), so a fast hash is as safe
as a slow one and keeps the per-request check cheap::

    {"users": {"alice": {"token_sha256": "…", "role": "user",
                         "max_queued": 20, "max_bytes": 2000000000,
                         "max_run_seconds": 3600}}}

Roles: `user` sees, cancels, interrupts, re-queues and downloads only its own
runs and files, and its graphs read and write only its own folders
(`input/<name>/`, `output/<name>/`) and never the shared model folders (a
graph that saves a model is refused: `model_write_forbidden`); `admin` sees and
manages every run and every file, and may save models. Limits: `max_queued`
(queued + running runs at once), `max_bytes` (bytes stored in the user's
input and output folders and in their runs' stored graphs) and
`max_run_seconds` (how long one run may execute — waiting in the queue does not
count — before the server stops it: one user cannot hold the only worker for
hours); `null` means unlimited. An admin is held to none of the limits.
Without a users file a server has one anonymous user who may do everything
(the single-user default), guarded by `--token` when it listens beyond loopback.

A running server reads the file again within a second or two of a change
(`UserBook.refresh`): a removed user's or a replaced token stops working, and
the connections opened with it are closed; a removed user's queued runs are
not run. A file that no longer reads — malformed, an unknown key, two users
with one token — leaves the users as they were (the server logs why).

Main objects: `User`, `UserBook` (load/save/refresh, `authenticate(token)`),
`main` (the `nodegraph users` command).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROLES = ("user", "admin")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")     # whole name (fullmatch: `$` let "eve\n" through)
DEFAULT_MAX_QUEUED = 20
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_RUN_SECONDS = 3600
LIMITS = ("max_queued", "max_bytes", "max_run_seconds")
_DEFAULTS = {"max_queued": DEFAULT_MAX_QUEUED, "max_bytes": DEFAULT_MAX_BYTES,
             "max_run_seconds": DEFAULT_MAX_RUN_SECONDS}
# the least value of each (max_queued 0 holds a user's runs — a way to pause them —; a 0 s run limit failed
# every run the moment it started)
_LEAST = {"max_queued": 0, "max_bytes": 0, "max_run_seconds": 1}


class UsersFileError(ValueError):
    """The users file is missing, unreadable or malformed; the message names the fix."""


def hash_token(token: str) -> str:
    """The stored form of a token (a token holding a lone surrogate, which no issued token does, hashes to what no
    stored token is: it raised UnicodeEncodeError, an internal_error for a hello)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class User:
    """One named user: role and limits (None = unlimited)."""

    name: str
    role: str = "user"
    max_queued: int | None = DEFAULT_MAX_QUEUED
    max_bytes: int | None = DEFAULT_MAX_BYTES
    max_run_seconds: int | None = DEFAULT_MAX_RUN_SECONDS

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def check_user_name(name: str) -> str:
    """A user name is also a folder name: lower-case letters, digits, `_` and `-`, at most 32."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsersFileError(f"user name {name!r} is not allowed: use 1-32 lower-case letters, digits, '_' or '-', "
                             f"starting with a letter (it becomes the user's folder name)")
    from .paths import DEVICE_NAMES

    if name.upper() in DEVICE_NAMES:
        raise UsersFileError(f"user name {name!r} is not allowed: it is a device name Windows reserves "
                             f"({name.upper()}), and the name becomes the user's folder name; choose another")
    return name


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten (`save` replaces it: a new inode), or None if it is gone."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def users_changes(before: dict[str, tuple[User, str]], after: dict[str, tuple[User, str]]) -> str:
    """What a users-file change did, for the server's log (an audit trail): who was added or removed, whose role,
    limits or token changed — never a token or its hash. "nothing that counts" when only the layout changed."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changes = [f"added {', '.join(f'{name} ({after[name][0].role})' for name in added)}"] if added else []
    changes += [f"removed {', '.join(removed)}"] if removed else []
    for name in sorted(set(before) & set(after)):
        (old, old_hash), (new, new_hash) = before[name], after[name]
        if old.role != new.role:
            changes.append(f"{name}: role {old.role} → {new.role}")
        if (old.max_queued, old.max_bytes, old.max_run_seconds) != (new.max_queued, new.max_bytes,
                                                                   new.max_run_seconds):
            changes.append(f"{name}: limits changed")
        if old_hash != new_hash:
            changes.append(f"{name}: new token")
    return "; ".join(changes) or "nothing that counts"


class UserBook:
    """The users of a server, keyed by the hash of their token."""

    def __init__(self, users: dict[str, tuple[User, str]] | None = None, path: Path | None = None):
        self.path = path
        self._users: dict[str, tuple[User, str]] = dict(users or {})     # name -> (user, token hash)
        self._by_hash = {token_hash: user for user, token_hash in self._users.values()}
        self._stamp = _file_stamp(path) if path is not None else None    # the file as it was read
        self.last_refresh_error: str | None = None
        self.last_changes = ""           # what the last `refresh` changed (`users_changes`), for the server's log

    def refresh(self) -> bool:
        """Read the file again if it changed since it was read (`nodegraph users add|remove` on a running
        server); True when it did. A file that no longer reads keeps the users as they were: the error is
        returned to the caller's log through `last_refresh_error`."""
        self.last_refresh_error = None
        if self.path is None:
            return False
        stamp = _file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            fresh = UserBook.load(self.path)
        except UsersFileError as exc:
            self.last_refresh_error = str(exc)
            return False
        self.last_changes = users_changes(self._users, fresh._users)
        self._users, self._by_hash = fresh._users, fresh._by_hash
        return True

    @classmethod
    def load(cls, path: str | os.PathLike) -> UserBook:
        """Read a users file; UsersFileError says what is wrong and how to fix it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsersFileError(f"no users file {path}; create one with `nodegraph users add NAME --file {path}`") \
                from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsersFileError(f"cannot read the users file {path}: {exc}") from None
        except RecursionError:      # a traceback from the command, and the server stopped following the file
            raise UsersFileError(f"cannot read the users file {path}: it is nested too deeply to be one") from None
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise UsersFileError(f'{path}: expected {{"users": {{NAME: {{"token_sha256": ..., "role": ...}}}}}}')
        if set(data) != {"users"}:       # a "user": {...} beside "users" was a user nobody could sign in as
            extra = ", ".join(map(repr, sorted(set(data) - {"users"})))
            raise UsersFileError(f"{path}: unknown top-level key(s) {extra}"
                                 f"; the file holds only \"users\" (each user's entry goes inside it)")
        users: dict[str, tuple[User, str]] = {}
        holders: dict[str, str] = {}      # token hash → the first user with it
        for name, entry in entries.items():
            check_user_name(name)
            if isinstance(entry, dict) and isinstance(entry.get("token_sha256"), str):
                entry = {**entry, "token_sha256": entry["token_sha256"].lower()}     # hex is hex, in either case
            if not isinstance(entry, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("token_sha256", ""))):
                raise UsersFileError(f"{path}: user {name!r} needs a 64-hex-digit token_sha256; remove "
                                     f"the entry from the file (the commands refuse a file they cannot read), then "
                                     f"`nodegraph users add {name} --file {path}` gives them a new token")
            unknown = sorted(set(entry) - {"token_sha256", "role", *LIMITS})
            if unknown:      # a misspelt limit ("max_byts") was no limit at all
                from .validation import suggest

                raise UsersFileError(f"{path}: user {name!r} has unknown key(s) {', '.join(map(repr, unknown))}."
                                     f"{suggest(unknown[0], ['token_sha256', 'role', *LIMITS])} "
                                     f"Keys are token_sha256, role, {', '.join(LIMITS)}")
            first = holders.setdefault(entry["token_sha256"], name)
            if first != name:      # one token would sign in as either of them (a copied entry)
                raise UsersFileError(f"{path}: users {first!r} and {name!r} have the same token_sha256, so one token "
                                     f"signs in as both; remove {name!r}'s entry from the file (the commands refuse a "
                                     f"file they cannot read), then `nodegraph users add {name} --file {path}` gives "
                                     f"them a new token")
            role = entry.get("role", "user")
            if role not in ROLES:
                raise UsersFileError(f"{path}: user {name!r} has role {role!r}; roles are {', '.join(ROLES)}")
            limits = {}
            for key in LIMITS:
                value = entry.get(key, _DEFAULTS[key])
                least = _LEAST[key]
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                    raise UsersFileError(f"{path}: user {name!r}: {key} must be a whole number ≥ {least} or null "
                                         f"(no limit)")
                limits[key] = value
            users[name] = (User(name, role, **limits), entry["token_sha256"])
        return cls(users, path)

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the file (mode 0600: it is a list of who may use the server); through a symlink, its target (the
        link was replaced by a copy, and a server reading the target never saw the change)."""
        path = Path(path or self.path)
        if path.is_symlink():
            path = path.resolve()
        body = {"users": {name: {"token_sha256": token_hash, **{k: v for k, v in asdict(user).items() if k != "name"}}
                          for name, (user, token_hash) in sorted(self._users.items())}}
        from .files import replace_file

        replace_file(path, json.dumps(body, indent=2) + "\n", mode=0o600)

    def add(self, user: User) -> str:
        """Add (or replace) a user with a new random token; returns the token (shown once). Limits that the file
        could not be read back with (negative, not whole numbers) are refused: the file is never written so."""
        token = secrets.token_urlsafe(32)
        self._put(user, hash_token(token))
        return token

    def update(self, user: User) -> None:
        """Change an existing user's role and limits, keeping their token (`nodegraph users set`)."""
        entry = self._users.get(user.name)
        if entry is None:
            raise UsersFileError(f"no user {user.name!r}; add one with `nodegraph users add {user.name}`")
        self._put(user, entry[1])

    def _put(self, user: User, token_hash: str) -> None:
        check_user_name(user.name)
        if user.role not in ROLES:
            raise UsersFileError(f"role {user.role!r}: roles are {', '.join(ROLES)}")
        for key in LIMITS:
            value = getattr(user, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < _LEAST[key]):
                raise UsersFileError(f"user {user.name!r}: {key} must be a whole number ≥ {_LEAST[key]}, or none for "
                                     f"no limit; found {value!r}")
        self._users[user.name] = (user, token_hash)
        self._by_hash = {h: u for u, h in self._users.values()}

    def get(self, name: str) -> User | None:
        """The user of that name, or None."""
        entry = self._users.get(name)
        return entry[0] if entry is not None else None

    def remove(self, name: str) -> bool:
        found = self._users.pop(name, None) is not None
        self._by_hash = {token_hash: u for u, token_hash in self._users.values()}
        return found

    def authenticate(self, token: str | None) -> User | None:
        """The user whose token this is, or None."""
        if not token:
            return None
        return self._by_hash.get(hash_token(token))

    def users(self) -> list[User]:
        return [user for user, _ in sorted(self._users.values(), key=lambda pair: pair[0].name)]

    def __len__(self) -> int:
        return len(self._users)


@dataclass(frozen=True)
class _Limit:
    """A limit given on the command line: a number, or None for "no limit" (written `none`)."""

    value: int | None


def _limit_count(text: str) -> _Limit:
    if text.strip().lower() in ("none", "null", "unlimited"):
        return _Limit(None)
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (or none for no limit)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a limit is 0 or more (or none for no limit)")
    return _Limit(value)


def _limit_bytes(text: str) -> _Limit:
    if text.strip().lower() in ("none", "null", "unlimited"):
        return _Limit(None)
    from .distributed.options import parse_bytes

    return _Limit(parse_bytes(text, allow_zero=True))


def _limits_text(user: User, separator: str) -> str:
    text = separator.join(f"{key}={getattr(user, key)}" for key in LIMITS)
    return text + (f"{separator}(limits do not apply to admins)" if user.is_admin else "")


def _seconds_limit(text: str) -> _Limit:
    limit = _limit_count(text)
    if limit.value == 0:
        raise argparse.ArgumentTypeError("0 s would stop every run as it starts: give 1 or more (or none for no "
                                         "limit)")
    return limit


def _role_and_limit_options(parser: argparse.ArgumentParser) -> None:
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--admin", dest="role", action="store_const", const="admin",
                      help="may see and manage every user's runs and files")
    role.add_argument("--role", choices=ROLES, help="the role (user or admin); --admin is --role admin")
    parser.add_argument("--max-queued", type=_limit_count, default=None,
                        help=f"queued + running runs at once (0 pauses the user: their queued runs wait), or none for no limit (new "
                             f"users: {DEFAULT_MAX_QUEUED})")
    parser.add_argument("--max-bytes", type=_limit_bytes, default=None,
                        help=f"bytes stored in the user's folders, e.g. 2GiB or 500M, or none for no limit (new "
                             f"users: {DEFAULT_MAX_BYTES // 1024**3} GiB)")
    parser.add_argument("--max-run-seconds", type=_seconds_limit, default=None,
                        help=f"how long one run may execute before the server stops it (queueing not counted), or "
                             f"none for no limit (new users: {DEFAULT_MAX_RUN_SECONDS}; admins are never stopped)")


def main(argv: list[str] | None = None) -> int:
    """`nodegraph users add|set|list|remove`."""
    parser = argparse.ArgumentParser(
        prog="nodegraph users", description="Manage the users of a shared server. A running server reads the file "
                                            "again within a second: changes take effect without a restart.")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add a user, or give an existing one a new token (its role and limits are "
                                     "kept unless given here); prints the token once")
    add.add_argument("name")
    _role_and_limit_options(add)
    change = sub.add_parser("set", help="change a user's role or limits, keeping their token")
    change.add_argument("name")
    _role_and_limit_options(change)
    remove = sub.add_parser("remove", help="remove a user: their token stops working and their queued runs do not "
                                           "run")
    remove.add_argument("name")
    sub.add_parser("list", help="list users, roles and limits")
    for p in (add, change, remove, sub.choices["list"]):
        p.add_argument("--file", default="users.json", help="the users file (default users.json)")
    args = parser.parse_args(argv)
    path = Path(args.file)
    try:
        book = UserBook.load(path) if (path.exists() or args.action != "add") else UserBook(path=path)
        if args.action in ("add", "set"):
            before = book.get(args.name)
            if args.action == "set" and before is None:
                raise UsersFileError(f"no user {args.name!r} in {path}; add one with `nodegraph users add "
                                     f"{args.name} --file {path}`")
            base = before or User(args.name)
            user = User(args.name, args.role or base.role,
                        **{key: getattr(base, key) if getattr(args, key) is None else getattr(args, key).value
                           for key in LIMITS})
            if args.action == "set":
                if user == before:
                    print(f"user {user.name}: nothing to change (give --role/--admin or a --max-… limit)",
                          file=sys.stderr)
                    return 2
                book.update(user)
                book.save(path)
                print(f"user {user.name} ({user.role}, {_limits_text(user, ', ')}): changed, same token; saved in "
                      f"{path}")
                return 0
            token = book.add(user)
            book.save(path)
            what = "a new token (the old one no longer works)" if before else "added"
            print(f"user {user.name} ({user.role}, {_limits_text(user, ', ')}): "
                  f"{what}; saved in {path}; token (shown once):")
            print(token)
        elif args.action == "remove":
            if not book.remove(args.name):
                print(f"no user {args.name!r} in {path}", file=sys.stderr)
                return 1
            book.save(path)
            print(f"removed user {args.name} from {path}: a running server closes their connections, interrupts "
                  f"their running run and does not run their queued ones (their files stay in the server's folders)")
        else:
            for user in book.users():
                print(f"{user.name}\t{user.role}\t{_limits_text(user, chr(9))}")
    except UsersFileError as exc:
        print(f"nodegraph users: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
