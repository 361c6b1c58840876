"""Training: speaker-disjoint cross-validation of every configured family, stacking fusion,
calibration, threshold choice, and export of the bundled model.

    accent-rater train --config configs/default.toml                      # what the bundled model came from
    accent-rater train --config configs/experiments/seed_exp3_optimized.toml   # the seed's recipe, as a config

Everything is resumable: per-fold predictions and neural checkpoints are written to the run
directory and reused when the same command runs again (``--resume`` is the default).
"""

from __future__ import annotations

import copy
import functools
import json
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio, paths
from ..models import Family, family_class, get_family
from ..models.base import unknown_parameters
from ..serve.engine import Engine
from . import caches, data, splits
from .augment import augment_kind  # noqa: F401  (the training copies' kinds; scripts import it from here)

# --- configuration -------------------------------------------------------------------------------
# The default recipe: the repository's configs/default.toml (what the bundled default model came
# from), the single source of Config's recipe defaults. It is not package data: a wheel installed
# without the repository cannot see it, and then only a Config that states every recipe setting
# itself can be made (``default_recipe`` says so, naming the file); training runs from a checkout.
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "default.toml"
TABLES = ("data", "run")  # the tables whose keys are Config fields; plus [[models]] and [l1]


class _FromDefaultConfig:
    """Marks a Config field whose default is the value configs/default.toml gives it."""

    def __repr__(self) -> str:
        return "<from configs/default.toml>"


FROM_DEFAULT_CONFIG: Any = _FromDefaultConfig()


@dataclass
class Config:
    """One training run. A field marked ``FROM_DEFAULT_CONFIG`` defaults to what
    ``configs/default.toml`` (``DEFAULT_CONFIG``, the bundled default model's recipe) says, read
    when a Config is made without it (``default_recipe``); the other fields are switches whose code
    default is "off" and which default.toml leaves alone, except ``bundle_dir``: default.toml exports
    the bundled model, a Config that does not say so exports nothing, so that no run overwrites the
    bundled model unless its config says so. Each value is stated once (a test keeps it so).
    ``Config.load`` reads a config file (its ``base`` chain) on top of these defaults; a key that is
    not a Config field, in any table, is refused with the valid ones."""

    name: str
    corpus: str = FROM_DEFAULT_CONFIG
    cache: str = FROM_DEFAULT_CONFIG
    folds: int = FROM_DEFAULT_CONFIG
    seed: int = FROM_DEFAULT_CONFIG
    max_speakers: int = 0  # 0 = all; a stratified subset otherwise (integration tests)
    # The members: [[models]] tables, each a ``family`` (``models.FAMILIES``), an optional ``label``
    # and the family's parameters (``family_params``).
    models: list[dict[str, Any]] = FROM_DEFAULT_CONFIG
    fusion: bool = FROM_DEFAULT_CONFIG
    # Re-weight training speakers by group size: weight ~ n_group ** -group_weighting, group = native
    # variety (USA, UK, ..., other) for natives and first language for non-natives; 0 = unweighted.
    # Calibration and the threshold are always fitted unweighted.
    group_weighting: float = 0.0
    primary: str = ""  # model to bundle/calibrate; default: fusion if enabled else the first model
    out_dir: str = ""
    bundle_dir: str = ""  # export the primary model here ("" = do not export)
    workers: int = 0  # feature extraction: worker processes or Ray actors (0 = one per CPU)
    ray: str = ""  # "" = a local process pool; "local", "auto" or HOST:PORT = Ray Data (engine.py)
    # Input features: "mels" (log-mels + resemblyzer + prosody, ``features.Features``) or
    # "whisper-<size>" (the frozen Whisper encoder's pooled states, ``backbones.whisper.WhisperFeatures``).
    features: str = FROM_DEFAULT_CONFIG
    # Augmented training copies per recording (whisper features only): kind i of
    # ``augment.KINDS`` in turn, so every kind is used equally; held-out copies measure robustness.
    augment_copies: int = FROM_DEFAULT_CONFIG
    # First-language head (whisper features only; {} = none): ``models.whisper_heads.L1Head`` parameters.
    l1: dict[str, Any] = FROM_DEFAULT_CONFIG
    window_seconds: float = audio.CHUNK_SECONDS  # Whisper windows; 30 = each reading encoded (almost) whole
    # Other corpora (paths) trained, calibrated and evaluated beside ``corpus`` (``run_corpora``):
    # the first model entry is then a ``multicorpus.Recipe``.
    corpora: list[str] = FROM_DEFAULT_CONFIG
    copies: dict[str, int] = FROM_DEFAULT_CONFIG  # augmented copies per corpus (default augment_copies)
    short_corpora: list[str] = FROM_DEFAULT_CONFIG  # corpora whose 3 s windows train too

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) is FROM_DEFAULT_CONFIG:
                setattr(self, f.name, copy.deepcopy(default_recipe(f.name)))

    @property
    def engine(self) -> Engine:
        """Where the feature caches are built."""
        return Engine(self.workers or None, self.ray or None)

    def feature_dir(self, corpus: str) -> Path:
        """Where this config's features of ``corpus`` are cached under its cache root (``paths``)."""
        if self.features == "mels":
            return paths.mel_features(corpus, self.cache)
        from ..backbones.whisper import feature_tag

        window = None if self.window_seconds == audio.CHUNK_SECONDS else self.window_seconds
        return paths.whisper_features(feature_tag(self.features.removeprefix("whisper-")), corpus, window, self.cache)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> Config:
        """The config file at ``path`` (``read_config``), then ``overrides`` (None = not given), on
        top of the defaults; ``out_dir`` and ``primary`` filled in from the rest when empty."""
        known = {f.name for f in fields(cls)}
        message = unknown_parameters("Config.load", overrides, sorted(known), what="setting")
        if message:
            raise TypeError(message)
        cfg = cls(**{"name": Path(path).stem, **flatten_config(read_config(path), path)})
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        cfg.out_dir = cfg.out_dir or str(paths.run_dir(cfg.name))
        cfg.primary = cfg.primary or ("fusion" if cfg.fusion and len(cfg.models) > 1 else member_name(cfg.models[0]))
        return cfg


