"""autolog() with the real openai client talking HTTP to a chat-completions server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import openai
import pydantic
import pytest

import tracejudge
import tracejudge.openai
from tracejudge.entities import SpanStatusCode, TraceState
from tracejudge.scorers import Guidelines
from tracejudge.scorers.fields import llm_prompt_and_response, request_text, response_text
from tracejudge.testing import ChatServer, Reply
from tracejudge.testing.embeddings_api import DEFAULT_DIMENSIONS, vector_of

MESSAGES = [
    {"role": "system", "content": "You answer in one word."},
    {"role": "user", "content": "Capital of France?"},
]


@pytest.fixture
def server():
    with ChatServer(lambda req: Reply("Paris is the answer", usage=(21, 4))) as srv:
        yield srv


@pytest.fixture
def autologged(sqlite_tracking):
    tracejudge.openai.autolog()
    yield
    tracejudge.openai.autolog(disable=True)


def _trace():
    tracejudge.flush()
    return tracejudge.get_trace(tracejudge.get_last_active_trace_id())


def _chat_span(trace):
    return next(s for s in trace.data.spans if s.span_type == "CHAT_MODEL")


def test_sync_call_is_a_chat_span_under_the_current_span(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="test-key")

    @tracejudge.trace
    def app(question: str) -> str:
        reply = client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, temperature=0.2, seed=7
        )
        return reply.choices[0].message.content

    assert app("Capital of France?") == "Paris is the answer"
    trace = _trace()
    root, chat = trace.data.spans[0], _chat_span(trace)
    assert chat.parent_id == root.span_id and chat.name == "chat.completions.create"
    assert chat.inputs["messages"] == MESSAGES  # the system prompt is kept
    assert (
        chat.inputs["model"] == "gpt-test"
        and chat.inputs["temperature"] == 0.2
        and chat.inputs["seed"] == 7
    )
    assert chat.outputs["choices"][0]["message"]["content"] == "Paris is the answer"
    assert chat.attributes["tracejudge.chat.tokenUsage"] == {
        "input_tokens": 21,
        "output_tokens": 4,
        "total_tokens": 25,
    }
    assert chat.attributes["tracejudge.llm.model"] == "gpt-test"
    assert (
        trace.info.trace_metadata["tracejudge.trace.tokenUsage"]
        == '{"input_tokens": 21, "output_tokens": 4, "total_tokens": 25}'
    )
    assert server.requests[0]["messages"] == MESSAGES  # the call itself went through unchanged


def test_call_outside_a_trace_is_its_own_trace(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    client.chat.completions.create(model="m", messages=MESSAGES)
    trace = _trace()
    assert len(trace.data.spans) == 1 and trace.info.request_preview == "Capital of France?"


def test_streaming_is_aggregated(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with tracejudge.start_span("app"):
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        pieces = [
            c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
        ]
    assert "".join(pieces) == "Paris is the answer"
    chat = _chat_span(_trace())
    assert chat.outputs["choices"][0]["message"]["content"] == "Paris is the answer"
    assert chat.outputs["choices"][0]["finish_reason"] == "stop"
    assert chat.attributes["tracejudge.chat.tokenUsage"]["total_tokens"] == 25


def test_streaming_as_context_manager(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Paris is the answer"
    assert _chat_span(_trace()).outputs["choices"][0]["message"]["content"] == text


def test_breaking_out_of_a_stream_is_a_normal_end_that_closes_it(server, autologged):
    """Issue 9.10: a ``break`` marked the span ERROR and left the HTTP stream open."""
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    assert stream.response.is_closed
    chat = _chat_span(_trace())
    assert chat.status.status_code == SpanStatusCode.OK
    assert chat.attributes["stream_stopped_early"] is True
    assert chat.outputs["choices"][0]["message"]["content"] == "Paris"  # what had arrived

    aclient = openai.AsyncOpenAI(base_url=server.base_url, api_key="k")
    responses = []

    async def read_one() -> None:
        astream = await aclient.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        responses.append(astream.response)
        async for chunk in astream:
            if chunk.choices and chunk.choices[0].delta.content:
                break

    asyncio.run(read_one())  # run() finalises the abandoned async generator before returning
    assert responses[0].is_closed
    chat = _chat_span(_trace())
    assert chat.status.status_code == SpanStatusCode.OK
    assert chat.attributes["stream_stopped_early"] is True


def test_async_and_async_streaming(server, autologged):
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k")

    @tracejudge.trace
    async def app() -> str:
        first = await client.chat.completions.create(model="m", messages=MESSAGES)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return first.choices[0].message.content + " / " + streamed

    assert asyncio.run(app()) == "Paris is the answer / Paris is the answer"
    trace = _trace()
    chats = [s for s in trace.data.spans if s.span_type == "CHAT_MODEL"]
    assert len(chats) == 2 and all(s.parent_id == trace.data.spans[0].span_id for s in chats)
    assert {s.outputs["choices"][0]["message"]["content"] for s in chats} == {"Paris is the answer"}


def test_errors_are_recorded_and_reraised(server, autologged):
    server.script(
        Reply(
            status=400, body='{"error": {"message": "bad model", "type": "invalid_request_error"}}'
        )
    )
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    trace = _trace()
    chat = _chat_span(trace)
    assert chat.status.status_code == SpanStatusCode.ERROR and trace.info.state == TraceState.ERROR
    assert chat.events[0].attributes["exception.type"] == "BadRequestError"


def test_disable_removes_the_patch(server, sqlite_tracking):
    tracejudge.openai.autolog()
    tracejudge.openai.autolog()  # idempotent
    assert tracejudge.openai.is_enabled()
    tracejudge.openai.autolog(disable=True)
    assert not tracejudge.openai.is_enabled()
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    before = tracejudge.get_last_active_trace_id()
    client.chat.completions.create(model="m", messages=MESSAGES)
    tracejudge.flush()
    assert tracejudge.get_last_active_trace_id() == before


# ---------------------------------------------------------------- the Responses API


def test_a_responses_call_is_a_chat_span_with_its_instructions_and_usage(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")

    @tracejudge.trace
    def app(question: str) -> str:
        reply = client.responses.create(
            model="gpt-test", instructions="You answer in one word.", input=question
        )
        return reply.output_text

    assert app("Capital of France?") == "Paris is the answer"
    trace = _trace()
    span = _chat_span(trace)
    assert span.name == "responses.create" and span.parent_id == trace.data.spans[0].span_id
    assert span.inputs == {
        "model": "gpt-test",
        "instructions": "You answer in one word.",
        "input": "Capital of France?",
    }
    assert span.outputs["output"][0]["content"][0]["text"] == "Paris is the answer"
    assert span.attributes["tracejudge.chat.tokenUsage"] == {
        "input_tokens": 21,
        "output_tokens": 4,
        "total_tokens": 25,
    }
    assert server.requests[0]["instructions"] == "You answer in one word."


def test_a_responses_call_alone_is_previewed_as_its_question_and_answer(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    client.responses.create(model="m", input=[{"role": "user", "content": "Capital of France?"}])
    trace = _trace()
    assert trace.info.request_preview == "Capital of France?"
    assert trace.info.response_preview == "Paris is the answer"


def test_a_streamed_response_is_recorded_as_the_response_it_ends_with(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with tracejudge.start_span("app"):
        events = list(client.responses.create(model="m", input="Capital?", stream=True))
    assert [e.type for e in events][-1] == "response.completed"  # passed through unchanged
    span = _chat_span(_trace())
    assert span.outputs["status"] == "completed"
    assert span.outputs["output"][0]["content"][0]["text"] == "Paris is the answer"
    assert span.attributes["tracejudge.chat.tokenUsage"]["total_tokens"] == 25


def test_the_stream_helper_works_on_the_traced_stream(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with client.responses.stream(model="m", input="Capital?") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        assert stream.get_final_response().output_text == "".join(texts) == "Paris is the answer"
    span = _chat_span(_trace())
    assert span.outputs["output"][0]["content"][0]["text"] == "Paris is the answer"


def test_a_response_stream_left_early_keeps_the_text_that_arrived(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with tracejudge.start_span("app"):
        for event in client.responses.create(model="m", input="Capital?", stream=True):
            if getattr(event, "delta", None) == " is":
                break
    span = _chat_span(_trace())
    assert span.attributes["stream_stopped_early"] is True
    assert span.outputs["output"][0]["content"][0]["text"] == "Paris is"


def test_async_responses_and_their_streams(server, autologged):
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k")

    @tracejudge.trace
    async def app() -> str:
        first = await client.responses.create(model="m", input="Capital?")
        stream = await client.responses.create(model="m", input="Capital?", stream=True)
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        return first.output_text + " / " + "".join(deltas)

    assert asyncio.run(app()) == "Paris is the answer / Paris is the answer"
    spans = [s for s in _trace().data.spans if s.name == "responses.create"]
    assert len(spans) == 2
    assert {s.outputs["output"][0]["content"][0]["text"] for s in spans} == {"Paris is the answer"}


def test_judges_read_a_responses_trace_as_text(server, autologged):
    """The judge is asked about the question and the answer, not about JSON payloads; the
    trust score sees the app's instructions as its system prompt."""
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    client.responses.create(model="m", instructions="Answer briefly.", input="Capital of France?")
    trace = _trace()
    assert request_text(trace.data.spans[0].inputs) == "Capital of France?"
    assert response_text(trace.data.spans[0].outputs) == "Paris is the answer"
    messages, answer = llm_prompt_and_response(trace)
    assert messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert answer == "Paris is the answer"
    with ChatServer(lambda request: Reply('{"rationale": "ok", "verdict": "yes"}')) as judge:
        polite = Guidelines(
            name="polite",
            guidelines="Be polite.",
            model=f"openai-compatible:/j?base_url={judge.base_url}",
        )
        result = tracejudge.evaluate([trace], scorers=[polite])
        asked = judge.requests[0]["messages"][-1]["content"]
    assert result.result_df["polite/value"][0] == "yes"
    assert "Capital of France?" in asked and "Paris is the answer" in asked
    assert '"output_text"' not in asked


