"""Download everything a recipe config names (datasets and baseline models) into the HF cache, so the same
config can then run on a machine without network under HF_HUB_OFFLINE=1."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import datasets
import yaml
from huggingface_hub import snapshot_download

from .embedded import embedded_corpus_dir
from .mixture import parse_mixture
from .registry import NO_NETWORK_FIX, DatasetUnavailableError, explain_hub_error, get_spec, hub_offline, hub_reachable
from .verify import CheckResult

# The config keys that name datasets (registry names) and models (Hub ids), as docs/DATA.md lists them;
# a pipeline config's ``stage_configs`` ({stage: yaml path}) are followed.
DATASET_KEYS = ("dataset_name", "dataset_mixture", "eval_datasets")
MODEL_KEYS = ("baseline_models",)
STAGE_CONFIGS_KEY = "stage_configs"


def _names(value) -> list[str]:
    """Registry names from a key's value: a name, a mixture (``{name: w}``, ``["name:w", ...]``, ``"a:0.7,b:0.3"``)
    or a list of ``{"name": ...}`` entries."""
    if value is None:
        return []
    if isinstance(value, list) and all(
        isinstance(item, Mapping) and ("name" in item or "dataset" in item) for item in value
    ):
        return [get_spec(item.get("name", item.get("dataset"))).name for item in value]
    return [name for name, _ in parse_mixture(value)]


def read_config_targets(config_paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """The dataset names and model ids the given YAML configs name, deduplicated, in order of appearance."""
    dataset_names, model_ids = [], []
    pending = [Path(path) for path in config_paths]
    while pending:
        path = pending.pop(0)
        config = yaml.safe_load(path.read_text()) or {}
        if not isinstance(config, Mapping):
            raise ValueError(f"{path}: a recipe config must be a YAML mapping of keys to values")
        for key in DATASET_KEYS:
            dataset_names += _names(config.get(key))
        for key in MODEL_KEYS:
            models = config.get(key) or []
            model_ids += [models] if isinstance(models, str) else list(models)
        pending += [Path(stage_path) for stage_path in (config.get(STAGE_CONFIGS_KEY) or {}).values()]
    return list(dict.fromkeys(dataset_names)), list(dict.fromkeys(model_ids))


def prefetch_dataset(name: str) -> CheckResult:
    """Download and prepare every split of a registered dataset (or generate the embedded corpus)."""
    spec = get_spec(name)
    if spec.embedded:
        return CheckResult(name, "ok", error=f"generated in {embedded_corpus_dir()}")
    rows = 0
    try:
        for split in spec.splits:
            try:
                rows += len(datasets.load_dataset(spec.hub_id, spec.config, split=split))
            except Exception as error:  # datasets/huggingface_hub raise many unrelated types for the same causes
                raise explain_hub_error(spec, error) from error
    except DatasetUnavailableError as error:
        return CheckResult(name, "failed", rows, error.reason, error.fix)
    return CheckResult(name, "ok", rows)


def prefetch_model(model_id: str) -> CheckResult:
    """Download a model repository (a baseline such as ``gpt2``) into the HF cache."""
    try:
        return CheckResult(model_id, "ok", error=f"in {snapshot_download(model_id)}")
    except Exception as error:  # offline, missing or gated repos: report and go on with the rest
        return CheckResult(
            model_id,
            "failed",
            0,
            f"{type(error).__name__}: {str(error).splitlines()[0]}",
            "check the model id and the network; gated models need `hf auth login`",
        )


def prefetch(dataset_names: Iterable[str], model_ids: Iterable[str] = ()) -> list[CheckResult]:
    """Fetch every dataset and model; without network, report each Hub item as unreachable at once."""
    dataset_names, model_ids = list(dataset_names), list(model_ids)
    needs_hub = model_ids or any(not get_spec(name).embedded for name in dataset_names)
    network_down = bool(needs_hub) and (hub_offline() or not hub_reachable())
    results = []
    for name in dataset_names:
        if network_down and not get_spec(name).embedded:
            results.append(CheckResult(name, "unreachable", 0, _no_network_reason(), NO_NETWORK_FIX))
        else:
            results.append(prefetch_dataset(name))
    for model_id in model_ids:
        results.append(
            CheckResult(model_id, "unreachable", 0, _no_network_reason(), NO_NETWORK_FIX)
            if network_down
            else prefetch_model(model_id)
        )
    return results


def _no_network_reason() -> str:
    return (
        "unreachable: no network ("
        + ("HF_HUB_OFFLINE=1 is set" if hub_offline() else "huggingface.co cannot be reached")
        + ")"
    )
