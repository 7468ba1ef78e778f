"""One confinement rule for every name a graph (or a client) gives for a file or folder.

Every node input that names a file or folder — training run names, output file-name
prefixes, checkpoint file names, dataset folders, input images and masks, model names —
and every upload name goes through `confine(root, name)` before anything is opened,
created or listed. It returns `root / name` when the name is acceptable and raises
`PathConfinementError` (a `NodeInputError` naming the input, carrying the value and a
stable `rule`) otherwise.

The rule (each item is the `rule` code of the error it raises):

    not_text           the name is not a string
    empty              the name is empty (or only whitespace)
    too_long           more than MAX_NAME_BYTES (1024) UTF-8 bytes in all, or a component over
                       MAX_COMPONENT_BYTES (255; the usual file-system limit)
    control_character  NUL or any other control character (Unicode category Cc)
    bidi_control       a bidirectional override, embedding, isolate or mark (U+202E, ...): "x\u202egnp.exe"
                       would be listed as "xexe.png"
    format_character   any other invisible formatting character (Unicode category Cf: a zero-width space or
                       joiner, a soft hyphen, a byte-order mark): "a\u200b" is listed as "a", yet is another name
    backslash          a backslash (a separator on Windows, never part of a name here)
    absolute           starts with "/" (absolute paths and "//server" names)
    drive              starts with a drive letter ("C:", "c:foo")
    reserved_character any of < > : " | ? * (refused by Windows file systems)
    subfolder          contains "/" where only a plain name is allowed (`subfolders=False`)
    empty_component    "a//b", or a leading / trailing "/"
    dot                a "." component
    parent             a ".." component
    reserved_name      a Windows device name as a component (CON, PRN, AUX, NUL, COM1-9, LPT1-9, and
                       COM¹²³ / LPT¹²³, which Windows reads as COM1-3 / LPT1-3)
    trailing_dot       a component ending in "." or " " (Windows drops them: "a." would be "a")
    lookalike          a component written with look-alike characters of ".", "..", "/" or a device name
                       (its NFKC form: fullwidth dots "．．" and one-dot leaders "․․" read as ".." in a listing)
    outside_root       the real path (every symlink resolved) is not strictly inside the real
                       path of `root`; checked last, against the file system as it is now

`subfolders=True` allows "/"-separated components ("runs/a", "cats/tabby.png") where a
caller wants them (output prefixes, dataset folders, model names); every other rule still
holds for each component. `links_out=True` is for the model folders only: those folders
are configured by the machine's owner, who may link model files in from other disks, so a
symlink there may point outside the folder; every lexical rule still applies, so a client
can only reach what the owner linked in.

No torch, no I/O except `os.path.realpath` (which reads symlinks).
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from .errors import PathConfinementError

__all__ = ["MAX_COMPONENT_BYTES", "MAX_NAME_BYTES", "PathConfinementError", "DEVICE_NAMES", "check_name", "confine",
           "is_inside"]

MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255
_DRIVE = re.compile(r"^[A-Za-z]:")
DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10)),
                *(f"{port}{digit}" for port in ("COM", "LPT") for digit in "¹²³")}
RESERVED_CHARACTERS = '<>:"|?*'     # Windows refuses them in names


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when the real path of `path` lies strictly inside the real path of `root`."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real != real_root and real.startswith(real_root.rstrip(os.sep) + os.sep)


def confine(root: str | os.PathLike, name: object, *, what: str = "file name", input_name: str | None = None,
            subfolders: bool = False, links_out: bool = False) -> Path:
    """`root / name` if `name` passes the rule above, else PathConfinementError naming `input_name` (or `what`).

    Args:
        root: the folder the name must stay inside (it need not exist yet).
        name: the client-supplied name.
        what: what the name is, for messages ("run name", "dataset folder", ...).
        input_name: the node input (or message field) the name came from; named in the error.
        subfolders: allow "/"-separated subfolders inside `root`.
        links_out: accept a symlink that points outside `root` (model folders only; see above).
    """
    # The messages say "its folder", not the folder's path: a server sends them to its clients.
    check_name(name, what=what, input_name=input_name, subfolders=subfolders)
    path = Path(root) / name
    if not links_out and not is_inside(root, path):
        raise _refusal(name, what, input_name, subfolders, "its folder", "outside_root",
                       "leads outside its folder through a symbolic link")
    return path


def _refusal(name: object, what: str, input_name: str | None, subfolders: bool, where: str, rule: str,
             problem: str) -> PathConfinementError:
    shown = name if not isinstance(name, str) or len(name) <= 200 else name[:200] + "…"
    fix = (f"give {'an' if what[:1] in 'aeiou' else 'a'} {what} inside {where}, e.g. of letters, digits, '-', '_', "
           f"'.'" + (", with '/' between subfolders" if subfolders else "")
           + " (no '..', not absolute, none of < > : \" | ? * or backslashes)")
    return PathConfinementError(input_name or what, name, rule, f"{what} {shown!r} {problem}; {fix}")


_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_name(name: object, *, what: str = "file name", input_name: str | None = None, subfolders: bool = False,
               where: str = "its folder") -> None:
    """Every rule above but `outside_root`, which needs the folder: no file system, so validation can
    refuse a bad name before a run starts (`Input(file_name_in=...)`); `where` names the folder in the fix."""

    def refuse(rule: str, problem: str) -> PathConfinementError:
        return _refusal(name, what, input_name, subfolders, where, rule, problem)

    if not isinstance(name, str):
        raise refuse("not_text", f"is a {type(name).__name__}, not text")
    if not name.strip():
        raise refuse("empty", "is empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise refuse("too_long", f"is longer than {MAX_NAME_BYTES} bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise refuse("control_character", "contains a control character (NUL, newline, tab, ...)")
    if any(unicodedata.category(ch) == "Cs" for ch in name):     # "\ud800": no file system can name it
        raise refuse("not_text", "contains a lone UTF-16 surrogate (half of a character), which no file name can hold")
    if any(ch in _BIDI_CONTROLS for ch in name):     # "x\u202egnp.exe" shows as "xexe.png" in listings
        raise refuse("bidi_control", "contains a right-to-left / left-to-right override or mark, which makes the "
                                     "name display other than it is")
    invisible = next((ch for ch in name if unicodedata.category(ch) == "Cf"), None)
    if invisible is not None:
        raise refuse("format_character", f"contains the invisible character U+{ord(invisible):04X} (a zero-width "
                                         f"space or joiner, a soft hyphen, ...), so it shows as another name; "
                                         f"remove it")
    if "\\" in name:
        raise refuse("backslash", "contains a backslash")
    if name.startswith("/"):
        raise refuse("absolute", "is an absolute path")
    if _DRIVE.match(name):
        raise refuse("drive", "starts with a drive letter")
    from .prefix_tokens import without_date_tokens

    reserved = sorted(set(without_date_tokens(name)) & set(RESERVED_CHARACTERS))   # %date:hh:mm% is expanded
    if reserved:
        raise refuse("reserved_character", f"contains {' '.join(repr(ch) for ch in reserved)}, which Windows file "
                                           f"systems refuse (and shells read specially)")
    components = name.split("/")
    if ".." in components:           # said first: "../x" is a way out, not merely a subfolder
        raise refuse("parent", "contains a '..' component")
    if len(components) > 1 and not subfolders:
        raise refuse("subfolder", "contains '/': only a plain name is allowed here")
    # the name without its '/' is suggested only where this rule takes it: "./" would suggest the refused '.'
    # (a dataset folder input takes '.' as the input folder itself; validation says so for its "./")
    if (subfolders and name.endswith("/") and name.strip("/") and "//" not in name.strip("/")
            and "." not in name.rstrip("/").split("/")):
        raise refuse("empty_component", f"ends in '/' (a folder is named without it: {name.rstrip('/')!r})")
    for component in components:
        if component == "":
            raise refuse("empty_component", "has an empty component ('//' or a '/' at either end)")
        if component == "..":
            raise refuse("parent", "contains a '..' component")
        if component == ".":
            raise refuse("dot", "contains a '.' component")
        if len(component.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise refuse("too_long", f"has a component longer than {MAX_COMPONENT_BYTES} bytes")
        if component.split(".")[0].strip().upper() in DEVICE_NAMES:
            raise refuse("reserved_name", f"uses the reserved device name {component.split('.')[0]!r}")
        if component[-1] in ". ":
            raise refuse("trailing_dot", f"has a component ending in {component[-1]!r} ({component!r}), which Windows "
                                         f"drops (it would name {component.rstrip('. ')!r})")
        if _reads_as_special(component):
            raise refuse("lookalike", f"has a component {component!r} written with look-alike characters: it reads "
                                      f"as {unicodedata.normalize('NFKC', component)!r}; write it with plain letters")


def _reads_as_special(component: str) -> bool:
    """Whether `component`, not itself ".", ".." or a device name, reads as one (or holds a "/") once its look-alike
    characters are folded (NFKC: "．．" and "․․" → "..", "ＣＯＮ" → "CON"). Only these are refused: a name's other
    compatibility characters (a Japanese fullwidth "：", a "²") stay accepted."""
    folded = unicodedata.normalize("NFKC", component)
    return folded != component and (folded in (".", "..") or "/" in folded or "\\" in folded
                                    or folded.split(".")[0].strip().upper() in DEVICE_NAMES)

