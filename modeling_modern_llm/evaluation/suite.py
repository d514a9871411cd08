"""The evaluation suite behind ``eval/*.py``: one code path scores every model on every task.

``EvalArguments`` is the command line (parsed by ``transformers.HfArgumentParser``); ``run_suite`` loads
each model once (our stage checkpoints, or any Hub causal LM such as the GPT-2 baselines), runs the
selected tasks, and returns result ``Record``s. A model or dataset that cannot be loaded becomes an
"unavailable: <reason>" record and the rest still runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from tqdm.auto import tqdm

from .gsm8k import Verifier, draw_fewshot, evaluate_gsm8k
from .lm import CausalLM, ModelUnavailable
from .perplexity import evaluate_perplexity
from .results import EMBEDDED_NOTE, STAGE_ORDER, Record
from .sst2 import draw_demonstrations, evaluate_sst2
from .verifier_analysis import analysis_markdown, verifier_analysis

logger = logging.getLogger(__name__)

TASKS = ("perplexity", "sst2", "gsm8k")
BASELINES = ("gpt2", "distilgpt2")
SUITES = {  # task -> registry names of the datasets it runs on
    "hub": {"perplexity": ["wikitext-2-raw-v1", "tinystories"], "sst2": ["sst2"], "gsm8k": ["gsm8k"]},
    "embedded": {"perplexity": ["embedded-text"], "sst2": ["embedded-sst2"], "gsm8k": ["embedded-gsm8k"]},
}
EVAL_SPLITS = {"wikitext-2-raw-v1": "test", "wikitext-103-raw-v1": "test", "tinystories": "validation",
               "sst2": "validation", "gsm8k": "test"}  # embedded sets: "test"
# Defaults that differ between the real benchmarks and the CPU-sized embedded smoke suite.
SUITE_DEFAULTS = {
    "hub": dict(sst2_limit=None, gsm8k_limit=None, num_fewshot=5, max_new_tokens=256, perplexity_max_tokens=None),
    "embedded": dict(sst2_limit=200, gsm8k_limit=100, num_fewshot=2, max_new_tokens=96, perplexity_max_tokens=50_000),
}


@dataclass
class EvalArguments:
    model: list[str] = field(default_factory=list, metadata={"help": "Models to score: Hub ids or folders, optionally NAME=PATH. "
                                                              "The stage is read from folder names like <stage>_final."})
    stages: Optional[list[str]] = field(default=None, metadata={"help": "One stage per --model (pretrain|sft|dpo|baseline|other)."})
    verifier: Optional[str] = field(default=None, metadata={"help": "Verifier folder (sequence classification) for GSM8K best-of-N."})
    include_baselines: bool = field(default=False, metadata={"help": "Also score the Hub baselines gpt2 and distilgpt2."})
    tasks: list[str] = field(default_factory=lambda: list(TASKS), metadata={"help": "Any of perplexity sst2 gsm8k."})
    suite: str = field(default="hub", metadata={"help": "hub (the real benchmarks) or embedded (the built-in smoke-test splits)."})
    embedded: bool = field(default=False, metadata={"help": "Shorthand for --suite embedded."})
    perplexity_datasets: Optional[list[str]] = field(default=None, metadata={"help": "Registry names overriding the suite's perplexity sets."})
    sst2_dataset: Optional[str] = field(default=None, metadata={"help": "Registry name overriding the suite's SST-2 set."})
    gsm8k_dataset: Optional[str] = field(default=None, metadata={"help": "Registry name overriding the suite's GSM8K set."})
    local_dir: Optional[str] = field(default=None, metadata={"help": "Read DIR/<name>/<split>.jsonl|.parquet instead of the Hub."})
    output_dir: str = field(default="experiments/results", metadata={"help": "Where the result files go."})
    limit: Optional[int] = field(default=None, metadata={"help": "Examples per task (SST-2 sentences, GSM8K problems); "
                                                              "default: all for the hub suite, 200 / 100 for embedded."})
    num_fewshot: Optional[int] = field(default=None, metadata={"help": "k for k-shot SST-2 (0-shot always runs too) and GSM8K; "
                                                                    "default 5 (hub) / 2 (embedded)."})
    seed: int = field(default=0, metadata={"help": "Seed of the few-shot draws and of the sampling."})
    n_samples: int = field(default=8, metadata={"help": "GSM8K sampled solutions per problem (0: greedy only)."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the GSM8K candidates."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling of the GSM8K candidates."})
    max_new_tokens: Optional[int] = field(default=None, metadata={"help": "GSM8K generation budget; default 256 (hub) / 96 (embedded: its answers are at most ~70 tokens)."})
    stride: Optional[int] = field(default=None, metadata={"help": "Perplexity window stride in tokens; default max_length - 1 (lm-eval's)."})
    perplexity_max_tokens: Optional[int] = field(default=None, metadata={"help": "Cap on the perplexity corpus; default all (hub) / 50000 (embedded)."})
    chat_template: bool = field(default=False, metadata={"help": "Prompt SFT/DPO models through their chat template (not comparable with published numbers)."})
    chat_gsm8k_fewshot: int = field(default=0, metadata={"help": "GSM8K shots for a model prompted through its chat template: "
                                                         "0 (default), as its SFT conversations hold one question each "
                                                         "and taught it the answer format; -1: the same as num_fewshot."})
    batch_size: Optional[int] = field(default=None, metadata={"help": "Sequences per forward pass; default 64 on a GPU, 32 on a CPU."})
    device: Optional[str] = field(default=None, metadata={"help": "cpu, cuda, cuda:1, ...; default cuda if available."})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16."})
    trust_remote_code: bool = field(default=True, metadata={"help": "Allow checkpoints that carry their modeling code."})
    prompts: Optional[list[str]] = field(default=None, metadata={"help": "eval_generation.py only: the prompts to complete."})

    def __post_init__(self):
        if self.embedded:
            self.suite = "embedded"
        if self.suite not in SUITES:
            raise ValueError(f"--suite must be one of {list(SUITES)}, got {self.suite!r}")
        unknown = set(self.tasks) - set(TASKS) - {"generation"}
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {list(TASKS)}")
        if self.stages is not None and len(self.stages) != len(self.model):
            raise ValueError(f"--stages needs one stage per --model: {len(self.stages)} stages for {len(self.model)} models")
        if not self.model and not self.include_baselines:
            raise ValueError("nothing to evaluate: pass --model PATH [PATH ...] and/or --include-baselines")

    def default(self, name: str):
        """A suite-dependent setting: the value given on the command line, else the suite's default."""
        given = {"num_fewshot": self.num_fewshot, "max_new_tokens": self.max_new_tokens,
                 "perplexity_max_tokens": self.perplexity_max_tokens, "sst2_limit": self.limit, "gsm8k_limit": self.limit}[name]
        return given if given is not None else SUITE_DEFAULTS[self.suite][name]

    def datasets_for(self, task: str) -> list[str]:
        override = {"perplexity": self.perplexity_datasets, "sst2": self.sst2_dataset and [self.sst2_dataset],
                    "gsm8k": self.gsm8k_dataset and [self.gsm8k_dataset]}[task]
        return list(override or SUITES[self.suite][task])


