"""Datasets for every stage: the registry of Hub datasets, the embedded corpus, mixtures, checks and prefetching."""

from .embedded import CorpusSizes, embedded_corpus_dir, generate_embedded_corpus, split_of
from .mixture import build_mixture, parse_mixture
from .registry import (
    REGISTRY,
    DatasetSpec,
    DatasetUnavailableError,
    get_spec,
    load_dataset_by_name,
    prompt_splits,
    registry_splits,
)

__all__ = [
    "REGISTRY",
    "CorpusSizes",
    "DatasetSpec",
    "DatasetUnavailableError",
    "build_mixture",
    "embedded_corpus_dir",
    "generate_embedded_corpus",
    "get_spec",
    "load_dataset_by_name",
    "parse_mixture",
    "prompt_splits",
    "registry_splits",
    "split_of",
]
