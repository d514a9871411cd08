"""The shared task formats are lm-evaluation-harness's: its prompts, stop sequences, answer filters and exact match."""

import random
from pathlib import Path

import lm_eval
import pytest
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.api.model import LM
from lm_eval.filters.extraction import RegexFilter
from lm_eval.tasks._yaml_loader import load_yaml
from lm_eval.utils import apply_template

from modeling_modern_llm import task_formats as formats

LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"
OUR_TASKS = Path(__file__).resolve().parents[2] / "eval" / "tasks"
GSM8K = load_yaml(LM_EVAL_TASKS / "gsm8k" / "gsm8k.yaml", resolve_func=False)
SST2 = load_yaml(LM_EVAL_TASKS / "glue" / "sst2" / "default.yaml", resolve_func=False)
HARD_GENERATIONS = [
    "She pays 2*500=1000 dollars.\n#### 1,000",
    "It costs $18.",
    "The answer is 18.",
    "so the total is -3",
    "#### -12",
    "Each gets 2.50 dollars. #### 2.50",
    "That is $1,234.00 in total.",
    "I do not know.",
    "",
    "#### 5 and then 7",
    "the answer is 18.00",
    "#### 72\n",
    "10 apples, then.. 4",
    "#### 0",
]


def test_prompts_and_stop_sequences_are_lm_evals():
    doc = {"question": "Tom has 3 apples. How many?", "answer": "3 #### 3", "sentence": "a fine film .", "label": 1}
    assert formats.gsm8k_prompt(doc) == apply_template(GSM8K["doc_to_text"], doc)
    assert formats.sst2_prompt(doc) == apply_template(SST2["doc_to_text"], doc)
    assert formats.sst2_choices(doc) == SST2["doc_to_choice"]
    assert list(formats.GSM8K_STOP_SEQUENCES) == GSM8K["generation_kwargs"]["until"]


@pytest.mark.parametrize("generation", HARD_GENERATIONS)
def test_answer_extraction_and_exact_match_are_lm_evals(generation):
    """Our extraction + normalisation decides correctness exactly as lm-eval's filters + exact_match metric."""
    metric = {
        k: v for k, v in GSM8K["metric_list"][0].items() if k not in ("metric", "aggregation", "higher_is_better")
    }
    reference = "steps\n#### " + (formats.extract_flexible(generation) or "42")  # a reference it matches when it parses
    for filter_config, ours in zip(GSM8K["filter_list"], (formats.extract_strict, formats.extract_flexible)):
        regex = {k: v for k, v in filter_config["filter"][0].items() if k != "function"}
        [[theirs]] = RegexFilter(**regex).apply([[generation]], [{}])
        their_hit = exact_match_hf_evaluate([theirs], [reference], **metric)["exact_match"]
        assert (ours(generation) == formats.gsm8k_reference(reference)) == bool(their_hit), (generation, theirs)
        assert ours(generation) == (None if theirs == "[invalid]" else formats.normalize_answer(theirs))


@pytest.mark.parametrize("generation", [*HARD_GENERATIONS, "#### ", "$ , .", "-", "1 2 3 #### 4 #### 5", None])
def test_the_task_yamls_filters_are_lm_evals_regex_filters(generation):
    """The `custom` filters the GSM8K YAMLs reach by `!function` write what lm-eval's gsm8k regex filters write."""
    for filter_config, ours in zip(GSM8K["filter_list"], (formats.gsm8k_strict_match, formats.gsm8k_flexible_extract)):
        regex = {k: v for k, v in filter_config["filter"][0].items() if k != "function"}
        resps = [[generation, "#### 3"], ["x"]]
        assert ours(resps, [{}, {}]) == RegexFilter(**regex).apply(resps, [{}, {}]), generation


