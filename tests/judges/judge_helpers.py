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


DIGIT_KEYWORDS = ("trait", "coherence")


def build_digit_tokenizer():
    """A word-level tokenizer that writes every number digit by digit ("85" -> "8", "5"), like Qwen2 or Llama-2."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    digits = [str(d) for d in range(10)]
    vocab = {token: i for i, token in enumerate(JUDGE_SPECIALS + JUDGE_WORDS + list(DIGIT_KEYWORDS) + digits)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": JUDGE_SPECIALS[4:]})
    tokenizer.chat_template = JUDGE_CHAT_TEMPLATE
    return tokenizer


def save_digit_judge_model(
    folder: Path, rows: dict[str, dict[str, float]], zero_margin: float = 0.0, seed: int = 0
) -> Path:
    """A tiny Mistral with a digit-splitting tokenizer whose next-token distribution is written by hand.

    ``rows[token]`` gives the probabilities of the next token after ``token`` (a bigram table; "<|assistant|>"
    is the row that starts the answer). With ``zero_margin`` > 0, a "0" after "1" is followed by another "0" and a
    "0" after "0" by ``<|end|>``, so "100" can be the likely answer: one attention head with a sliding window of 2
    tells the last layer whether the previous token was a "0". Unlisted tokens get probability ~1e-4.
    """
    import math

    import torch
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = build_digit_tokenizer()
    vocab = len(tokenizer)
    hidden = 64
    zero_state = vocab  # residual dimension that carries "a 0 is in the window"
    assert vocab < hidden
    torch.manual_seed(seed)
    config = MistralConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, head_dim=32, sliding_window=2, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )
    model = MistralForCausalLM(config).eval()
    ids = tokenizer.convert_tokens_to_ids
    scale = math.sqrt(hidden)  # RMSNorm turns a one-hot embedding into sqrt(hidden) times itself
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for norm in (model.model.norm, model.model.layers[0].input_layernorm,
                     model.model.layers[0].post_attention_layernorm):
            norm.weight.fill_(1.0)
        model.model.embed_tokens.weight[:, :vocab] = torch.eye(vocab)
        attention = model.model.layers[0].self_attn
        # q = k = 0: uniform attention over the window (this token and the one before); the value says "is a 0"
        attention.v_proj.weight[0, ids("0")] = 1.0 / scale
        attention.o_proj.weight[zero_state, 0] = 2.0  # the mean over the window of two: 1 per "0" in it
        head = model.lm_head.weight
        head[:, :vocab] = math.log(1e-4) / scale  # the zero-state column stays 0 but for <|end|>
        for token, following in rows.items():
            for next_token, probability in following.items():
                head[ids(next_token), ids(token)] = math.log(probability) / scale
        if zero_margin:
            # one "0" in the window (after "1"): another "0"; two (after "0"): the end
            head[ids("0"), ids("0")] = 3 * zero_margin
            head[ids("<|end|>"), ids("0")] = 0.0
            head[ids("<|end|>"), zero_state] = 2 * zero_margin
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
