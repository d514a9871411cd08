"""The evaluation command: lm-evaluation-harness runs every task on every model; this module only chooses, checks and files.

For each model (our stage checkpoints, GPT-2 and DistilGPT-2, any Hub causal LM) it runs `lm_eval.simple_evaluate`
with lm-eval's HF model class (`HFLM`, see `harness_lm`) on the requested tasks (ours in eval/tasks/, lm-eval's own,
a user's through `--include_path`), always logging samples, and writes lm-eval's `results_<time>.json` and
`samples_<task>_<time>.jsonl` into `<output_dir>/<model>/`, as `lm_eval --output_path --log_samples` lays them out.
Then the verifier (if any) scores every sampled GSM8K solution in batches (`<model>/verifier_scores_<task>.json`),
`run_index.json` records what ran (models, stages, command, seeds, what was unavailable and why), and
`results.write_views` writes the views.

Every argument, path and folder is checked before anything loads (`errors.UsageError` / `errors.InputFileError`: one
line, exit 2 / 1). A model or dataset that cannot be loaded (no network, say) becomes an "unavailable: <reason>"
entry and the rest runs. The outputs are written into a staging folder renamed into place when complete, so a
crash never leaves half a results folder, and finished results are replaced only with `--overwrite`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from modeling_modern_llm.errors import InputFileError, UsageError
from modeling_modern_llm.files import atomic_write_json, existing_parent, replace_folder
from modeling_modern_llm.processes import die_with_parent_if_asked
from modeling_modern_llm.stages import BASELINES, FINAL_SUFFIX, POLICY_STAGES, get_stage, infer_stage
from modeling_modern_llm.task_formats import format_verifier_input

from .results import RUN_INDEX, load_run, read_samples, summary_table, write_views

logger = logging.getLogger(__name__)

SUITES = {  # --tasks defaults: the real benchmarks (lm-eval's own tasks, and ours over the registry) or --embedded
    "hub": ["wikitext", "tinystories", "sst2", "gsm8k", "gsm8k_sampled"],
    "embedded": ["embedded_text", "embedded_sst2", "embedded_sst2_fewshot", "embedded_gsm8k", "embedded_gsm8k_sampled"],
}
SUITE_DATASETS = {  # the registry datasets the suites read (their Hub ids are lm-eval's sst2/gsm8k ones: one cache)
    "hub": ["sst2", "gsm8k", "tinystories"],
    "embedded": ["embedded-text", "embedded-sst2", "embedded-gsm8k"],
}
CHAT_SUFFIX = "_chat"  # a chat model runs <task>_chat where that variant exists (its prompt in the SFT data's format)
PACKAGES = ("torch", "transformers", "lm_eval", "evaluate", "datasets", "accelerate", "tokenizers")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class EvaluationArguments:
    model: list[str] = field(
        default_factory=list,
        metadata={"help": "Models to score: folders (<run>/<stage>_final) or Hub ids, optionally NAME=PATH."},
    )
    stages: list[str] | None = field(
        default=None,
        metadata={"help": "One stage per --model (pretrain, sft, dpo, baseline, other); default: from folder names."},
    )
    include_baselines: bool = field(default=False, metadata={"help": "Also score the Hub baselines gpt2, distilgpt2."})
    tasks: list[str] | None = field(
        default=None,
        metadata={
            "help": "lm-eval tasks or groups (ours in eval/tasks/, lm-eval's, --include_path's); default: the suite's."
        },
    )
    embedded: bool = field(
        default=False,
        metadata={"help": "Default --tasks to the embedded suite (offline smoke test) instead of the real benchmarks."},
    )
    include_path: list[str] | None = field(default=None, metadata={"help": "More folders of lm-eval task YAMLs."})
    verifier: str | None = field(
        default=None,
        metadata={"help": "Verifier folder (sequence classification) that scores the sampled GSM8K solutions."},
    )
    output_dir: str = field(default="experiments/results", metadata={"help": "Where results go (docs/EVALUATION.md)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace finished results in --output_dir."})
    limit: int | None = field(
        default=None, metadata={"help": "Documents per task (lm-eval's --limit); rehearsals pass e.g. 4."}
    )
    n_samples: int | None = field(
        default=None,
        metadata={"help": "Solutions sampled per problem by the sampled tasks (their `repeats`); 0 skips them."},
    )
    sampled_stages: list[str] | None = field(
        default=None,
        metadata={
            "help": "Run the sampled tasks (N generations per problem) only for the models of these stages, e.g. "
            "`dpo grpo` (the policies whose best-of-N the report discusses); default: every model."
        },
    )
    temperature: float | None = field(default=None, metadata={"help": "Sampling temperature of the sampled tasks."})
    max_gen_toks: int | None = field(default=None, metadata={"help": "Generation budget of every generation task."})
    num_fewshot: int | None = field(
        default=None,
        metadata={"help": "lm-eval's --num_fewshot: overrides every task's shots except those fixed at 0."},
    )
    chat_template: bool = field(
        default=False,
        metadata={
            "help": "Prompt SFT/DPO models through their chat template (lm-eval's --apply_chat_template "
            "--fewshot_as_multiturn), with each task's _chat variant where there is one."
        },
    )
    local_dir: str | None = field(
        default=None,
        metadata={
            "help": "Read datasets from DIR/<registry name>/<split>.jsonl|.parquet instead of the Hub (offline clusters)."
        },
    )
    corpus_seed: int = field(default=0, metadata={"help": "Seed of the embedded corpus (the training stages' one)."})
    seed: int = field(default=0, metadata={"help": "lm-eval's random, numpy, torch and few-shot seeds."})
    batch_size: int | None = field(
        default=None, metadata={"help": "Sequences per forward pass; default 32 (CPU) / 64."}
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, ...; default cuda if available."})
    dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on a GPU, fp32 on a CPU), float32, bfloat16, float16."}
    )
    trust_remote_code: bool = field(
        default=True, metadata={"help": "Allow checkpoints that carry their modeling code."}
    )


@dataclass
class ModelSpec:
    name: str
    path: str
    stage: str  # a stage name, "baseline" or "other"
    chat: bool


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or value.count("/") > 1 or value.endswith(FINAL_SUFFIX)


def _check_model_folder(path: str) -> None:
    config = Path(path) / "config.json"
    if not config.is_file():
        raise InputFileError(f"--model {path}: no config.json there; pass a saved model folder such as <run>/sft_final")
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError) as error:
        raise InputFileError(f"--model {path}: config.json is unreadable ({error})") from None
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        raise InputFileError(
            f"--model {path} is a sequence-classification model ({', '.join(architectures)}), not a "
            "causal LM: pass a verifier as --verifier"
        )


def model_specs(args: EvaluationArguments) -> list[ModelSpec]:
    """The models to score, checked: local folders exist and hold causal LMs, names are unique, stages known."""
    if args.stages is not None and len(args.stages) != len(args.model):
        raise UsageError(
            f"--stages needs one stage per --model: {len(args.stages)} stages for {len(args.model)} models"
        )
    specs = []
    for index, entry in enumerate(args.model):
        name, _, path = entry.rpartition("=") if "=" in entry else ("", "", entry)
        if os.path.exists(path):
            _check_model_folder(path)
        elif _looks_like_path(path):
            raise InputFileError(
                f"--model {path} does not exist: check the path (each stage saves <run>/<stage>_final)"
            )
        stage = args.stages[index] if args.stages else infer_stage(path) or "other"
        if stage not in (*POLICY_STAGES, "baseline", "other"):
            raise UsageError(f"--stages: {stage!r} is not one of {', '.join((*POLICY_STAGES, 'baseline', 'other'))}")
        chat = args.chat_template and stage in POLICY_STAGES and get_stage(stage).chat
        specs.append(ModelSpec(name or Path(path).name, path, stage, chat))
    specs += [ModelSpec(hub_id, hub_id, "baseline", False) for hub_id in BASELINES if args.include_baselines]
    names = [spec.name for spec in specs]
    if not specs:
        raise UsageError("nothing to evaluate: pass --model PATH [PATH ...] and/or --include-baselines")
    if len(set(names)) < len(names):
        raise UsageError(
            f"two models are named {max(names, key=names.count)!r}: name them apart with --model NAME=PATH"
        )
    return specs


def check_arguments(args: EvaluationArguments) -> None:
    """Values in range, devices available, folders present; raises UsageError / InputFileError before any load."""
    import torch

    for flag, value, low in (
        ("--limit", args.limit, 1),
        ("--n_samples", args.n_samples, 0),
        ("--max_gen_toks", args.max_gen_toks, 1),
        ("--num_fewshot", args.num_fewshot, 0),
        ("--batch_size", args.batch_size, 1),
    ):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    if args.temperature is not None and not 0 < args.temperature < float("inf"):
        raise UsageError(f"--temperature must be a positive number (sampling), got {args.temperature}")
    if args.dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {args.dtype!r}")
    if args.device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", args.device):
        raise UsageError(f"--device must be cpu, mps, cuda or cuda:N, got {args.device!r}")
    if (args.device or "").startswith("cuda"):
        index = int(args.device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA device(s); use --device cpu"
            )
    if args.sampled_stages is not None and (
        unknown := set(args.sampled_stages) - {*POLICY_STAGES, "baseline", "other"}
    ):
        raise UsageError(
            f"--sampled_stages: {', '.join(sorted(unknown))} is not a stage; stages: "
            f"{', '.join((*POLICY_STAGES, 'baseline', 'other'))}"
        )
    if args.tasks is not None and not args.tasks:
        raise UsageError("--tasks needs at least one task name")
    for flag, folder in [("--local_dir", args.local_dir), *(("--include_path", p) for p in args.include_path or [])]:
        if folder is not None and not os.path.isdir(folder):
            raise InputFileError(f"{flag} {folder} is not a folder")
    if args.verifier:
        from .verifier import check_verifier

        check_verifier(args.verifier)


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """Refuse to replace finished results without --overwrite, or a folder that holds something else at all."""
    output = Path(output_dir)
    if output.exists() and not output.is_dir():
        raise InputFileError(f"--output_dir {output} is a file, not a folder")
    if output.is_dir() and any(output.iterdir()):
        finished = [name for name in (RUN_INDEX, "task_metrics.json") if (output / name).is_file()]
        if not finished:
            raise InputFileError(
                f"--output_dir {output} holds files that are not evaluation results; choose a new folder"
            )
        if not overwrite:
            raise UsageError(
                f"--output_dir {output} holds finished results ({finished[0]}); pass --overwrite to "
                "replace them, or choose another folder"
            )
    parent = existing_parent(str(output.resolve().parent))
    if not os.access(parent, os.W_OK):
        raise InputFileError(f"--output_dir {output}: {parent} is not writable")


class TaskLoader:
    """lm-eval task objects, loaded once per name (a model-independent Task is reused for every model), with the
    command line's overrides; a task whose dataset cannot be loaded is remembered as its reason."""

    def __init__(self, args: EvaluationArguments, include_paths: list[str], names: list[str]):
        from lm_eval.tasks import TaskManager

        self.args, self.loaded = args, {}
        meta = {"corpus_seed": args.corpus_seed, **({"local_dir": args.local_dir} if args.local_dir else {})}
        self.manager = TaskManager(include_path=include_paths, include_defaults=False, metadata=meta)
        if not all(name in self.manager.all_tasks for name in names):  # lm-eval's own tasks: index them too (~10 s)
            self.manager = TaskManager(include_path=include_paths, metadata=meta)
        unknown = [name for name in names if name not in self.manager.all_tasks]
        if unknown:
            raise UsageError(
                f"--tasks: no task or group named {', '.join(unknown)} (lm-eval's, eval/tasks/ or "
                "--include_path); `lm_eval ls tasks` lists lm-eval's"
            )

    def name_for(self, name: str, chat: bool) -> str:
        return name + CHAT_SUFFIX if chat and name + CHAT_SUFFIX in self.manager.all_tasks else name

    def is_sampled(self, name: str) -> bool:
        return (self.manager.task_index[name].cfg or {}).get("repeats", 1) > 1

    def load(self, name: str):
        """The Task or Group named `name`, or "unavailable: <reason>"."""
        if name not in self.loaded:
            try:
                self.loaded[name] = next(iter(self._load(name)))
            except Exception as error:  # no network, a missing local file, a dataset script: the rest still runs
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:400]
                self.loaded[name] = f"unavailable: {type(error).__name__}: {reason}"
                logger.warning("task %s %s", name, self.loaded[name])
        return self.loaded[name]

    def _load(self, name: str):
        # lm-eval has no public way to a task's YAML path and kind: these two private modules are pinned by
        # tests/evaluation/test_harness.py::test_the_private_lm_eval_api_the_task_loader_reads_is_still_there
        from lm_eval.tasks._index import Kind
        from lm_eval.tasks._yaml_loader import load_yaml

        entry, args = self.manager.task_index[name], self.args
        if entry.kind != Kind.TASK or entry.yaml_path is None:
            loaded = self.manager.load([name])  # a group or a Python task: as lm-eval defines it
            return loaded["groups"].values() if loaded.get("groups") else loaded["tasks"].values()
        config = load_yaml(entry.yaml_path)
        generation = dict(config.get("generation_kwargs") or {})
        if config.get("repeats", 1) > 1:
            config["repeats"] = args.n_samples or config["repeats"]
            generation.update({} if args.temperature is None else {"temperature": args.temperature})
        if args.max_gen_toks is not None and config.get("output_type") == "generate_until":
            generation["max_gen_toks"] = args.max_gen_toks
        config["generation_kwargs"] = generation or None
        if args.local_dir and not config.get("custom_dataset"):
            config.update(_registry_twin(config))
        return self.manager.load([config])["tasks"].values()

    def check_fewshot(self, task) -> None:
        shots = _shots(task.get_config("num_fewshot"), self.args.num_fewshot)
        if shots and shots > len(task.fewshot_docs()):
            raise UsageError(
                f"--num_fewshot {shots}: task {task.task_name} has {len(task.fewshot_docs())} few-shot "
                "documents; choose fewer"
            )


