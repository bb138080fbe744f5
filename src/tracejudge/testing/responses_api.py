"""OpenAI's Responses API (``POST /v1/responses``) as the scripted chat server speaks it: a
whole response, or its stream of server-sent events, built from one scripted reply."""

from __future__ import annotations

import time
import uuid
from typing import Any


def response_body(request: dict[str, Any], content: str, usage: tuple[int, int]) -> dict[str, Any]:
    """A completed ``Response`` whose one output message says ``content``."""
    prompt, completion = usage
    return {
        "id": f"resp_{uuid.uuid4().hex[:12]}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": request.get("model", "test-model"),
        "instructions": request.get("instructions"),
        "output": [
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex[:12]}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": content, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
    }


def stream_events(
    request: dict[str, Any], content: str, usage: tuple[int, int]
) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs in the order OpenAI sends them: created, the message item and
    its text part added, one text delta per word, each of them done, completed."""
    final = response_body(request, content, usage)
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    item = final["output"][0]
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    words = content.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    part = {"type": "output_text", "text": content, "annotations": []}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        (
            "response.output_item.added",
            {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
        ),
        ("response.content_part.added", {**where, "part": {**part, "text": ""}}),
    ]
    events += [("response.output_text.delta", {**where, "delta": piece}) for piece in pieces]
    events += [
        ("response.output_text.done", {**where, "text": content}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": final}),
    ]
    return [
        (name, {"type": name, "sequence_number": i, **data})
        for i, (name, data) in enumerate(events)
    ]
