"""Saving and loading: exact round trips (the meta-device / non-persistent-buffer trap), Auto classes, and
remote-code loading in a Python process where this package cannot be imported."""

import json
import os
import site
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from modeling_modern_llm import ModernLLMForCausalLM, ModernLLMForSequenceClassification, ModernLLMModel

from .conftest import left_padded_batch, tiny_config, tiny_model

FULL = dict(num_experts=4, num_experts_per_tok=2, rope_theta=3000.0)  # sinks and QK-norm are on by default
MODEL_FILES = (
    "configuration_modern_llm.py",
    "modeling_modern_llm.py",
    "attention_kernels_modern_llm.py",
    "moe_modern_llm.py",
    "streaming_modern_llm.py",
)


@pytest.mark.parametrize("tie_word_embeddings", [False, True])
def test_save_then_load_gives_identical_outputs(tmp_path, tie_word_embeddings):
    model = tiny_model("sdpa", tie_word_embeddings=tie_word_embeddings, **FULL)
    input_ids, attention_mask = left_padded_batch([7, 4])
    expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is ModernLLMForCausalLM
    assert torch.equal(loaded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)  # recomputed, not garbage
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    # The default experts kernel (grouped_mm) rounds differently on a CPU when its weights sit in memory-mapped
    # storage (8-byte aligned), as loaded weights do: equal to float32 rounding there, and bit for bit with the
    # dense "eager" experts kernel.
    got = loaded(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    model.set_experts_implementation("eager")
    loaded.set_experts_implementation("eager")
    expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
    assert torch.equal(loaded(input_ids=input_ids, attention_mask=attention_mask).logits, expected)


def test_saved_folder_carries_its_code_and_every_auto_class(tmp_path):
    tiny_model("sdpa").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_modern_llm.ModernLLMConfig",
        "AutoModel": "modeling_modern_llm.ModernLLMModel",
        "AutoModelForCausalLM": "modeling_modern_llm.ModernLLMForCausalLM",
        "AutoModelForSequenceClassification": "modeling_modern_llm.ModernLLMForSequenceClassification",
    }
    code = {path.name for path in tmp_path.glob("*.py")}
    assert code == set(MODEL_FILES)  # the modeling file and its flat siblings, nothing of the library
    assert type(AutoModel.from_pretrained(tmp_path)) is ModernLLMModel  # the registered (local) classes load it


def test_classifier_scores_the_last_real_token_and_round_trips(tmp_path):
    classifier = ModernLLMForSequenceClassification(tiny_config(num_labels=1)).eval()
    input_ids, attention_mask = left_padded_batch([6, 3])
    input_ids[1, :3] = 0  # left padding
    scores = classifier(input_ids=input_ids, attention_mask=attention_mask).logits
    hidden = classifier.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    torch.testing.assert_close(scores, classifier.score(hidden[:, -1]))  # left padding: the last token is real
    right_padded = torch.tensor([[5, 6, 7, 0, 0]])
    hidden = classifier.model(input_ids=right_padded).last_hidden_state
    torch.testing.assert_close(classifier(input_ids=right_padded).logits, classifier.score(hidden[:, 2]))
    classifier.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded(input_ids=input_ids, attention_mask=attention_mask).logits, scores)


REMOTE_LOAD = textwrap.dedent(
    """
    import sys, json
    sys.path[:0] = json.loads(sys.argv[1])  # site-packages, without the .pth hooks that add this package
    try:
        import modeling_modern_llm
        raise SystemExit("modeling_modern_llm is importable: the remote-code check would prove nothing")
    except ModuleNotFoundError:
        pass
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    folder, head = sys.argv[2], sys.argv[3]
    auto_class = AutoModelForCausalLM if head == "causal" else AutoModelForSequenceClassification
    # "eager" experts: bit-exact on memory-mapped weights (see test_save_then_load_gives_identical_outputs)
    model = auto_class.from_pretrained(folder, trust_remote_code=True, experts_implementation="eager").eval()
    assert "modeling_modern_llm" not in sys.modules and "transformers_modules" in type(model).__module__
    remote = {name.rsplit(".", 1)[-1] for name in sys.modules if name.startswith("transformers_modules.")}
    missing = {file.removesuffix(".py") for file in json.loads(sys.argv[4])} - remote
    assert not missing, f"not loaded from the folder: {missing}"
    inputs = torch.load(folder + "/inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, folder + "/remote_logits.pt")
    """
)


@pytest.mark.slow  # a clean interpreter process per head
@pytest.mark.parametrize("head", ["causal", "classifier"])
def test_remote_code_loads_in_a_process_without_the_package(tmp_path, head):
    folder = tmp_path / "model"
    if head == "causal":
        model = tiny_model("sdpa", **FULL)
    else:
        model = ModernLLMForSequenceClassification(tiny_config(num_labels=2, **FULL)).eval()
    model.set_experts_implementation("eager")
    input_ids, attention_mask = left_padded_batch([6, 4])
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(folder)
    torch.save(inputs, folder / "inputs.pt")

    site_dirs = [path for path in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(path)]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    # -I: no cwd/PYTHONPATH/user site on sys.path; -S: no site-packages .pth hooks (the editable-install finder).
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            REMOTE_LOAD,
            json.dumps(site_dirs),
            str(folder),
            head,
            json.dumps(MODEL_FILES),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    assert torch.equal(torch.load(folder / "remote_logits.pt"), expected)
