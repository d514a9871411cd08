"""Weighted mixtures of registered datasets, shuffled and interleaved deterministically by seed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import datasets

from .registry import AnyDataset, get_spec, load_dataset_by_name

MixtureSpec = str | Mapping[str, float] | Iterable


def _pair(item) -> tuple[str, float]:
    if isinstance(item, str):
        name, _, weight = item.partition(":")
        return name, weight or 1.0
    name, weight = item
    return name, weight


def parse_mixture(mixture: MixtureSpec) -> list[tuple[str, float]]:
    """``(name, weight)`` pairs from a YAML-friendly form: ``{name: w}``, ``["name:w", ...]``, ``[[name, w], ...]``,
    ``[name, ...]`` (equal weights) or ``"name:w,name:w"``. Weights must be positive; they need not sum to one."""
    items = mixture.split(",") if isinstance(mixture, str) else mixture
    items = (
        items.items()
        if isinstance(items, Mapping)
        else [item for item in items if not isinstance(item, str) or item.strip()]
    )
    try:
        parsed = [(str(name).strip(), float(weight)) for name, weight in map(_pair, items)]
    except (TypeError, ValueError):
        raise ValueError(
            f"cannot read the dataset mixture {mixture!r}: use name:weight entries, e.g. tinystories:0.7"
        ) from None
    if not parsed or any(weight <= 0 for _, weight in parsed):
        raise ValueError(f"a dataset mixture needs at least one dataset and positive weights, got {mixture!r}")
    for name, _ in parsed:
        get_spec(name)
    return parsed


def build_mixture(
    mixture: MixtureSpec,
    split: str,
    *,
    seed: int,
    corpus_seed: int = 0,
    local_dir=None,
    streaming: bool = False,
    stopping_strategy: str = "first_exhausted",
    shuffle_buffer: int = 10_000,
) -> AnyDataset:
    """Interleave the named datasets with probabilities proportional to their weights.

    Each dataset is shuffled by ``seed`` first (a buffer of ``shuffle_buffer`` rows when streaming), and
    the interleaving draws with the same seed, so a seed fixes the order. All datasets must share a kind.
    ``corpus_seed`` generates the embedded datasets (the same corpus whatever the shuffling seed).
    ``first_exhausted`` stops when the first source runs out, which keeps the ratios exact.
    """
    pairs = parse_mixture(mixture)
    kinds = {get_spec(name).kind for name, _ in pairs}
    if len(kinds) > 1:
        raise ValueError(f"a mixture must hold datasets of one kind, got {sorted(kinds)} from {pairs}")
    parts = []
    for name, _ in pairs:
        part = load_dataset_by_name(name, split, local_dir=local_dir, streaming=streaming, seed=corpus_seed)
        parts.append(part.shuffle(seed=seed, buffer_size=shuffle_buffer) if streaming else part.shuffle(seed=seed))
    if len(parts) == 1:
        return parts[0]
    total = sum(weight for _, weight in pairs)
    return datasets.interleave_datasets(
        parts, probabilities=[weight / total for _, weight in pairs], seed=seed, stopping_strategy=stopping_strategy
    )
