"""A trained ``Encoder`` as a sentence-transformers folder, for every backbone the
architecture table (``models.architectures``) can export to Hugging Face (BERT today).

sentence-transformers users then load it with ``SentenceTransformer(path)``, no JAX needed. The
folder uses the classic layout (module paths ``sentence_transformers.models.*``), which older
releases read too; tests load it with sentence-transformers 6.2:

- ``config.json`` + ``model.safetensors``: the Hugging Face model (``BertModel``), its tensors
  computed by inverting our own import (``params_to_hf``), so loading the folder back gives the
  same params;
- ``tokenizer.json`` (copied) + ``tokenizer_config.json``;
- ``modules.json``: Transformer -> Pooling -> Dense (only with a projection) -> Normalize;
- ``sentence_bert_config.json``: ``max_seq_length`` = the encoder's ``max_length``, and no
  BERT pooler (unused by the embedding, dropped by our import);
- ``1_Pooling/config.json``: mean (or CLS) pooling over all tokens, prompt tokens included as
  in paper Eq. 1;
- ``2_Dense/``: the projection, with its bias and activation (identity or Tanh) if any;
- ``config_sentence_transformers.json``: cosine similarity and the prompts below.

Prompts are fixed prefixes in the model's text format (``config.text_format``; the Gecko
format below), so they express the query format exactly:
``model.encode(x, prompt_name=task)`` for each Table-9 task string in ``TASK_STRINGS`` equals
``Encoder.encode_queries(x, task=task)``. ``"query"`` and ``"document"`` (used by
``encode_query`` / ``encode_document``) equal ``encode_queries(x)`` and ``encode_documents(x)``
without titles. mteb task-type keys (``"STS"``, ``"Retrieval-query"``, ...) let mteb's
sentence-transformers wrapper apply the same instructions as ``MtebEncoder``; mteb warns about
the other keys and ignores them. No default prompt is set, so plain ``encode`` equals
``Encoder.encode``.

A prefix cannot express:

- a document's title, which sits inside the document format. Write
  ``format_document(text, title, config.text_format)`` yourself and encode it with no prompt.
  mteb's wrapper puts ``title + " " + text`` after the untitled document prefix instead;
- Matryoshka re-normalisation. ``SentenceTransformer(path, truncate_dim=d)`` truncates without
  re-normalising; cosine scores are unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np
import tokenizers
from etils import epath
from safetensors.numpy import save_file

from gecko_jax.core.paths import PathLike
from gecko_jax.model_io.atomic import write_folder
from gecko_jax.model_io.st_modules import DENSE_ACTIVATIONS
from gecko_jax.models.architectures import architecture, hf_export
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.text.formats import (
    DEFAULT_QUERY_TASK,
    DEFAULT_TEXT_FORMAT,
    format_document,
    format_query,
)
from gecko_jax.text.instructions import BY_TASK_TYPE, TASK_STRINGS
from gecko_jax.text.tokenizers import HFTokenizer, Tokenizer


class Exportable(Protocol):
    """What the export reads of a model: an :class:`~gecko_jax.encoder.Encoder` has it all."""

    config: DualEncoderConfig
    params: Any
    tokenizer: Tokenizer
    tokenizer_file: Path | None
    source: Path | epath.Path | None


_MODULES = "sentence_transformers.models."


def export_sentence_transformers(
    encoder: Exportable, out_dir: PathLike, *, overwrite: bool = False
) -> Path | epath.Path:
    """Write ``encoder`` to ``out_dir`` as a sentence-transformers folder; returns the folder.

    A non-empty ``out_dir`` is refused unless ``overwrite``; the folder is written atomically
    and never into the one the encoder was loaded from (see ``export.folders``).
    """
    architecture(encoder.config.encoder.architecture).hf_config_writer()  # fails early
    tokenizer_file = encoder.tokenizer_file
    if not isinstance(encoder.tokenizer, HFTokenizer) or tokenizer_file is None:
        raise ValueError("the sentence-transformers export needs a tokenizer.json tokenizer")
    return write_folder(
        out_dir,
        lambda folder: _write_folder(encoder, tokenizer_file, folder),
        overwrite=overwrite,
        source=encoder.source,
    )


def _write_folder(encoder: Exportable, tokenizer_file: Path, out: Path) -> None:
    """Every file of the sentence-transformers folder, into ``out`` (an empty folder)."""
    config = encoder.config
    params = jax.device_get(encoder.params)

    hf_config, backbone = hf_export(config.encoder, params["backbone"])
    _write_json(out / "config.json", hf_config)
    save_file(backbone, str(out / "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(tokenizer_file, out / "tokenizer.json")
    _write_json(out / "tokenizer_config.json", _tokenizer_config(encoder, tokenizer_file))
    # Our import drops BERT's pooler (the embedding never uses it), so none is written and the
    # model is built without one, rather than with a freshly initialised one.
    _write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": config.max_length, "model_args": {"add_pooling_layer": False}},
    )

    modules = [("Transformer", ""), ("Pooling", "1_Pooling")]
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": config.encoder.hidden_size,
            "pooling_mode_cls_token": config.pooling == "cls",
            "pooling_mode_mean_tokens": config.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "include_prompt": True,
        },
    )
    if config.projection_dim:
        dense = out / f"{len(modules)}_Dense"
        _write_dense(dense, config, params["projection"])
        modules.append(("Dense", dense.name))
    modules.append(("Normalize", f"{len(modules)}_Normalize"))
    _write_json(
        out / "modules.json",
        [
            {"idx": i, "name": str(i), "path": path, "type": _MODULES + kind}
            for i, (kind, path) in enumerate(modules)
        ],
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": sentence_transformers_prompts(config.text_format),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _write_dense(folder: Path, config: DualEncoderConfig, projection: dict[str, Any]) -> None:
    """The projection as a Dense module: the inverse of ``st_modules.read_dense``."""
    kernel = projection["kernel"]
    tensors = {"linear.weight": kernel.T}
    if config.projection_bias:
        tensors["linear.bias"] = projection["bias"]
    _write_json(
        folder / "config.json",
        {
            "in_features": int(kernel.shape[0]),
            "out_features": int(kernel.shape[1]),
            "bias": config.projection_bias,
            "activation_function": DENSE_ACTIVATIONS[config.projection_activation],
        },
    )
    save_file(
        {key: np.ascontiguousarray(value, np.float32) for key, value in tensors.items()},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )


def sentence_transformers_prompts(text_format: str = DEFAULT_TEXT_FORMAT) -> dict[str, str]:
    """Prompt name -> prefix in a model's text format (see the module docstring)."""

    def query(task: str) -> str:
        return _prefix(lambda text: format_query(text, task, text_format))

    document = _prefix(lambda text: format_document(text, None, text_format))
    prompts = {"query": query(DEFAULT_QUERY_TASK), "document": document}
    prompts.update({task: query(task) for task in TASK_STRINGS})
    for task_type, (task, symmetric) in BY_TASK_TYPE.items():
        if symmetric:
            prompts[task_type] = query(task)
        else:
            prompts[f"{task_type}-query"] = query(task)
            prompts[f"{task_type}-document"] = document
    return prompts


def _prefix(render: Callable[[str], str]) -> str:
    """What ``render`` puts before its text: an error if the text does not come last."""
    prefix = render("")
    if render("x") != prefix + "x":
        raise ValueError(f"{render('{text}')!r} does not end with the text: not a prefix")
    return prefix


def _tokenizer_config(encoder: Exportable, tokenizer_file: Path) -> dict[str, Any]:
    """``PreTrainedTokenizerFast`` runs ``tokenizer.json`` as it is, normaliser included.

    ``BertTokenizerFast`` would rebuild the normaliser from its own ``do_lower_case`` default
    and lowercase a cased model.
    """
    tokenizer = encoder.tokenizer
    vocab = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": encoder.config.max_length,
        "pad_token": vocab.id_to_token(tokenizer.pad_id),
    }
    if tokenizer.unk_id is not None:
        config["unk_token"] = vocab.id_to_token(tokenizer.unk_id)
    if len(tokenizer.special_prefix) == 1:
        config["cls_token"] = vocab.id_to_token(tokenizer.special_prefix[0])
    if len(tokenizer.special_suffix) == 1:
        config["sep_token"] = vocab.id_to_token(tokenizer.special_suffix[0])
    return config


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
