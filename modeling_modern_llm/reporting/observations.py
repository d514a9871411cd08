"""Sentences for the report's interpretability section, computed from the numbers with stated thresholds.

Every sentence quotes the values it rests on and the threshold it compares them with, so a reader can
check it against ``attention_stats.json`` and ``stage_gains.csv``.
"""

from __future__ import annotations

from .markdown import fmt, fmt_percent, fmt_signed

FIRST_TOKEN_SINK_THRESHOLD = 0.3  # mean attention on token 0 above which it counts as an attention sink
ENTROPY_TREND_BITS = 0.1  # |last - first layer entropy| below this counts as flat
STAGE_CHANGE_THRESHOLD = 0.005  # |delta| below this counts as unchanged
LOWER_IS_BETTER = ("token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")


def attention_observations(stats: dict) -> list[str]:
    """First-token sink, learned-sink share and entropy trend across depth."""
    layers = stats["layers"]
    top = max(layers, key=lambda entry: entry["first_token_mass"])
    is_sink = top["first_token_mass"] > FIRST_TOKEN_SINK_THRESHOLD
    lines = [
        f"Layer {top['layer']} puts the most attention on the first token: {fmt_percent(top['first_token_mass'])} "
        f"(mean over heads, query positions and examples); {'above' if is_sink else 'below'} the "
        f"{fmt_percent(FIRST_TOKEN_SINK_THRESHOLD)} threshold, so the first token "
        f"{'acts' if is_sink else 'does not act'} as an attention sink there."
    ]
    if stats["attention_sinks"]:
        top_sink = max(layers, key=lambda entry: entry["sink_mass"])
        lines.append(
            f"The learned sink takes the most mass in layer {top_sink['layer']}: {fmt_percent(top_sink['sink_mass'])}, "
            f"while that layer puts {fmt_percent(top_sink['first_token_mass'])} on the first token."
        )
    else:
        lines.append(
            "The model has no learned sinks (`attention_sinks` is off), so the sink mass is 0 by construction."
        )
    first, last = layers[0], layers[-1]
    change = last["entropy_bits"] - first["entropy_bits"]
    trend = "stays flat" if abs(change) < ENTROPY_TREND_BITS else ("rises" if change > 0 else "falls")
    lines.append(
        f"Attention entropy {trend} with depth: {fmt(first['entropy_bits'])} bits in layer {first['layer']}, "
        f"{fmt(last['entropy_bits'])} bits in layer {last['layer']} ({fmt_signed(change)} bits; flat means within "
        f"{fmt(ENTROPY_TREND_BITS)} bits)."
    )
    return lines


def stage_observations(stage_gains: list[dict]) -> list[str]:
    """What each stage changed, direction-aware (lower perplexity is better), and the trade-offs within a stage."""
    lines, effects = [], {}
    for row in stage_gains:
        delta = row["delta_vs_previous_stage"]
        if delta is None or abs(delta) < STAGE_CHANGE_THRESHOLD:
            continue
        better = (delta < 0) == (row["metric"] in LOWER_IS_BETTER)
        effects.setdefault(row["stage"], {"improved": [], "worsened": []})["improved" if better else "worsened"].append(
            f"`{row['task']}` {row['metric']}"
        )
        lines.append(
            f"`{row['stage']}` {'improved' if better else 'worsened'} `{row['task']}` {row['metric']} by "
            f"{fmt_signed(delta)} (to {fmt(row['value'])})."
        )
    for stage, effect in effects.items():
        if effect["improved"] and effect["worsened"]:
            lines.append(
                f"Trade-off in `{stage}`: it improved {', '.join(effect['improved'])} but worsened {', '.join(effect['worsened'])}."
            )
    if not lines:
        return [f"No stage changed any metric by {fmt(STAGE_CHANGE_THRESHOLD)} or more."]
    return lines + [f"Changes smaller than {fmt(STAGE_CHANGE_THRESHOLD)} are not listed."]