def _shots(configured: int | None, override: int | None) -> int:
    """The shots lm-eval will use: `--num_fewshot` overrides a task's own number unless the task fixes it at 0."""
    return override if override is not None and configured != 0 else configured or 0


def _registry_twin(config: dict) -> dict:
    """For --local_dir: read an lm-eval task's Hub dataset through the registry entry with the same Hub id, so its
    local copy DIR/<registry name>/<split>.jsonl is used (e.g. lm-eval's sst2 reads DIR/sst2/validation.jsonl).

    Every split the task names is served, whatever the shot count: lm-eval builds a task's few-shot sampler from its
    training (or few-shot) split when the task loads, even for 0 shots, as its own run of the Hub dataset does."""
    from modeling_modern_llm.data import REGISTRY, registry_splits

    spec = next(
        (
            s
            for s in REGISTRY.values()
            if s.hub_id == config.get("dataset_path") and s.config == config.get("dataset_name")
        ),
        None,
    )
    if spec is None:
        raise InputFileError(
            f"task {config['task']}: its dataset {config.get('dataset_path')} has no registry entry, "
            "so --local_dir cannot serve it"
        )
    named = [config.get(key) for key in ("validation_split", "test_split", "training_split", "fewshot_split")]
    splits = list(dict.fromkeys(filter(None, [*named, (config.get("fewshot_config") or {}).get("split")])))
    return {"custom_dataset": registry_splits, "dataset_kwargs": {"registry_name": spec.name, "splits": splits}}


