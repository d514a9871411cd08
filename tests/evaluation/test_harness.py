"""eval/evaluate_tasks.py end to end on tiny checkpoints: lm-eval's files per model, the run index, the views, every
task YAML, --local_dir, a user's task, and bad input refused in one line before anything loads."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from modeling_modern_llm.data import load_dataset_by_name
from modeling_modern_llm.evaluation import results
from modeling_modern_llm.evaluation.harness import SUITE_DATASETS, SUITES

REPO = Path(__file__).resolve().parents[2]
TASKS = str(REPO / "eval" / "tasks")
CALCULATOR_TASKS = ["embedded_gsm8k_calculator", "embedded_gsm8k_sampled_calculator"]


@pytest.mark.slow
def test_lm_evals_files_per_model_the_run_index_and_the_views(evaluated, tiny_run):
    index = json.loads((evaluated / "run_index.json").read_text())
    assert [(m["name"], m["stage"], m["status"][:11]) for m in index["models"]] == [
        ("pretrain_final", "pretrain", "ok"),
        ("sft_final", "sft", "ok"),
        ("gpt2", "baseline", "unavailable"),
        ("distilgpt2", "baseline", "unavailable"),
    ]
    assert "no network" in index["models"][2]["status"] and index["limit"] == 8 and index["n_samples"] == 3
    pretrain, sft = index["models"][:2]
    assert sorted(pretrain["tasks"]) == sorted(SUITES["embedded"]) and not pretrain["chat_template"]
    assert sorted(sft["tasks"]) == sorted(f"{t}_chat" if t != "embedded_text" else t for t in SUITES["embedded"])
    for entry in (pretrain, sft):
        folder = evaluated / entry["dir"]
        [results_file] = folder.glob("results_*.json")
        assert set(json.loads(results_file.read_text())["results"]) == set(entry["tasks"])
        for task in entry["tasks"]:
            assert len(results.read_samples(folder, task)) == 8
    scores = json.loads(next((evaluated / "sft_final").glob("verifier_scores_*.json")).read_text())
    assert scores["task"] == "embedded_gsm8k_sampled_chat" and [len(s) for s in scores["scores"].values()] == [3] * 8
    assert sorted(p.name for p in evaluated.iterdir() if p.is_file()) == [
        "baseline_comparison.json",
        "gsm8k_analysis.json",
        "run_index.json",
        "stage_gains.csv",
        "task_metrics.json",
    ]
    analysis = json.loads((evaluated / "gsm8k_analysis.json").read_text())
    assert analysis["model"] == "sft_final" and analysis["n_problems"] == 8 and analysis["n_samples"] == 3
    assert {"em_greedy", "em_verifier", "problems", "comparisons", "taxonomy"} <= set(analysis)
    assert {"reference", "greedy_answer", "majority_answer", "candidates"} <= set(analysis["problems"][0])
    assert not list(evaluated.parent.glob(".results.*"))  # no staging folder left behind


@pytest.mark.slow
def test_chat_models_get_their_template_and_the_sft_datas_prompt(evaluated):
    sample = results.read_samples(evaluated / "sft_final", "embedded_sst2_chat")[0]
    context, continuation = sample["arguments"]["gen_args_0"]["arg_0"], sample["arguments"]["gen_args_0"]["arg_1"]
    assert (
        context
        == (
            f"<|im_start|>user\nIs this sentence positive or negative?\n\n{sample['doc']['sentence']}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
        and continuation == "negative"
    )
    sample = results.read_samples(evaluated / "pretrain_final", "embedded_sst2")[0]
    assert sample["arguments"]["gen_args_0"]["arg_0"].endswith(
        "\nQuestion: Is this sentence positive or negative?\nAnswer:"
    )


def local_copies(root: Path) -> Path:
    """DIR/<registry name>/<split>.jsonl in the Hub schema, as an offline cluster keeps them."""
    sources = {
        ("tinystories", "validation"): ("embedded-text", "test"),
        ("gsm8k", "test"): ("embedded-gsm8k", "test"),
        ("gsm8k", "train"): ("embedded-gsm8k", "train"),
        ("sst2", "validation"): ("embedded-sst2", "test"),
        ("sst2", "train"): ("embedded-sst2", "train"),
    }
    for (name, split), (source, source_split) in sources.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        load_dataset_by_name(source, source_split, limit=20).to_json(root / name / f"{split}.jsonl")
    return root


@pytest.mark.slow
def test_every_task_yaml_loads_and_runs_and_overwrite_replaces_the_whole_folder(
    evaluated, tiny_run, tmp_path, evaluate
):
    run = results.load_run(evaluated)
    covered = {task for model in run.models if model.results for task in model.results["results"]}
    rest = [
        "tinystories",
        "gsm8k_sampled",
        "gsm8k_calculator",
        "gsm8k_sampled_calculator",
        "generation",
        "generation_sampled",
        *CALCULATOR_TASKS,
        *(f"{t}_chat" for t in CALCULATOR_TASKS),
    ]  # the last: test below
    assert {p.stem for p in Path(TASKS).glob("*.yaml")} == covered | set(rest)  # a new YAML needs a run here
    out, model = tmp_path / "out", str(tiny_run / "dpo_final")
    evaluate(
        "--model",
        model,
        "--tasks",
        "tinystories",
        "gsm8k_sampled",
        "gsm8k_calculator",
        "gsm8k_sampled_calculator",
        "--local_dir",
        str(local_copies(tmp_path / "local")),
        "--limit",
        "3",
        "--n_samples",
        "2",
        "--max_gen_toks",
        "8",
        "--output_dir",
        str(out),
    )
    first = results.load_run(out).models[0].results
    assert first["results"]["tinystories"]["bits_per_byte,none"] > 0 and first["n-shot"]["gsm8k_sampled"] == 5
    assert first["n-shot"]["gsm8k_sampled_calculator"] == 5 and first["configs"]["gsm8k_calculator"]["repeats"] == 1
    assert first["configs"]["gsm8k_sampled_calculator"]["generation_kwargs"]["calculator"] is True
    evaluate(
        "--model",
        model,
        "--tasks",
        "generation",
        "generation_sampled",
        "--n_samples",
        "2",
        "--max_gen_toks",
        "8",
        "--output_dir",
        str(out),
        "--overwrite",
    )
    files = sorted(p.name.rpartition("_")[0] for p in (out / "dpo_final").iterdir())
    assert files == ["results", "samples_generation", "samples_generation_sampled"]  # nothing of the first run
    assert not (out / "gsm8k_analysis.json").exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.slow
def test_the_sst2_preset_reads_lm_evals_sst2_from_local_dir(tiny_run, tmp_path):
    local, out = local_copies(tmp_path / "local"), tmp_path / "sst2"
    done = subprocess.run(
        [
            sys.executable,
            "eval/eval_sst2.py",
            "--model",
            str(tiny_run / "sft_final"),
            "--local_dir",
            str(local),
            "--num_fewshot",
            "2",
            "--output_dir",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    model = results.load_run(out).models[0]
    assert list(model.results["results"]) == ["sst2"] and model.results["n-shot"]["sst2"] == 2
    assert len(model.samples("sst2")) == 20  # DIR/sst2/validation.jsonl, every row


@pytest.mark.slow
def test_zero_shot_sst2_from_local_dir_scores_as_lm_evals_own_run_of_the_same_files(tiny_run, tmp_path, monkeypatch):
    """eval/eval_sst2.py --num_fewshot 0 --local_dir DIR against lm-eval's own sst2 task reading DIR's files itself."""
    import runpy

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    local, out, model = local_copies(tmp_path / "local"), tmp_path / "sst2", str(tiny_run / "pretrain_final")
    monkeypatch.syspath_prepend(str(REPO / "eval"))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "eval/eval_sst2.py",
            "--model",
            model,
            "--local_dir",
            str(local),
            "--num_fewshot",
            "0",
            "--output_dir",
            str(out),
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "eval" / "eval_sst2.py"), run_name="__main__")
    assert exit_info.value.code == 0
    ours = results.load_run(out).models[0]
    assert ours.results["n-shot"]["sst2"] == 0

    manager = TaskManager()
    sst2 = yaml.safe_load(Path(manager.task_index["sst2"].yaml_path).read_text())
    sst2.update(
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={
            "data_files": {split: str(local / "sst2" / f"{split}.jsonl") for split in ("train", "validation")}
        },
    )
    theirs = simple_evaluate(
        model=HFLM(pretrained=model, device="cpu", dtype="float32", batch_size=32),
        tasks=[sst2],
        num_fewshot=0,
        log_samples=True,
        task_manager=manager,
    )
    ours_docs = sorted(ours.samples("sst2"), key=lambda doc: doc["doc_id"])
    theirs_docs = sorted(theirs["samples"]["sst2"], key=lambda doc: doc["doc_id"])
    assert len(ours_docs) == len(theirs_docs) == 20  # every row of DIR/sst2/validation.jsonl
    assert [d["doc"]["sentence"] for d in ours_docs] == [d["doc"]["sentence"] for d in theirs_docs]
    assert [d["acc"] for d in ours_docs] == [d["acc"] for d in theirs_docs]
    assert ours.results["results"]["sst2"]["acc,none"] == theirs["results"]["sst2"]["acc,none"]
    for mine, its in zip(ours_docs, theirs_docs):  # the log-likelihood of each choice
        theirs_scores = [float(choice[0]) for choice in its["filtered_resps"]]
        assert [float(choice[0]) for choice in mine["filtered_resps"]] == pytest.approx(theirs_scores, abs=1e-4)


@pytest.mark.slow
def test_a_users_task_through_include_path(tiny_run, tmp_path, evaluate):
    user = tmp_path / "my_tasks"
    user.mkdir()
    (user / "review_words.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "review_words",
                "dataset_kwargs": {"registry_name": "embedded-sst2", "splits": ["test"]},
                "test_split": "test",
                "output_type": "multiple_choice",
                "doc_to_text": "Review: {{sentence}}\nVerdict:",
                "doc_to_target": "label",
                "doc_to_choice": ["bad", "good"],
                "metric_list": [{"metric": "acc"}],
            }
        ).replace(
            "dataset_kwargs", "custom_dataset: !function modeling_modern_llm.data.registry_splits\ndataset_kwargs", 1
        )
    )
    out = evaluate(
        "--model",
        str(tiny_run / "pretrain_final"),
        "--tasks",
        "review_words",
        "--include_path",
        str(user),
        "--limit",
        "4",
        "--output_dir",
        str(tmp_path / "out"),
    )
    model = results.load_run(out).models[0]
    assert model.samples("review_words")[0]["arguments"]["gen_args_0"]["arg_1"] == " bad"
    assert "acc,none" in model.results["results"]["review_words"]


def test_the_suites_registry_datasets_are_what_their_tasks_read():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=TASKS, include_defaults=False)
    for suite, names in SUITES.items():
        read = {
            (manager.task_index[n].cfg.get("dataset_kwargs") or {}).get("registry_name")
            for n in names
            if n in manager.task_index
        }
        assert read - {None} <= set(SUITE_DATASETS[suite]), suite


BAD_INPUT = [  # (arguments after --model <tiny pretrain>, exit status, the message's words)
    (["--limit", "0"], 2, "--limit must be at least 1"),
    (["--n_samples", "-1"], 2, "--n_samples must be at least 0"),
    (["--temperature", "0"], 2, "--temperature must be a positive number"),
    (["--dtype", "float8"], 2, "--dtype must be one of"),
    (["--device", "cuda"], 2, "--device cuda: this machine has 0 CUDA device(s)"),
    (["--tasks", "embedded_sst3"], 2, "no task or group named embedded_sst3"),
    (
        ["--tasks", "embedded_sst2_fewshot", "--num_fewshot", "100000"],
        2,
        "--num_fewshot 100000: task embedded_sst2_fewshot has",
    ),
    (["--stages", "sft", "dpo"], 2, "--stages needs one stage per --model"),
    (["--sampled_stages", "dpo", "rlhf"], 2, "--sampled_stages: rlhf is not a stage"),
    (["--verifier", "{run}/dpo_final"], 1, "is a ModernLLMForCausalLM, not a sequence-classification verifier"),
    (["--model", "{run}/verifier_final"], 1, "is a sequence-classification model"),
    (["--model", "{run}/sfft_final"], 1, "does not exist: check the path"),
    ([], 2, "holds finished results (run_index.json); pass --overwrite"),
]


@pytest.fixture
def finished(tmp_path) -> Path:
    """A results folder as a finished evaluation leaves it (its run index and a view), to be kept byte for byte."""
    out = tmp_path / "results"
    (out / "pretrain_final").mkdir(parents=True)
    (out / "run_index.json").write_text(json.dumps({"schema_version": 2, "models": [{"name": "pretrain_final"}]}))
    (out / "task_metrics.json").write_text("{}")
    (out / "pretrain_final" / "results_2026-01-01T00-00-00.json").write_text("{}")
    return out


@pytest.mark.parametrize("extra, status, message", BAD_INPUT, ids=[b[2][:30] for b in BAD_INPUT])
def test_bad_input_is_one_line_before_any_model_loads_and_finished_results_stay(
    extra, status, message, finished, tiny_run, capsys, monkeypatch, evaluate
):
    import transformers

    def no_model_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_model_load)
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    extra = [arg.replace("{run}", str(tiny_run)) for arg in extra]
    models = [] if "--model" in extra else ["--model", str(tiny_run / "pretrain_final")]
    start = time.time()
    with pytest.raises(SystemExit) as exit_info:
        evaluate(*models, *extra, "--embedded", "--output_dir", str(finished))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == status and message in err[-1] and "Traceback" not in "\n".join(err)
    assert time.time() - start < 60 and before == {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}


def test_nothing_scorable_exits_1_and_keeps_the_old_results(finished, capsys, evaluate):
    left = finished.parent / f".{finished.name}.staging-killed"  # what an evaluation killed mid-run leaves
    (left / "pretrain_final").mkdir(parents=True)
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        evaluate(
            "--model", "gpt2", "--tasks", "embedded_sst2", "--limit", "2", "--output_dir", str(finished), "--overwrite"
        )
    assert exit_info.value.code == 1 and "nothing could be scored" in capsys.readouterr().err
    assert before == {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    assert not list(finished.parent.glob(f".{finished.name}.staging-*"))  # the killed run's staging is cleared too


def test_stopping_each_sequence_at_its_own_stop_string_keeps_lm_evals_texts(tiny_run):
    """HarnessLM stops every sequence where it stops; the texts equal lm-eval's own HFLM's (same seed, one batch)."""
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from modeling_modern_llm.evaluation.harness_lm import HarnessLM

    options = {"until": ["e", "a"], "do_sample": True, "temperature": 1.0, "max_gen_toks": 24}
    prompts = [f"Question: what is {i} + {i}?\nAnswer:" for i in range(8)]
    texts = {}
    for model_class in (HFLM, HarnessLM):
        lm = model_class(pretrained=str(tiny_run / "pretrain_final"), device="cpu", dtype="float32", batch_size=8)
        torch.manual_seed(0)
        requests = [Instance(request_type="generate_until", doc={}, arguments=(p, options), idx=0) for p in prompts]
        texts[model_class] = lm.generate_until(requests, disable_tqdm=True)
    assert texts[HFLM] == texts[HarnessLM]
    assert len({len(text) for text in texts[HarnessLM]}) > 1  # the sequences stopped at different steps


def test_a_task_asks_the_harness_model_for_the_calculator(tiny_run):
    """`calculator: true` in a request's generation kwargs: the computed value follows `<<expression=`; without it
    the same model writes something else; lm-eval's own class would refuse the option."""
    from lm_eval.api.instance import Instance

    from modeling_modern_llm.evaluation.harness_lm import HarnessLM

    lm = HarnessLM(pretrained=str(tiny_run / "pretrain_final"), device="cpu", dtype="float32", batch_size=4)
    prompts = ["Question: 12 boxes of 4. Answer: 12*4 = <<12*4=", "so <<100/3=", "Once upon a time"]
    texts = {}
    for calculator in (False, True):
        options = {
            "until": ["\n\n"],
            "do_sample": False,
            "max_gen_toks": 10,
            **({"calculator": True} if calculator else {}),
        }
        requests = [Instance(request_type="generate_until", doc={}, arguments=(p, options), idx=0) for p in prompts]
        texts[calculator] = lm.generate_until(requests, disable_tqdm=True)
    assert (
        texts[True][0].startswith("48>>") and texts[True][1].startswith("33.33>>") and texts[True][2] == texts[False][2]
    )
    assert not texts[False][0].startswith("48>>")


