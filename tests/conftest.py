"""Suite-wide settings: no installed plugins unless a test asks, few threads, no stray files."""

import os
import tempfile

# Tests never autoload installed plugins unless they ask to (Session(autoload=True)).
os.environ["NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.pop("NODEGRAPH_PLUGINS_ALLOW", None)
os.environ.pop("NODEGRAPH_PLUGINS_DENY", None)
os.environ.pop("NODEGRAPH_PLUGINS_PREFER", None)
os.environ.pop("NODEGRAPH_MEMORY_RESERVE_MB", None)
# File hashes (nodegraph/provenance.py) are remembered here, not in the home folder.
os.environ["NODEGRAPH_CACHE_DIR"] = tempfile.mkdtemp(prefix="nodegraph-test-cache-")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Each test runs in its own temporary directory (outputs land there, not in the repo)."""
    monkeypatch.chdir(tmp_path)


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)   # tiny test models: threads cost more than they give
    except ImportError:
        pass
