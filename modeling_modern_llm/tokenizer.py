"""Train a byte-level BPE tokenizer for modern-llm, or load an existing one ready for chat training.

    python -m modeling_modern_llm.tokenizer --output_dir tokenizers/wikitext-8k --vocab_size 8192 \
        --dataset wikitext-2-raw-v1
    python -m modeling_modern_llm.tokenizer --output_dir tokenizers/mine --vocab_size 8192 --text_file corpus.txt

`train_tokenizer` trains GPT-2-style byte-level BPE (any byte string encodes, nothing is ever unknown) with the
`tokenizers` library and returns a `transformers` fast tokenizer that `AutoTokenizer.from_pretrained` reloads.
`load_tokenizer` loads such a folder or a Hub tokenizer ("gpt2") and fills in what chat training needs.

Special tokens and the choice of eos:
- `<|endoftext|>` is bos and eos. Pretraining separates documents with it, and a plain-text model stops on it.
- `<|pad|>` pads. It is never eos: collators and reward models that find the last real token by the pad id
  would otherwise drop or misread the final eos.
- `<|im_start|>` / `<|im_end|>` frame ChatML turns; every assistant turn ends with `<|im_end|>`, and the chat
  template marks the assistant content plus that `<|im_end|>` with `{% generation %}` so TRL's
  `assistant_only_loss` trains the model to emit it. A chat model must stop there, so the SFT stage sets
  `eos_token: "<|im_end|>"` in its SFTConfig: TRL then makes it the tokenizer's eos and puts it first in
  `generation_config.eos_token_id`, next to `<|endoftext|>`. The tokenizer saved here stays the base one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, HfArgumentParser, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .errors import InputFileError, UsageError, run_command
from .files import check_new_output
from .task_formats import CHAT_TEMPLATE, IM_END_TOKEN, IM_START_TOKEN  # ChatML, shared with the data and the evaluation

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = [EOS_TOKEN, PAD_TOKEN, IM_START_TOKEN, IM_END_TOKEN]
# Llama 3's pre-tokenization: words with the space before them, numbers apart from it in groups of up to three
# digits. A number is then the same tokens wherever it stands (" 45" in a question, "=45>>" in a solution), so a
# model copies it by identity instead of learning that " 45" and "45" mean one thing (GPT-2's regex joins the space).
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _count_texts(texts: Iterable[str], counter: list[int]) -> Iterator[str]:
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"train_tokenizer needs an iterable of str, got an item of type {type(text).__name__}.")
        counter[0] += 1
        yield text


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2, save_dir: str | None = None
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` (any iterable of strings, consumed once).

    The vocabulary holds the 256 byte symbols, the 4 special tokens and up to `vocab_size - 260` merges
    (fewer when the corpus has no more pairs seen `min_frequency` times). Training is deterministic: the same
    texts give the same vocabulary. With `save_dir`, the tokenizer is also saved there with `save_pretrained`.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("train_tokenizer needs an iterable of texts, not one string: wrap it in a list.")
    min_vocab = len(pre_tokenizers.ByteLevel.alphabet()) + len(SPECIAL_TOKENS)
    if vocab_size < min_vocab:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least {min_vocab} entries "
            f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens). Use e.g. 8192."
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}.")

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps a leading space inside its token's character span; with trimming,
    # char_to_token misses it and the assistant-token mask of the chat template comes out empty.
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    n_texts = [0]
    backend.train_from_iterator(_count_texts(texts, n_texts), trainer=trainer)
    if n_texts[0] == 0:
        raise ValueError("train_tokenizer got no texts: pass a non-empty iterable of strings.")

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[IM_START_TOKEN, IM_END_TOKEN],
        chat_template=CHAT_TEMPLATE,
    )
    if save_dir is not None:
        tokenizer.save_pretrained(save_dir)
    return tokenizer


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer folder or Hub name (e.g. "gpt2") and make it ready for chat training.

    A tokenizer without a pad token gets `<|pad|>`, and one without a chat template gets the ChatML template
    (adding `<|im_start|>` / `<|im_end|>` when missing). Tokens are only appended: existing ids and the
    existing bos/eos/unk stay as they are (unlike TRL's old `setup_chat_format`, trl#1412, #1819). When
    tokens were added, `len(tokenizer)` grows: resize the model with `model.resize_token_embeddings(len(tokenizer))`.
    """
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    new_tokens = {}
    if tokenizer.pad_token is None:
        new_tokens["pad_token"] = PAD_TOKEN
    if tokenizer.chat_template is None:
        missing = [t for t in (IM_START_TOKEN, IM_END_TOKEN) if t not in tokenizer.get_vocab()]
        if missing:
            new_tokens["extra_special_tokens"] = missing
        tokenizer.chat_template = CHAT_TEMPLATE
    if new_tokens:
        tokenizer.add_special_tokens(new_tokens, replace_extra_special_tokens=False)
    return tokenizer


