"""Speaker-disjoint splits of recordings (``data.Recording``), stratified by label, one family:
``speaker_folds`` (StratifiedGroupKFold: the cross-validation folds), ``split_speakers`` (train / val /
test speaker ids; with ``test=0`` the early-stopping split inside a fold) and ``speaker_subset`` (a
class-balanced sample of speakers); ``select`` picks a split's recordings, ``write_splits`` /
``read_splits`` store ``{name: [speaker ids]}`` JSON. No speaker is ever on both sides of a split.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .data import LABELS, NATIVE, Recording


def _speaker_labels(recordings: Sequence[Recording]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for r in recordings:
        if labels.setdefault(r.speaker_id, r.label) != r.label:
            raise ValueError(f"speaker {r.speaker_id!r} has recordings with different labels")
    return labels


def speaker_folds(recordings: Sequence[Recording], k: int = 5, seed: int = 0) -> list[int]:
    """Fold index (0..k-1) per recording: speaker-disjoint, stratified by label (StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_speakers = len(_speaker_labels(recordings))
    if k < 2 or n_speakers < k:
        raise ValueError(f"need 2 <= k <= number of speakers ({n_speakers}), got k={k}")
    y = np.array([r.label == NATIVE for r in recordings], dtype=int)
    groups = np.array([r.speaker_id for r in recordings])
    folds = np.full(len(recordings), -1, dtype=int)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, test_idx) in enumerate(cv.split(np.zeros(len(y)), y, groups)):
        folds[test_idx] = i
    return folds.tolist()


def _shuffled_speakers(recordings: Sequence[Recording], seed: int) -> dict[str, list[str]]:
    """Per label (native first) its speakers in order of first appearance, shuffled by one seeded
    generator: what ``split_speakers`` and ``speaker_subset`` cut from."""
    rng = np.random.default_rng(seed)
    labels = _speaker_labels(recordings)
    out: dict[str, list[str]] = {}
    for label in LABELS:
        ids = [sid for sid, lab in labels.items() if lab == label]
        out[label] = [ids[i] for i in rng.permutation(len(ids))]
    return out


def split_speakers(
    recordings: Sequence[Recording], val: float = 0.15, test: float = 0.15, seed: int = 0
) -> dict[str, list[str]]:
    """Speaker ids for train / val / test, stratified by label: within each label the shuffled
    speakers give round(n*test) to test, then round(n*val) to val (at least one each when its
    fraction is above 0), the rest to train. ``test=0`` is the inner split for early stopping."""
    if val < 0 or test < 0 or val + test >= 1:
        raise ValueError(f"need val, test >= 0 and val + test < 1, got val={val}, test={test}")
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for ids in _shuffled_speakers(recordings, seed).values():
        n_test, n_val = (max(1, round(len(ids) * f)) if f > 0 else 0 for f in (test, val))
        out["test"] += ids[:n_test]
        out["val"] += ids[n_test:n_test + n_val]
        out["train"] += ids[n_test + n_val:]
    return {k: sorted(v) for k, v in out.items()}


def speaker_subset(recordings: Sequence[Recording], n: int, seed: int = 0) -> list[Recording]:
    """The recordings of ``n // 2`` shuffled speakers of each label (all of a label when it has
    fewer), label by label in shuffled order: a class-balanced sample for quick runs and reports."""
    by_speaker: dict[str, list[Recording]] = defaultdict(list)
    for r in recordings:
        by_speaker[r.speaker_id].append(r)
    return [r for ids in _shuffled_speakers(recordings, seed).values() for sid in ids[: n // 2] for r in by_speaker[sid]]


def assert_disjoint(splits: Mapping[str, Iterable[str]]) -> None:
    """Raise ValueError naming the first speaker found in two splits."""
    owner: dict[str, str] = {}
    for name, ids in splits.items():
        for sid in ids:
            if sid in owner and owner[sid] != name:
                raise ValueError(f"speaker {sid!r} leaks: it is in both {owner[sid]!r} and {name!r}")
            owner[sid] = name


def write_splits(path: str | os.PathLike, splits: Mapping[str, Iterable[str]]) -> Path:
    """Store ``{split name: [speaker ids]}`` as JSON after checking the splits are disjoint."""
    data = {name: sorted(set(ids)) for name, ids in splits.items()}
    assert_disjoint(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def read_splits(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read splits written by ``write_splits``; checks the structure and disjointness."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
    ):
        raise ValueError(f"{path}: expected a JSON object of split name -> list of speaker ids")
    assert_disjoint(data)
    return {str(k): list(v) for k, v in data.items()}


def select(recordings: Iterable[Recording], speaker_ids: Iterable[str]) -> list[Recording]:
    """The recordings whose speaker is in ``speaker_ids`` (e.g. ``select(recs, splits["train"])``)."""
    wanted = set(speaker_ids)
    return [r for r in recordings if r.speaker_id in wanted]
