"""Argument dataclasses of the recipes: TRL's configs plus only the fields modern-llm adds.

Every recipe parses ``(ScriptArguments, <Stage>Config, ModelArguments)`` with ``TrlParser`` (`parse_stage_args`),
so a YAML under ``recipes/configs/<scale>/<stage>.yaml`` sets the defaults and the command line overrides them.
TrlParser already rejects a YAML key no dataclass knows ("Unknown arguments from config file: [...]"), and
transformers' and TRL's ``__post_init__`` the values they refuse themselves; each dataclass here refuses the values
out of range of its own fields in its ``__post_init__``, as they do, with a `UsageError` naming the field and the fix
(`parse_stage_args` makes it the command's one line, naming the stage). ``validation.validate_stage`` checks the
combinations, the files and the machine before anything is loaded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import torch
import yaml
from trl import DPOConfig, GRPOConfig, ModelConfig, RewardConfig, SFTConfig, TrlParser
from trl import ScriptArguments as TrlScriptArguments

from ..errors import InputError, InputFileError, UsageError
from .problems import Problem, problems_error, problems_of, usage_problem


def _bad_number(value, integer: bool) -> bool:
    return value is None or (not integer and not math.isfinite(value)) or value <= 0


def positive(name: str, value, integer: bool = True) -> list[Problem]:
    """``[problem]`` when ``value`` is not a positive integer (``integer``) or a finite positive number, else []."""
    if _bad_number(value, integer):
        kind = "a positive integer" if integer else "a finite positive number"
        return [usage_problem(f"`{name}` must be {kind}, got {value!r}", name)]
    return []


def refuse(problems: list[Problem]) -> None:
    """A dataclass's ``__post_init__`` refuses its values out of range: one `UsageError`, one line per problem."""
    if problems:
        raise problems_error(problems)