def evaluation_targets(suite: str, include_baselines: bool) -> tuple[list[str], list[str]]:
    """What `recipes/prefetch.py --eval_suite` fetches: the suite's registry datasets and, if asked, the baselines.
    lm-eval's own `wikitext` has no registry twin: lm-eval downloads it on its first run with a network."""
    return list(SUITE_DATASETS[suite]), list(BASELINES) if include_baselines else []


def describe_load_error(path: str, error: Exception) -> str:
    """A one-line reason for the run index: the missing network, or the loader's own first line."""
    from modeling_modern_llm.data.registry import hub_offline

    if not os.path.isdir(path) and isinstance(error, OSError) and hub_offline():
        return (
            f"unavailable: {path} is not a local folder, and the Hub cannot be reached with no cached copy (no network)"
        )
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    return f"unavailable: cannot load {path}: {type(error).__name__}: {first_line}"


def go_offline_if_unreachable() -> None:
    """Without a network, make every Hub lookup fail at once instead of retrying for a minute per model and dataset."""
    import datasets
    import huggingface_hub.constants

    from modeling_modern_llm.data.registry import hub_offline, hub_reachable

    if not hub_offline() and not hub_reachable():
        logger.warning("the Hugging Face Hub cannot be reached: running offline (HF_HUB_OFFLINE=1)")
        os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
        huggingface_hub.constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True