@dataclass
class ModelSpec:
    name: str
    path: str
    stage: str


def infer_stage(path: str) -> str:
    """pretrain/sft/dpo from a folder named ``<stage>_final`` or ``<stage>/checkpoint-N``; else "other"."""
    parts = Path(path).parts[-2:]
    for part in reversed(parts):
        match = re.fullmatch(r"(pretrain|sft|dpo)(?:_final)?", part)
        if match:
            return match.group(1)
    return "other"


def model_specs(args: EvalArguments) -> list[ModelSpec]:
    specs = []
    for index, entry in enumerate(args.model):
        name, _, path = entry.rpartition("=") if "=" in entry else ("", "", entry)
        stage = args.stages[index] if args.stages else infer_stage(path)
        specs.append(ModelSpec(name or (Path(path).name if Path(path).exists() else path), path, stage))
    if args.include_baselines:
        specs += [ModelSpec(b, b, "baseline") for b in BASELINES]
    return specs


def split_of(dataset: str) -> str:
    return "test" if dataset.startswith("embedded-") else EVAL_SPLITS.get(dataset, "test")


class DatasetCache:
    """Rows of each (dataset, split, limit), loaded once; a failure is remembered as its reason."""

    def __init__(self, local_dir: Optional[str], loader: Optional[Callable] = None):
        self.local_dir, self.loader, self.cache = local_dir, loader, {}

    def rows(self, name: str, split: str, limit: Optional[int] = None):
        key = (name, split, limit)
        if key not in self.cache:
            try:
                loader = self.loader
                if loader is None:
                    from modeling_modern_llm.data import load_dataset_by_name as loader
                self.cache[key] = list(loader(name, split, local_dir=self.local_dir, limit=limit))
                if not self.cache[key]:
                    self.cache[key] = f"unavailable: {name}/{split} has no rows"
            except Exception as error:  # no network, missing local file, malformed rows
                self.cache[key] = f"unavailable: {name}/{split}: {error}"
                logger.warning("dataset %s/%s unavailable: %s", name, split, error)
        return self.cache[key]


@dataclass
class Job:
    """One (task, dataset, protocol) to run on every model."""

    task: str
    dataset: str
    protocol: dict
    limit: Optional[int]