@dataclass
class TokenizerTrainingArguments:
    output_dir: str = field(metadata={"help": "Folder to save the tokenizer in (AutoTokenizer loads it)."})
    vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size, bytes and special tokens included."})
    min_frequency: int = field(default=2, metadata={"help": "Minimum count of a pair to be merged."})
    dataset: str | None = field(
        default=None, metadata={"help": "Registry name of a text dataset (e.g. wikitext-2-raw-v1, embedded-text)."}
    )
    local_dir: str | None = field(
        default=None, metadata={"help": "Folder with DIR/<dataset>/<split>.jsonl|.parquet in the Hub schema."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N rows of --dataset."})
    text_file: list[str] | None = field(
        default=None, metadata={"help": "Plain text file(s) to train on, read line by line."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace a tokenizer already in --output_dir."})


def _dataset_texts(name: str, local_dir: str | None, limit: int | None) -> Iterator[str]:
    from modeling_modern_llm.data import load_dataset_by_name  # the data package is only needed by this route

    dataset = load_dataset_by_name(name, "train", local_dir=local_dir, limit=limit)
    if "text" not in dataset.column_names:
        raise UsageError(
            f"Dataset {name!r} has columns {dataset.column_names}, not a `text` column: "
            "train the tokenizer on a text dataset (kind `text` in modeling_modern_llm.data.REGISTRY)."
        )
    for batch in dataset.iter(batch_size=1000):
        yield from batch["text"]


def _file_texts(paths: list[str]) -> Iterator[str]:
    for path in paths:
        if not os.path.isfile(path):
            raise InputFileError(f"--text_file {path} does not exist")
        with open(path, encoding="utf-8") as handle:
            try:
                yield from handle
            except UnicodeDecodeError as error:
                raise InputFileError(
                    f"--text_file {path} is not UTF-8 (byte {error.start} of a line); convert it (e.g. iconv -t utf-8)"
                ) from None


def main(argv: list[str] | None = None) -> None:
    parser = HfArgumentParser(TokenizerTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    if args.dataset is None and not args.text_file:
        parser.error("give the training text: --dataset NAME and/or --text_file FILE [FILE ...]")
    run_command(_train_from_args, args)


def _train_from_args(args: TokenizerTrainingArguments) -> None:
    if args.dataset is not None:
        from modeling_modern_llm.data import get_spec

        try:
            get_spec(args.dataset)
        except ValueError as error:
            raise UsageError(f"--dataset: {error}") from None
    for path in args.text_file or []:
        if not os.path.isfile(path):
            raise InputFileError(f"--text_file {path} does not exist")
    if args.output_dir:
        check_new_output(os.path.join(args.output_dir, "tokenizer.json"), args.overwrite, "--overwrite")

    def texts() -> Iterator[str]:
        if args.dataset is not None:
            yield from _dataset_texts(args.dataset, args.local_dir, args.limit)
        if args.text_file:
            yield from _file_texts(args.text_file)

    try:
        tokenizer = train_tokenizer(texts(), args.vocab_size, args.min_frequency, save_dir=args.output_dir)
    except InputFileError:
        raise
    except ValueError as error:  # train_tokenizer's own checks of its arguments (vocab_size, min_frequency, no text)
        raise UsageError(str(error)) from None
    print(f"Saved a {len(tokenizer)}-token byte-level BPE tokenizer to {args.output_dir}")


if __name__ == "__main__":
    main()
