"""Where parallel work runs: a local pool of worker processes, or Ray Data on a Ray cluster (or a
local Ray). Either way ``run_map`` calls a module-level function on every item in worker processes
and yields the results as they arrive (unordered); ``setup`` runs once per worker before its first
item (it loads the model), so each worker holds one copy.

Ray is the optional ``scale`` extra: ``pip install "accent-rater[scale]"``. On Ray, each item is one
Ray Data row (pickled), one row per block up to ``MAX_BLOCKS`` blocks so that actors share the work
evenly; ``map_batches`` runs a callable class, one instance (and so one model) per actor.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

MAX_BLOCKS = 4096
IN_FLIGHT_PER_WORKER = 4  # pool: items submitted ahead of the results, per worker


@dataclass(frozen=True)
class Engine:
    """``ray=None``: ``workers`` local processes (default: one per ``cpus_per_worker`` cores; one
    worker runs in this process). ``ray="local"`` starts a local Ray; ``"auto"`` joins the running
    cluster; ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` that cluster. On Ray, ``workers`` actors
    (default: the cluster's CPUs / ``cpus_per_worker``), each reserving ``cpus_per_worker`` CPUs."""

    workers: int | None = None
    ray: str | None = None
    cpus_per_worker: int = 1

    def __post_init__(self) -> None:
        if (self.workers is not None and self.workers < 1) or self.cpus_per_worker < 1:
            raise ValueError("workers and cpus_per_worker must be at least 1")

    def describe(self) -> str:
        where = "local process pool" if self.ray is None else f"Ray ({self.ray})"
        return f"{where}, workers: {self.workers or 'auto'} x {self.cpus_per_worker} CPU"


def run_map(engine: Engine, fn: Callable[..., Any], items: Sequence[tuple], setup: Callable[[], Any] | None = None) -> Iterator[Any]:
    """``fn(*args)`` for every args tuple of ``items`` on ``engine``, results in completion order.
    ``fn`` and ``setup`` must be picklable (module-level functions or ``functools.partial`` of them)."""
    if not items:
        return iter(())
    if engine.ray is None:
        workers = engine.workers or max(1, (os.cpu_count() or 1) // engine.cpus_per_worker)
        return _pool(fn, items, min(workers, len(items)), setup)
    return _ray(engine, fn, items, setup)


def _pool(fn: Callable[..., Any], items: Sequence[tuple], workers: int, setup: Callable[[], Any] | None) -> Iterator[Any]:
    if workers == 1:
        if setup:
            setup()
        yield from (fn(*args) for args in items)
        return
    # spawn: a fresh interpreter per worker (no forked onnxruntime / torch thread pools)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=setup)
    pending: set[Future] = set()
    try:
        for args in items:
            pending.add(pool.submit(fn, *args))
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    finally:
        pool.shutdown(cancel_futures=True)


class _RayWorker:
    """The callable class ``map_batches`` runs: one per actor, ``setup`` once when it starts."""

    def __init__(self, fn: Callable[..., Any], setup: Callable[[], Any] | None) -> None:
        if setup:
            setup()
        self.fn = fn

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        return {"result": [pickle.dumps(self.fn(*pickle.loads(item))) for item in batch["item"]]}


def _ray_module() -> Any:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError:
        raise ImportError('Ray is not installed: pip install "accent-rater[scale]"') from None
    return ray


def _ray(engine: Engine, fn: Callable[..., Any], items: Sequence[tuple], setup: Callable[[], Any] | None) -> Iterator[Any]:
    ray = _ray_module()
    started = not ray.is_initialized()
    if started:  # a running Ray (ray.init() called by the caller) is used as it is
        ray.init(address=None if engine.ray == "local" else engine.ray, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the caller shows its own
        ctx.enable_auto_log_stats = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines
        workers = engine.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // engine.cpus_per_worker))
        ds = ray.data.from_items([{"item": pickle.dumps(args)} for args in items],
                                 override_num_blocks=min(len(items), MAX_BLOCKS))
        ds = ds.map_batches(_RayWorker, fn_constructor_args=(fn, setup), batch_size=1, num_cpus=engine.cpus_per_worker,
                            compute=ray.data.ActorPoolStrategy(size=workers))
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield from (pickle.loads(r) for r in batch["result"])
    finally:
        if started:
            ray.shutdown()
