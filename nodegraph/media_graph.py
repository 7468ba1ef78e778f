"""The graph a video or GIF saved by the video plugin's SaveVideo carries, read from the file's own bytes.

SaveVideo writes the graph (JSON) into the container's text field (plugins/video, `video_io.py`): an MP4's
"comment" metadata (the iTunes-style `moov/udta/meta/ilst/©cmt/data` box ffmpeg writes), a WebM / Matroska
file's COMMENT tag (`Segment/Tags/Tag/SimpleTag`, TagName "COMMENT", TagString), a GIF's comment extension.
`nodegraph run clip.mp4`, `validate` and `Session.load` read it here — with no video library, by walking the
container's boxes / elements, never decoding a frame — so a video opens again as the graph that made it, as
VideoHelperSuite users drag an MP4 onto ComfyUI. `web/src/graph/mediaGraph.ts` does the same in the editor.

Files of the audio and 3D plugins carry it too: SaveAudio's WAV in a LIST/INFO `ICMT` chunk
(plugins/audio `waveform.wav_text_chunks`), SaveMesh / SavePointCloud's GLB in the JSON chunk's
`asset.extras.nodegraph`, PLY in a `comment nodegraph <json>` header line and OBJ in a leading
`# nodegraph <json>` line (plugins/threed `mesh_files.with_embedded_text`); they are read here the same way.

    graph_text_from_media(data) -> str | None     the embedded text (None: no such field, or not these formats)
    may_carry_graph(head) -> bool                 whether a file's first 16 bytes are one of these formats
"""

from __future__ import annotations

import struct

MAX_BOXES = 100_000          # boxes / elements / blocks walked in one file: a crafted file cannot loop for long
MAX_COMMENT_BYTES = 64 * 1024 * 1024     # a graph is at most this (graph.MAX_FILE_BYTES)
MAX_HEADER_BYTES = 128 * 1024            # of a PLY header / an OBJ's leading comments looked at (the 3D plugin
                                         # writes at most 60,000 bytes of them: mesh_files.MAX_HEADER_TEXT)


def may_carry_graph(head: bytes) -> bool:
    """Whether a file starting with `head` (16 bytes) is a format graph_text_from_media reads."""
    return _reader(bytes(head[:16])) is not None


def _reader(head: bytes):
    """The function that reads the graph text of a file starting with `head`, or None."""
    if head[4:8] == b"ftyp":
        return _mp4_comment
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _matroska_comment
    if head.startswith((b"GIF87a", b"GIF89a")):
        return _gif_comment
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return _wav_comment
    if head.startswith(b"glTF"):
        return _gltf_graph
    if head.startswith((b"ply\n", b"ply\r\n")):
        return lambda data: _header_line(data, b"comment nodegraph ", b"end_header")
    if head.startswith(b"# nodegraph "):
        return lambda data: _header_line(data, b"# nodegraph ", None)
    return None


def graph_text_from_media(data: bytes) -> str | None:
    """The graph text an MP4 / MOV, WebM / Matroska or GIF file carries (see the module docstring), or None. A
    VideoHelperSuite clip's comment — {"prompt": "<json>", "workflow": {...}} — gives its workflow (else its
    prompt), which `nodegraph run` and the editor import as ComfyUI files."""
    reader = _reader(bytes(data[:16]))
    if reader is None:
        return None
    try:
        text = reader(data)
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, RecursionError):
        return None          # a truncated or damaged container: no graph
    return _unwrapped(text) if text is not None else None


def _text(raw: bytes) -> str | None:
    """UTF-8 text (a BOM dropped, as a browser's decoder drops it), or None; decoded in place (no copy of a
    bytearray or memory-map slice first)."""
    try:
        return str(raw, "utf-8-sig")
    except UnicodeDecodeError:
        return None


def _unwrapped(text: str) -> str:
    """VideoHelperSuite's comment {"prompt": "<json>", "workflow": {...}} → the workflow's (else the prompt's) JSON;
    any other text as it is."""
    import json

    if '"workflow"' not in text and '"prompt"' not in text:
        return text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(value, dict) and "format_version" not in value and ("workflow" in value or "prompt" in value):
        inner = value.get("workflow") if isinstance(value.get("workflow"), dict) else value.get("prompt")
        if isinstance(inner, dict):
            return json.dumps(inner)
        if isinstance(inner, str):
            return inner
    return text


# --- MP4: ISO base media boxes -------------------------------------------------------------------------------

