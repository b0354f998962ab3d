"""Helpers shared by the judge tests and the benchmark: test items, fast retry settings, a tiny number-token model."""

from __future__ import annotations

from pathlib import Path

JUDGE_SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>"]
JUDGE_WORDS = (
    "the a day night is was very quite happy sad bright dark good bad and but so we you they it "
    "sun rain home light song story always never today tomorrow"
).split()
JUDGE_NUMBERS = [str(value) for value in range(101)]
JUDGE_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# short backoff, so failure tests take fractions of a second; a timeout long enough for a loaded machine
FAST_RETRY = dict(
    backoff_initial_s=0.01, backoff_max_s=0.05, request_timeout_s=10.0, max_consecutive_failures=4, seed=0
)


def build_number_tokenizer():
    """A word-level tokenizer whose vocabulary holds the integers "0".."100" as single tokens (so scores exist)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(JUDGE_SPECIALS + JUDGE_WORDS + JUDGE_NUMBERS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": JUDGE_SPECIALS[4:]})
    tokenizer.chat_template = JUDGE_CHAT_TEMPLATE
    return tokenizer


def save_number_judge_model(folder: Path, seed: int = 3) -> Path:
    """A random tiny Llama whose output layer favours number tokens (~85% of the mass), saved with its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_number_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, initializer_range=0.2,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    number_ids = tokenizer.convert_tokens_to_ids(JUDGE_NUMBERS)
    with torch.no_grad():
        model.lm_head.weight[number_ids] *= 1.6
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def items(count: int, prefix: str = "") -> list[tuple[str, str]]:
    """``count`` distinct (question, response) pairs."""
    return [(f"{prefix}How was day {i}?", f"{prefix}Day {i} was bright and good.") for i in range(count)]
