"""Read a llama.cpp GGUF file: model config, float32 weights under Hugging Face names, tokenizer.

Every tensor is dequantised to float32 with the ``gguf`` package (the model then runs in float32;
quantisation only shrank the file) and renamed to its Hugging Face ``LlamaForCausalLM`` key, so one
key mapping (:func:`gecko_jax.llm.llama.params_from_hf`) serves GGUF and safetensors alike.

The metadata is parsed here rather than with ``gguf.GGUFReader``, which builds a numpy view per
element of every array and took 6-15 s on the 100k strings of a vocabulary (this takes ~0.2 s).

llama.cpp's converter permutes the rows of the Q and K projections so that its RoPE rotates
adjacent pairs ``(x0, x1), (x2, x3), ...``; we undo that permutation, giving the rotate-half layout
of the original checkpoint that :func:`gecko_jax.llm.llama.rotary` implements.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from typing import Any

import numpy as np

from gecko_jax.llm.llama import LlamaConfig
from gecko_jax.llm.llm_tokenizer import LLMTokenizer

_LAYER_KEYS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL_KEYS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_PATTERN = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


@dataclasses.dataclass(frozen=True)
class GGUFContents:
    config: LlamaConfig
    tensors: dict[str, np.ndarray]  # Hugging Face names, float32, Linear weights [out, in]
    tokenizer: LLMTokenizer


def hf_name(gguf_name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    if gguf_name in _GLOBAL_KEYS:
        return _GLOBAL_KEYS[gguf_name]
    match = _LAYER_PATTERN.fullmatch(gguf_name)
    if match is None or match.group(2) not in _LAYER_KEYS:
        raise ValueError(f"unexpected GGUF tensor {gguf_name!r} for a llama model")
    return f"model.layers.{match.group(1)}.{_LAYER_KEYS[match.group(2)]}.weight"


def unpermute_rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head Q/K row interleave (``convert_hf_to_gguf.py`` ``permute``)."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _config(fields: dict[str, Any], vocab_size: int, tied: bool) -> LlamaConfig:
    arch = fields["general.architecture"]
    if arch != "llama":
        raise NotImplementedError(f"GGUF architecture {arch!r} is not supported (only llama)")
    if fields.get(f"{arch}.rope.scaling.type", "none") != "none":
        raise NotImplementedError("RoPE scaling in GGUF files is not supported")

    def get(key: str, default: Any = None) -> Any:
        return fields.get(f"{arch}.{key}", default)

    hidden, heads = int(get("embedding_length")), int(get("attention.head_count"))
    return LlamaConfig(
        vocab_size=int(get("vocab_size", vocab_size)),
        hidden_size=hidden,
        intermediate_size=int(get("feed_forward_length")),
        num_layers=int(get("block_count")),
        num_heads=heads,
        num_kv_heads=int(get("attention.head_count_kv", heads)),
        head_dim=int(get("rope.dimension_count", hidden // heads)),
        rope_theta=float(get("rope.freq_base", 10000.0)),
        rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings=tied,
        max_position_embeddings=int(get("context_length", 2048)),
    )


# GGUF metadata value types -> struct format (scalars); 8 = string, 9 = array.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


@dataclasses.dataclass(frozen=True)
class _TensorInfo:
    name: str
    dims: tuple[int, ...]  # GGUF order: fastest-varying first
    kind: int  # ggml type
    offset: int  # from the start of the data section


class _Cursor:
    """Little-endian reads from the bytes of a GGUF file."""

    def __init__(self, buffer: bytes):
        self.buffer, self.position = buffer, 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.buffer, self.position)
        self.position += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.scalar("Q")
        self.position += size
        return self.buffer[self.position - size : self.position].decode("utf-8", "replace")

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.scalar("I"), self.scalar("Q")
            if item in _SCALARS:
                fmt = "<" + _SCALARS[item]
                values = np.frombuffer(self.buffer, fmt, count, self.position).tolist()
                self.position += count * struct.calcsize(fmt)
                return values
            return [self.value(item) for _ in range(count)]
        return self.scalar(_SCALARS[kind])


def _read_layout(buffer: bytes) -> tuple[dict[str, Any], list[_TensorInfo], int]:
    """Metadata, tensor descriptions and the byte offset of the data section."""
    cursor = _Cursor(buffer)
    if buffer[:4] != b"GGUF":
        raise ValueError("not a GGUF file (bad magic)")
    cursor.position = 4
    version = cursor.scalar("I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version} (big-endian files are not read)")
    tensor_count, field_count = cursor.scalar("Q"), cursor.scalar("Q")
    fields = {}
    for _ in range(field_count):
        key = cursor.string()
        fields[key] = cursor.value(cursor.scalar("I"))
    tensors = []
    for _ in range(tensor_count):
        name = cursor.string()
        dims = tuple(cursor.scalar("Q") for _ in range(cursor.scalar("I")))
        tensors.append(_TensorInfo(name, dims, cursor.scalar("I"), cursor.scalar("Q")))
    alignment = int(fields.get("general.alignment", 32))
    return fields, tensors, -(-cursor.position // alignment) * alignment


def _dequantize(buffer: bytes, start: int, info: _TensorInfo) -> np.ndarray:
    """One tensor as float32, numpy (row-major) shape: the GGUF dims reversed."""
    import gguf

    kind = gguf.GGMLQuantizationType(info.kind)
    block, block_bytes = gguf.GGML_QUANT_SIZES[kind]
    row_bytes = info.dims[0] // block * block_bytes
    rows = int(np.prod(info.dims[1:], dtype=np.int64))
    raw = np.frombuffer(buffer, np.uint8, rows * row_bytes, start + info.offset)
    values = gguf.dequantize(raw.reshape(*info.dims[:0:-1], row_bytes), kind)
    return np.array(values, np.float32).reshape(info.dims[::-1])  # a copy, not a view of buffer


def read_gguf(path: str | os.PathLike) -> GGUFContents:
    """Config, dequantised float32 tensors (HF names) and tokenizer of a llama GGUF file."""
    with open(path, "rb") as handle:
        data = handle.read()
    fields, infos, start = _read_layout(data)
    names = {info.name for info in infos}
    if "rope_freqs.weight" in names:
        raise NotImplementedError(
            "GGUF files with rope_freqs (Llama 3.1 RoPE scaling) are not supported"
        )
    config = _config(fields, len(fields["tokenizer.ggml.tokens"]), "output.weight" not in names)
    tensors: dict[str, np.ndarray] = {}
    for info in infos:
        weight = _dequantize(data, start, info)
        name = hf_name(info.name)
        if name.endswith("q_proj.weight"):
            weight = unpermute_rope_rows(weight, config.num_heads)
        elif name.endswith("k_proj.weight"):
            weight = unpermute_rope_rows(weight, config.num_kv_heads)
        tensors[name] = weight
    return GGUFContents(config, tensors, LLMTokenizer.from_gguf_fields(fields))