def _boxes(data: bytes, start: int, end: int, budget: list[int]):
    """(type, body start, body end) of the boxes in data[start:end]."""
    position = start
    while position + 8 <= end:
        budget[0] -= 1
        if budget[0] < 0:
            return
        size, kind = struct.unpack(">I4s", bytes(data[position:position + 8]))
        header = 8
        if size == 1:                                   # a 64-bit size follows
            size = struct.unpack(">Q", bytes(data[position + 8:position + 16]))[0]
            header = 16
        elif size == 0:                                 # to the end of the enclosing box
            size = end - position
        if size < header or position + size > end:
            return
        yield kind, position + header, position + size
        position += size


def _child(data: bytes, start: int, end: int, wanted: bytes, budget: list[int]) -> tuple[int, int] | None:
    return next(((s, e) for kind, s, e in _boxes(data, start, end, budget) if kind == wanted), None)


def _mp4_comment(data: bytes) -> str | None:
    return _itunes_comment(data) or _quicktime_comment(data)


def _quicktime_comment(data: bytes) -> str | None:
    """A MOV's `moov/udta/©cmt`: a 16-bit length and a 16-bit language, then the text (QuickTime's own form)."""
    budget = [MAX_BOXES]
    here = _child(data, 0, len(data), b"moov", budget)
    here = _child(data, here[0], here[1], b"udta", budget) if here else None
    here = _child(data, here[0], here[1], b"\xa9cmt", budget) if here else None
    if here is None or here[1] - here[0] < 4:
        return None
    length = struct.unpack(">H", data[here[0]:here[0] + 2])[0]
    return _text(data[here[0] + 4:min(here[1], here[0] + 4 + length)])


def _itunes_comment(data: bytes) -> str | None:
    budget = [MAX_BOXES]
    here: tuple[int, int] | None = (0, len(data))
    for wanted, skip in ((b"moov", 0), (b"udta", 0), (b"meta", 4), (b"ilst", 0), (b"\xa9cmt", 0), (b"data", 0)):
        here = _child(data, here[0], here[1], wanted, budget)
        if here is None:
            return None
        if skip:                                        # `meta` is a full box: version and flags first
            here = (here[0] + skip, here[1])
    start, end = here
    if end - start < 8:
        return None
    kind = struct.unpack(">I", data[start:start + 4])[0] & 0xFFFFFF
    return _text(data[start + 8:end]) if kind == 1 else None       # type 1: UTF-8 text


# --- Matroska / WebM: EBML elements ------------------------------------------------------------------------

_SEGMENT, _TAGS, _TAG, _SIMPLE_TAG, _TAG_NAME, _TAG_STRING = 0x18538067, 0x1254C367, 0x7373, 0x67C8, 0x45A3, 0x4487