def _dtype_and_device(args: EvaluationArguments) -> tuple[str, str, int]:
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    return dtype, device, args.batch_size or (64 if device.startswith("cuda") else 32)


def run_model(spec: ModelSpec, tasks: list, loader: TaskLoader, args: EvaluationArguments, staging: Path) -> dict:
    """Score one model with lm-eval and write its files under `staging/<name>/`; returns its run-index entry."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import sanitize_model_name

    from .harness_lm import HarnessLM

    dtype, device, batch_size = _dtype_and_device(args)
    entry = {
        "name": spec.name,
        "path": spec.path,
        "stage": spec.stage,
        "dir": sanitize_model_name(spec.name),
        "chat_template": spec.chat,
        "tasks": [],
        "status": "ok",
    }
    try:
        lm = HarnessLM(
            pretrained=spec.path,
            trust_remote_code=args.trust_remote_code,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
        )
    except Exception as error:  # no network, no cached copy, a broken checkpoint: the other models still run
        entry["status"] = describe_load_error(spec.path, error)
        logger.warning("model %s %s", spec.name, entry["status"])
        return entry
    if spec.chat and not getattr(lm.tokenizer, "chat_template", None):
        entry["chat_template"] = False  # recorded: its tasks ran with the plain prompts
        logger.warning("%s has no chat template: plain prompts", spec.name)
    tracker = EvaluationTracker(output_path=str(staging))
    seeds = dict.fromkeys(("random_seed", "numpy_random_seed", "torch_random_seed", "fewshot_random_seed"), args.seed)
    results = simple_evaluate(
        model=lm,
        tasks=tasks,
        limit=args.limit,
        num_fewshot=args.num_fewshot,
        log_samples=True,
        evaluation_tracker=tracker,
        apply_chat_template=entry["chat_template"],
        fewshot_as_multiturn=entry["chat_template"],
        task_manager=loader.manager,
        **seeds,
    )
    samples = results.pop("samples")
    results["config"].update(
        model="hf", model_args=f"pretrained={spec.path},trust_remote_code={args.trust_remote_code},dtype={dtype}"
    )
    tracker.general_config_tracker.model_name, tracker.general_config_tracker.model_name_sanitized = (
        spec.name,
        entry["dir"],
    )
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    if not list((staging / entry["dir"]).glob("results_*.json")):  # lm-eval logs a failed write as a warning only
        raise InputFileError(f"lm-eval could not write its results under {staging / entry['dir']} (disk full?)")
    entry["tasks"] = list(results["configs"])
    del lm
    return entry


def score_with_verifier(verifier, model_dir: Path, sampled_tasks: list[str], path: str) -> None:
    """Score every sampled solution of a model's sampled GSM8K tasks in one batched pass per task."""
    for task in sampled_tasks:
        docs = read_samples(model_dir, task)
        if not docs or "question" not in docs[0]["doc"]:
            continue
        texts = [format_verifier_input(d["doc"]["question"], text) for d in docs for text in d["resps"][0]]
        flat, scores, start = verifier.score(texts), {}, 0
        for doc in docs:
            scores[doc["doc_id"]] = flat[start : start + len(doc["resps"][0])]
            start += len(doc["resps"][0])
        atomic_write_json(
            str(model_dir / f"verifier_scores_{task}.json"), {"verifier": path, "task": task, "scores": scores}
        )


