"""Which Ray worker runs a run: capability checks and the model-affinity policy (pure; no Ray).

Main objects:

    WorkerInfo        what the pool knows of one worker actor: name, node/host, node types it can
                      run, model files it has (per folder), the model files its cache holds warm,
                      runs in flight, last use
    RunNeeds          what one run needs: node types (with the plugin that provides each on the
                      server) and model files (folder, name)
    missing_on        what a worker lacks for a run (node types, model files), as readable strings
    choose_worker     the policy below; returns a worker or None (wait for a free slot)
    NoCapableWorker   no worker of the cluster can run the run; names every worker and what it lacks

Policy (docs/distributed.md, measured by benchmarks/ray_scaling.py):
  1. only workers able to run the run (every node type registered, every model file present);
     none at all → NoCapableWorker (the run fails with that message, sent to its submitter);
  2. only workers with a free slot (`in_flight < slots`); none → None (the run waits);
  3. most of the run's model files warm in the worker's cache (affinity: the worker reports
     which files' loader outputs its cache still holds, under the keys the cache uses — so a
     changed file, by size and mtime, is cold);
  4. then the least loaded (fewest runs in flight), then the one idle longest (spreads cold runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..errors import NodegraphError


@dataclass
class WorkerInfo:
    """The scheduler's view of one worker actor (refreshed by the pool)."""

    name: str
    host: str = "?"
    node_id: str = ""
    node_types: frozenset[str] = frozenset()
    models: dict[str, frozenset[str]] = field(default_factory=dict)   # folder → file names present
    warm: frozenset[str] = frozenset()          # "folder/name" whose loaded outputs its cache holds
    failed_plugins: dict[str, str] = field(default_factory=dict)   # plugin → why it did not load there
    in_flight: int = 0
    slots: int = 1
    last_used: float = 0.0
    alive: bool = True

    @property
    def label(self) -> str:
        """How errors name the worker: `w1 (host 10.0.0.5)`."""
        return f"{self.name} (host {self.host})"


@dataclass(frozen=True)
class RunNeeds:
    """What a run needs from a worker."""

    node_types: dict[str, str | None]            # qualified node type → plugin that provides it on the server
    model_files: tuple[tuple[str, str], ...]     # (folder, file name)

    @property
    def model_keys(self) -> frozenset[str]:
        return frozenset(f"{folder}/{name}" for folder, name in self.model_files)


class NoCapableWorker(NodegraphError):
    """No worker can run a run: every worker lacks a node type or a model file (named per worker)."""

    def __init__(self, lacks: dict[str, list[str]]):
        self.lacks = lacks
        parts = [f"{worker} lacks {', '.join(items)}" for worker, items in lacks.items()]
        fixes = []
        if any("failed to load there" in item for items in lacks.values() for item in items):
            fixes.append("make the plugin import on those nodes (the error above is theirs: a missing "
                         "dependency there, most often)")
        if any("is not installed there" in item for items in lacks.values() for item in items):
            fixes.append("install the plugin on every Ray node (same Python environment as the server)")
        if any("model file" in item for items in lacks.values() for item in items):
            fixes.append("copy the model file into a model folder of those nodes (or a shared one listed "
                         "in NODEGRAPH_MODEL_PATHS)")
        if not lacks:
            message = "the cluster has no workers"
            fixes.append("start workers (nodegraph serve --ray --workers N) or add Ray nodes")
        else:
            message = "no Ray worker can run this graph: " + "; ".join(parts)
        super().__init__(f"{message}. Fix: {'; '.join(fixes)}")


def missing_on(worker: WorkerInfo, needs: RunNeeds) -> list[str]:
    """What `worker` lacks for a run, as readable items (empty = it can run it)."""
    items = []
    for node_type, plugin in sorted(needs.node_types.items()):
        if node_type not in worker.node_types:
            if plugin and plugin in worker.failed_plugins:
                items.append(f"node type {node_type!r} (plugin {plugin!r} failed to load there: "
                             f"{worker.failed_plugins[plugin][:300]})")
            else:
                items.append(f"node type {node_type!r} (plugin {plugin!r} is not installed there)" if plugin
                             else f"node type {node_type!r}")
    for folder, name in needs.model_files:
        present = worker.models.get(folder)
        if present is not None and name not in present:
            items.append(f"model file {name!r} in its {folder!r} folder")
    return items


def capable_workers(workers: Iterable[WorkerInfo], needs: RunNeeds) -> list[WorkerInfo]:
    """Alive workers that can run the run; NoCapableWorker naming each worker's gaps if none can."""
    alive = [w for w in workers if w.alive]
    lacks = {w.label: missing_on(w, needs) for w in alive}
    able = [w for w in alive if not lacks[w.label]]
    if not able:
        raise NoCapableWorker({label: items for label, items in lacks.items() if items})
    return able


def choose_worker(workers: Iterable[WorkerInfo], needs: RunNeeds,
                  exclude: frozenset[str] = frozenset()) -> WorkerInfo | None:
    """The worker to run `needs` on now, or None when every capable worker is busy (see the policy).

    `exclude` names workers to avoid (e.g. the one a retried run was lost on) unless no other
    capable worker exists.
    """
    able = capable_workers(workers, needs)
    preferred = [w for w in able if w.name not in exclude] or able
    free = [w for w in preferred if w.in_flight < w.slots]
    if not free:
        return None
    wanted = needs.model_keys
    return max(free, key=lambda w: (len(wanted & w.warm), -w.in_flight, -w.last_used))
