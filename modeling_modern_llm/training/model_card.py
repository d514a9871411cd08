"""The model card (README.md in the Hub's form) and training_summary.json written into each ``<stage>_final``.

The card shows no machine paths (`files.portable`: the run folder as `<run>`, the interpreter as `python`);
training_summary.json keeps them for provenance."""

from __future__ import annotations

import os

import yaml

from modeling_modern_llm.files import atomic_write_json, portable
from modeling_modern_llm.stages import get_stage

ARCHITECTURE_FIELDS = (  # the config.json fields that describe a model, in the card and in the report's run line
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "attention_sinks",
    "qk_norm",
    "num_experts",
)


def write_training_summary(folder: str, summary: dict) -> None:
    atomic_write_json(os.path.join(folder, "training_summary.json"), summary)


def _adapter_lines(peft: dict | None) -> list[str]:
    if not peft:
        return []
    return [
        f"- LoRA (r {peft['r']}, alpha {peft['lora_alpha']}, dropout {peft['lora_dropout']}) on "
        f"{', '.join(peft['target_modules'])}"
        + (f", {', '.join(peft['modules_to_save'])} trained in full" if peft["modules_to_save"] else "")
        + f": {peft['trainable_parameters']:,} trainable parameters. These weights have the adapter merged in; "
        f"the adapter itself is in `{peft['adapter']}` (`PeftModel.from_pretrained(<base model>, "
        f"\"{peft['adapter'].rstrip('/')}\")`)."
    ]


def write_model_card(
    folder: str, summary: dict, model_config: dict, base_model: str | None, eval_metrics: dict
) -> None:
    """README.md: YAML front matter (library_name, license, tags, datasets, base_model), then the facts of the run."""
    stage = summary["stage"]
    front = {
        "library_name": "transformers",
        "license": "apache-2.0",
        "tags": ["modern-llm", stage, "trl", "text-generation" if stage != "verifier" else "text-classification"],
        "datasets": summary["datasets"],
        "pipeline_tag": "text-generation" if stage != "verifier" else "text-classification",
    }
    if base_model and not (os.path.isabs(base_model) or os.path.exists(base_model)):
        front["base_model"] = base_model  # the Hub accepts only a Hub model id here; a local base is named below
    architecture = {key: model_config.get(key) for key in ARCHITECTURE_FIELDS if key in model_config}
    results = {
        k: v for k, v in {"final_train_loss": summary.get("final_loss"), **eval_metrics}.items() if v is not None
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# modern-llm {stage}",
        "",
        f"This is {get_stage(stage).purpose}. It loads with `{get_stage(stage).model_class}.from_pretrained` "
        "(after `import modeling_modern_llm`, or with `trust_remote_code=True`: the folder carries the model code).",
        "",
        "## Model",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| parameters | {summary.get('num_parameters', 'n/a'):,} |"
        if summary.get("num_parameters")
        else "| parameters | n/a |",
        *(f"| {key} | {value} |" for key, value in architecture.items()),
        "",
        "## Training data",
        "",
        *(f"- `{name}` (modern-llm dataset registry)" for name in summary["datasets"]),
        "",
        "## Training procedure",
        "",
        *([f"- trained from: `{base_model}`"] if base_model else []),
        f"- command: `{summary['command']}`",
        f"- config: `{summary['config_path']}`",
        f"- steps: {summary['steps']}, tokens: {summary['train_tokens']}, per-device batch: "
        f"{summary['per_device_batch_size']}, learning rate: {summary['learning_rate']}",
        f"- hardware: {summary['hardware']}, world size {summary.get('world_size', 1)}, "
        f"wall time {summary['wall_time_s']:.0f} s, {summary['tokens_per_s']} tokens/s",
        *_adapter_lines(summary.get("peft")),
        "",
        "## Results",
        "",
        *(
            f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
            for key, value in results.items()
        ),
        "",
        "Task scores (perplexity, SST-2, GSM8K, against GPT-2) are in the project's evaluation report.",
        "",
        "## Intended use and limitations",
        "",
        "A small research model for studying the pretrain -> SFT -> DPO -> verifier pipeline, not for deployment. "
        "It is far smaller and trained on far less data than production models: it makes factual errors, "
        "cannot be relied on for arithmetic, and inherits the biases of its training sets. The demo scales "
        "(cpu-demo, gpu-smoke) only check that the pipeline works; their outputs are not meaningful text.",
        "",
    ]
    run_dir = os.path.dirname(os.path.abspath(folder))  # <run>/<stage>_final: paths on the card start from <run>
    with open(os.path.join(folder, "README.md"), "w") as handle:
        handle.write(portable("\n".join(lines), {run_dir: "<run>"}))
