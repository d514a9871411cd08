"""One scoring wrapper around any Hugging Face causal LM and its tokenizer.

It offers lm-evaluation-harness's three request types, so every task scores our checkpoints and GPT-2
through the same code: ``loglikelihood`` (context, continuation) pairs, ``loglikelihood_rolling`` over
whole documents (sliding window with a stride, as the transformers perplexity guide), and batched,
left-padded ``generate_until`` with stop sequences and ``num_return_sequences`` sampling on the KV cache.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .gsm8k_format import STOP_SEQUENCES, truncate_at_stop


class ModelUnavailable(RuntimeError):
    """A model or tokenizer could not be loaded (no network, wrong path, corrupt checkpoint)."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_batch_size(device: str) -> int:
    """Sequences per forward pass: large on a GPU, small on a CPU where big batches only add padding."""
    return 64 if str(device).startswith("cuda") else 32


def register_project_models() -> None:
    """Import modeling_modern_llm so its Auto classes are registered; harmless if it is absent or partial."""
    try:
        importlib.import_module("modeling_modern_llm")
    except ImportError:
        pass


@functools.lru_cache(maxsize=None)
def hub_files_only_local(path_or_id: str) -> bool:
    """Whether a Hub id must come from the local cache: the Hub is unreachable (a quick socket check, once
    per run), so transformers would otherwise spend a minute on retries before failing."""
    from modeling_modern_llm.data.registry import hub_offline, hub_reachable

    return not os.path.isdir(path_or_id) and (hub_offline() or not hub_reachable())


def describe_load_error(path_or_id: str, error: Exception) -> str:
    """A one-line reason for the results file: a missing folder, the missing network, or the loader's error."""
    looks_like_path = path_or_id.startswith(("/", ".", "~")) or path_or_id.count("/") > 1
    if looks_like_path and not os.path.exists(path_or_id):
        return f"folder {path_or_id!r} does not exist: check the path (each training stage saves <run>/<stage>_final)"
    if isinstance(error, OSError) and hub_files_only_local(path_or_id):
        return f"{path_or_id!r} is not a local folder, the Hub cannot be reached and there is no cached copy (no network)"
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    return f"cannot load {path_or_id!r}: {type(error).__name__}: {first_line}"