def environment() -> dict:
    versions = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def run_evaluation(args: EvaluationArguments, include_paths: list[str], command: str) -> Path:
    """Check everything, score every model, file the outputs into `args.output_dir`; returns that folder."""
    specs = model_specs(args)
    check_arguments(args)
    go_offline_if_unreachable()
    requested = list(args.tasks or SUITES["embedded" if args.embedded else "hub"])
    loader = TaskLoader(args, include_paths + list(args.include_path or []), requested)
    requested = [name for name in requested if not (args.n_samples == 0 and loader.is_sampled(name))]
    for name in dict.fromkeys(loader.name_for(n, spec.chat) for n in requested for spec in specs):
        task = loader.load(name)
        if not isinstance(task, str) and hasattr(task, "fewshot_docs"):
            loader.check_fewshot(task)
    check_output_dir(args.output_dir, args.overwrite)  # last: every other mistake is named first

    output = Path(args.output_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    for left in output.parent.glob(f".{output.name}.staging-*"):  # what a killed evaluation left: never results
        shutil.rmtree(left, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.staging-"))
    try:
        from .verifier import trained_policy

        verifier, entries = None, []
        for spec in specs:
            names = [
                loader.name_for(name, spec.chat)
                for name in requested
                if args.sampled_stages is None or spec.stage in args.sampled_stages or not loader.is_sampled(name)
            ]
            tasks = [task for task in map(loader.load, names) if not isinstance(task, str)]
            entry = (
                run_model(spec, tasks, loader, args, staging)
                if tasks
                else {
                    "name": spec.name,
                    "path": spec.path,
                    "stage": spec.stage,
                    "status": "unavailable: no task could be loaded",
                }
            )
            sampled = [
                name for name in entry.get("tasks", []) if name in loader.manager.task_index and loader.is_sampled(name)
            ]
            if args.verifier and sampled:
                if verifier is None:
                    from .verifier import Verifier

                    verifier = Verifier.from_pretrained(args.verifier, device=_dtype_and_device(args)[1])
                score_with_verifier(verifier, staging / entry["dir"], sampled, args.verifier)
            entries.append(entry)
        index = {
            "schema_version": 2,
            "command": command,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tasks": requested,
            "limit": args.limit,
            "n_samples": args.n_samples,
            "seed": args.seed,
            "corpus_seed": args.corpus_seed,
            "chat_template": args.chat_template,
            "verifier": args.verifier,
            "verifier_policy": trained_policy(args.verifier) if args.verifier else None,
            "unavailable_tasks": {name: task for name, task in loader.loaded.items() if isinstance(task, str)},
            "environment": environment(),
            "models": entries,
        }
        atomic_write_json(str(staging / RUN_INDEX), index)
        if not any(entry["status"] == "ok" for entry in entries):
            raise InputFileError(
                "nothing could be scored: every model or task was unavailable "
                + "; ".join(f"{e['name']}: {e['status']}" for e in entries)
            )
        write_views(load_run(staging), staging)
        replace_folder(str(staging), str(output))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def main(include_paths: list[str], argv: list[str] | None = None, **preset) -> int:
    """The command line of eval/evaluate_tasks.py and its presets (`preset`: their defaults, e.g. tasks=[...])."""
    from transformers import HfArgumentParser

    die_with_parent_if_asked()

    parser = HfArgumentParser(
        EvaluationArguments,
        description=(
            "Score models on lm-evaluation-harness tasks (docs/EVALUATION.md). A rehearsal of the whole path runs in seconds "
            "with --limit 4 --n_samples 2 --max_gen_toks 16."
        ),
    )
    parser.set_defaults(**preset)
    argv = sys.argv[1:] if argv is None else argv
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    command = shlex.join(["python", os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "eval", *argv])
    output = run_evaluation(args, include_paths, command)
    print(summary_table(load_run(output)))
    print(f"wrote {output}/ (lm-eval's results and samples per model, {RUN_INDEX} and the views)")
    return 0