def flatten_config(raw: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """A config file's tables as Config fields: ``name``, every key of ``[data]`` and ``[run]``,
    ``[[models]]`` and ``[l1]``. An unknown top-level key or table, a ``[data]`` / ``[run]`` key
    that is not a Config field, or one key in both tables is refused, naming it and the valid ones."""
    top = ("name", *TABLES, "models", "l1")
    message = unknown_parameters(f"config {path}", raw, top, what="top-level key")
    if message:
        raise ValueError(message)
    tabled = sorted(f.name for f in fields(Config) if f.name not in ("name", "models", "l1"))
    flat: dict[str, Any] = {}
    for table in TABLES:
        values = raw.get(table, {})
        message = unknown_parameters(f"config {path} [{table}]", values, tabled, what="setting")
        if message:
            raise ValueError(message)
        twice = sorted(set(values) & set(flat))
        if twice:
            raise ValueError(f"config {path}: {', '.join(twice)} set in both [data] and [run]; keep one")
        flat.update(values)
    if "name" in raw:
        flat["name"] = raw["name"]
    flat.update({k: raw[k] for k in ("models", "l1") if k in raw})
    return flat


@functools.cache
def _default_config() -> dict[str, Any]:
    if not DEFAULT_CONFIG.exists():
        raise FileNotFoundError(
            f"Config's recipe defaults are read from {DEFAULT_CONFIG}, which is not there (an installed wheel does not ship "
            "the repository's configs/): train from a checkout of the repository (pip install -e .), or state every "
            "recipe setting in the config itself")
    flat = flatten_config(read_config(DEFAULT_CONFIG), DEFAULT_CONFIG)
    flat.pop("name", None)
    flat.pop("bundle_dir", None)  # the bundled model's export target, not a default (see Config)
    return flat


def default_recipe(key: str | None = None) -> Any:
    """configs/default.toml's value of Config field ``key`` (all of them, as a dict, without one):
    the defaults of Config's ``FROM_DEFAULT_CONFIG`` fields. Read once; callers get copies."""
    values = _default_config()
    if key is None:
        return copy.deepcopy(values)
    if key not in values:
        raise KeyError(f"{DEFAULT_CONFIG} gives no value for Config.{key}, whose default it should be")
    return copy.deepcopy(values[key])


def read_config(path: str | Path) -> dict[str, Any]:
    """A TOML experiment file; ``base = "other.toml"`` (relative to the file) inherits that file's
    tables, each key of ``[data]``, ``[run]`` and ``[l1]`` overridden by this file's, and
    ``[[models]]`` replaced when given."""
    path = Path(path)
    raw = tomllib.loads(path.read_text())
    if "base" not in raw:
        return raw
    merged = read_config(path.parent / raw.pop("base"))
    merged.pop("name", None)
    for key, value in raw.items():
        merged[key] = {**merged.get(key, {}), **value} if key in ("data", "run", "l1") else value
    return merged


def member_name(spec: dict[str, Any]) -> str:
    return spec.get("label", spec["family"])


def family_params(spec: dict[str, Any]) -> dict[str, Any]:
    """A [[models]] entry's parameters of its family: every key but ``family`` and ``label``."""
    return {k: v for k, v in spec.items() if k not in ("family", "label")}


def l1_head(params: dict[str, Any]):
    """``models.whisper_heads.L1Head`` with a config's ``[l1]`` settings; an unknown one is a
    TypeError naming it and the valid ones."""
    import inspect

    from ..models.whisper_heads import L1Head

    message = unknown_parameters("the first-language head [l1]", params, list(inspect.signature(L1Head).parameters), what="setting")
    if message:
        raise TypeError(message)
    return L1Head(**params)


# --- cross-validation ------------------------------------------------------------------------------
def fold_fingerprint(spec: dict[str, Any], seed: int, test_ids: Sequence[str], train_ids: Sequence[str]) -> str:
    """What a saved fold depends on: the member's spec, its seed and exactly which speakers it saw.
    A resumed run reuses a fold only when this matches, so an edited config never serves stale folds."""
    import hashlib

    key = json.dumps({"family": spec["family"], "params": family_params(spec), "seed": seed, "test": sorted(test_ids), "train": sorted(train_ids)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def group_weights(recs: Sequence[data.Recording], power: float) -> np.ndarray:
    """Per-speaker training weights n_group ** -power (group: native variety for natives, first
    language for non-natives), scaled to mean 1 within each label so the class balance is unchanged.
    Counters the archive's US majority among natives: at power 0.5 a speaker of a rare native variety
    weighs about 2.6x a US speaker."""
    from collections import Counter

    groups = [(r.label, data.native_variety(r.country) if r.label == "native" else r.native_language) for r in recs]
    size = Counter(groups)
    w = np.array([size[g] ** -power for g in groups], dtype=np.float64)
    for label in {g[0] for g in groups}:
        mask = np.array([g[0] == label for g in groups])
        w[mask] /= w[mask].mean()
    return w


def load_features(cfg: Config, recs: list[data.Recording]) -> tuple[list[data.Recording], list[Any], list[list[tuple[str, Any]]]]:
    """Build (resumably) and load the configured features of ``recs``; unusable recordings are
    reported and dropped. Returns the kept recordings, their features, and per recording its
    augmented copies as (kind, features)."""
    corpus = Path(cfg.corpus).name
    if cfg.features == "mels":
        cache_dir = cfg.feature_dir(corpus)
        errors = caches.build_cache([(r.speaker_id, r.path) for r in recs], cache_dir, engine=cfg.engine)
        load = lambda keys: caches.load_cache(keys, cache_dir)  # noqa: E731
    elif cfg.features.startswith("whisper-"):
        from ..backbones import whisper

        size = cfg.features.removeprefix("whisper-")
        cache_dir = cfg.feature_dir(corpus)
        items = [(r.speaker_id, r.path, None, 0) for r in recs]
        items += [(f"{r.speaker_id}__aug{c}", r.path, augment_kind(r.speaker_id, c), c + 1) for r in recs for c in range(cfg.augment_copies)]
        errors = caches.build_whisper_cache(items, cache_dir, whisper.onnx_path(size), engine=cfg.engine,
                                              window_s=cfg.window_seconds)
        load = lambda keys: {k: whisper.WhisperFeatures.load(caches.cache_path(cache_dir, k)) for k in keys  # noqa: E731
                             if caches.cache_path(cache_dir, k).exists()}
    else:
        raise ValueError(f"unknown features {cfg.features!r}: use 'mels' or 'whisper-<size>'")
    for k, e in errors.items():
        print(f"unusable recording {k}: {e}")
    recs = [r for r in recs if r.speaker_id not in errors]
    fmap = load([r.speaker_id for r in recs])
    amap = load([f"{r.speaker_id}__aug{c}" for r in recs for c in range(cfg.augment_copies)])
    aug = [[(augment_kind(r.speaker_id, c), amap[key]) for c in range(cfg.augment_copies) if (key := f"{r.speaker_id}__aug{c}") in amap]
           for r in recs]
    return recs, [fmap[r.speaker_id] for r in recs], aug


def with_copies(recs, feats, y, weights, aug) -> tuple[list, list, np.ndarray, np.ndarray | None]:
    """Training set plus the augmented copies of the same (training) speakers."""
    if not any(aug):
        return list(recs), list(feats), y, weights
    idx = [i for i, copies in enumerate(aug) for _ in copies]
    extra = [f for copies in aug for _, f in copies]
    w = None if weights is None else np.concatenate([weights, weights[idx]])
    return list(recs) + [recs[i] for i in idx], list(feats) + extra, np.concatenate([y, y[idx]]), w


def fit_member(spec: dict[str, Any], recs, feats, y, seed: int, weights: np.ndarray | None = None) -> tuple[Family, dict]:
    """Fit one member on the training recordings; a neural one stops early on a speaker-disjoint
    ``val_fraction`` of them. ``checkpoint`` (which ``run`` adds to every member's spec) reaches only
    the neural families, the ones whose fit can resume."""
    params = family_params(spec)
    if not family_class(spec["family"]).neural:
        params.pop("checkpoint", None)
    fam = get_family(spec["family"], **params)
    if fam.neural:  # early stopping on a speaker-disjoint validation split
        val = set(splits.split_speakers(recs, val=float(fam.params["val_fraction"]), test=0.0, seed=seed)["val"])
        tr = [i for i, r in enumerate(recs) if r.speaker_id not in val]
        va = [i for i, r in enumerate(recs) if r.speaker_id in val]
        w = None if weights is None else weights[tr]
        info = fam.fit([feats[i] for i in tr], y[tr], [feats[i] for i in va], y[va], weights=w)
    else:
        info = fam.fit(feats, y, weights=weights)
    return fam, info


def check_members(cfg: Config) -> None:
    """Refuse, before any work, a member whose family does not take one of its parameters (or
    knows no such choice), that cannot read the configured features or that the bundle could not
    hold; in a config with ``corpora``, anything but one ``whisper`` accent head whose settings are a
    ``multicorpus.Recipe``; in one without, multi-corpus settings a one-corpus fit would not apply;
    and an unknown ``[l1]`` setting. Every member is instantiated (cheap: nothing is fitted)."""
    from ..models.whisper_heads import WhisperFamily

    kind = cfg.features.partition("-")[0]
    if cfg.corpora:
        from .multicorpus import recipe_of

        if len(cfg.models) != 1 or cfg.models[0]["family"] != "whisper":
            raise ValueError("a config with corpora = [...] trains one accent head: a single [[models]] entry of family "
                             f"'whisper'; this one has {[spec['family'] for spec in cfg.models]}")
        recipe_of(cfg.models[0], [Path(p).name for p in (cfg.corpus, *cfg.corpora)])
    for spec in cfg.models:
        fam = family_class(spec["family"])
        if fam.features != kind:
            raise ValueError(f"model family {fam.name!r} reads {fam.features} features; this config has features = {cfg.features!r}")
        if cfg.bundle_dir and not fam.exportable and cfg.primary in ("fusion", member_name(spec)):
            raise ValueError(f"model family {fam.name!r} cannot be exported: leave bundle_dir empty or choose another primary")
        member = get_family(spec["family"], **family_params(spec))
        if not cfg.corpora and isinstance(member, WhisperFamily) and member.recipe_settings():
            raise ValueError(f"member {member_name(spec)!r}: {', '.join(member.recipe_settings())} are multi-corpus settings "
                             "(multicorpus.Recipe), applied only in a config with corpora = [...]; this one trains on its "
                             "corpus alone: remove them")
    if cfg.l1:
        l1_head(cfg.l1)


def _cross_validate_member(cfg: Config, out: Path, spec: dict[str, Any], name: str, recs: list, feats: list, aug: list,
                           y: np.ndarray, fold_of: np.ndarray, sample_w: np.ndarray | None,
                           ) -> tuple[np.ndarray, list[np.ndarray], list, list[tuple[str, str, int, str, float]]]:
    """One member's out-of-fold logits (per recording and per segment), fold infos and held-out
    augmented copies' logits; each fold is resumed from ``out/folds`` when its fingerprint matches."""
    oof_z = np.zeros(len(recs))
    oof_s: list[np.ndarray] = [np.zeros(0)] * len(recs)
    infos: list = []
    aug_rows: list[tuple[str, str, int, str, float]] = []
    for k in range(cfg.folds):
        path = out / "folds" / f"{name}_fold{k}.npz"
        te = np.flatnonzero(fold_of == k)
        fp_spec = {**spec, "group_weighting": cfg.group_weighting} if cfg.group_weighting else dict(spec)
        if cfg.features != "mels":
            fp_spec.update(features=cfg.features, augment_copies=cfg.augment_copies)
            if cfg.window_seconds != audio.CHUNK_SECONDS:
                fp_spec["window_seconds"] = cfg.window_seconds
        fp = fold_fingerprint(fp_spec, cfg.seed + k,
                              [recs[i].speaker_id for i in te], [recs[i].speaker_id for i in np.flatnonzero(fold_of != k)])
        z = np.load(path, allow_pickle=False) if path.exists() else None
        if z is not None and "fingerprint" in z.files and str(z["fingerprint"]) == fp:  # resume
            seg = json.loads(str(z["segments"]))
            info = json.loads(str(z["info"]))
            oof_z[te] = z["logits"]
            held = json.loads(str(z["augmented"])) if "augmented" in z.files else []
        else:
            if z is not None:
                print(f"{path.name}: written by another config or data, retraining", flush=True)
            tr = np.flatnonzero(fold_of != k)
            t = time.time()
            ckpt = out / "folds" / f"{name}_fold{k}_{fp[:12]}.ckpt"
            tr_recs, tr_feats, tr_y, tr_w = with_copies([recs[i] for i in tr], [feats[i] for i in tr], y[tr],
                                                        None if sample_w is None else sample_w[tr], [aug[i] for i in tr])
            fam, info = fit_member({**spec, "checkpoint": str(ckpt)}, tr_recs, tr_feats, tr_y, cfg.seed + k, tr_w)
            seg = [fam.segment_logits(feats[i]).tolist() for i in te]
            oof_z[te] = [float(np.mean(s)) for s in seg]
            info = {"seconds": time.time() - t, **{a: b for a, b in info.items() if a != "history"}, "history": info.get("history", [])}
            # held-out augmented copies: how much each kind of channel moves the same speakers
            held = [(recs[i].speaker_id, kind, fam.recording_logit(f)) for i in te for kind, f in aug[i]]
            np.savez(path, logits=oof_z[te], segments=json.dumps(seg), info=json.dumps(info), fingerprint=fp,
                     augmented=json.dumps(held))
            if fam.exportable and not fam.neural:  # array members: keep the fold model
                from safetensors.numpy import save_file

                save_file({a: np.ascontiguousarray(b, np.float32) for a, b in fam.tensors().items()}, str(path.with_suffix(".safetensors")))
            ckpt.unlink(missing_ok=True)
        aug_rows += [(sid, name, k, kind, float(lg)) for sid, kind, lg in held]
        for i, s in zip(te, seg):
            oof_s[i] = np.asarray(s)
        infos.append(info)
        print(f"{name} fold {k}: {info.get('seconds', 0):.0f}s", flush=True)
    return oof_z, oof_s, infos, aug_rows


def _fuse(names: list[str], oof: dict[str, np.ndarray], oof_seg: dict[str, list[np.ndarray]], y: np.ndarray,
          fold_of: np.ndarray, sample_w: np.ndarray | None) -> dict[str, Any]:
    """Fusion: logistic regression on the members' out-of-fold logits, itself cross-fitted by fold
    (adds ``fusion`` to ``oof`` and ``oof_seg``); returns the stacker fitted on every speaker."""
    from .stacking import cross_fit_stacker, fit_stacker

    M = np.stack([oof[n] for n in names], 1)
    oof["fusion"], stackers = cross_fit_stacker(M, y, fold_of, sample_w)
    oof_seg["fusion"] = [np.zeros(0)] * len(y)
    for k, fold_stacker in stackers.items():
        for i in np.flatnonzero(fold_of == k):  # segments too are fused by the stacker that never saw the speaker
            oof_seg["fusion"][i] = np.stack([oof_seg[n][i] for n in names], 1) @ fold_stacker.coef_[0] + fold_stacker.intercept_[0]
    stacker = fit_stacker(M, y, sample_w)
    return {"coef": stacker.coef_[0].tolist(), "intercept": float(stacker.intercept_[0])}


def _calibrate(oof: dict[str, np.ndarray], oof_seg: dict[str, list[np.ndarray]], y: np.ndarray, fold_of: np.ndarray,
               folds: int) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]], dict[str, float], dict[str, list]]:
    """Calibration (Platt on logits) and threshold per model, cross-fitted so reported numbers stay
    honest: each fold calibrated on the other folds only, its recordings and segments alike."""
    from ..calibration import Calibrator
    from .stacking import choose_threshold

    probs: dict[str, np.ndarray] = {}
    seg_probs: dict[str, list[np.ndarray]] = {}
    thresholds: dict[str, float] = {}
    fold_cal: dict[str, list[Calibrator]] = {}
    for name in oof:
        fold_cal[name] = [Calibrator.fit(oof[name][fold_of != k], y[fold_of != k]) for k in range(folds)]
        probs[name] = np.array([fold_cal[name][k].apply(z) for z, k in zip(oof[name], fold_of)])
        seg_probs[name] = [fold_cal[name][k].apply(s) for s, k in zip(oof_seg[name], fold_of)]
        thresholds[name] = choose_threshold(probs[name], y)
    return probs, seg_probs, thresholds, fold_cal