@dataclass
class ScriptArguments(TrlScriptArguments):
    """Which registry datasets a stage trains and evaluates on (see ``modeling_modern_llm.data``)."""

    dataset_mixture: list[str] | None = field(
        default=None,
        metadata={
            "help": "Registry names with weights, 'name:weight' (e.g. wikitext-103-raw-v1:0.5 tinystories:0.5). "
            "Overrides dataset_name."
        },
    )
    local_data_dir: str | None = field(
        default=None, metadata={"help": "DIR/<registry name>/<split>.jsonl|.parquet in the Hub schema, read offline."}
    )
    embedded_corpus_seed: int = field(
        default=0,
        metadata={
            "help": "Seed that generates the embedded corpus; keep it equal across the stages and the "
            "evaluation (whose default is 0), so all read one corpus. Not the training seed."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation rows."})
    overwrite_final: bool = field(
        default=False,
        metadata={
            "help": "Replace a finished <output_dir>_final (only once the new one is complete). "
            "Without it, a stage whose final folder is finished refuses to start."
        },
    )

    def __post_init__(self):
        refuse(
            [
                problem
                for name in ("max_train_samples", "max_eval_samples")
                if getattr(self, name) is not None
                for problem in positive(name, getattr(self, name))
            ]
        )

    def mixture(self) -> list[tuple[str, float]]:
        """The (name, weight) pairs to load; one dataset_name counts as a mixture of one."""
        entries = self.dataset_mixture or ([self.dataset_name] if self.dataset_name else [])
        pairs = []
        for entry in entries:
            name, _, weight = entry.partition(":")
            try:
                pairs.append((name.strip(), float(weight) if weight else 1.0))
            except ValueError:
                raise ValueError(f"dataset_mixture entry {entry!r}: the weight after ':' must be a number.") from None
        return pairs


@dataclass
class ModelArguments(ModelConfig):
    """TRL's ModelConfig plus what building a model from scratch needs."""

    model_config: dict | str | None = field(
        default=None,
        metadata={
            "help": "ModernLLMConfig fields of a model trained from scratch (hidden_size, num_hidden_layers, ...), "
            "as a YAML mapping or a JSON string. vocab_size comes from the tokenizer."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A saved tokenizer folder or Hub name (e.g. gpt2). Unset: train one on the pretraining corpus."
        },
    )
    tokenizer_vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size of a trained tokenizer."})
    tokenizer_min_frequency: int = field(default=2, metadata={"help": "Minimum pair count of a BPE merge."})
    tokenizer_train_samples: int | None = field(
        default=None, metadata={"help": "Train the tokenizer on the first N training texts (all when unset)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.model_config, str):
            try:
                self.model_config = json.loads(self.model_config)
            except json.JSONDecodeError as error:
                raise ValueError(f"model_config must be a mapping or a JSON object string: {error}") from None
        if self.tokenizer_vocab_size <= 0:
            refuse(
                [
                    usage_problem(
                        f"`tokenizer_vocab_size` must be positive, got {self.tokenizer_vocab_size}",
                        "tokenizer_vocab_size",
                    )
                ]
            )


@dataclass
class _DeviceDefaults:
    """TRL turns bf16 on unless told otherwise; on a machine without CUDA that is ~30x slower, so default to fp32.
    A stage pushes its finished ``<stage>_final`` once, at the end (`hub_strategy: end`; see `training.hub`)."""

    hub_strategy: str = field(
        default="end",
        metadata={
            "help": "With push_to_hub: modern-llm pushes the finished <stage>_final at the end (end, the only value "
            "accepted); transformers' other strategies would push output_dir while training."
        },
    )

    def __post_init__(self):
        if self.bf16 is None and not self.fp16:
            self.bf16 = torch.cuda.is_available()
        super().__post_init__()  # transformers' and TRL's own refusals first, as before
        refuse(self.range_problems())

    def range_problems(self) -> list[Problem]:
        """The training numbers out of range (those transformers and TRL do not refuse themselves)."""
        problems = []
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append(
                usage_problem(
                    f"`max_steps` must be positive (or -1 to train `num_train_epochs` epochs), got {self.max_steps}",
                    "max_steps",
                )
            )
        elif self.max_steps == -1:
            problems += positive("num_train_epochs", self.num_train_epochs, integer=False)
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            problems += positive(name, getattr(self, name))
        problems += positive("learning_rate", self.learning_rate, integer=False)
        if self.weight_decay is not None and not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(
                usage_problem(f"`weight_decay` must be a finite number >= 0, got {self.weight_decay!r}", "weight_decay")
            )
        # transformers refuses warmup_steps < 0 itself ("Expected value warmup_steps >= 0"), not nan or inf
        if self.warmup_steps is not None and not math.isfinite(self.warmup_steps):
            problems.append(
                usage_problem(f"`warmup_steps` must be a finite number >= 0, got {self.warmup_steps!r}", "warmup_steps")
            )
        if self.max_grad_norm is not None and not math.isfinite(self.max_grad_norm):
            problems.append(
                usage_problem(f"`max_grad_norm` must be finite, got {self.max_grad_norm!r}", "max_grad_norm")
            )
        if self.save_strategy == "steps":
            problems += positive("save_steps", self.save_steps, integer=False)
        if self.eval_strategy == "steps" and self.eval_steps is not None:
            problems += positive("eval_steps", self.eval_steps, integer=False)
        problems += positive("logging_steps", self.logging_steps, integer=False)
        if getattr(self, "max_length", None) is not None:  # (GRPO has none: max_completion_length)
            problems += positive("max_length", self.max_length)
        return problems


@dataclass
class PretrainConfig(_DeviceDefaults, SFTConfig):
    """SFTConfig used for pretraining: packed raw text ("text" column), loss on every token."""


@dataclass
class SFTStageConfig(_DeviceDefaults, SFTConfig):
    """SFTConfig for chat-formatted instruction tuning."""


@dataclass
class DPOStageConfig(_DeviceDefaults, DPOConfig):
    """DPOConfig with the device default; the reference model is a frozen copy of the starting model."""

    def range_problems(self) -> list[Problem]:
        return [*super().range_problems(), *positive("beta", self.beta, integer=False)]


@dataclass
class VerifierConfig(_DeviceDefaults, RewardConfig):
    """RewardConfig plus how the policy's GSM8K solutions are sampled (Cobbe et al. 2021)."""

    samples_per_problem: int = field(default=4, metadata={"help": "Solutions sampled from the policy per problem."})
    num_fewshot: int = field(default=2, metadata={"help": "Solved training problems shown before each question."})
    max_new_tokens: int = field(default=128, metadata={"help": "Length limit of a sampled solution."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    generation_batch_size: int = field(default=8, metadata={"help": "Problems per generate() call."})
    max_pairs_per_problem: int = field(default=8, metadata={"help": "Cap on (correct, incorrect) pairs per problem."})
    sample_with_chat_template: bool = field(
        default=False,
        metadata={
            "help": "Prompt the policy through its chat template, the solved examples as earlier "
            "turns. Set it when the evaluation runs with --chat_template, so the verifier learns "
            "from the kind of solutions it will rank."
        },
    )
    include_reference: bool = field(
        default=False,
        metadata={
            "help": "Count the dataset's reference solution as one more correct candidate. Off "
            "(Cobbe et al.): pairs come only from the policy's own samples, so the verifier learns "
            "what separates its right and wrong solutions, not the reference's style."
        },
    )
    objective: str = field(
        default="pairwise",
        metadata={
            "help": "pairwise: TRL's RewardTrainer, Bradley-Terry on (correct, incorrect) "
            "pairs of one problem, scored at the last token; token_level: every sample "
            "labelled by its final answer, the score predicted at every token of the "
            "solution, plus the LM loss on correct ones (Cobbe et al. 2021)."
        },
    )
    lm_loss_coef: float = field(
        default=1.0,
        metadata={
            "help": "token_level: weight of the language-modelling loss on the correct solutions "
            "(needs tied embeddings); 0 turns it off."
        },
    )
    use_calculator: bool = field(
        default=False,
        metadata={
            "help": "Sample with the calculator: after `<<expr=` the policy may only write the "
            "computed value (as the evaluation's calculator tasks). Match the evaluation."
        },
    )

    def range_problems(self) -> list[Problem]:
        problems = super().range_problems()
        if self.objective == "pairwise" and self.samples_per_problem < 2 and not self.include_reference:
            problems.append(
                usage_problem(
                    f"`samples_per_problem` must be at least 2 to give (correct, incorrect) pairs, got "
                    f"{self.samples_per_problem} (or set include_reference: true)",
                    "samples_per_problem",
                )
            )
        for name in ("max_new_tokens", "generation_batch_size", "max_pairs_per_problem"):
            problems += positive(name, getattr(self, name))
        problems += positive("temperature", self.temperature, integer=False)
        if not 0 < self.top_p <= 1:
            problems.append(usage_problem(f"`top_p` must be in (0, 1], got {self.top_p}", "top_p"))
        if self.num_fewshot < 0:
            problems.append(usage_problem(f"`num_fewshot` must be >= 0, got {self.num_fewshot}", "num_fewshot"))
        if self.objective not in ("pairwise", "token_level"):
            problems.append(
                usage_problem(f"`objective` must be pairwise or token_level, got {self.objective!r}", "objective")
            )
        if not (math.isfinite(self.lm_loss_coef) and self.lm_loss_coef >= 0):
            problems.append(
                usage_problem(f"`lm_loss_coef` must be a finite number >= 0, got {self.lm_loss_coef!r}", "lm_loss_coef")
            )
        return problems


@dataclass
class GRPOStageConfig(_DeviceDefaults, GRPOConfig):
    """GRPOConfig plus which GSM8K rewards score the completions (`modeling_modern_llm.training.grpo`); their weights
    are TRL's `reward_weights`, in the same order."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["exact_match"],
        metadata={
            "help": "Rewards, summed with `reward_weights`: exact_match (the final answer, by the evaluation's "
            "flexible-extract rule), answer_format (a `#### N` answer line), verifier (the trained verifier's "
            "score; needs reward_model_name_or_path), or a dotted import path of a TRL reward function."
        },
    )
    reward_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "The verifier folder (<run>/verifier_final) the `verifier` reward loads; the "
            "pipeline sets it to its run's verifier."
        },
    )
    verifier_batch_size: int = field(default=32, metadata={"help": "Solutions the verifier reward scores per batch."})
    use_calculator: bool = field(
        default=False,
        metadata={
            "help": "Sample with the calculator: after `<<expr=` the policy may only write the computed value, "
            "as the evaluation's calculator tasks do. Match the evaluation the stage is judged by."
        },
    )
    num_fewshot: int = field(default=0, metadata={"help": "Solved training problems shown before each question."})
    sample_with_chat_template: bool = field(
        default=True,
        metadata={
            "help": "Ask through the chat template (the solved examples as earlier turns), as the "
            "evaluation asks a chat model with --chat_template; false: lm-eval's completion prompt "
            "`Question: ...\nAnswer:`, as it asks without."
        },
    )

    def range_problems(self) -> list[Problem]:
        problems = super().range_problems()
        for name in ("max_completion_length", "verifier_batch_size"):
            value = getattr(self, name)
            if value is None or value <= 0:
                problems.append(usage_problem(f"`{name}` must be a positive integer, got {value!r}", name))
        if self.num_fewshot < 0:
            problems.append(usage_problem(f"`num_fewshot` must be >= 0, got {self.num_fewshot}", "num_fewshot"))
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            problems.append(
                usage_problem(
                    f"`temperature` must be a finite positive number (GRPO samples), got {self.temperature}",
                    "temperature",
                )
            )
        if not 0 < self.top_p <= 1:
            problems.append(usage_problem(f"`top_p` must be in (0, 1], got {self.top_p}", "top_p"))
        if not (math.isfinite(self.beta) and self.beta >= 0):
            problems.append(
                usage_problem(
                    f"`beta` (the weight of the KL term to the starting model) must be a finite number >= 0, got "
                    f"{self.beta}",
                    "beta",
                )
            )
        return problems


STAGE_ARGUMENTS = {
    "pretrain": PretrainConfig,
    "sft": SFTStageConfig,
    "dpo": DPOStageConfig,
    "verifier": VerifierConfig,
    "grpo": GRPOStageConfig,
}
BF16_ON_THIS_MACHINE = (
    "bf16: true needs a GPU with bf16 (Ampere or newer). On this machine pass --use_cpu true (bf16 autocast "
    "on the CPU, slow) or --bf16 false; to check a GPU config here run `python recipes/pipeline.py --config "
    "<scale>/pipeline.yaml --rehearse`."
)


def read_config(path: str) -> dict:
    """A YAML config as a mapping; a missing file or bad YAML is one line naming the file (and the line)."""
    if not os.path.isfile(path):
        raise InputFileError(f"--config {path}: no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise UsageError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path} must be a YAML mapping of field: value (it holds a {type(config).__name__})")
    return config


def parse_stage_args(stage: str, argv: list[str], *, for_validation: bool = False):
    """``(script_args, training_args, model_args)`` of a stage from its command line (``--config YAML ...``).

    A missing or malformed YAML, an unknown key or a bad value is a `UsageError` (a missing file an
    `InputFileError`) whose problems (``error.problems``) name the stage. With ``for_validation`` a half-precision
    config is parsed on a machine without a GPU as it would be on one (``use_cpu`` is added: transformers otherwise
    refuses bf16 before any check can run).
    """
    argv = list(argv)
    if "--config" in argv:
        config = read_config(argv[argv.index("--config") + 1])
        half = config.get("bf16") is True or config.get("fp16") is True
        if for_validation and half and not torch.cuda.is_available() and "--use_cpu" not in argv:
            argv += ["--use_cpu", "true"]
    parser = TrlParser((ScriptArguments, STAGE_ARGUMENTS[stage], ModelArguments))
    try:
        return parser.parse_args_and_config(argv)
    except InputError as error:  # a dataclass's own range checks (`refuse`)
        raise problems_error([problem.at(stage) for problem in problems_of(error)]) from None
    except ValueError as error:  # transformers', TRL's or the parser's refusal
        message = " ".join(str(error).split())
        if "support bf16" in message:  # transformers' words: "Your setup doesn't support bf16/gpu."
            raise problems_error([usage_problem(BF16_ON_THIS_MACHINE, "bf16")]) from None
        raise problems_error([Problem(stage=stage, message=message)]) from None
