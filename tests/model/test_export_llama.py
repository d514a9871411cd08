"""Tests of the Llama export: transformers' own LlamaForCausalLM must reproduce ModernLLM's logits and generations."""

import json
import os
import shutil
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaForCausalLM

from modeling_modern_llm import ModernLLMForCausalLM
from modeling_modern_llm.errors import InputFileError, UsageError
from modeling_modern_llm.export_llama import export_to_llama
from modeling_modern_llm.tokenizer import train_tokenizer

from .conftest import run_main
from .conftest import tiny_config as shared_tiny_config

VOCAB_SIZE = 300  # 256 bytes + 4 special tokens + up to 40 merges


def tiny_config(**overrides):
    """The shared tiny config with every non-Llama feature off and a tokenizer-sized vocabulary."""
    settings = dict(
        vocab_size=VOCAB_SIZE,
        rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
        attention_sinks=False,
        qk_norm=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
    return shared_tiny_config(**{**settings, **overrides})


def save_tiny_model(folder, **overrides):
    """A tiny ModernLLM whose every weight (norms included) is perturbed, so no mapping error can hide."""
    model = ModernLLMForCausalLM(tiny_config(**overrides))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def exported(request, tmp_path_factory):
    src, dst = tmp_path_factory.mktemp("modern"), tmp_path_factory.mktemp("llama") / "export"
    torch.manual_seed(0)
    save_tiny_model(src, tie_word_embeddings=request.param)
    tokenizer = train_tokenizer([f"the cat {i} sat on mat {i * 7}" for i in range(200)], vocab_size=VOCAB_SIZE)
    tokenizer.save_pretrained(src)
    GenerationConfig(eos_token_id=[3, 0], pad_token_id=1, max_new_tokens=7).save_pretrained(src)
    assert export_to_llama(str(src), str(dst), gguf=True) == str(dst)
    return str(src), str(dst), request.param


def padded_batch():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(4, VOCAB_SIZE, (3, 20), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :5] = 0  # left padding
    attention_mask[2, 15:] = 0  # right padding
    return input_ids, attention_mask


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_llama_logits_equal_ours(exported, attn_implementation):
    src, dst, tied = exported
    ours = ModernLLMForCausalLM.from_pretrained(src, attn_implementation=attn_implementation).eval()
    llama = LlamaForCausalLM.from_pretrained(dst, attn_implementation=attn_implementation).eval()
    assert llama.config.tie_word_embeddings is tied
    assert (llama.lm_head.weight.data_ptr() == llama.model.embed_tokens.weight.data_ptr()) is tied
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        ours_logits = ours(input_ids, attention_mask=attention_mask).logits
        llama_logits = llama(input_ids, attention_mask=attention_mask).logits
    real = attention_mask.bool()
    assert ours_logits.abs().max() > 1.0  # logits far from zero: the comparison has something to compare
    torch.testing.assert_close(llama_logits[real], ours_logits[real], atol=1e-4, rtol=0)


def test_greedy_generation_is_the_same(exported):
    src, dst, _ = exported
    ours = ModernLLMForCausalLM.from_pretrained(src).eval()
    llama = LlamaForCausalLM.from_pretrained(dst).eval()
    prompt = torch.tensor([[5, 17, 42, 99, 7]])
    settings = dict(max_new_tokens=12, do_sample=False, eos_token_id=None)
    ours_tokens = ours.generate(prompt, **settings)
    assert ours_tokens.shape[1] == prompt.shape[1] + 12
    assert torch.equal(llama.generate(prompt, **settings), ours_tokens)


def test_export_is_a_plain_llama_checkpoint_with_tokenizer_and_generation_config(exported):
    src, dst, _ = exported
    with open(os.path.join(dst, "config.json")) as handle:
        config = json.load(handle)
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert "auto_map" not in config and not any(name.endswith(".py") for name in os.listdir(dst))
    assert config["rope_parameters"]["rope_theta"] == 5000.0 and config["num_key_value_heads"] == 2
    assert isinstance(AutoModelForCausalLM.from_pretrained(dst), LlamaForCausalLM)

    source_tokenizer, tokenizer = AutoTokenizer.from_pretrained(src), AutoTokenizer.from_pretrained(dst)
    assert tokenizer.get_vocab() == source_tokenizer.get_vocab()
    assert tokenizer.chat_template == source_tokenizer.chat_template
    assert tokenizer.pad_token_id == 1 and tokenizer.eos_token_id == 0
    generation_config = GenerationConfig.from_pretrained(dst)
    assert generation_config.eos_token_id == [3, 0] and generation_config.max_new_tokens == 7


def test_the_tokenizer_config_is_one_transformers_4_reads_too(exported):
    _, dst, _ = exported
    with open(os.path.join(dst, "tokenizer_config.json")) as handle:
        config = json.load(handle)
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # 4.x has no TokenizersBackend
    assert config["additional_special_tokens"] == ["<|im_start|>", "<|im_end|>"]
    assert not isinstance(config.get("extra_special_tokens"), list)  # 4.x reads that key as a mapping
    tokenizer = AutoTokenizer.from_pretrained(dst)
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [2, 3]
    assert tokenizer("<|im_start|>user")["input_ids"][0] == 2  # still one special token, not split into bytes


def gguf_fields(path):
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return reader, {name: field.contents() for name, field in reader.fields.items()}


def test_the_gguf_holds_llama_cpps_metadata_vocabulary_and_chat_template(exported):
    import jinja2

    src, dst, _ = exported
    _, fields = gguf_fields(os.path.join(dst, "model.gguf"))
    tokenizer, config = AutoTokenizer.from_pretrained(src), ModernLLMForCausalLM.from_pretrained(src).config
    assert fields["general.architecture"] == "llama" and fields["general.file_type"] == 0  # all F32
    assert (fields["llama.block_count"], fields["llama.embedding_length"], fields["llama.feed_forward_length"]) == (
        config.num_hidden_layers,
        config.hidden_size,
        config.intermediate_size,
    )
    assert (fields["llama.attention.head_count"], fields["llama.attention.head_count_kv"]) == (4, 2)
    assert fields["llama.context_length"] == config.max_position_embeddings and fields["llama.vocab_size"] == VOCAB_SIZE
    assert fields["llama.rope.freq_base"] == 5000.0 and fields["llama.rope.dimension_count"] == config.head_dim
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(config.rms_norm_eps)
    assert (fields["tokenizer.ggml.model"], fields["tokenizer.ggml.pre"]) == ("gpt2", "llama-bpe")
    vocab = tokenizer.get_vocab()
    assert fields["tokenizer.ggml.tokens"][: len(vocab)] == sorted(vocab, key=vocab.get)
    assert [fields["tokenizer.ggml.token_type"][i] for i in range(6)] == [3, 3, 3, 3, 1, 1]  # control, then normal
    with open(os.path.join(src, "tokenizer.json")) as handle:
        merges = json.load(handle)["model"]["merges"]
    assert fields["tokenizer.ggml.merges"] == [" ".join(pair) for pair in merges] and len(merges) > 10
    assert (
        fields["tokenizer.ggml.bos_token_id"],
        fields["tokenizer.ggml.eos_token_id"],
        fields["tokenizer.ggml.padding_token_id"],
    ) == (0, 0, 1)
    assert fields["tokenizer.ggml.add_bos_token"] is False and fields["tokenizer.ggml.add_eos_token"] is False
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    template = fields["tokenizer.chat_template"]
    assert "{%- generation %}" not in template  # transformers' training-only tag, unknown to plain Jinja
    assert jinja2.Environment().from_string(template).render(
        messages=messages, add_generation_prompt=False
    ) == tokenizer.apply_chat_template(messages, tokenize=False)


def test_the_gguf_holds_every_tensor_in_llama_cpps_names_and_rotary_layout(exported):
    _, dst, tied = exported
    reader, fields = gguf_fields(os.path.join(dst, "model.gguf"))
    llama = LlamaForCausalLM.from_pretrained(dst).state_dict()
    tensors = {
        tensor.name: torch.from_numpy(tensor.data.copy()).reshape(tuple(reversed(tensor.shape.tolist())))
        for tensor in reader.tensors
    }
    blocks = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    expected = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        **({} if tied else {"output.weight": "lm_head.weight"}),
        **{
            f"blk.{i}.{ours}.weight": f"model.layers.{i}.{theirs}.weight"
            for i in range(2)
            for theirs, ours in blocks.items()
        },
    }
    assert set(tensors) == set(expected)
    heads = {"attn_q": fields["llama.attention.head_count"], "attn_k": fields["llama.attention.head_count_kv"]}
    for name, hf_name in expected.items():
        weight, kind = llama[hf_name], name.split(".")[-2]
        if kind in heads:  # llama.cpp rotates neighbouring dimensions (2i, 2i+1); transformers rotates (i, i + d/2)
            head_dim = weight.shape[0] // heads[kind]
            order = [
                h * head_dim + i + half * head_dim // 2
                for h in range(heads[kind])
                for i in range(head_dim // 2)
                for half in (0, 1)
            ]
            weight = weight[order]
        assert torch.equal(tensors[name], weight), name


def test_transformers_reads_the_gguf_back_to_the_exports_logits_and_tokens(exported):
    _, dst, _ = exported
    llama = LlamaForCausalLM.from_pretrained(dst).eval()
    from_gguf = AutoModelForCausalLM.from_pretrained(dst, gguf_file="model.gguf").eval()
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(
            from_gguf(input_ids, attention_mask=attention_mask).logits,
            llama(input_ids, attention_mask=attention_mask).logits,
            atol=1e-5,
            rtol=0,
        )
    tokenizer = AutoTokenizer.from_pretrained(dst)
    gguf_tokenizer = AutoTokenizer.from_pretrained(dst, gguf_file="model.gguf")
    for text in ["the cat 12 sat on mat 84", "<|im_start|>user\nhi  1234567<|im_end|>\n", "  two\tspaces  "]:
        assert gguf_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"], text


def test_a_bfloat16_export_writes_bf16_matrices_and_f32_norms(tmp_path):
    save_tiny_model(tmp_path / "src")
    train_tokenizer(
        [f"the cat {i} sat on mat {i * 7}" for i in range(200)], vocab_size=VOCAB_SIZE, save_dir=str(tmp_path / "src")
    )
    export_to_llama(str(tmp_path / "src"), str(tmp_path / "dst"), dtype="bfloat16", gguf=True)
    reader, fields = gguf_fields(str(tmp_path / "dst" / "model.gguf"))
    types = {tensor.name: tensor.tensor_type.name for tensor in reader.tensors}
    assert fields["general.file_type"] == 32  # llama.cpp's MOSTLY_BF16
    assert {types[name] for name in types if "norm" in name} == {"F32"}
    assert {types[name] for name in types if "norm" not in name} == {"BF16"}
    llama = LlamaForCausalLM.from_pretrained(str(tmp_path / "dst"), dtype=torch.float32).eval()
    from_gguf = AutoModelForCausalLM.from_pretrained(
        str(tmp_path / "dst"), gguf_file="model.gguf", dtype=torch.float32
    ).eval()
    input_ids, _ = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(from_gguf(input_ids).logits, llama(input_ids).logits, atol=1e-5, rtol=0)


def test_gguf_is_refused_in_one_line_without_its_package_or_for_another_tokenizer(tmp_path, monkeypatch, exported):
    src, _, _ = exported
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if not installed
    with pytest.raises(UsageError, match="`pip install gguf`"):
        export_to_llama(src, str(tmp_path / "dst"), gguf=True)
    monkeypatch.undo()
    shutil.copytree(src, tmp_path / "prefix_space")
    with open(tmp_path / "prefix_space" / "tokenizer.json") as handle:
        tokenizer = json.load(handle)
    pre = tokenizer["pre_tokenizer"]
    pre.get("pretokenizers", [pre])[-1]["add_prefix_space"] = True  # llama.cpp would split it differently
    (tmp_path / "prefix_space" / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(InputFileError, match="neither Llama 3's nor GPT-2's byte-level BPE"):
        export_to_llama(str(tmp_path / "prefix_space"), str(tmp_path / "dst"), gguf=True)
    assert not (tmp_path / "dst").exists()


def written_dtypes(folder):
    return {p.dtype for p in LlamaForCausalLM.from_pretrained(str(folder), dtype="auto").parameters()}


def test_dtype_of_the_written_weights(tmp_path):
    save_tiny_model(tmp_path / "src")
    export_to_llama(str(tmp_path / "src"), str(tmp_path / "bf16"), dtype="bfloat16")
    assert written_dtypes(tmp_path / "bf16") == {torch.bfloat16}
    assert not any(name.startswith("tokenizer") for name in os.listdir(tmp_path / "bf16"))  # src had none
    export_to_llama(str(tmp_path / "src"), str(tmp_path / "fp32"))
    assert written_dtypes(tmp_path / "fp32") == {torch.float32}
    # By default the export keeps the dtype the source was saved in.
    ModernLLMForCausalLM.from_pretrained(str(tmp_path / "src"), dtype=torch.float16).save_pretrained(tmp_path / "half")
    export_to_llama(str(tmp_path / "half"), str(tmp_path / "half_llama"))
    assert written_dtypes(tmp_path / "half_llama") == {torch.float16}
    with pytest.raises(ValueError, match="not a torch dtype"):
        export_to_llama(str(tmp_path / "src"), str(tmp_path / "bad"), dtype="float33")


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"attention_sinks": True}, "attention_sinks"),
        ({"qk_norm": True}, "qk_norm"),
        ({"num_experts": 4, "num_experts_per_tok": 2}, "num_experts=4"),
    ],
)
def test_refuses_what_llama_cannot_represent(tmp_path, overrides, named):
    save_tiny_model(tmp_path / "src", **overrides)
    with pytest.raises(ValueError, match=named):
        export_to_llama(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


def test_refuses_a_folder_that_is_not_a_modern_llm(tmp_path, exported):
    _, llama_folder, _ = exported
    with pytest.raises(ValueError, match="'llama' model"):
        export_to_llama(llama_folder, str(tmp_path / "dst"))
    with pytest.raises(InputFileError, match="no config.json"):
        export_to_llama(str(tmp_path / "missing"), str(tmp_path / "dst"))


def test_a_non_empty_destination_is_replaced_only_with_overwrite(tmp_path):
    save_tiny_model(tmp_path / "src")
    finished = tmp_path / "dst"
    finished.mkdir()
    (finished / "results.json").write_text("finished work")
    refused = run_cli(str(tmp_path / "src"), str(finished))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "pass --overwrite" in refused.stderr.strip().splitlines()[-1]
    assert sorted(os.listdir(finished)) == ["results.json"]  # untouched, byte for byte below
    assert (finished / "results.json").read_text() == "finished work"
    export_to_llama(str(tmp_path / "src"), str(finished), overwrite=True)
    assert "results.json" not in os.listdir(finished) and (finished / "config.json").is_file()
    assert not (tmp_path / "dst.partial").exists()


def test_a_truncated_source_is_one_line_before_loading(tmp_path):
    save_tiny_model(tmp_path / "src")
    weights = tmp_path / "src" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = run_cli(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert result.returncode == 1 and "model.safetensors is truncated" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "dst").exists()


def run_cli(*args):
    """`python -m modeling_modern_llm.export_llama ARGS`, in this process."""
    from modeling_modern_llm.export_llama import main

    return run_main(main, *args)


def test_cli(tmp_path):
    source = save_tiny_model(tmp_path / "src", tie_word_embeddings=True).eval()
    result = run_cli(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert result.returncode == 0, result.stderr
    llama = LlamaForCausalLM.from_pretrained(str(tmp_path / "dst"))
    input_ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    with torch.no_grad():
        torch.testing.assert_close(llama(input_ids).logits, source(input_ids).logits, atol=1e-4, rtol=0)

    save_tiny_model(tmp_path / "sinks", attention_sinks=True)
    refused = run_cli(str(tmp_path / "sinks"), str(tmp_path / "sinks_dst"))
    assert refused.returncode == 1 and "attention_sinks=True" in refused.stderr and "Traceback" not in refused.stderr


def test_a_mapping_error_is_caught_before_anything_is_written(tmp_path, monkeypatch):
    from modeling_modern_llm import export_llama

    correct_mapping = export_llama.to_llama_config

    def wrong_rope(config):
        llama_config = correct_mapping(config)
        llama_config.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}  # the source uses 5000
        return llama_config

    monkeypatch.setattr(export_llama, "to_llama_config", wrong_rope)
    save_tiny_model(tmp_path / "src")
    with pytest.raises(ValueError, match="logits differ"):
        export_to_llama(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()