def _write_augmented(out: Path, recs: list, aug_rows: list[tuple[str, str, int, str, float]], fold_cal: dict[str, list]) -> None:
    """Held-out augmented copies, calibrated like their fold's clean predictions: ``augmented.csv``."""
    import csv

    label_of = {r.speaker_id: int(r.label == "native") for r in recs}
    with open(out / "augmented.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["speaker_id", "label", "model", "fold", "kind", "p_native"])
        for sid, name, k, kind, lg in aug_rows:
            w.writerow([sid, label_of[sid], name, k, kind, f"{float(fold_cal[name][k].apply(lg)):.6f}"])


def _final_members(cfg: Config, names: list[str], infos: dict[str, list], recs: list, feats: list, aug: list, y: np.ndarray,
                   sample_w: np.ndarray | None) -> list[tuple[str, Any]]:
    """The members a bundle ships, each fitted on every speaker (a neural one for the CV's typical epoch count)."""
    members = []
    for spec, name in zip(cfg.models, names):
        if cfg.primary not in ("fusion", name):
            continue
        spec = dict(spec)
        if family_class(spec["family"]).neural:  # final fit: all data, the CV's typical epoch count
            spec["epochs"] = int(np.median([i.get("best_epoch", spec.get("epochs", 10)) for i in infos[name]]))
            spec["patience"] = spec["epochs"]
            fam = get_family(spec["family"], **family_params(spec))
            fam.fit(feats, y, weights=sample_w)
        else:
            all_recs, all_feats, all_y, all_w = with_copies(recs, feats, y, sample_w, aug)
            fam, _ = fit_member(spec, all_recs, all_feats, all_y, cfg.seed, all_w)
        members.append((name, fam))
    return members


def run(cfg: Config) -> dict[str, Any]:
    """Cross-validate every member, fuse, calibrate, report, and optionally export the bundle."""
    from ..calibration import Calibrator
    from .site_profile import reference_scores

    if cfg.corpora:
        if not cfg.features.startswith("whisper-"):
            raise ValueError("other corpora (corpora = [...]) train Whisper features only; set corpora = [] for mel features")
        return run_corpora(cfg)
    if cfg.bundle_dir and cfg.window_seconds != audio.CHUNK_SECONDS:
        raise ValueError(f"a bundle rates {audio.CHUNK_SECONDS:g} s windows; window_seconds = {cfg.window_seconds:g} is for experiments only")
    check_members(cfg)
    out = Path(cfg.out_dir)
    (out / "folds").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    report = data.load_corpus(cfg.corpus)
    for row, why in report.skipped:
        print(f"skipped {row}: {why}")
    recs = report.recordings
    if cfg.max_speakers:
        recs = splits.speaker_subset(recs, cfg.max_speakers, cfg.seed)
    recs, feats, aug = load_features(cfg, recs)
    y = np.array([r.label == "native" for r in recs], dtype=int)
    fold_of = np.array(splits.speaker_folds(recs, k=cfg.folds, seed=cfg.seed))
    sample_w = group_weights(recs, cfg.group_weighting) if cfg.group_weighting else None
    (out / "folds.json").write_text(json.dumps({r.speaker_id: int(f) for r, f in zip(recs, fold_of)}, indent=0))

    names = [member_name(s) for s in cfg.models]
    oof: dict[str, np.ndarray] = {}
    oof_seg: dict[str, list[np.ndarray]] = {}
    infos: dict[str, list] = {}
    aug_rows: list[tuple[str, str, int, str, float]] = []
    for spec, name in zip(cfg.models, names):
        oof[name], oof_seg[name], infos[name], held = _cross_validate_member(cfg, out, spec, name, recs, feats, aug, y, fold_of, sample_w)
        aug_rows += held
    weights = _fuse(names, oof, oof_seg, y, fold_of, sample_w) if cfg.fusion and len(names) > 1 else None
    probs, seg_probs, thresholds, fold_cal = _calibrate(oof, oof_seg, y, fold_of, cfg.folds)
    calibrator = Calibrator.fit(oof[cfg.primary], y)
    threshold = thresholds[cfg.primary]

    _write_predictions(out, recs, fold_of, probs, seg_probs, y)
    if aug_rows:
        _write_augmented(out, recs, aug_rows, fold_cal)
    l1_head = fit_l1(cfg, out, recs, feats, aug, fold_of) if cfg.l1 and cfg.features != "mels" else None
    novelty = fit_novelty(cfg, out, recs, feats, aug, fold_of) if cfg.features != "mels" else None
    summary = {
        "name": cfg.name,
        "members": names,
        "primary": cfg.primary,
        "n_speakers": len(recs),
        "threshold": threshold,
        "thresholds": thresholds,
        "calibration": calibrator.to_dict(),
        "reference": reference_scores(probs[cfg.primary], y),  # target of natives-only site profiles
        "fusion": weights,
        "group_weighting": cfg.group_weighting,
        "fold_info": infos,
        "seconds_cv": time.time() - t0,
    }
    if cfg.bundle_dir:
        from .export import export_bundle

        t = time.time()
        members = _final_members(cfg, names, infos, recs, feats, aug, y, sample_w)
        summary["seconds_final_fit"] = time.time() - t
        export_bundle(Path(cfg.bundle_dir), members, weights if cfg.primary == "fusion" else None, calibrator, threshold, summary,
                      backbone=cfg.features.removeprefix("whisper-") if cfg.features != "mels" else None, l1=l1_head,
                      novelty=novelty)
    summary["seconds_total"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def corpora_data(cfg: Config, build: bool = False):
    """``multicorpus.Corpora`` of a config's corpora (``corpus`` first, then ``corpora``), from the
    feature caches it names (built first, resumably, when ``build``), and the corpus names."""
    from .multicorpus import build_caches, corpus_recordings, load_corpora

    paths = [cfg.corpus, *cfg.corpora]
    names = [Path(p).name for p in paths]
    size = cfg.features.removeprefix("whisper-")
    cache = cfg.cache
    copies = {n: cfg.copies.get(n, cfg.augment_copies) for n in names}
    corpora = corpus_recordings(paths, cfg.max_speakers, cfg.seed)
    if build:
        for k, e in build_caches(corpora, cache, size, copies, cfg.short_corpora, cfg.engine).items():
            print(f"unusable recording {k}: {e}")
    return load_corpora(corpora, cache, size, copies), names


def run_corpora(cfg: Config) -> dict[str, Any]:
    """``accent-rater train`` for a config with ``corpora``: cross-validate the recipe over every
    corpus (speaker-disjoint folds within each), calibrate and choose the threshold with every
    (corpus, label) cell weighing the same, fit the first-language head on the archive's
    non-natives and the novelty check on every corpus, and export the bundle. The run folder holds
    what an archive-only run holds (``predictions.csv`` etc. for the archive) plus
    ``corpora_predictions.csv`` for every recording."""

    from ..calibration import Calibrator
    from ..models.whisper_heads import WhisperFamily
    from .multicorpus import cell_weights, corpora_notes, cross_validate, fit_head, fold_calibration, folds_of, recipe_of, write_run_files
    from .site_profile import reference_scores
    from .stacking import choose_threshold

    check_members(cfg)
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d, names = corpora_data(cfg, build=True)
    recipe = recipe_of(cfg.models[0], names)
    if recipe.columns != "all":
        raise ValueError("a bundled head reads every column: columns = 'all' (other columns are for experiments)")
    y = d.label
    fold = folds_of(d, cfg.folds, cfg.seed)
    z, zv, seg, fold_heads = cross_validate(d, recipe, fold)
    w = cell_weights(d)
    cal = {k: c for k, (c, _) in fold_calibration(z, y, w, fold).items()}  # the threshold is chosen once, below
    p = np.array([cal[k].apply(zi) for zi, k in zip(z, fold)])
    calibrator = Calibrator.fit(z, y, w)
    threshold = choose_threshold(p, y, w)
    arch = np.flatnonzero(d.corpus == names[0])
    recs_a = [d.records[i] for i in arch]
    name = cfg.models[0].get("label", cfg.models[0]["family"])
    write_run_files(out, d, name, fold, fold_heads, cal, p, z, zv, seg, names[0])
    (out / "folds.json").write_text(json.dumps({d.records[i].speaker_id: int(fold[i]) for i in arch}, indent=0))
    l1_head = fit_l1(cfg, out, recs_a, [d.feats[i] for i in arch], [d.aug[i] for i in arch], fold[arch]) if cfg.l1 else None
    novelty = fit_novelty(cfg, out, d.records, d.feats, d.aug, fold)
    head = fit_head(d, np.arange(len(d.records)), recipe)
    fam = WhisperFamily(**{k: v for k, v in cfg.models[0].items() if k not in ("family", "label")})
    fam.load_tensors({"mean": head.mean, "scale": head.scale, "coef": head.coef, "intercept": np.array([head.intercept], np.float32)})
    per_corpus = {c: {"recordings": int(np.sum(d.corpus == c)), "speakers": len({r.speaker_id for r, cc in zip(d.records, d.corpus) if cc == c})}
                  for c in names}
    summary = {
        "name": cfg.name, "members": [name], "primary": name, "n_speakers": len(arch), "threshold": threshold,
        "thresholds": {name: threshold}, "calibration": calibrator.to_dict(),
        "reference": reference_scores(p[arch], y[arch]), "fusion": None, "group_weighting": 0.0,
        "corpora": per_corpus, "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.__dict__.items()},
        "seconds_cv": time.time() - t0,
    }
    if cfg.bundle_dir:
        from .export import export_bundle

        export_bundle(Path(cfg.bundle_dir), [(name, fam)], None, calibrator, threshold, summary, backbone=cfg.features.removeprefix("whisper-"), l1=l1_head,
                      novelty=novelty)
    summary["seconds_total"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "notes.md").write_text(corpora_notes(d, p, threshold, names[0]))  # report_run appends it
    return summary


def l1_language(rec: data.Recording) -> str:
    """First-language class of a speaker: "english" for natives, else the stated first language."""
    return "english" if rec.label == "native" else (rec.native_language or "unknown").lower()


def fit_l1(cfg: Config, out: Path, recs, feats, aug, fold_of: np.ndarray):
    """First-language head: out-of-fold class probabilities (``l1_predictions.csv``, temperature
    cross-fitted too) and the final head fitted on every speaker, temperature from all folds."""
    import csv

    from ..models.whisper_heads import L1Head

    langs = np.array([l1_language(r) for r in recs])
    # trained and scored on the non-native speakers: the guess is shown only for speech rated non-native
    non_native = np.array([r.label == "non_native" for r in recs])
    classes = sorted(set(langs[non_native]))
    logits = np.full((len(recs), len(classes)), -1e4)  # a language a fold never saw gets no probability
    heads = []
    for k in range(cfg.folds):
        tr, te = np.flatnonzero((fold_of != k) & non_native), np.flatnonzero(fold_of == k)
        rr, ff, _, _ = with_copies([recs[i] for i in tr], [feats[i] for i in tr], np.zeros(len(tr)), None, [aug[i] for i in tr])
        head = L1Head(**cfg.l1).fit(ff, [l1_language(r) for r in rr])
        cols = [classes.index(c) for c in head.classes]
        logits[np.ix_(te, cols)] = np.stack([head.logits(feats[i]) for i in te])
        heads.append(head)
        te_nn = te[non_native[te]]
        print(f"l1 fold {k}: top-1 over non-natives {np.mean(np.array(classes)[logits[te_nn].argmax(1)] == langs[te_nn]):.3f}", flush=True)
    probs = np.zeros_like(logits)
    for k, head in enumerate(heads):
        te = fold_of == k
        head.classes = classes  # the temperature is fitted on the shared columns
        head.fit_temperature(logits[~te & non_native], langs[~te & non_native])
        z = logits[te] / head.temperature
        e = np.exp(z - z.max(1, keepdims=True))
        probs[te] = e / e.sum(1, keepdims=True)
    with open(out / "l1_predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["speaker_id", "label", "language", "fold", *classes])
        for r, lang, f, pr in zip(recs, langs, fold_of, probs):
            w.writerow([r.speaker_id, r.label, lang, f, *(f"{q:.6f}" for q in pr)])
    final = L1Head(**cfg.l1)
    nn = np.flatnonzero(non_native)
    rr, ff, _, _ = with_copies([recs[i] for i in nn], [feats[i] for i in nn], np.zeros(len(nn)), None, [aug[i] for i in nn])
    final.fit(ff, [l1_language(r) for r in rr])
    final.fit_temperature(logits[non_native], langs[non_native])
    return final


def fit_novelty(cfg: Config, out: Path, recs, feats, aug, fold_of: np.ndarray):
    """Out-of-distribution check (``Novelty``) on the Whisper inputs: cross-validated scores of
    held-out clean and augmented recordings (``novelty.csv``, so the flag rate on data like the
    training data is measured), then the final one fitted on every recording."""
    import csv

    from ..models.whisper_heads import Novelty, layer_rows

    rows = [layer_rows(f, None) for f in feats]
    aug_rows = [[(kind, layer_rows(f, None)) for kind, f in copies] for copies in aug]
    with open(out / "novelty.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["speaker_id", "label", "fold", "kind", "score", "threshold"])
        for k in range(cfg.folds):
            tr, te = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
            nov = Novelty().fit([rows[i] for i in tr] + [r for i in tr for _, r in aug_rows[i]])
            for i in te:
                for kind, r in [("clean", rows[i]), *aug_rows[i]]:
                    w.writerow([recs[i].speaker_id, recs[i].label, k, kind, f"{nov.score(r):.4f}", f"{nov.threshold:.4f}"])
    return Novelty().fit(rows + [r for copies in aug_rows for _, r in copies])


def _write_predictions(out: Path, recs, fold_of, probs, seg_probs, y) -> None:
    import csv

    with open(out / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["speaker_id", "label", "native_language", "country", "sex", "age", "model", "fold", "p_native"])
        for name, p in probs.items():
            for r, f, pi, yi in zip(recs, fold_of, p, y):
                w.writerow([r.speaker_id, yi, r.native_language, r.country, r.sex, "" if r.age is None else r.age, name, f, f"{pi:.6f}"])
    with open(out / "segments.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["speaker_id", "label", "model", "fold", "segment", "p_native"])
        for name, segs in seg_probs.items():
            for r, f, s, yi in zip(recs, fold_of, segs, y):
                for j, pj in enumerate(s):
                    w.writerow([r.speaker_id, yi, name, f, j, f"{pj:.6f}"])