# ---------------------------------------------------------------- structured outputs, embeddings


class _Capital(pydantic.BaseModel):
    city: str
    country: str


_CAPITAL_JSON = '{"city": "Paris", "country": "France"}'


@pytest.mark.filterwarnings("error::UserWarning")  # pydantic's warning on dumping it, in the app
def test_chat_completions_parse_is_traced_with_the_parsed_answer(autologged):
    with ChatServer(lambda request: Reply(_CAPITAL_JSON, usage=(30, 9))) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")

        @tracejudge.trace
        def app() -> _Capital:
            reply = client.chat.completions.parse(
                model="m", messages=MESSAGES, response_format=_Capital
            )
            return reply.choices[0].message.parsed

        assert app() == _Capital(city="Paris", country="France")
        sent = server.requests[0]["response_format"]
    trace = _trace()
    span = _chat_span(trace)
    assert span.name == "chat.completions.parse" and span.parent_id == trace.data.spans[0].span_id
    assert span.inputs["messages"] == MESSAGES
    assert sent["type"] == "json_schema"  # the call went out as the library builds it
    message = span.outputs["choices"][0]["message"]
    assert message["content"] == _CAPITAL_JSON
    assert message["parsed"] == {"city": "Paris", "country": "France"}
    assert span.attributes["tracejudge.chat.tokenUsage"]["total_tokens"] == 39
    assert response_text(span.outputs) == _CAPITAL_JSON


