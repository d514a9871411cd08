"""Sharing a finished stage on the Hugging Face Hub with `huggingface_hub`: what a push needs (checked before anything
loads), the evaluation results for the model card, and the upload.

    python recipes/push_to_hub.py experiments/runs/full/sft_final me/modern-llm-sft [--private] [--revision R]

A push uploads a ``<stage>_final`` folder as it is (safetensors weights, the remote code, tokenizer, generation config,
model card, ``training_summary.json``, and ``adapter/`` after a LoRA run), creating the repo if needed. The card gets
the evaluation's results for that folder as Hub ``model-index`` metadata when they exist (`stage_results`).

Tokens come only from the environment (``HF_TOKEN``) or ``hf auth login``, which huggingface_hub reads itself:
no function here takes one, and a ``hub_token`` in a stage config is refused (it would be copied into the
command line recorded in ``training_summary.json`` and the card, and into Trainer's pickled arguments).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass

from huggingface_hub import EvalResult, HfApi, ModelCard, get_token
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HFValidationError, HfHubHTTPError
from huggingface_hub.utils import validate_repo_id

from ..errors import InputError, InputFileError, UsageError
from ..files import atomic_write_text
from .checkpoints import final_model_problem

logger = logging.getLogger(__name__)
DEFAULT_RESULTS_DIR = "experiments/results"  # the evaluation's --output_dir
IGNORED = [".*"]  # hidden files: the temporary files of `files.atomic_write_*`, editors' leftovers


class PushError(InputError):
    """The Hub refused the push or could not be reached; the folder is kept as it is (exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class PushTarget:
    """Where a stage pushes its final folder (transformers' `hub_*` fields of the stage config)."""

    repo_id: str
    private: bool | None = None
    revision: str | None = None


def repo_id_problem(repo_id: str | None, field: str = "hub_model_id") -> str | None:
    """Why ``repo_id`` cannot name a repo to push to (huggingface_hub's own check, plus a namespace), or None."""
    if not repo_id:
        return f"`{field}` is missing: name the repo as <user or organization>/<name>"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        return f"`{field}` {repo_id!r} is not a Hub repo id ({str(error).splitlines()[0]})"
    if "/" not in repo_id:
        return f"`{field}` {repo_id!r} needs its namespace: <user or organization>/{repo_id}"
    return None


def push_problems() -> list[str]:
    """Why no push can happen from this machine (one line each): the Hub is switched off, or there is no token."""
    if hub_constants.HF_HUB_OFFLINE:
        return [
            "pushing to the Hub with HF_HUB_OFFLINE=1 set: unset it where the Hub can be reached, or push the "
            "finished folder later with `python recipes/push_to_hub.py <stage>_final <repo>`"
        ]
    if get_token() is None:
        return [
            "pushing to the Hub needs a token: set HF_TOKEN or run `hf auth login` (a token is never read from "
            "a config or the command line)"
        ]
    return []


def stage_push_problems(training, check_machine: bool = True) -> list[str]:
    """The problems of a stage config's `push_to_hub`/`hub_*` fields (empty when it does not push); with
    ``check_machine``, also whether this machine can push (a rehearsal never pushes, so it does not ask)."""
    problems = []
    if training.hub_token:
        problems.append(
            "`hub_token` is set: a token in a config or on the command line ends up in "
            "training_summary.json, the model card and the checkpoints' training_args.bin; remove it and "
            "set HF_TOKEN or run `hf auth login`"
        )
    if not training.push_to_hub:
        return problems
    problem = repo_id_problem(training.hub_model_id)
    if problem:
        problems.append(f"push_to_hub: {problem}")
    strategy = str(getattr(training.hub_strategy, "value", training.hub_strategy))  # transformers' HubStrategy enum
    if strategy != "end":
        problems.append(
            f"`hub_strategy: {strategy}` makes Trainer push output_dir while training (half-trained "
            "weights, the trained tokenizer's folder, the verifier's sample cache); the finished "
            "<stage>_final is what is pushed, at the end: set hub_strategy: end"
        )
    return problems + (push_problems() if check_machine else [])


def push_target(training):
    """The stage's push target (None when it does not push), and a copy of ``training`` with Trainer's own pushing
    switched off, for the trainer: ``push, training_args = push_target(training_args)``. ``training`` itself is
    left as it is.

    Trainer would create the repo in ``__init__`` (a network error before training, as a traceback) and push
    ``output_dir`` at every save; modern-llm pushes the finished ``<stage>_final`` once, after it is saved
    (`stage.save_final`). A shallow copy, not `dataclasses.replace`: that would run the config's ``__post_init__``
    again, which TRL's GRPOConfig refuses once it has derived ``generation_batch_size``.
    """
    if not training.push_to_hub:
        return None, training
    target = PushTarget(training.hub_model_id, training.hub_private_repo, training.hub_revision)
    trainer_args = copy.copy(training)
    trainer_args.push_to_hub = False
    return target, trainer_args


def stage_results(folder: str, results_dir: str = DEFAULT_RESULTS_DIR) -> list[dict]:
    """The evaluation's scored records of the model in ``folder`` (`evaluation.results.task_records`, lm-eval's metrics
    with their standard errors), read from the evaluation's ``results_dir``. No results there give no records, and so
    do results older than the model (the folder was retrained after it was evaluated)."""
    from ..evaluation.results import RUN_INDEX, load_run, task_records

    index = os.path.join(results_dir, RUN_INDEX)
    if not os.path.isfile(index):
        return []
    summary = os.path.join(folder, "training_summary.json")
    if os.path.isfile(summary) and os.path.getmtime(index) < os.path.getmtime(summary):
        logger.warning(
            "%s predates %s (retrained after it was evaluated): its results are not put on the card",
            results_dir,
            folder,
        )
        return []
    own = os.path.realpath(folder)
    return [
        record
        for record in task_records(load_run(results_dir))
        if record["status"] == "ok" and os.path.realpath(record["model_path"]) == own
    ]


def add_model_index(folder: str, records: list[dict]) -> None:
    """Put ``records`` into ``folder/README.md`` as the Hub's ``model-index`` metadata (one entry per task and metric;
    the rest of the card, including the report's Markdown results, stays as it is)."""
    card_path = os.path.join(folder, "README.md")
    card = ModelCard.load(card_path)
    card.data.model_name = card.data.model_name or os.path.basename(os.path.normpath(folder))
    card.data.eval_results = [
        EvalResult(
            task_type=card.data.pipeline_tag or "text-generation",
            dataset_type=record["task"],
            dataset_name=record["task"],
            metric_type=metric,
            metric_name=f"{record['task']} {metric}",
            metric_value=float(value["value"]),
        )
        for record in records
        for metric, value in sorted(record["metrics"].items())
        if isinstance(value["value"], (int, float))
    ] or None
    atomic_write_text(card_path, str(card))


def push_folder(
    folder: str,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    results_dir: str | None = None,
    report: str | None = None,
) -> str:
    """Upload the finished stage in ``folder`` to ``repo_id`` (created if needed); returns the commit URL.

    With ``results_dir``, that folder's evaluation results go into its card first (Hub ``model-index``);
    with ``report``, the report (a Markdown file and its ``figures/`` folder) goes under ``report/`` in the repo.
    """
    problem = final_model_problem(folder)
    if problem:
        raise InputFileError(f"{folder} is not a finished stage ({problem}); push a <stage>_final folder")
    problem = repo_id_problem(repo_id, "REPO_ID")
    if problem:
        raise UsageError(problem)
    if report and not os.path.isfile(report):
        raise InputFileError(f"--report {report}: no such file (build it with report/build_report.py)")
    problems = push_problems()
    if problems:
        raise UsageError(problems[0])
    records = stage_results(folder, results_dir) if results_dir else []
    if records:
        add_model_index(folder, records)
        logger.info("model card: the model-index of %d evaluated task(s) from %s", len(records), results_dir)
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            ignore_patterns=IGNORED,
            commit_message=f"Upload {os.path.basename(os.path.normpath(folder))}",
        )
        if report:
            report_dir = os.path.dirname(os.path.abspath(report))
            api.upload_folder(
                repo_id=repo_id,
                folder_path=report_dir,
                path_in_repo="report",
                revision=revision,
                allow_patterns=[os.path.basename(report), "figures/*"],
                commit_message="Upload the evaluation report",
            )
    except (HfHubHTTPError, ConnectionError, *_transport_errors()) as error:  # ConnectionError: HF_HUB_OFFLINE
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        if not isinstance(error, HfHubHTTPError):
            reason = f"cannot reach {hub_constants.ENDPOINT} ({type(error).__name__}: {reason})"
        raise PushError(
            f"pushing {folder} to {repo_id} failed: {reason}. {folder} is kept; push it again with "
            f"`python recipes/push_to_hub.py {folder} {repo_id}`"
        ) from None
    logger.info("Pushed %s to %s/%s (%s)", folder, hub_constants.ENDPOINT, repo_id, commit.commit_url)
    return commit.commit_url


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's own errors (no route to the Hub, a timeout): huggingface_hub 1.x runs on httpx, 2.x on httpx2,
    and whichever it runs on came with it."""
    return tuple(
        importlib.import_module(client).HTTPError
        for client in ("httpx2", "httpx")
        if importlib.util.find_spec(client) is not None
    )


__all__ = [
    "DEFAULT_RESULTS_DIR",
    "add_model_index",
    "PushError",
    "PushTarget",
    "push_folder",
    "push_problems",
    "push_target",
    "repo_id_problem",
    "stage_push_problems",
    "stage_results",
]
