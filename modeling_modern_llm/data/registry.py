"""The dataset registry and ``load_dataset_by_name``: every dataset the pipeline uses, loaded and normalised.

A registry name maps to a Hub id, config, splits and the stage format (``kind``) its rows are
normalised to. Three sources go through the same ``datasets`` loaders and the same normaliser:
the Hub (``load_dataset(hub_id, config, split=..., streaming=...)``), a local copy in the Hub schema
(``DIR/<name>/<split>.jsonl|.parquet``), and the embedded corpus (generated files in the Hub schema).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import datasets
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, OfflineModeIsEnabled

from ..errors import InputFileError
from .embedded import EMBEDDED_SPLITS, embedded_corpus_dir
from .normalizers import FEATURES, batched_normalizer

logger = logging.getLogger(__name__)

AnyDataset = datasets.Dataset | datasets.IterableDataset


class DatasetUnavailableError(InputFileError, RuntimeError):
    """A dataset cannot be loaded here; ``reason`` says why and ``fix`` what to do about it (a command prints it as
    one line, exit status 1)."""

    def __init__(self, name: str, reason: str, fix: str):
        super().__init__(f"dataset '{name}' is unavailable: {reason}. Fix: {fix}")
        self.name, self.reason, self.fix = name, reason, fix


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset: where it lives, its splits, the raw fields its normaliser reads, its stage format."""

    name: str
    kind: str  # "text" | "sft" | "preference" | "gsm8k" | "sst2" (see normalizers.FEATURES)
    hub_id: str | None  # None for the embedded corpus
    config: str | None
    splits: tuple[str, ...]
    fields: tuple[str, ...]
    stream_by_default: bool = False  # large corpora: stream so training starts before a full download
    note: str = ""  # access requirements, shown in verify_datasets and docs/DATA.md

    @property
    def embedded(self) -> bool:
        return self.hub_id is None


_SCRIPT_NOTE = (
    "loading-script repo: datasets>=4 cannot load it; export it to parquet and use --local_dir (docs/DATA.md)"
)
_FIELDS = {
    "text": ("text",),
    "sft": ("instruction", "input", "output"),
    "preference": ("chosen", "rejected"),
    "gsm8k": ("question", "answer"),
    "sst2": ("sentence", "label", "idx"),
}
_HUB_SPECS = [
    # name, kind, hub id, config, splits, stream_by_default, note
    (
        "wikitext-2-raw-v1",
        "text",
        "Salesforce/wikitext",
        "wikitext-2-raw-v1",
        ("train", "validation", "test"),
        False,
        "",
    ),
    (
        "wikitext-103-raw-v1",
        "text",
        "Salesforce/wikitext",
        "wikitext-103-raw-v1",
        ("train", "validation", "test"),
        True,
        "",
    ),
    ("tinystories", "text", "roneneldan/TinyStories", None, ("train", "validation"), True, ""),
    ("openwebtext", "text", "Skylion007/openwebtext", None, ("train",), True, _SCRIPT_NOTE),
    ("bookcorpus", "text", "bookcorpus/bookcorpus", None, ("train",), True, _SCRIPT_NOTE),
    ("alpaca", "sft", "tatsu-lab/alpaca", None, ("train",), False, ""),
    ("hh-rlhf", "preference", "Anthropic/hh-rlhf", None, ("train", "test"), False, ""),
    ("gsm8k", "gsm8k", "openai/gsm8k", "main", ("train", "test"), False, ""),
    ("sst2", "sst2", "nyu-mll/glue", "sst2", ("train", "validation"), False, "GLUE's test split is unlabelled"),
]
_EMBEDDED_KINDS = {
    "embedded-text": "text",
    "embedded-alpaca": "sft",
    "embedded-hh-rlhf": "preference",
    "embedded-gsm8k": "gsm8k",
    "embedded-sst2": "sst2",
}

