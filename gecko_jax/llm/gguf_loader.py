"""Read a llama.cpp GGUF file: model config, float32 weights under Hugging Face names, tokenizer.

Every tensor is dequantised to float32 with the ``gguf`` package (the model then runs in float32;
quantisation only shrank the file) and renamed to its Hugging Face ``LlamaForCausalLM`` key, so one
key mapping (:func:`gecko_jax.llm.llama.params_from_hf`) serves GGUF and safetensors alike.

llama.cpp's converter permutes the rows of the Q and K projections so that its RoPE rotates
adjacent pairs ``(x0, x1), (x2, x3), ...``; we undo that permutation, giving the rotate-half layout
of the original checkpoint that :func:`gecko_jax.llm.llama.rotary` implements.
"""

from __future__ import annotations

import dataclasses
import os
import re
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


def read_gguf(path: str | os.PathLike) -> GGUFContents:
    """Config, dequantised float32 tensors (HF names) and tokenizer of a llama GGUF file."""
    import gguf

    reader = gguf.GGUFReader(os.fspath(path))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    names = {tensor.name for tensor in reader.tensors}
    if "rope_freqs.weight" in names:
        raise NotImplementedError(
            "GGUF files with rope_freqs (Llama 3.1 RoPE scaling) are not supported"
        )
    config = _config(fields, len(fields["tokenizer.ggml.tokens"]), "output.weight" not in names)
    tensors: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        weight = np.asarray(gguf.dequantize(tensor.data, tensor.tensor_type), np.float32)
        name = hf_name(tensor.name)
        if name.endswith("q_proj.weight"):
            weight = unpermute_rope_rows(weight, config.num_heads)
        elif name.endswith("k_proj.weight"):
            weight = unpermute_rope_rows(weight, config.num_kv_heads)
        tensors[name] = weight
    return GGUFContents(config, tensors, LLMTokenizer.from_gguf_fields(fields))