@pytest.mark.slow
def test_sampled_tasks_run_only_for_the_sampled_stages(tiny_run, tmp_path, evaluate):
    """`--sampled_stages sft`: the pretrained model runs greedy GSM8K only, the SFT model greedy and sampled."""
    out = evaluate(
        "--model",
        str(tiny_run / "pretrain_final"),
        str(tiny_run / "sft_final"),
        "--sampled_stages",
        "sft",
        "--tasks",
        "embedded_gsm8k",
        "embedded_gsm8k_sampled",
        "--limit",
        "2",
        "--n_samples",
        "2",
        "--max_gen_toks",
        "4",
        "--output_dir",
        str(tmp_path / "out"),
    )
    ran = {model.stage: set(model.results["results"]) for model in results.load_run(out).models}
    assert ran == {"pretrain": {"embedded_gsm8k"}, "sft": {"embedded_gsm8k", "embedded_gsm8k_sampled"}}
    # the headline still has the greedy score of the model without samples, from its greedy task
    greedy = {row["stage"]: row["cells"]["GSM8K greedy"] for row in results.headline(results.load_run(out))}
    assert greedy["pretrain"]["task"] == "embedded_gsm8k" and greedy["pretrain"]["n"] == 2
    assert greedy["sft"]["task"] == "embedded_gsm8k" and greedy["sft"]["n"] == 2
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not the private staging folder's 0700


