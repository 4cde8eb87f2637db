"""The settings of a FRet run as a whole (``gecko.fret_run``): which LLM and encoder, how many
passages and how long, and how many LLM failures a stage may have. Both runners and the demo
read them from here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gecko_jax.core.config_types import check_field_types
from gecko_jax.core.stages import MAX_FAILED_SHARE


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Run-level settings (``None`` LLM: the offline SmolLM2; ``None`` encoder: MiniLM;
    ``llm_kwargs``: the LLM backend's constructor arguments; ``max_failed_share``: the share
    of a stage's LLM calls that may fail)."""

    llm: str | None = None
    encoder: str | None = None
    max_passages: int | None = None
    max_chars: int = 2000
    llm_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_failed_share: float = MAX_FAILED_SHARE

    def __post_init__(self) -> None:
        check_field_types(self)
