"""The seed's handcrafted baseline: 72 spectral / energy / formant-like statistics of a log-mel
segment, for a RandomForest (``HandcraftedFamily``; a baseline, not exportable). Reproduced from the
seed's description (shared/seed/FACTS.md)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
from scipy.stats import kurtosis, skew

from .. import logmel
from .base import Family


def _stats4(x: np.ndarray) -> list[float]:
    return [float(x.mean()), float(x.std()), float(np.median(x)), float(np.ptp(x))]


def _names() -> list[str]:
    names = [f"spec_{s}" for s in ("mean", "std", "min", "max", "median", "range", "iqr", "skew", "kurt", "p25", "p75", "p90")]
    names += [f"frame_{s}" for s in ("mean", "std", "min", "max", "median", "range", "slope")]
    names += [f"band4_{i}" for i in range(4)] + [f"band4_ratio_{i}" for i in range(3)]
    names += [f"band8_{i}" for i in range(8)] + [f"band8_ratio_{i}" for i in range(7)]
    for feat in ("centroid", "bandwidth", "rolloff", "flatness"):
        names += [f"spectral_{feat}_{s}" for s in ("mean", "std", "median", "range")]
    names += ["contrast_mean", "contrast_std", "flux_mean", "flux_std", "energy_sign_changes"]
    names += ["energy_delta_mean", "energy_delta_std", "energy_accel_mean", "energy_accel_std"]
    names += ["formant1", "formant2", "formant3", "formant_ratio", "pitch_like_mean", "pitch_like_std"]
    return names


FEATURE_NAMES = _names()


def segment_features(mel_db: np.ndarray) -> np.ndarray:
    """(n_mels, frames) log-mel dB -> the 72 handcrafted features."""
    x = mel_db.astype(np.float64)
    flat = x.ravel()
    p25, p75, p90 = np.percentile(flat, [25, 75, 90])
    f = [flat.mean(), flat.std(), flat.min(), flat.max(), np.median(flat), np.ptp(flat), p75 - p25,
         float(skew(flat)), float(kurtosis(flat)), p25, p75, p90]
    frame = x.mean(axis=0)
    f += [frame.mean(), frame.std(), frame.min(), frame.max(), np.median(frame), np.ptp(frame), np.polyfit(np.arange(len(frame)), frame, 1)[0]]
    b4 = [x[i * 20:(i + 1) * 20].mean() for i in range(4)]
    b8 = [x[i * 10:(i + 1) * 10].mean() for i in range(8)]
    f += b4 + [b4[i + 1] - b4[0] for i in range(3)] + b8 + [b8[i + 1] - b8[0] for i in range(7)]
    power = 10 ** (x / 10)
    freqs = logmel.mel_centres()[:, None]
    total = power.sum(axis=0) + 1e-12
    centroid = (freqs * power).sum(axis=0) / total
    bandwidth = np.sqrt(((freqs - centroid) ** 2 * power).sum(axis=0) / total)
    cum = np.cumsum(power, axis=0) / total
    rolloff = freqs[np.argmax(cum >= 0.85, axis=0), 0]
    flatness = np.exp(np.log(power + 1e-12).mean(axis=0)) / (power.mean(axis=0) + 1e-12)
    for v in (centroid, bandwidth, rolloff, flatness):
        f += _stats4(v)
    contrast = np.percentile(x, 90, axis=0) - np.percentile(x, 10, axis=0)
    flux = np.sqrt((np.diff(x, axis=1) ** 2).mean(axis=0))
    f += [contrast.mean(), contrast.std(), flux.mean(), flux.std()]
    delta = np.diff(frame)
    f += [float(np.mean(np.diff(np.sign(delta)) != 0))]
    accel = np.diff(delta)
    f += [np.abs(delta).mean(), delta.std(), np.abs(accel).mean(), accel.std()]
    spectrum = x.mean(axis=1)
    peaks = [i for i in range(1, len(spectrum) - 1) if spectrum[i] >= spectrum[i - 1] and spectrum[i] >= spectrum[i + 1]]
    peaks = (peaks + [len(spectrum) - 1] * 3)[:3]
    fr = logmel.mel_centres()[peaks]
    f += [fr[0], fr[1], fr[2], fr[1] / max(fr[0], 1.0)]
    low = x[:8]  # < ~250 Hz: voicing energy as a pitch-like proxy
    f += [low.mean(), low.mean(axis=0).std()]
    out = np.asarray(f, dtype=np.float32)
    assert out.shape == (len(FEATURE_NAMES),)
    return np.nan_to_num(out)


ROWS_CACHE_SIZE = 4096  # recordings; ~2 KB of rows each
_rows_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
_rows_lock = threading.Lock()


def recording_rows(mels: np.ndarray) -> np.ndarray:
    """(S, 72) read-only features of a recording's segments. Cross-validation scores every recording
    in every fold, so the rows of the last ``ROWS_CACHE_SIZE`` recordings are kept, keyed by a digest
    of the mels themselves (never by object identity, and without keeping the mels alive)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{mels.dtype.str}{mels.shape}".encode())
    h.update(np.ascontiguousarray(mels).data)
    key = h.digest()
    with _rows_lock:
        rows = _rows_cache.get(key)
        if rows is not None:
            _rows_cache.move_to_end(key)
            return rows
    rows = np.stack([segment_features(m) for m in mels])
    rows.setflags(write=False)
    with _rows_lock:
        _rows_cache[key] = rows
        while len(_rows_cache) > ROWS_CACHE_SIZE:
            _rows_cache.popitem(last=False)
    return rows


class HandcraftedFamily(Family):
    """The seed's baseline: 72 handcrafted statistics per segment -> RandomForest of
    ``n_estimators`` trees on a class-balanced sample of ``max_segments`` segments (``seed``: the
    sample and the forest)."""

    name = "handcrafted"
    exportable = False  # a RandomForest has no array form a bundle could hold

    def __init__(self, *, n_estimators: int = 300, max_segments: int = 3000, seed: int = 0) -> None:
        super().__init__(n_estimators=n_estimators, max_segments=max_segments, seed=seed)

    def fit(self, train, y, val=None, y_val=None, weights=None) -> dict:
        from sklearn.ensemble import RandomForestClassifier

        per = [recording_rows(f.mels) for f in train]
        yy = np.concatenate([np.full(len(x), t) for x, t in zip(per, y)])
        w = np.concatenate([np.full(len(x), 1.0 if weights is None else weights[i]) for i, x in enumerate(per)])
        X = np.concatenate(per)
        rng = np.random.default_rng(self.params["seed"])
        # the seed trained on a class-balanced sample of 3,000 segments
        idx = np.concatenate([rng.permutation(np.flatnonzero(yy == c))[: self.params["max_segments"] // 2] for c in (0, 1)])
        self.rf = RandomForestClassifier(self.params["n_estimators"], n_jobs=1, random_state=self.params["seed"]).fit(X[idx], yy[idx], sample_weight=w[idx])
        return {}

    def segment_logits(self, feats) -> np.ndarray:
        p = np.clip(self.rf.predict_proba(recording_rows(feats.mels))[:, 1], 1e-3, 1 - 1e-3)
        return np.log(p / (1 - p))
