"""Attention maps of a few short examples, and per-layer first-token mass, sink mass and entropy.

    python report/visualize_attention.py --model_path experiments/runs/<run>/dpo_final \
        --output_dir report/figures --stats_path report/figures/attention_stats.json

Writes ``attention_<example>_layer<l>.png`` (one subplot per head, tokens on both axes) for the chosen
layers, ``attention_sink_mass.png`` and ``attention_entropy.png`` to ``--output_dir``, and the numbers
behind them to ``--stats_path`` (the report cites that file). The model runs with eager attention,
which returns the attention probabilities; the conventions are `head_statistics`'s.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

import modeling_modern_llm  # noqa: E402,F401  (registers the modern_llm Auto classes)
from modeling_modern_llm.errors import InputFileError
from modeling_modern_llm.files import atomic_write_json

STATISTICS = ("first_token_mass", "sink_mass", "entropy_bits")


def head_statistics(attention: torch.Tensor) -> dict[str, list[float]]:
    """Per-head averages over query positions 1.. of one layer's ``[heads, query, key]`` attention map.

    Rows are the probabilities a model returns with ``output_attentions=True``; with learned sinks the softmax has one
    more column per head (the sink logit), dropped from the returned maps, so a row sums to ``1 - sink mass``. Entropy
    is in bits over the full softmax, the sink column included. Query position 0 only sees itself: left out."""
    if attention.dim() != 3 or attention.shape[1] != attention.shape[2] or attention.shape[1] < 2:
        raise ValueError(f"expected a [heads, T, T] attention map with T >= 2, got shape {tuple(attention.shape)}")
    rows = attention[:, 1:, :].double()  # [heads, T-1, T]
    sink = (1.0 - rows.sum(-1)).clamp_min(0.0)  # [heads, T-1]
    plogp = torch.where(rows > 0, rows * torch.log2(rows), torch.zeros_like(rows)).sum(-1)
    sink_plogp = torch.where(sink > 0, sink * torch.log2(sink), torch.zeros_like(sink))
    return {
        "first_token_mass": rows[:, :, 0].mean(-1).tolist(),
        "sink_mass": sink.mean(-1).tolist(),
        "entropy_bits": (-(plogp + sink_plogp)).mean(-1).tolist(),
    }


def layer_statistics(per_example: list[list[torch.Tensor]]) -> list[dict]:
    """Per layer, the statistics averaged over examples and heads, with the per-head values (``per_example[e][l]`` is
    layer l's ``[heads, T_e, T_e]`` map for example e)."""
    if not per_example:
        raise ValueError("no examples given")
    layers = []
    for layer in range(len(per_example[0])):
        stats = [head_statistics(example[layer]) for example in per_example]
        per_head = {
            name: [sum(s[name][h] for s in stats) / len(stats) for h in range(len(stats[0][name]))]
            for name in STATISTICS
        }
        layers.append({"layer": layer, **{name: sum(v) / len(v) for name, v in per_head.items()}, "per_head": per_head})
    return layers


# Short on purpose: one sentiment sentence, an entity referred to again, a math problem.
EXAMPLES = {
    "sentiment": "The film was slow at first, but the ending was truly wonderful.",
    "coreference": "Maria lost her keys in the park, so she went back to find them.",
    "math": "Tom has 3 apples and buys 5 more. How many apples does he have?",
}


def _load(model_path: str):
    if not (Path(model_path) / "config.json").is_file():
        raise InputFileError(
            f"{model_path} is not a saved model (no config.json): train one with `python recipes/pipeline.py`"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as error:
        raise InputFileError(f"cannot load {model_path} as a causal LM with its tokenizer: {error}") from None
    return model, tokenizer


def _token_labels(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]).replace("\n", "\\n").strip() or "␣" for i in ids]


