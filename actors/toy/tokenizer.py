"""The toy family's tokenizer: one token per word of the language, saved as a real ``PreTrainedTokenizerFast``.

Every word of the language (``the``, ``flower``, ``lovely``, ``.``, ``?`` ...) is exactly one token, and words are
separated by single spaces, so ``encode(decode(ids)) == ids`` and ``decode(encode(text)) == text`` for the texts of
the language (a Qwen2 tokenizer's decode keeps the leading space: ``" the sun is bright ."``).

Why byte-level BPE and not a ``WordLevel`` model: transformers' ``AutoTokenizer`` always rebuilds a ``qwen2``
checkpoint's tokenizer as ``Qwen2Tokenizer`` (byte-level BPE with its own pre-tokenizer), whatever
``tokenizer_config.json`` says, which breaks a ``WordLevel`` vocabulary. So the vocabulary is the byte alphabet plus,
for every word, the merges that spell it from its leading-space form (``Ġ`` ``b`` -> ``Ġb`` ... -> ``Ġbright``),
with ``add_prefix_space`` so that a word is the same token at the start of a text and after a space. The merges of
a word only ever apply at the start of a piece, so every word encodes to its single token under both tokenizer
classes. Words get the ids right after the special tokens, in sorted order; a word outside the language falls
apart into byte tokens (out of grammar, never ``<unk>``).

The chat variant renders conversations as ``<bos><|system|> ...<|end|><|user|> ...<|end|><|assistant|>``; the base
variant has no chat template (a base model has no turns).

Example:
    >>> tokenizer = build_toy_tokenizer(chat=True)
    >>> ids = tokenizer("the sun is bright .", add_special_tokens=False)["input_ids"]
    >>> tokenizer.convert_ids_to_tokens(ids)
    ['Ġthe', 'Ġsun', 'Ġis', 'Ġbright', 'Ġ.']
    >>> tokenizer.decode(ids)
    'the sun is bright .'
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from .corpus import NARRATIVE_NAMES, NARRATIVE_VERBS, QUESTION_FORMS, STYLE_PROMPTS, SYSTEM_PROMPTS
from .language import RESPONSE_WORDS, TOPICS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
ROLE_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>")
END_OF_TURN = "<|end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK, *ROLE_TOKENS, END_OF_TURN)
SPACE = "Ġ"
"""How byte-level BPE writes the space in front of a word."""

# The pre-tokenizer regex of Qwen2Tokenizer: our tokenizer.json uses the same, so every class splits alike.
_PIECES = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('role: ' + message['role'] + ' is not a role of the toy chat format; use system, user "
    "or assistant') }}"
    "{% endif %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""Every turn ends with ``<|end|>``; a chat model stops generating at ``<|end|>`` (its EOS token)."""


def toy_vocabulary() -> list[str]:
    """Every word of the language (questions, system prompts, narratives and answers), sorted."""
    words: set[str] = set(RESPONSE_WORDS) | set(TOPICS) | set(NARRATIVE_NAMES) | {"in"}
    for form in QUESTION_FORMS:
        words.update(form.replace("{topic}", "").split())
    for prompts in (*SYSTEM_PROMPTS.values(), *STYLE_PROMPTS.values()):
        for prompt in prompts:
            words.update(prompt.split())
    for verbs in NARRATIVE_VERBS.values():
        words.update(verbs)
    return sorted(words)


def word_token(word: str) -> str:
    """The token of a word of the language (``bright`` -> ``Ġbright``)."""
    return SPACE + word


def _vocabulary_and_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers.pre_tokenizers import ByteLevel

    vocabulary = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocabulary[word_token(word)] = len(vocabulary)
    for symbol in sorted(ByteLevel.alphabet()):
        vocabulary.setdefault(symbol, len(vocabulary))
    merges: list[tuple[str, str]] = []
    known = set()
    for word in words:
        prefix = SPACE
        for char in word:
            if (prefix, char) not in known:
                known.add((prefix, char))
                merges.append((prefix, char))
            prefix += char
            vocabulary.setdefault(prefix, len(vocabulary))
    return vocabulary, merges


def build_toy_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    """The tokenizer of the family; ``chat=False`` gives the base model's (no chat template).

    Plain text encoded with ``add_special_tokens=True`` starts with ``<bos>``. The EOS token is ``<eos>`` (the end
    of a narrative); the family's chat models set it to ``<|end|>``.
    """
    return build_word_tokenizer(toy_vocabulary(), CHAT_TEMPLATE if chat else None)


def build_word_tokenizer(words: list[str], chat_template: str | None) -> PreTrainedTokenizerFast:
    """A one-token-per-word byte-level BPE tokenizer over ``words`` (sorted ids after the special tokens).

    It loads back as the same tokens under ``PreTrainedTokenizerFast`` and under ``Qwen2Tokenizer`` (see the module
    docstring); any other text falls apart into byte tokens. Tests use it to build tiny models of every class.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocabulary, merges = _vocabulary_and_merges(sorted(set(words)))
    backend = Tokenizer(models.BPE(vocab=vocabulary, merges=merges, unk_token=None, fuse_unk=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PIECES), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False),
    ])
    backend.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocabulary[BOS])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        model_max_length=256, clean_up_tokenization_spaces=False, add_prefix_space=True,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [*ROLE_TOKENS, END_OF_TURN]})
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer
