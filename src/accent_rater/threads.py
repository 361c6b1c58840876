"""Threads while rating: numpy's BLAS kept off the cores that onnxruntime and CTranslate2 use, and
the one way an onnxruntime session is made (its thread counts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=1)
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_BLAS_LOCK = threading.Lock()
_BLAS_HELD: list = []  # the limiter of the ratings running now, one entry per rating


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on the calling thread only while rating. Its worker threads otherwise spin for a
    while after every product (the log-mel's filter bank) and take the cores that onnxruntime and
    CTranslate2 run on: a 30 s rating took 380 ms instead of 266 (``scripts/bench_speed.py``). The
    products are small, so one thread loses nothing, and the results are the same. Ratings in
    parallel threads share one limit; the last to finish restores the process's own setting."""
    with _BLAS_LOCK:  # each rating (re)asserts one thread; the first one's originals are the process's own
        _BLAS_HELD.append(_blas().limit(limits=1, user_api="blas"))
        first = _BLAS_HELD[0]
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_HELD.pop()
            if not _BLAS_HELD:
                first.restore_original_limits()


def onnx_session(path: str | Path, threads: int = 1, quiet: bool = False) -> Any:
    """An onnxruntime CPU session of the model at ``path``: ``threads`` intra-op threads (pass 1
    when sessions run in parallel threads or processes), one inter-op thread. ``quiet``: only
    errors are logged (for files that carry unused initializers, which onnxruntime lists otherwise)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if quiet:
        opts.log_severity_level = 3
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=opts)
