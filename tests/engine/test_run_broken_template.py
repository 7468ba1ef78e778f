"""`nodegraph run <template id>` of a template that is not readable JSON says the parse error (as `nodegraph
templates` does), not "No such file or directory"."""

from __future__ import annotations

import importlib
import sys

from nodegraph import Session
from nodegraph.cli import main


def test_running_a_broken_template_by_id_says_its_parse_error(tmp_path, monkeypatch, capsys):
    package = tmp_path / "site" / "nodegraph_tplbroken"
    (package / "graphs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "graphs" / "broken.json").write_text('{"format_version": 2, "nodes": {\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    module = importlib.import_module("nodegraph_tplbroken")
    session = Session(plugins=[("tplbroken", module)], autoload=False)

    import nodegraph.cli as cli

    monkeypatch.setattr(cli, "_session", lambda args, **kw: session)
    monkeypatch.chdir(tmp_path)
    assert main(["templates"]) == 0
    listed = capsys.readouterr()
    assert "Expecting property name" in listed.out + listed.err
    code = main(["run", "tplbroken/broken.json", "--output-dir", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "broken.json is not a readable JSON graph: Expecting property name" in err, err
    assert "No such file or directory" not in err
    sys.modules.pop("nodegraph_tplbroken", None)