REGISTRY: dict[str, DatasetSpec] = {
    **{
        name: DatasetSpec(name, kind, hub_id, config, splits, _FIELDS[kind], stream, note)
        for name, kind, hub_id, config, splits, stream, note in _HUB_SPECS
    },
    **{
        name: DatasetSpec(name, kind, None, None, EMBEDDED_SPLITS, _FIELDS[kind], note="generated locally, no network")
        for name, kind in _EMBEDDED_KINDS.items()
    },
}


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``, or a ValueError listing the known names."""
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset '{name}'; registered names: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set."""
    return bool(hub_constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens (a quick check, so offline runs fail fast)."""
    endpoint = urlparse(hub_constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


NO_NETWORK_FIX = (
    "on a machine with network (e.g. a login node) run `python recipes/prefetch.py --config <yaml>` "
    "(or `--datasets NAME`), then rerun here with HF_HUB_OFFLINE=1; or pass --local_dir DIR"
)


def explain_hub_error(spec: DatasetSpec, error: Exception) -> DatasetUnavailableError:
    """Turn an exception raised by ``datasets``/``huggingface_hub`` into a reason and a fix."""
    message = str(error)
    if "Dataset scripts are no longer supported" in message or "trust_remote_code" in message:
        return DatasetUnavailableError(
            spec.name,
            f"{spec.hub_id} is a loading-script dataset, which datasets {datasets.__version__} cannot run",
            "export it to parquet with datasets<4 (see docs/DATA.md) and pass --local_dir DIR",
        )
    if isinstance(error, GatedRepoError) or "gated" in message.lower() or "401 Client Error" in message:
        return DatasetUnavailableError(
            spec.name,
            f"{spec.hub_id} needs an HF token",
            "run `hf auth login` (or `huggingface-cli login`, or set HF_TOKEN) and accept its terms on the Hub page",
        )
    offline_markers = (
        "OfflineModeIsEnabled",
        "LocalEntryNotFoundError",
        "Couldn't reach",
        "Name or service not known",
        "Connection",
        "Network is unreachable",
        "Temporary failure in name resolution",
    )
    if isinstance(error, (ConnectionError, OfflineModeIsEnabled, LocalEntryNotFoundError)) or any(
        marker in message for marker in offline_markers
    ):
        where = "HF_HUB_OFFLINE=1 and no cached copy" if hub_offline() else "huggingface.co cannot be reached"
        return DatasetUnavailableError(spec.name, f"unreachable: no network ({where})", NO_NETWORK_FIX)
    if isinstance(error, (datasets.exceptions.DatasetNotFoundError, FileNotFoundError)):
        return DatasetUnavailableError(
            spec.name,
            f"{spec.hub_id} not found on the Hub: {message}",
            "check the Hub id in modeling_modern_llm/data/registry.py",
        )
    return DatasetUnavailableError(
        spec.name, f"{type(error).__name__}: {message}", f"see the reason; the Hub page of {spec.hub_id} may say more"
    )


def local_split_file(local_dir: str | os.PathLike, name: str, split: str) -> Path:
    """``DIR/<name>/<split>.jsonl`` or ``.parquet``; DatasetUnavailableError when neither exists."""
    folder = Path(local_dir) / name
    for suffix in (".jsonl", ".parquet"):
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    raise DatasetUnavailableError(
        name,
        f"no local file {folder}/{split}.jsonl or {split}.parquet",
        f"write the '{split}' split there in the Hub schema (fields: {', '.join(REGISTRY[name].fields)})",
    )


def _root_cause(error: BaseException) -> str:
    """The innermost message of an exception chain, on one line ("An error occurred while generating" says little)."""
    while error.__cause__ or error.__context__:
        error = error.__cause__ or error.__context__
    return " ".join(str(error).split())[:200] or type(error).__name__


def load_file(path: Path, split: str, streaming: bool, name: str | None = None) -> AnyDataset:
    """A jsonl or parquet file through ``datasets``' own json/parquet builders; an empty, non-UTF-8 or malformed file
    is a DatasetUnavailableError naming the file (``datasets`` would say StopIteration or UnicodeDecodeError)."""
    name = name or path.parent.name
    fix = f"write the '{split}' split as one JSON object per line (UTF-8) or as parquet, in the Hub schema"
    if path.stat().st_size == 0:
        raise DatasetUnavailableError(name, f"{path} is empty", fix)
    if path.suffix == ".jsonl":
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(head) - 4:  # not just a character cut by the 1 MiB window
                raise DatasetUnavailableError(name, f"{path} is not UTF-8 (byte {error.start})", fix) from None
    builder = "parquet" if path.suffix == ".parquet" else "json"
    try:
        return datasets.load_dataset(builder, data_files={split: str(path)}, split=split, streaming=streaming)
    except Exception as error:  # noqa: BLE001 (the builders raise many types for one cause: a malformed file)
        raise DatasetUnavailableError(name, f"{path} cannot be read ({_root_cause(error)})", fix) from None


def load_raw(
    spec: DatasetSpec, split: str, *, local_dir=None, streaming: bool = False, seed: int = 0
) -> tuple[AnyDataset, str]:
    """The dataset's rows in its Hub schema, and a description of where they came from."""
    if split not in spec.splits:
        raise ValueError(f"dataset '{spec.name}' has no split '{split}'; its splits: {', '.join(spec.splits)}")
    if spec.embedded:
        path = embedded_corpus_dir(seed) / spec.name / f"{split}.jsonl"
        return load_file(path, split, streaming), str(path)
    if local_dir is not None:
        path = local_split_file(local_dir, spec.name, split)
        return load_file(path, split, streaming, spec.name), str(path)
    source = spec.hub_id + (f" ({spec.config})" if spec.config else "")
    # Streaming reads remote files; offline, the Arrow copy that prefetch prepared is read instead.
    stream_from_hub = streaming and not hub_offline()
    try:
        raw = datasets.load_dataset(spec.hub_id, spec.config, split=split, streaming=stream_from_hub)
    except Exception as error:  # datasets/huggingface_hub raise many unrelated types for the same causes
        raise explain_hub_error(spec, error) from error
    if streaming and not stream_from_hub:
        raw = raw.to_iterable_dataset()
    return raw, source


def check_fields(raw: AnyDataset, spec: DatasetSpec, source: str) -> list[str]:
    """The raw columns; DatasetUnavailableError naming the dataset, the source and the field its normaliser lacks."""
    columns = raw.column_names
    if columns is None:  # a streamed json file: features are known only once a row is read
        try:
            columns = list(next(iter(raw), {}).keys())
        except Exception as error:  # noqa: BLE001 (the json builder fails lazily when streaming)
            raise DatasetUnavailableError(
                spec.name,
                f"{source} cannot be read ({_root_cause(error)})",
                "write one JSON object per line (UTF-8), in the Hub schema",
            ) from None
    missing = [field for field in spec.fields if field not in columns]
    if missing:
        raise DatasetUnavailableError(
            spec.name,
            f"{source} lacks field '{missing[0]}' (has: {', '.join(columns)})",
            f"provide the Hub schema's fields: {', '.join(spec.fields)}",
        )
    return columns


def load_dataset_by_name(
    name: str, split: str, *, local_dir=None, streaming: bool | None = False, limit: int | None = None, seed: int = 0
) -> AnyDataset:
    """A registered dataset's split, normalised to its stage format (``REGISTRY[name].kind``).

    ``local_dir`` reads ``DIR/<name>/<split>.jsonl|.parquet`` instead of the Hub (the embedded corpus is
    always generated); ``streaming=None`` streams the large corpora only; ``limit`` keeps the first normalised rows;
    ``seed`` is the embedded corpus's generation seed. Raises DatasetUnavailableError with a fix.
    """
    spec = get_spec(name)
    streaming = spec.stream_by_default if streaming is None else streaming
    raw, source = load_raw(spec, split, local_dir=local_dir, streaming=streaming, seed=seed)
    columns = check_fields(raw, spec, source)
    normalize = {
        "function": batched_normalizer(spec.kind),
        "batched": True,
        "remove_columns": columns,
        "features": FEATURES[spec.kind],
    }
    if streaming:
        normalized = raw.map(**normalize)
        return normalized if limit is None else normalized.take(limit)
    normalized = raw.map(**normalize, desc=f"normalising {name}/{split}")
    if len(normalized) < len(raw):
        logger.warning(
            "%s/%s: dropped %d of %d malformed rows (%s)", name, split, len(raw) - len(normalized), len(raw), source
        )
    return normalized if limit is None else normalized.select(range(min(limit, len(normalized))))


def registry_splits(
    registry_name: str, splits: list[str], local_dir=None, corpus_seed: int = 0, **task_metadata
) -> datasets.DatasetDict:
    """lm-evaluation-harness's ``custom_dataset`` hook: the named splits of a registered dataset, as the registry
    gives them (normalised, from the Hub, ``local_dir`` or the embedded corpus), in a ``DatasetDict``.

    A task YAML (eval/tasks/) names it with ``dataset_kwargs: {registry_name: ..., splits: [...]}``; ``local_dir``
    and ``corpus_seed`` come from the task manager's metadata (``lm_eval --metadata '{"local_dir": "DIR"}'``), the
    rest of the task's metadata is ignored. Raises DatasetUnavailableError with a fix.
    """
    return datasets.DatasetDict(
        {split: load_dataset_by_name(registry_name, split, local_dir=local_dir, seed=corpus_seed) for split in splits}
    )


def prompt_splits(prompts: list[str], **task_metadata) -> datasets.DatasetDict:
    """lm-evaluation-harness's ``custom_dataset`` hook for prompts listed in the task YAML itself
    (``dataset_kwargs: {prompts: [...]}``): a ``test`` split of ``{"prompt"}`` rows."""
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict({"prompt": list(prompts)})})
