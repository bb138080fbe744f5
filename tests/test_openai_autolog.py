"""autolog() with the real openai client talking HTTP to a chat-completions server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import openai
import pytest

import tracejudge
import tracejudge.openai
from tracejudge.entities import SpanStatusCode, TraceState
from tracejudge.testing import ChatServer, Reply

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
