"""A results folder in the evaluation's schema written by hand, for tests that need exact, planted numbers."""

import json
from pathlib import Path

STAMP = "2025-01-01T00-00-00.000000"


def write_fake_run(root: Path, models: list[dict], verifier_policy: str | None = None) -> Path:
    """A results folder in the evaluation's schema, written by hand (no model runs): per model `{"name", "stage",
    "path", "tasks": {task: {"docs": [{"question", "answer"}], "resps": [[solution, ...] per doc], "calculator",
    "greedy_task", "scores": [[score, ...] per doc] | None}}}`: lm-eval's results and samples files, the verifier's
    scores and the run index, as eval/evaluate_tasks.py lays them out."""
    entries = []
    for model in models:
        folder = root / model["name"]
        folder.mkdir(parents=True)
        configs, task_results = {}, {}
        for task, spec in model["tasks"].items():
            sampled = len(spec["resps"][0]) > 1 or spec.get("greedy_task") is not None
            configs[task] = {
                "task": task,
                "repeats": len(spec["resps"][0]),
                "metadata": {
                    "version": 1.0,
                    **({"greedy_task": spec["greedy_task"]} if spec.get("greedy_task") else {}),
                },
                "generation_kwargs": {"do_sample": sampled, **({"calculator": True} if spec.get("calculator") else {})},
            }
            task_results[task] = {"alias": task, "exact_match,flexible-extract": 0.0}
            lines = [
                json.dumps({"doc_id": i, "doc": doc, "resps": [list(resps)], "filtered_resps": [resps[0]]})
                for i, (doc, resps) in enumerate(zip(spec["docs"], spec["resps"]))
            ]
            (folder / f"samples_{task}_{STAMP}.jsonl").write_text("\n".join(lines) + "\n")
            if spec.get("scores") is not None:
                (folder / f"verifier_scores_{task}.json").write_text(
                    json.dumps(
                        {"verifier": "fake", "task": task, "scores": {str(i): s for i, s in enumerate(spec["scores"])}}
                    )
                )
        (folder / f"results_{STAMP}.json").write_text(
            json.dumps(
                {
                    "results": task_results,
                    "configs": configs,
                    "n-samples": {task: {"effective": len(spec["docs"])} for task, spec in model["tasks"].items()},
                }
            )
        )
        entries.append(
            {
                "name": model["name"],
                "path": model["path"],
                "stage": model["stage"],
                "status": "ok",
                "dir": model["name"],
                "chat_template": False,
                "tasks": list(model["tasks"]),
            }
        )
    (root / "run_index.json").write_text(
        json.dumps(
            {
                "schema_version": 2,
                "command": "python eval/evaluate_tasks.py (hand-written)",
                "tasks": [],
                "limit": None,
                "n_samples": None,
                "seed": 0,
                "corpus_seed": 0,
                "chat_template": False,
                "verifier": "fake",
                "verifier_policy": verifier_policy,
                "unavailable_tasks": {},
                "environment": {},
                "models": entries,
            }
        )
    )
    return root