@pytest.mark.slow
def test_the_calculator_tasks_run_beside_the_plain_ones_and_both_are_reported(tiny_run, tmp_path, evaluate):
    """A chat policy runs the calculator variants (their `_chat` ones) next to the plain tasks: lm-eval's results carry
    both, the analysis reads the calculator decoding (greedy and samples alike) and reports the plain one beside it."""
    out = evaluate(
        "--model",
        str(tiny_run / "dpo_final"),
        "--stages",
        "dpo",
        "--verifier",
        str(tiny_run / "verifier_final"),
        "--tasks",
        "embedded_gsm8k",
        "embedded_gsm8k_sampled",
        *CALCULATOR_TASKS,
        "--chat_template",
        "--limit",
        "4",
        "--n_samples",
        "2",
        "--max_gen_toks",
        "8",
        "--output_dir",
        str(tmp_path / "out"),
    )
    model = results.load_run(out).models[0]
    ran = {"embedded_gsm8k_chat", "embedded_gsm8k_sampled_chat", *(f"{t}_chat" for t in CALCULATOR_TASKS)}
    assert set(model.results["results"]) == ran
    assert [results.uses_calculator(model, t) for t in sorted(ran)] == [True, False, True, False]
    analysis = json.loads((out / "gsm8k_analysis.json").read_text())
    assert analysis["task"] == "embedded_gsm8k_sampled_calculator_chat" and analysis["calculator"] is True
    assert analysis["selectors"]["greedy"]["task"] == "embedded_gsm8k_calculator_chat"
    effect = analysis["calculator_effect"]
    assert effect["tasks"]["without"] == "embedded_gsm8k_sampled_chat" and effect["n_problems"] == 4
    assert {row["selector"] for row in effect["rows"]} >= {"greedy", "random_of_n", "verifier_best_of_n"}
    records = {r["task"] for r in json.loads((out / "task_metrics.json").read_text())["records"]}
    assert ran <= records


def test_the_private_lm_eval_api_the_task_loader_reads_is_still_there():
    """The loader reads a task YAML itself to apply --n_samples, --temperature, --max_gen_toks and --local_dir before
    lm-eval builds the task, through two private lm-eval modules (no public API exposes a task's YAML path and kind):
    this fails, naming what moved, when an lm-eval release moves them."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import Kind  # noqa: F401  (what the loader imports)
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = TaskManager(include_path=TASKS).task_index["embedded_gsm8k"]
    assert entry.kind == Kind.TASK and entry.yaml_path and Path(entry.yaml_path).name == "embedded_gsm8k.yaml"
    assert load_yaml(entry.yaml_path)["task"] == "embedded_gsm8k"
