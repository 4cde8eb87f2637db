"""``Encoder.encode``'s progress bar moves with the computation and shows a rate and an ETA."""

from __future__ import annotations

import re

import numpy as np

from gecko_jax import encoder as encoder_module


class _Recorder:
    """Stands in for the bar: notes how many calls were dispatched at each update."""

    def __init__(self, dispatched: list[int]):
        self.dispatched = dispatched
        self.updates: list[tuple[int, int]] = []

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        self.updates.append((n, len(self.dispatched)))


def test_bar_advances_while_calls_are_still_being_dispatched(
    minilm_encoder, real_sentences, monkeypatch
):
    texts = real_sentences[:60]
    dispatched: list[int] = []
    recorder = _Recorder(dispatched)
    dispatch = minilm_encoder._dispatch

    def counting(call):
        dispatched.append(len(call.slots))
        return dispatch(call)

    monkeypatch.setattr(minilm_encoder, "_dispatch", counting)
    monkeypatch.setattr(encoder_module, "_progress", lambda total, show: recorder)
    embeddings = minilm_encoder.encode(texts, batch_size=1)

    calls = len(dispatched)
    assert calls >= 8
    assert [n for n, _ in recorder.updates] == dispatched, "one update per call, in order"
    # The k-th update comes at most _IN_FLIGHT dispatches after its own call's.
    for k, (_, seen) in enumerate(recorder.updates, start=1):
        assert seen <= min(k + encoder_module._IN_FLIGHT, calls)
    assert recorder.updates[0][1] < calls, "the bar moved before the last call was sent"
    np.testing.assert_allclose(embeddings, minilm_encoder.encode(texts), atol=1e-5)


def test_bar_shows_count_rate_and_time_left(minilm_encoder, real_sentences, capsys):
    texts = real_sentences[:40]
    minilm_encoder.encode(texts, batch_size=1, show_progress=True)
    err = capsys.readouterr().err
    assert re.search(rf"encode: 100%.*{len(texts)}/{len(texts)} \[[\d:]+<[\d:]+, .*text/s\]", err)
