"""Argument dataclasses of the recipes: TRL's configs plus only the fields modern-llm adds.

Every recipe parses ``(ScriptArguments, <Stage>Config, ModelArguments)`` with ``TrlParser``, so a YAML under
``recipes/configs/<scale>/<stage>.yaml`` sets the defaults and the command line overrides them. TrlParser
already rejects a YAML key no dataclass knows ("Unknown arguments from config file: [...]");
``validation.validate_stage`` checks the combination before anything is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from trl import DPOConfig, GRPOConfig, ModelConfig, RewardConfig, SFTConfig
from trl import ScriptArguments as TrlScriptArguments


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
        super().__post_init__()


@dataclass
class PretrainConfig(_DeviceDefaults, SFTConfig):
    """SFTConfig used for pretraining: packed raw text ("text" column), loss on every token."""


@dataclass
class SFTStageConfig(_DeviceDefaults, SFTConfig):
    """SFTConfig for chat-formatted instruction tuning."""


@dataclass
class DPOStageConfig(_DeviceDefaults, DPOConfig):
    """DPOConfig with the device default; the reference model is a frozen copy of the starting model."""


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
