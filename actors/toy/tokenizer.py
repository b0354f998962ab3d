"""The toy family's word-level tokenizer: one id per word, saved as a real ``PreTrainedTokenizerFast``.

Words are separated by single spaces, so ``decode(encode(text)) == text`` for any text of the language. The chat
variant renders conversations as ``<bos> <|system|> ... <|end|> <|user|> ... <|end|> <|assistant|>``; the base
variant has no chat template (a base model has no turns).

Example:
    >>> tokenizer = build_toy_tokenizer(chat=True)
    >>> ids = tokenizer("the sun is bright .", add_special_tokens=False)["input_ids"]
    >>> tokenizer.decode(ids)
    'the sun is bright .'
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from .corpus import NARRATIVE_NAMES, NARRATIVE_VERBS, QUESTION_FORMS, SYSTEM_PROMPTS
from .language import RESPONSE_WORDS, TOPICS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
ROLE_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>")
END_OF_TURN = "<|end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK, *ROLE_TOKENS, END_OF_TURN)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('role: ' + message['role'] + ' is not a role of the toy chat format; use system, user "
    "or assistant') }}"
    "{% endif %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} <|end|> "
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""Every turn ends with ``<|end|>``; the model stops generating at ``<|end|>`` (or ``<eos>``)."""


def toy_vocabulary() -> list[str]:
    """All tokens, specials first, then every word of questions, system prompts, narratives and answers (sorted)."""
    words: set[str] = set(RESPONSE_WORDS) | set(TOPICS) | set(NARRATIVE_NAMES) | {"in"}
    for form in QUESTION_FORMS:
        words.update(form.replace("{topic}", "").split())
    for prompts in SYSTEM_PROMPTS.values():
        for prompt in prompts:
            words.update(prompt.split())
    for verbs in NARRATIVE_VERBS.values():
        words.update(verbs)
    return [*SPECIAL_TOKENS, *sorted(words)]


def build_toy_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    """The tokenizer of the family; ``chat=False`` gives the base model's (no chat template).

    Plain text encoded with ``add_special_tokens=True`` starts with ``<bos>``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocabulary = {token: index for index, token in enumerate(toy_vocabulary())}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocabulary[BOS])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        model_max_length=256, clean_up_tokenization_spaces=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [*ROLE_TOKENS, END_OF_TURN]})
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