def plan_jobs(args: EvalArguments) -> list[Job]:
    jobs, k = [], args.default("num_fewshot")
    for task in [t for t in TASKS if t in args.tasks]:
        for dataset in args.datasets_for(task):
            if task == "perplexity":
                jobs.append(Job(task, dataset, {"method": "sliding_window", "stride": args.stride, "max_tokens": args.default("perplexity_max_tokens")}, None))
            elif task == "sst2":
                for shots in sorted({0, k}):
                    jobs.append(Job(task, dataset, {"num_fewshot": shots, "prompt": "lm-eval sst2", "scoring": "label-word loglikelihood"}, args.default("sst2_limit")))
            else:
                jobs.append(Job(task, dataset, {"num_fewshot": k, "prompt": "lm-eval gsm8k", "n_samples": args.n_samples,
                                                "temperature": args.temperature, "top_p": args.top_p,
                                                "max_new_tokens": args.default("max_new_tokens"), "verifier": args.verifier}, args.default("gsm8k_limit")))
    return jobs


def model_protocol(job: Job, spec: ModelSpec, args: EvalArguments) -> dict:
    """The job's protocol as run on this model: chat models get their template and their GSM8K shot count."""
    chat = args.chat_template and spec.stage in ("sft", "dpo")
    protocol = {**job.protocol, "chat_template": chat}
    if chat and job.task == "gsm8k" and args.chat_gsm8k_fewshot >= 0:
        protocol["num_fewshot"] = args.chat_gsm8k_fewshot
    return protocol


def run_job(lm: CausalLM, job: Job, spec: ModelSpec, args: EvalArguments, data: DatasetCache,
            verifier: Optional[Verifier]) -> tuple[str, dict, dict, Optional[list]]:
    """(status, metrics, data counts, GSM8K problem records) of one job on one loaded model."""
    rows = data.rows(job.dataset, split_of(job.dataset), job.limit)
    if isinstance(rows, str):
        return rows, {}, {}, None
    chat = job.protocol.get("chat_template", False)
    if job.task == "perplexity":
        metrics, counts = evaluate_perplexity(lm, (row["text"] for row in rows), stride=args.stride, max_tokens=job.protocol["max_tokens"])
        return "ok", metrics, counts, None
    shots, counts = job.protocol["num_fewshot"], {"num_examples": len(rows)}
    train = data.rows(job.dataset, "train") if shots else []
    if isinstance(train, str):
        return f"{train} (the few-shot split)", {}, {}, None
    if job.task == "sst2":
        result = evaluate_sst2(lm, rows, demonstrations=draw_demonstrations(train, shots, args.seed), chat_template=chat)
        return "ok", {"accuracy": result["accuracy"]}, counts, None
    metrics, problems = evaluate_gsm8k(lm, rows, fewshot=draw_fewshot(train, shots, args.seed), n_samples=args.n_samples,
                                       temperature=args.temperature, top_p=args.top_p, max_new_tokens=job.protocol["max_new_tokens"],
                                       verifier=verifier, seed=args.seed, chat_template=chat)
    return "ok", metrics, counts, problems


def run_suite(args: EvalArguments, command: str, loader: Optional[Callable] = None) -> tuple[list[Record], dict]:
    """Every job on every model. Returns the records and ``{model name: GSM8K problem records}``."""
    data, jobs, specs = DatasetCache(args.local_dir, loader), plan_jobs(args), model_specs(args)
    verifier, verifier_status = None, None
    if args.verifier and "gsm8k" in args.tasks and args.n_samples > 0:
        try:
            verifier = Verifier.from_pretrained(args.verifier, device=args.device, trust_remote_code=args.trust_remote_code)
        except ModelUnavailable as error:
            verifier_status = f"unavailable: {error}"
            logger.warning("%s", verifier_status)
    records, problems_by_model = [], {}
    for spec in tqdm(specs, desc="models"):
        try:
            lm = CausalLM.from_pretrained(spec.path, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                          trust_remote_code=args.trust_remote_code)
            load_status = None
        except ModelUnavailable as error:
            lm, load_status = None, f"unavailable: {error}"
            logger.warning("%s", load_status)
        for job in tqdm(jobs, desc=spec.name, leave=False):
            protocol = model_protocol(job, spec, args)
            if job.task == "gsm8k" and verifier_status:
                protocol["verifier"] = verifier_status
            status, metrics, counts, problems = (load_status, {}, {}, None) if lm is None else run_job(
                lm, replace(job, protocol=protocol), spec, args, data, verifier)
            protocol.update(counts)
            if problems is not None:
                problems_by_model[spec.name] = problems
            records.append(Record(model=spec.name, model_path=spec.path, stage=spec.stage, task=job.task, dataset=job.dataset,
                                  split=split_of(job.dataset), protocol=protocol, seed=args.seed, limit=job.limit, status=status,
                                  metrics=metrics, command=command,
                                  note=EMBEDDED_NOTE if job.dataset.startswith("embedded-") else None))
        del lm
    return records, problems_by_model