def load_tokenizer(path_or_id: str, trust_remote_code: bool = True):
    """A tokenizer with a pad token (falls back to eos, as GPT-2 has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path_or_id, trust_remote_code=trust_remote_code,
                                              local_files_only=hub_files_only_local(path_or_id))
    return ensure_pad_token(tokenizer)


def ensure_pad_token(tokenizer):
    """Give the tokenizer a pad token (eos, as GPT-2 has none) so batches can be padded."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.pad_token is None:
        raise ModelUnavailable(f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an eos token; add one to it")
    return tokenizer


@dataclass
class CausalLM:
    """A causal LM, its tokenizer and the batch size used for every request."""

    model: torch.nn.Module
    tokenizer: object
    batch_size: int = 16
    max_length: Optional[int] = None

    def __post_init__(self):
        self.model.eval()
        ensure_pad_token(self.tokenizer)
        if self.max_length is None:
            self.max_length = getattr(self.model.config, "max_position_embeddings", None) or 2048
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        *,
        device: Optional[str] = None,
        dtype: str = "auto",
        batch_size: Optional[int] = None,
        trust_remote_code: bool = True,
    ) -> "CausalLM":
        """Load any causal LM by Hub id or folder; raises ModelUnavailable with the reason when it cannot."""
        from transformers import AutoModelForCausalLM

        register_project_models()
        device = device or default_device()
        torch_dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                       "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        try:
            tokenizer = load_tokenizer(path_or_id, trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                                         local_files_only=hub_files_only_local(path_or_id))
        except ModelUnavailable:
            raise
        except Exception as error:  # network, missing files, bad config: all mean "cannot score this model"
            raise ModelUnavailable(describe_load_error(path_or_id, error)) from error
        return cls(model.to(device), tokenizer, batch_size or default_batch_size(device))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def prefix_token_id(self) -> int:
        """The token that conditions the first scored token of a document (bos, else eos), as lm-eval."""
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's split: trailing context spaces move to the continuation; encode the whole, then cut."""
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole = self.encode(context + continuation)
        context_ids = self.encode(context)
        return context_ids, whole[len(context_ids):]

    @torch.inference_mode()
    def _score_windows(self, windows: list[tuple[list[int], int]], desc: str) -> list[tuple[float, bool]]:
        """For each (token ids, first scored position): sum of log p(ids[t] | ids[:t]) over t >= that position,
        and whether every scored token is the argmax (lm-eval's ``is_greedy``). Batched with right padding."""
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))  # similar lengths share a batch
        results: list[Optional[tuple[float, bool]]] = [None] * len(windows)
        for start in tqdm(range(0, len(order), self.batch_size), desc=desc, leave=False):
            batch = [windows[i] for i in order[start : start + self.batch_size]]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros_like(input_ids)
            for row, (ids, _) in enumerate(batch):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention_mask[row, : len(ids)] = 1
            logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)).logits
            log_probs = F.log_softmax(logits.float(), dim=-1)  # [B, T, V]
            for row, (ids, first) in enumerate(batch):
                targets = torch.tensor(ids[first:], device=self.device)
                predicted = log_probs[row, first - 1 : len(ids) - 1]  # position t-1 predicts token t
                score = predicted.gather(-1, targets[:, None]).sum().item()
                greedy = bool((predicted.argmax(-1) == targets).all())
                results[order[start + row]] = (score, greedy)
        return results  # type: ignore[return-value]

    def loglikelihood(self, requests: Sequence[tuple[str, str]], desc: str = "loglikelihood") -> list[tuple[float, bool]]:
        """log p(continuation | context) and is_greedy for each pair (lm-eval's ``loglikelihood``)."""
        windows = []
        for context, continuation in requests:
            context_ids, continuation_ids = self.encode_pair(context, continuation) if context else ([self.prefix_token_id], self.encode(continuation))
            if not continuation_ids:
                raise ValueError(f"continuation {continuation!r} encodes to no tokens; it cannot be scored")
            ids = (context_ids + continuation_ids)[-self.max_length:]  # keep the continuation, cut the left
            windows.append((ids, max(1, len(ids) - len(continuation_ids))))
        return self._score_windows(windows, desc)

    def rolling_windows(self, token_ids: list[int], stride: Optional[int] = None) -> list[tuple[list[int], int]]:
        """Sliding windows over ``[prefix] + token_ids`` that score every token exactly once (transformers'
        perplexity guide): each window scores the next ``stride`` tokens with up to ``max_length`` tokens of
        input, the rest being context the previous windows already scored. The default stride
        ``max_length - 1`` gives lm-eval's disjoint windows with one token of context."""
        stride = stride or self.max_length - 1
        if not 0 < stride < self.max_length:
            raise ValueError(f"stride must be in 1..max_length-1 ({self.max_length - 1}), got {stride}")
        ids = [self.prefix_token_id] + list(token_ids)
        windows, scored_until = [], 1  # position 0 (the prefix) is only context
        while scored_until < len(ids):
            end = min(scored_until + stride, len(ids))
            begin = max(0, end - self.max_length)
            windows.append((ids[begin:end], scored_until - begin))
            scored_until = end
        return windows

    def loglikelihood_rolling(self, texts: Sequence[str], stride: Optional[int] = None, desc: str = "perplexity") -> list[tuple[float, int]]:
        """(log-likelihood of the whole text in nats, number of its tokens) for each text."""
        token_lists = [self.encode(text, add_special_tokens=False) for text in texts]
        windows, owners = [], []
        for index, ids in enumerate(token_lists):
            for window in self.rolling_windows(ids, stride):
                windows.append(window)
                owners.append(index)
        totals = [0.0] * len(texts)
        for owner, (score, _) in zip(owners, self._score_windows(windows, desc)):
            totals[owner] += score
        return [(total, len(ids)) for total, ids in zip(totals, token_lists)]

    @torch.inference_mode()
    def generate_until(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 256,
        stop_sequences: Sequence[str] = STOP_SEQUENCES,
        num_return_sequences: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        desc: str = "generate",
    ) -> list[list[str]]:
        """``num_return_sequences`` completions per prompt, cut at the first stop sequence.

        Prompts are left-padded and batched; samples of one prompt come from a single ``generate`` call
        with ``num_return_sequences`` (one prefill per sample, then cached decoding), never one call each."""
        tokenizer = self.tokenizer
        prompts_per_batch = max(1, self.batch_size // num_return_sequences)
        budget = max(1, self.max_length - max_new_tokens)  # lm-eval keeps the right end of an over-long prompt
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if do_sample else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        stops = [s for s in stop_sequences if s]
        outputs: list[list[str]] = []
        padding_side, truncation_side = tokenizer.padding_side, tokenizer.truncation_side
        tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
        try:
            for start in tqdm(range(0, len(prompts), prompts_per_batch), desc=desc, leave=False):
                batch = list(prompts[start : start + prompts_per_batch])
                encoded = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=budget).to(self.device)
                generated = self.model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=num_return_sequences,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    stop_strings=stops or None,
                    tokenizer=tokenizer,
                    use_cache=True,
                    **sampling,
                )
                texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
                texts = [truncate_at_stop(text, stops) for text in texts]
                outputs.extend(texts[i : i + num_return_sequences] for i in range(0, len(texts), num_return_sequences))
        finally:
            tokenizer.padding_side, tokenizer.truncation_side = padding_side, truncation_side
        return outputs