def test_responses_parse_is_traced_once_and_async_too(autologged):
    with ChatServer(lambda request: Reply(_CAPITAL_JSON)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        aclient = openai.AsyncOpenAI(base_url=server.base_url, api_key="k")

        @tracejudge.trace
        def app() -> tuple[_Capital, _Capital]:
            first = client.responses.parse(model="m", input="Capital?", text_format=_Capital)

            async def second() -> _Capital:
                reply = await aclient.responses.parse(
                    model="m", input="Capital?", text_format=_Capital
                )
                return reply.output_parsed

            return first.output_parsed, asyncio.run(second())

        assert app() == (_Capital(city="Paris", country="France"),) * 2
    spans = [s for s in _trace().data.spans if s.span_type == "CHAT_MODEL"]
    assert [s.name for s in spans] == ["responses.parse"] * 2  # not also a responses.create
    for span in spans:
        assert span.inputs["input"] == "Capital?"
        assert span.outputs["output"][0]["content"][0]["text"] == _CAPITAL_JSON


def test_embeddings_are_an_embedding_span_with_dimensions_not_vectors(server, autologged):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")

    @tracejudge.trace(span_type="RETRIEVER")
    def retrieve(question: str) -> list[float]:
        # the library asks for base64 and decodes it: the app gets its floats unchanged
        return client.embeddings.create(model="emb", input=question).data[0].embedding

    vector = retrieve("refund policy")
    assert vector == pytest.approx(vector_of("refund policy", DEFAULT_DIMENSIONS), abs=1e-6)
    span = next(s for s in _trace().data.spans if s.span_type == "EMBEDDING")
    assert span.name == "embeddings.create"
    assert span.inputs == {"model": "emb", "input": "refund policy"}
    assert span.outputs["data"] == [
        {"object": "embedding", "index": 0, "dimensions": DEFAULT_DIMENSIONS}
    ]
    assert span.attributes["tracejudge.chat.tokenUsage"] == {
        "input_tokens": 2,
        "output_tokens": 0,
        "total_tokens": 2,
    }


def test_async_embeddings_of_a_batch(server, autologged):
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k")

    async def embed() -> int:
        reply = await client.embeddings.create(
            model="emb", input=["one", "two", "three"], dimensions=4, encoding_format="float"
        )
        return len(reply.data)

    assert asyncio.run(embed()) == 3
    span = _trace().data.spans[0]
    assert span.span_type == "EMBEDDING" and span.inputs["input"] == ["one", "two", "three"]
    assert [d["dimensions"] for d in span.outputs["data"]] == [4, 4, 4]


def test_disable_restores_every_patched_method(sqlite_tracking):
    from openai.resources.chat.completions import Completions
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings
    from openai.resources.responses import Responses

    methods = [
        (Completions, "create"),
        (Completions, "parse"),
        (Responses, "parse"),
        (Embeddings, "create"),
        (AsyncEmbeddings, "create"),
    ]
    before = [getattr(cls, name) for cls, name in methods]
    tracejudge.openai.autolog()
    assert all(getattr(getattr(c, n), "__tracejudge_patched__", False) for c, n in methods)
    tracejudge.openai.autolog(disable=True)
    assert [getattr(cls, name) for cls, name in methods] == before
