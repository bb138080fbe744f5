"""A small RAG service that closes the production feedback loop with tracejudge.

Every answer is traced (retrieval and generation as spans) and returns its ``trace_id``; the
client shows thumbs up/down, and ``POST /feedback`` records the end user's verdict on that
trace, where it sits next to the judges' verdicts:

    tracejudge server --port 5000 &
    TRACEJUDGE_TRACKING_URI=http://127.0.0.1:5000 uvicorn examples.feedback_app.app:app --port 8000
    curl -s localhost:8000/ask -H 'content-type: application/json' -d '{"question": "How tall is the Eiffel Tower?"}'
    curl -s localhost:8000/feedback -H 'content-type: application/json' \\
         -d '{"trace_id": "tr-…", "user_id": "u-42", "thumbs_up": false, "comment": "wrong height"}'

The "model" here answers from the best-matching document so the example runs offline; put a
real client call in ``generate`` (with ``tracejudge.openai.autolog()`` it is traced too).
"""

from __future__ import annotations

import re

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

import tracejudge
from tracejudge.entities import AssessmentSource, AssessmentSourceType, Document, SpanType
from tracejudge.errors import InvalidArgumentError, TraceNotFoundError

DOCUMENTS = [
    Document("The Eiffel Tower is 330 metres tall.", {"source": "towers.md"}, id="d1"),
    Document(
        "The Louvre is the most visited museum in the world.", {"source": "museums.md"}, id="d2"
    ),
    Document("Paris has about 2.1 million inhabitants.", {"source": "cities.md"}, id="d3"),
]

app = FastAPI(title="tracejudge feedback-loop example")
tracejudge.set_experiment("feedback-app")


class Question(BaseModel):
    question: str


class Answer(BaseModel):
    answer: str
    trace_id: str


class UserFeedback(BaseModel):
    trace_id: str
    user_id: str
    thumbs_up: bool
    comment: str | None = None


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@tracejudge.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str) -> list[Document]:
    wanted = _words(question)
    return sorted(DOCUMENTS, key=lambda d: -len(wanted & _words(d.page_content)))[:2]


@tracejudge.trace(span_type=SpanType.CHAT_MODEL)
def generate(question: str, context: list[Document]) -> str:
    return context[0].page_content if context else "I don't know."


@tracejudge.trace(name="answer")
def answer(question: str) -> Answer:
    text = generate(question, retrieve(question))
    # this request's own trace (requests run in parallel threads: the process's "last" trace
    # may be another request's)
    trace_id = tracejudge.get_active_trace_id()
    assert trace_id is not None
    return Answer(answer=text, trace_id=trace_id)


@app.post("/ask")
def ask(body: Question) -> Answer:
    return answer(body.question)


@app.post("/feedback")
def feedback(body: UserFeedback) -> dict[str, str]:
    try:
        logged = tracejudge.log_feedback(
            body.trace_id,
            name="user_satisfaction",
            value=body.thumbs_up,
            rationale=body.comment,
            source=AssessmentSource(AssessmentSourceType.HUMAN, body.user_id),
        )
    except TraceNotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except InvalidArgumentError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return {"assessment_id": str(logged.assessment_id)}
