"""A decoder LLM's tokenizer and chat template, built from GGUF metadata or a Hugging Face folder.

A GGUF file carries no ``tokenizer.json``: it stores the byte-level BPE vocabulary, the merges,
the token types and the name of llama.cpp's pre-tokenizer. We rebuild the same tokenizer with the
``tokenizers`` library (so encoding runs in Rust), and render chat messages with the file's own
Jinja chat template, the way ``transformers`` does (sandboxed, trimmed blocks).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers

from gecko_jax.llm.base import Prompt

# Tokens that end a turn although the file may not name them EOS (llama.cpp's EOG list).
_END_OF_GENERATION = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_text|>",
)

# GGUF token types (llama.cpp's llama_token_type).
_CONTROL, _USER_DEFINED = 3, 4

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# llama.cpp's pre-tokenizer names -> (split digits one by one first?, word-split regex).
_PRE_TOKENIZERS: dict[str, tuple[bool, str]] = {
    "default": (False, _GPT2_SPLIT),
    "gpt2": (False, _GPT2_SPLIT),
    "smollm": (True, _GPT2_SPLIT),
    "starcoder": (True, _GPT2_SPLIT),
    "refact": (True, _GPT2_SPLIT),
    "llama-bpe": (False, _LLAMA3_SPLIT),
    "llama3": (False, _LLAMA3_SPLIT),
}


@functools.cache
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (as in ``bytes_to_unicode``)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _pre_tokenizer(name: str) -> pre_tokenizers.PreTokenizer:
    if name not in _PRE_TOKENIZERS:
        raise NotImplementedError(
            f"GGUF pre-tokenizer {name!r} is not supported; known: {sorted(_PRE_TOKENIZERS)}"
        )
    split_digits, regex = _PRE_TOKENIZERS[name]
    steps = [pre_tokenizers.Digits(individual_digits=True)] if split_digits else []
    steps.append(pre_tokenizers.Split(Regex(regex), behavior="isolated"))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return pre_tokenizers.Sequence(steps)


def _render_template(template: str, messages: Sequence[Mapping[str, str]], **extra: Any) -> str:
    return _compile_template(template).render(
        messages=[dict(m) for m in messages], add_generation_prompt=True, **extra
    )


@functools.cache
def _compile_template(template: str) -> jinja2.Template:
    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


@dataclasses.dataclass(frozen=True)
class LLMTokenizer:
    """Text <-> token ids for one decoder, plus its special ids and chat template."""

    tokenizer: tokenizers.Tokenizer
    eos_id: int
    bos_id: int | None
    add_bos: bool
    chat_template: str | None
    # Every id that ends generation: EOS plus the end-of-turn tokens present in the vocabulary.
    stop_ids: frozenset[int]

    @classmethod
    def from_gguf_fields(cls, fields: Mapping[str, Any]) -> LLMTokenizer:
        """Build from GGUF ``tokenizer.*`` metadata (values already decoded to Python)."""
        kind = fields.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise NotImplementedError(
                f"only byte-level BPE GGUF tokenizers ('gpt2') are supported, not {kind!r}"
            )
        tokens: list[str] = list(fields["tokenizer.ggml.tokens"])
        types: list[int] = list(fields.get("tokenizer.ggml.token_type", [1] * len(tokens)))
        merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
        alphabet = set(_byte_alphabet().values())

        def spell(token: str) -> str:
            # Byte-level vocabularies store some tokens (control tokens) in plain UTF-8.
            if set(token) <= alphabet:
                return token
            return "".join(_byte_alphabet()[b] for b in token.encode("utf-8"))

        vocab = {spell(token): i for i, token in enumerate(tokens)}
        if len(vocab) != len(tokens):
            raise ValueError("GGUF vocabulary has duplicate tokens after byte-level spelling")
        tok = tokenizers.Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
        tok.pre_tokenizer = _pre_tokenizer(fields.get("tokenizer.ggml.pre", "default"))
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(
            [
                AddedToken(t, special=True, normalized=False)
                for t, k in zip(tokens, types, strict=True)
                if k == _CONTROL
            ]
        )
        tok.add_tokens(
            [
                AddedToken(t, normalized=False)
                for t, k in zip(tokens, types, strict=True)
                if k == _USER_DEFINED
            ]
        )
        bos = fields.get("tokenizer.ggml.bos_token_id")
        return cls.build(
            tok,
            eos_id=int(fields["tokenizer.ggml.eos_token_id"]),
            bos_id=None if bos is None else int(bos),
            # Files that say nothing: no BOS, as transformers does for byte-level BPE.
            add_bos=bool(fields.get("tokenizer.ggml.add_bos_token", False)),
            chat_template=fields.get("tokenizer.chat_template"),
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> LLMTokenizer:
        """Build from a Hugging Face folder: ``tokenizer.json`` plus ``tokenizer_config.json``.

        The chat template is read from ``chat_template.jinja`` (transformers 5) or the config.
        """
        folder = Path(folder)
        tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text("utf-8")) if config_path.exists() else {}
        template_path = folder / "chat_template.jinja"
        template = (
            template_path.read_text("utf-8")
            if template_path.exists()
            else config.get("chat_template")
        )

        def token_id(name: str) -> int | None:
            value = config.get(name)
            value = value.get("content") if isinstance(value, dict) else value
            return None if value is None else tok.token_to_id(value)

        eos, bos = token_id("eos_token"), token_id("bos_token")
        if eos is None:
            raise ValueError(f"{config_path} names no eos_token present in the vocabulary")
        # Without the flag, ask the tokenizer's post-processor (Llama 3 adds BOS there).
        add_bos = config.get("add_bos_token")
        if add_bos is None:
            add_bos = tok.encode("a", add_special_tokens=True).ids[:1] == [bos]
        return cls.build(tok, eos, bos, bool(add_bos), template)

    @classmethod
    def build(
        cls,
        tok: tokenizers.Tokenizer,
        eos_id: int,
        bos_id: int | None,
        add_bos: bool,
        chat_template: str | None,
    ) -> LLMTokenizer:
        ends = {tok.token_to_id(t) for t in _END_OF_GENERATION} - {None}
        return cls(
            tok,
            eos_id,
            bos_id,
            add_bos and bos_id is not None,
            chat_template,
            frozenset({eos_id, *ends}),
        )

    def encode(self, text: str, at_start: bool = False) -> list[int]:
        """Token ids of ``text``; special tokens written in the text stay whole.

        ``at_start``: the text opens a sequence, so it gets BOS if the model wants one.
        """
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if at_start and self.add_bos else ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def render(self, prompt: Prompt) -> str:
        """A raw prompt unchanged; chat messages through the chat template, ready to answer."""
        if isinstance(prompt, str):
            return prompt
        if self.chat_template is None:
            raise ValueError("this model has no chat template; pass raw string prompts")
        specials = {
            "bos_token": "" if self.bos_id is None else self.tokenizer.id_to_token(self.bos_id),
            "eos_token": self.tokenizer.id_to_token(self.eos_id),
        }
        return _render_template(self.chat_template, prompt, **specials)
