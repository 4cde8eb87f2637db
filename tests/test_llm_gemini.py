"""The Gemini backend's requests and response handling, with a fake ``genai.Client``.

No network: the fake records each ``generate_content`` call and answers like the SDK's response
objects (attributes, not dicts).
"""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest

from gecko_jax.llm import GeminiLLM, LLMError


class FakeModels:
    def __init__(self, responses):
        self.responses = list(responses)
        self.calls: list[dict] = []

    def generate_content(self, **request):
        self.calls.append(request)
        return self.responses.pop(0)


def fake_client(*responses):
    return SimpleNamespace(models=FakeModels(responses))


def text_response(text: str, reason: str, tokens: int):
    candidate = SimpleNamespace(finish_reason=f"FinishReason.{reason}")
    return SimpleNamespace(
        text=text,
        candidates=[candidate],
        usage_metadata=SimpleNamespace(candidates_token_count=tokens),
    )


def logprob_response(pairs):
    top = SimpleNamespace(
        candidates=[SimpleNamespace(token=t, log_probability=lp) for t, lp in pairs]
    )
    result = SimpleNamespace(top_candidates=[top])
    return SimpleNamespace(text="", candidates=[SimpleNamespace(logprobs_result=result)])


def test_generate_builds_requests_and_reads_responses():
    client = fake_client(text_response("a query", "STOP", 3), text_response("cut", "MAX_TOKENS", 4))
    llm = GeminiLLM("gemini-test", client=client)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Query?"},
    ]
    results = llm.generate([messages, "raw"], max_tokens=4, temperature=0.5, stop=["\n"], seed=7)
    assert [(r.text, r.finish_reason, r.num_tokens) for r in results] == [
        ("a query", "stop", 3),
        ("cut", "length", 4),
    ]
    chat, raw = client.models.calls
    assert chat["model"] == "gemini-test"
    assert [c["role"] for c in chat["contents"]] == ["user", "model", "user"]
    assert chat["contents"][2]["parts"] == [{"text": "Query?"}]
    assert chat["config"] == {
        "max_output_tokens": 4,
        "temperature": 0.5,
        "seed": 7,
        "stop_sequences": ["\n"],
        "system_instruction": "Be brief.",
    }
    assert raw["contents"] == [{"role": "user", "parts": [{"text": "raw"}]}]
    assert "system_instruction" not in raw["config"]


def test_score_reads_label_logprobs():
    yes = [("Yes", math.log(0.5)), (" Yes", math.log(0.2)), ("No", math.log(0.1))]
    client = fake_client(logprob_response(yes), logprob_response(yes))
    llm = GeminiLLM("gemini-test", client=client)
    yes_score, maybe_score = llm.score(["Relevant?", "Relevant?"], [" Yes", "Maybe"])
    assert yes_score.total == pytest.approx(math.log(0.7))
    assert maybe_score.total == -math.inf
    config = client.models.calls[0]["config"]
    assert config["response_logprobs"] is True
    assert config["max_output_tokens"] == 1


def test_score_refuses_free_text_and_missing_logprobs():
    llm = GeminiLLM("gemini-test", client=fake_client())
    with pytest.raises(NotImplementedError, match="single-token relevance labels"):
        llm.score(["passage"], [" how big is a whale"])
    no_logprobs = SimpleNamespace(candidates=[SimpleNamespace(logprobs_result=None)])
    llm = GeminiLLM("gemini-test", client=fake_client(no_logprobs))
    with pytest.raises(LLMError, match="no logprobs"):
        llm.score(["passage"], ["Yes"])


def test_missing_sdk_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.genai", None)
    with pytest.raises(ImportError, match=r"gecko_jax\[gemini\]"):
        GeminiLLM("gemini-test")


class SdkError(Exception):
    """As ``google.genai.errors.APIError``: an HTTP status in ``code``."""

    def __init__(self, code: int):
        super().__init__(f"{code} from the service")
        self.code = code


class FailingModels(FakeModels):
    """Raises the queued exceptions first, then answers."""

    def __init__(self, errors, responses):
        super().__init__(responses)
        self.errors = list(errors)

    def generate_content(self, **request):
        self.calls.append(request)
        if self.errors:
            raise self.errors.pop(0)
        return self.responses.pop(0)


def failing_llm(errors, *responses, **settings):
    client = SimpleNamespace(models=FailingModels(errors, responses))
    return GeminiLLM("gemini-test", client=client, backoff=0.0, **settings), client.models


def test_transient_errors_are_retried():
    llm, models = failing_llm(
        [SdkError(503), ConnectionError("reset")], text_response("q", "STOP", 1)
    )
    (result,) = llm.generate(["p"], max_tokens=4)
    assert (result.text, result.finish_reason) == ("q", "stop")
    assert len(models.calls) == 3
    assert (llm.stats.requests, llm.stats.retries, llm.stats.failures) == (3, 2, 0)


def test_a_rejected_or_exhausted_item_fails_alone_and_a_bad_key_stops_the_run():
    llm, models = failing_llm([SdkError(400)], text_response("q", "STOP", 1))
    rejected, answered = llm.generate(["too long", "fine"], max_tokens=4)
    assert rejected.finish_reason == "error" and answered.text == "q"
    assert len(models.calls) == 2 and llm.stats.failures == 1  # a 400 is not retried
    llm, _ = failing_llm([SdkError(500)] * 3, max_retries=2)
    (score,) = llm.score(["Is it relevant?"], ["Yes"])
    assert math.isnan(score.total) and llm.stats.failures == 1
    llm, _ = failing_llm([SdkError(401)])
    with pytest.raises(LLMError, match="gemini-test: HTTP 401"):
        llm.generate(["p"], max_tokens=4)


def test_past_max_failed_wait_nothing_more_is_sent():
    llm, models = failing_llm([ConnectionError("down")] * 9, max_failed_wait=0.0)
    results = llm.generate(["a", "b", "c"], max_tokens=4)
    assert [r.finish_reason for r in results] == ["error"] * 3
    assert len(models.calls) == 1 and llm.stats.failures == 3