def _plot_example(
    name: str, labels: list[str], attention: torch.Tensor, layer: int, heads: list[int], path: Path
) -> None:
    fig, axes = plt.subplots(1, len(heads), figsize=(3.2 * len(heads) + 1, 3.6), squeeze=False)
    for ax, head in zip(axes[0], heads):
        image = ax.imshow(attention[head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {head}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xlabel("key")
    axes[0][0].set_ylabel("query")
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.02)
    fig.suptitle(f"{name}: layer {layer}", fontsize=10)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _plot_per_layer(layers: list[dict], keys: list[tuple[str, str]], ylabel: str, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    xs = [entry["layer"] for entry in layers]
    for key, label in keys:
        ax.plot(xs, [entry[key] for entry in layers], marker="o", label=label)
        for head_values in zip(*[entry["per_head"][key] for entry in layers]):
            ax.scatter(xs, head_values, s=8, alpha=0.35, color=ax.lines[-1].get_color())
    ax.set_xlabel("layer")
    ax.set_xticks(xs)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def visualize_attention(
    model_path: str,
    output_dir: str,
    stats_path: str,
    layers: list[int] | None = None,
    max_heads: int = 4,
    command: str = "",
) -> dict:
    """Draw the figures and write the statistics file; returns the statistics written."""
    model, tokenizer = _load(model_path)
    num_layers = model.config.num_hidden_layers
    requested = layers if layers is not None else [0, -1]
    if any(not -num_layers <= layer < num_layers for layer in requested):
        raise ValueError(
            f"--layers {requested}: the model has {num_layers} layers (0..{num_layers - 1}, negative counts from the end)"
        )
    chosen = sorted({layer % num_layers for layer in requested})
    heads = list(range(min(max_heads, model.config.num_attention_heads)))
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    figures, per_example, examples = [], [], []
    for name, text in EXAMPLES.items():
        encoded = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            attentions = model(**encoded, output_attentions=True).attentions
        maps = [layer_map[0].float() for layer_map in attentions]  # per layer: [heads, T, T]
        per_example.append(maps)
        labels = _token_labels(tokenizer, encoded["input_ids"][0].tolist())
        examples.append({"name": name, "text": text, "tokens": labels})
        for layer in chosen:
            path = output / f"attention_{name}_layer{layer}.png"
            _plot_example(name, labels, maps[layer], layer, heads, path)
            figures.append(str(path))
    statistics = layer_statistics(per_example)
    sink_figure, entropy_figure = output / "attention_sink_mass.png", output / "attention_entropy.png"
    _plot_per_layer(
        statistics,
        [("first_token_mass", "first token"), ("sink_mass", "learned sink")],
        "attention mass",
        "Attention mass per layer (line: mean over heads; dots: heads)",
        sink_figure,
    )
    _plot_per_layer(
        statistics, [("entropy_bits", "entropy")], "entropy (bits)", "Attention entropy per layer", entropy_figure
    )
    stats = {
        "schema_version": 1,
        "command": command,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": {"torch": torch.__version__, "transformers": transformers.__version__},
        "model_path": str(model_path),
        "attention_sinks": bool(getattr(model.config, "attention_sinks", False)),
        "num_layers": num_layers,
        "num_heads": model.config.num_attention_heads,
        "conventions": "averages over query positions 1.., examples and heads; "
        "entropy in bits over the softmax including the sink column",
        "examples": examples,
        "layers": statistics,
        "figures": [*figures, str(sink_figure), str(entropy_figure)],
    }
    atomic_write_json(str(stats_path), stats)
    return stats


def command_line(model_path: str | Path, output_dir: str | Path, stats_path: str | Path) -> str:
    """The command that redraws these figures alone."""
    return shlex.join(
        [
            "python",
            "report/visualize_attention.py",
            "--model_path",
            str(model_path),
            "--output_dir",
            str(output_dir),
            "--stats_path",
            str(stats_path),
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_path", required=True, help="a saved causal LM folder (e.g. <run>/dpo_final)")
    parser.add_argument("--output_dir", default="report/figures")
    parser.add_argument("--stats_path", default="report/figures/attention_stats.json")
    parser.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=None,
        help="layers to draw (negative counts from the end); default: first and last",
    )
    parser.add_argument("--max_heads", type=int, default=4, help="heads drawn per layer (the first ones)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "report/visualize_attention.py", *argv])
    try:
        stats = visualize_attention(
            args.model_path, args.output_dir, args.stats_path, args.layers, args.max_heads, command
        )
    except (InputFileError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(stats['figures'])} figures to {args.output_dir} and statistics to {args.stats_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