class PlantedLM(LM):
    """Writes chosen solutions (the reference's answer in the forms lm-eval's filters treat differently), one per
    request, varied by document and by sample."""

    FORMS = (
        "So 2*3=6 apples.\n#### {n}",
        "It costs ${n}.",
        "The answer is {n}.00",
        "#### {n} and then 7",
        "#### 1,{n}",
        "so the total is -{n}",
        "I do not know.",
        "",
        "{n} apples, then.. 4",
        "That is ${n},000.00 in total.",
        "#### {n}\n",
        "#### -{n}",
        "It is {n}",
    )

    def __init__(self):
        super().__init__()
        self.calls = 0

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for request in requests:
            answer = formats.gsm8k_reference(request.doc["answer"])
            out.append(self.FORMS[(request.doc_id + self.calls) % len(self.FORMS)].format(n=answer))
            self.calls += 1
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def test_the_gsm8k_tasks_score_each_sample_as_lm_evals_own_gsm8k():
    """embedded_gsm8k and gsm8k_sampled (their filters and metric through task_formats) against lm-eval's own
    gsm8k.yaml on the same documents and solutions: the same filter names, filtered answers and `exact_match` per
    sample, the same scores. gsm8k_sampled is otherwise lm-eval's file: its prompt, shots, splits, stops, metric."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    sampled = load_yaml(OUR_TASKS / "gsm8k_sampled.yaml")
    theirs = load_yaml(LM_EVAL_TASKS / "gsm8k" / "gsm8k.yaml")
    sampling = {"do_sample", "temperature", "top_p"}
    for key in set(sampled) | set(theirs):
        if key not in {"task", "tag", "repeats", "metadata", "generation_kwargs", "filter_list", "metric_list"}:
            assert sampled.get(key) == theirs.get(key), key
    assert {k: v for k, v in sampled["generation_kwargs"].items() if k not in sampling} == {
        k: v for k, v in theirs["generation_kwargs"].items() if k not in sampling
    }
    for ours_config in (sampled, load_yaml(OUR_TASKS / "embedded_gsm8k.yaml")):
        assert [f["name"] for f in ours_config["filter_list"]] == [f["name"] for f in theirs["filter_list"]]
        assert [m["aggregation"] for m in ours_config["metric_list"]] == ["mean"]

    embedded = load_yaml(OUR_TASKS / "embedded_gsm8k.yaml")
    dataset = {key: embedded[key] for key in ("custom_dataset", "dataset_kwargs")}
    offline = {"dataset_path": None, "dataset_name": None, **dataset, "num_fewshot": 2, "repeats": 3}
    configs = {
        "ours_sampled": {**sampled, **offline, "task": "ours_sampled"},
        "theirs_sampled": {**theirs, **offline, "task": "theirs_sampled", "tag": None},
        "embedded_gsm8k": embedded,
        "theirs_greedy": {**theirs, **offline, "task": "theirs_greedy", "tag": None, "repeats": 1},
    }
    manager = TaskManager(include_path=str(OUR_TASKS))
    tasks = [next(iter(manager.load([config])["tasks"].values())) for config in configs.values()]
    out = {}
    for task in tasks:  # one run each, so every task sees the same planted solutions
        out[task.config.task] = simple_evaluate(model=PlantedLM(), tasks=[task], limit=13, log_samples=True)
    for ours, theirs_name in (("ours_sampled", "theirs_sampled"), ("embedded_gsm8k", "theirs_greedy")):
        our_samples, their_samples = out[ours]["samples"][ours], out[theirs_name]["samples"][theirs_name]
        assert len(our_samples) == len(their_samples) == 26  # 13 documents, each filter
        for mine, other in zip(our_samples, their_samples):
            for key in ("doc_id", "filter", "resps", "filtered_resps", "exact_match", "target"):
                assert mine[key] == other[key], (key, mine[key], other[key])
        scores, their_scores = out[ours]["results"][ours], out[theirs_name]["results"][theirs_name]
        assert {k: v for k, v in scores.items() if k not in ("alias", "name")} == {
            k: v for k, v in their_scores.items() if k not in ("alias", "name")
        }
        assert 0 < scores["exact_match,strict-match"] < 1 and 0 < scores["exact_match,flexible-extract"] < 1


def test_prompts_with_shots_and_through_the_chat_template():
    from modeling_modern_llm.tokenizer import train_tokenizer

    shot = {"question": "1+1?", "answer": "1+1=2\n#### 2"}
    assert (
        formats.format_prompt("What is 2+2?", [shot])
        == "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: What is 2+2?\nAnswer:"
    )
    tokenizer = train_tokenizer(["Question: how many? Answer: 5 #### 5"] * 30, vocab_size=300, min_frequency=1)
    assert formats.format_chat_prompt(tokenizer, "What is 2+2?", [shot]) == (
        "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n1+1=2\n#### 2<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert formats.chat_transcript("Hi", "Hello") == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], tokenize=False
    )


def test_the_sst2_chat_prompt_is_what_the_embedded_sft_data_asks():
    from modeling_modern_llm.data.embedded import generate_alpaca
    from modeling_modern_llm.data.normalizers import normalize_alpaca

    rows = [r for r in generate_alpaca(random.Random(0), "train", 200) if r["output"] in formats.SST2_LABEL_WORDS]
    user = normalize_alpaca(rows[0])["messages"][0]["content"]
    assert rows and user == formats.sst2_chat_prompt({"sentence": rows[0]["input"]})
