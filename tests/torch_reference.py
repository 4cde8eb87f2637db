"""The ``transformers`` (PyTorch) model and tokenizer of a GGUF file: the parity reference.

Used by the parity tests and the CPU benchmark (``benchmarks/llm_cpu.py``); torch and
transformers are test dependencies, imported lazily.
``AutoModelForCausalLM.from_pretrained(gguf_file=...)`` insists on ``accelerate`` without using
it on CPU, so we do what it does inside: read the config, build ``LlamaForCausalLM``, and fill
it with transformers' own GGUF dequantisation and Q/K un-permutation (independent of ours,
which is the point of the comparison).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def load_reference(gguf_path: str | os.PathLike) -> tuple[Any, Any]:
    """``(model, tokenizer)``: float32 ``LlamaForCausalLM`` in eval mode, and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = Path(gguf_path)
    config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    model = LlamaForCausalLM(config)
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
    result = model.load_state_dict(
        {k: torch.as_tensor(v) for k, v in tensors.items()}, strict=False
    )
    if result.unexpected_keys or set(result.missing_keys) - {"lm_head.weight"}:
        raise RuntimeError(f"reference load mismatch: {result}")
    model.tie_weights()
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model, tokenizer