def _vint(data: bytes, position: int, keep_marker: bool) -> tuple[int, int]:
    """(value, length) of an EBML variable-length integer at `position` (an element ID keeps its marker bit)."""
    first = data[position]
    length = next((n for n in range(1, 9) if first & (0x80 >> (n - 1))), 0)
    if not length:
        raise ValueError("not an EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[position + 1:position + length]:
        value = (value << 8) | byte
    if len(data) < position + length:
        raise ValueError("truncated")
    return value, length


def _elements(data: bytes, start: int, end: int, budget: list[int]):
    """(id, body start, body end) of the EBML elements in data[start:end]; an unknown size runs to `end`."""
    position = start
    while position < end:
        budget[0] -= 1
        if budget[0] < 0:
            return
        element, id_length = _vint(data, position, keep_marker=True)
        size, size_length = _vint(data, position + id_length, keep_marker=False)
        body = position + id_length + size_length
        unknown = size == (1 << (7 * size_length)) - 1      # all ones: "unknown size" (a live stream)
        stop = end if unknown else min(end, body + size)
        yield element, body, stop
        position = stop


def _matroska_comment(data: bytes) -> str | None:
    budget = [MAX_BOXES]
    for element, start, end in _elements(data, 0, len(data), budget):
        if element != _SEGMENT:
            continue
        for child, c_start, c_end in _elements(data, start, end, budget):
            if child != _TAGS:
                continue
            for tag, t_start, t_end in _elements(data, c_start, c_end, budget):
                for simple, s_start, s_end in (_elements(data, t_start, t_end, budget) if tag == _TAG else ()):
                    if simple != _SIMPLE_TAG:
                        continue
                    fields = {field: data[f_start:f_end] for field, f_start, f_end in
                              _elements(data, s_start, s_end, budget)}
                    if (_text(fields.get(_TAG_NAME, b"")) or "").upper() == "COMMENT" and _TAG_STRING in fields:
                        return _text(fields[_TAG_STRING])
    return None


# --- GIF: blocks ---------------------------------------------------------------------------------------------

def _sub_blocks(data: bytes, position: int, keep: bool) -> tuple[bytearray, int]:
    """The bytes of a chain of GIF sub-blocks at `position` (only when `keep`: skipping an image's data or another
    extension collects nothing — 10 M two-byte blocks took 45× the file's size), and the position after it. They are
    appended to one bytearray, up to MAX_COMMENT_BYTES: a comment cut into millions of 1-byte blocks took 45× the
    file's size as a list of one bytes object per block."""
    kept = bytearray()
    while True:
        size = data[position]
        position += 1
        if size == 0:
            return kept, position
        if keep and len(kept) < MAX_COMMENT_BYTES:
            kept += data[position:position + size]
        position += size


def _gif_comment(data: bytes) -> str | None:
    flags = data[10]
    position = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)      # header, screen, global colours
    for _ in range(MAX_BOXES):
        block = data[position]
        if block == 0x3B:                                   # trailer
            return None
        if block == 0x21:                                   # an extension: label, then sub-blocks
            label = data[position + 1]
            body, position = _sub_blocks(data, position + 2, keep=label == 0xFE)
            if label == 0xFE and (text := _text(body)) is not None and text.lstrip().startswith("{"):
                return text           # the first comment that is JSON (an editor may add "Created with GIMP")
        elif block == 0x2C:                                 # an image: descriptor, local colours, LZW data
            local = data[position + 9]
            position += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0) + 1
            _, position = _sub_blocks(data, position, keep=False)
        else:
            return None
    return None


# --- WAV: RIFF chunks ----------------------------------------------------------------------------------------

def _wav_comment(data: bytes) -> str | None:
    """A WAV's LIST/INFO `ICMT` text (SaveAudio's graph), its trailing NULs dropped; chunks are skipped by their
    sizes (the sound itself is never copied), MAX_BOXES of them at most."""
    position, end = 12, len(data)
    for _ in range(MAX_BOXES):
        if position + 8 > end:
            return None
        kind, size = bytes(data[position:position + 4]), struct.unpack("<I", data[position + 4:position + 8])[0]
        body, stop = position + 8, min(end, position + 8 + size)
        if kind == b"LIST" and bytes(data[body:body + 4]) == b"INFO":
            inner = body + 4
            while inner + 8 <= stop:
                sub, length = bytes(data[inner:inner + 4]), struct.unpack("<I", data[inner + 4:inner + 8])[0]
                if sub == b"ICMT" and length <= MAX_COMMENT_BYTES:
                    return _text(bytes(data[inner + 8:min(stop, inner + 8 + length)]).rstrip(b"\0"))
                inner += 8 + length + length % 2
        position = body + size + size % 2
    return None


# --- glTF (GLB), PLY, OBJ: the 3D plugin's files -------------------------------------------------------------

def _gltf_graph(data: bytes) -> str | None:
    """A binary glTF's JSON chunk's `asset.extras.nodegraph` (a JSON object), as JSON text."""
    import json

    length = struct.unpack("<I", data[12:16])[0]
    if bytes(data[16:20]) != b"JSON" or length > MAX_COMMENT_BYTES:
        return None
    document = json.loads(bytes(data[20:20 + length]))
    asset = document.get("asset") if isinstance(document, dict) else None
    extras = asset.get("extras") if isinstance(asset, dict) else None
    graph = extras.get("nodegraph") if isinstance(extras, dict) else None
    return json.dumps(graph) if isinstance(graph, dict) else None


def _header_line(data: bytes, prefix: bytes, stop: bytes | None) -> str | None:
    """The rest of the first line starting with `prefix` in a file's first MAX_HEADER_BYTES: in a PLY header
    (before `stop`, end_header), or among an OBJ's leading `#` lines (`stop` None: the first other line ends them)."""
    for line in bytes(data[:MAX_HEADER_BYTES]).split(b"\n"):
        line = line.rstrip(b"\r")
        if stop is not None and line.strip() == stop or stop is None and not line.startswith(b"#"):
            return None
        if line.startswith(prefix):
            return _text(line[len(prefix):])
    return None