def gsm8k_analysis(records: list[Record], problems_by_model: dict, n_samples: int) -> Optional[tuple[dict, str]]:
    """The verifier analysis of the most trained model that has GSM8K results (DPO, else SFT, ...)."""
    rank = {stage: i for i, stage in enumerate(("other", "baseline", *STAGE_ORDER))}
    scored = [r for r in records if r.task == "gsm8k" and r.ok and r.model in problems_by_model]
    if not scored:
        return None
    chosen = max(scored, key=lambda r: rank.get(r.stage, 0))
    analysis = verifier_analysis(problems_by_model[chosen.model], n_samples, model=chosen.model)
    return analysis, analysis_markdown(analysis)


DEFAULT_PROMPTS = (
    "Once upon a time",
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
    "a gripping , funny film .\nQuestion: Is this sentence positive or negative?\nAnswer:",
)


def run_generation(args: EvalArguments, command: str) -> dict:
    """Greedy and sampled completions of ``args.prompts`` (or a few defaults) by every model, for reading."""
    prompts = list(args.prompts or DEFAULT_PROMPTS)
    outputs = []
    for spec in tqdm(model_specs(args), desc="models"):
        entry = {"model": spec.name, "model_path": spec.path, "stage": spec.stage, "status": "ok", "generations": []}
        try:
            lm = CausalLM.from_pretrained(spec.path, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                          trust_remote_code=args.trust_remote_code)
        except ModelUnavailable as error:
            outputs.append({**entry, "status": f"unavailable: {error}"})
            continue
        chat = args.chat_template and spec.stage in ("sft", "dpo") and bool(getattr(lm.tokenizer, "chat_template", None))
        inputs = [lm.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                  if chat else p for p in prompts]
        budget = args.default("max_new_tokens")
        greedy = lm.generate_until(inputs, max_new_tokens=budget, desc=f"{spec.name} greedy")
        samples = lm.generate_until(inputs, max_new_tokens=budget, num_return_sequences=max(1, args.n_samples), do_sample=True,
                                    temperature=args.temperature, top_p=args.top_p, desc=f"{spec.name} samples") if args.n_samples else [[]] * len(prompts)
        entry["generations"] = [{"prompt": p, "chat_template": chat, "greedy": g[0], "samples": s} for p, g, s in zip(prompts, greedy, samples)]
        outputs.append(entry)
    return {"command": command, "seed": args.seed, "max_new_tokens": args.default("max_new_tokens"),
            "temperature": args.temperature, "n_samples": args.n_samples, "models": outputs}


def summary_table(records: list[Record]) -> str:
    """A plain-text table of the headline metrics, printed at the end of a run."""
    headline = ("bits_per_byte", "word_perplexity", "token_perplexity", "accuracy", "exact_match_strict",
                "exact_match_flexible", "majority_vote", "verifier_best_of_n", "oracle_pass_at_n")
    lines = []
    for r in records:
        values = ", ".join(f"{m}={r.metrics[m]:.4g}" for m in headline if m in r.metrics) if r.ok else r.status
        lines.append(f"{r.model:<24} {r.stage:<9} {r.label:<28} {values}")
    return "\n".join(lines)


def main(tasks: Optional[list[str]] = None, full_results: bool = True) -> int:
    """Command line of the eval scripts: parse ``EvalArguments``, run, write the result files, print a summary.
    ``tasks`` fixes the task list (one-task scripts write ``<task>_metrics.json``); exit 1 if nothing scored."""
    import json

    from transformers import HfArgumentParser

    from .results import command_line, write_gsm8k_analysis, write_results, write_task_metrics

    (args,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses()
    command = command_line()
    output_dir = Path(args.output_dir)
    if tasks == ["generation"]:
        result = run_generation(args, command)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "generations.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {output_dir / 'generations.json'}")
        return 0 if any(m["status"] == "ok" for m in result["models"]) else 1
    if tasks:
        args.tasks = tasks
    records, problems = run_suite(args, command)
    analysis = gsm8k_analysis(records, problems, args.n_samples)
    if full_results:
        paths = write_results(records, output_dir, command, *(analysis or (None, None)))
    else:
        paths = [write_task_metrics(records, output_dir / f"{'_'.join(args.tasks)}_metrics.json", command)]
        if analysis:
            paths += write_gsm8k_analysis(*analysis, output_dir, command)
    print(summary_table(records))
    print("wrote " + ", ".join(str(p) for p in paths))
    if not any(r.ok for r in records):
        print("nothing could be scored: every model or dataset was unavailable (see the statuses above)")
        return 1
    return 0
