"""Every fingerprint written in the project's own nodes and plugins that stamps a file by its times includes the
change time: a copy that puts the old mtime back (`cp -p`, `rsync -t`, `touch -r`) kept a replaced audio, video,
3D or upscaler file's result in the cache (a hostile re-test; `Node.fingerprint` had it, the overrides did not)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_file_stamps_include_the_change_time():
    # the engine's cache and fingerprint code, and every node: what decides whether a file's result is reused
    engine = [ROOT / "nodegraph" / name for name in ("node.py", "files.py", "cache.py", "executor.py", "provenance.py")]
    sources = [*engine, *ROOT.glob("nodes/**/*.py"), *ROOT.glob("plugins/*/*/**/*.py")]
    assert len(sources) > 50
    stale = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"st_mtime_ns[^\n]*(?:\n[^\n]*){0,1}", text):
            if "st_ctime_ns" not in match.group(0) and "utime" not in match.group(0):
                line = text.count("\n", 0, match.start()) + 1
                stale.append(f"{path.relative_to(ROOT)}:{line}")
    assert not stale, f"file stamps without st_ctime_ns: {stale}"
