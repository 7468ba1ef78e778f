"""Runs on a Ray cluster: worker actors that each hold a Session, model-affinity scheduling, batch jobs.

Ray (`pip install nodegraph[ray]`) is imported only when a pool starts, so importing this package,
`nodegraph --help` and `nodegraph validate` stay Ray- and torch-free. docs/distributed.md is the guide.

    sweep.py       `--sweep` specs (ranges, lists, CSV/JSONL files) → override dicts           (no Ray)
    scheduling.py  WorkerInfo, RunNeeds, the capability checks and the affinity policy        (no Ray)
    worker.py      SessionWorker: the actor class (a Session, its scratch folder, streamed events)
    pool.py        WorkerPool: connect / start actors, acquire a worker, execute with one retry,
                   interrupt, refresh (restarts, nodes joining or leaving), close
    backend.py     RayBackend: the server's Ray path (SQLite queue → pool → protocol events, files)
    batch.py       run_batch / BatchItem: many variants locally or on the pool, one folder + index.json;
                   `Session.map` and `nodegraph run --sweep` use it
    options.py     the --ray / --workers / --worker-* / --retry flags and what they build
"""
