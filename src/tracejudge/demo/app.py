"""The demo's application: a café assistant with a retriever and one LLM call, fully traced.

It is the kind of app tracejudge is for: it answers from retrieved documents when it can and
from the model's own knowledge when it cannot, and some of its answers are wrong.
"""

from __future__ import annotations

import re
from typing import Any

import tracejudge
from tracejudge.entities import Document, SpanType
from tracejudge.models import ChatModel
from tracejudge.tracing import constants as c

KNOWLEDGE_BASE = [
    Document(
        "Juniper & Oak is open Monday to Friday 7:00-18:00, Saturday 8:00-17:00 and Sunday 9:00-14:00.",
        {"source": "hours.md"},
        id="hours",
    ),
    Document(
        "We serve whole, oat and almond milk. Oat and almond milk cost 0.40 EUR extra per drink.",
        {"source": "menu.md"},
        id="milk",
    ),
    Document(
        "Juniper & Oak was founded in 2016 by Mara Lindqvist, a former pastry chef, in a converted bakery.",
        {"source": "about.md"},
        id="founding",
    ),
    Document(
        "Well-behaved dogs on a leash are welcome on the terrace but not inside the café.",
        {"source": "policies.md"},
        id="dogs",
    ),
    Document(
        "The upstairs room seats 24 and can be booked for private events; the minimum spend is 300 EUR.",
        {"source": "events.md"},
        id="events",
    ),
    Document(
        "Our loyalty card gives every 10th coffee free. Cards are stamped at the counter.",
        {"source": "loyalty.md"},
        id="loyalty",
    ),
]

QUESTIONS = [
    "What are the café's opening hours on Sunday?",
    "Does the café have oat milk, and does it cost extra?",
    "Can I bring my dog inside the café?",
    "Can I book the upstairs room for a private event, and what is the minimum spend?",
    "Who founded Juniper & Oak, and in which year?",
    "What is the capital of Australia?",
    "How many seconds are there in 100 years?",
    "Which is heavier, a kilogram of feathers or a kilogram of steel?",
]
ANSWERED_BY_CONTEXT = 5
"""The first questions are answered by a retrieved document: the app's answers to them are the
grounded ones the planted bad answers must rank below."""

PLANTED: list[tuple[str, str, str]] = [
    (
        "What is the wifi password?",
        "The wifi password is JuniperOak2016; it is printed at the bottom of every receipt.",
        "off-context",
    ),
    (
        "How many calories are in a large oat latte?",
        "A large oat latte has 95 calories, and the almond milk version has 60.",
        "invented numbers",
    ),
    (
        "Three friends split a café bill of 47.50 EUR and add a 20% tip. How much does each pay?",
        "With the 20% tip the bill is 52.50 EUR, so each friend pays 17.50 EUR.",
        "wrong arithmetic",
    ),
    (
        "Who founded Juniper & Oak, and in which year?",
        "Juniper & Oak was founded in 2009 by Erik Lindqvist, a former barista.",
        "contradicts the context",
    ),
]
"""Bad answers recorded as if a faulty release of the app had served them, each tagged
``demo.planted`` with its kind, so the demo can show where the scores rank them."""

SYSTEM_PROMPT = (
    "You are the assistant of Juniper & Oak, a café. Answer in one or two sentences. Use the "
    "context when it answers the question; otherwise answer from general knowledge."
)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {
    "the",
    "a",
    "an",
    "and",
    "or",
    "of",
    "in",
    "on",
    "is",
    "are",
    "what",
    "how",
    "can",
    "i",
    "my",
    "do",
    "does",
    "to",
    "for",
    "it",
    "which",
    "there",
    "at",
    "be",
    "cafe",
    "café",
}


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


@tracejudge.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str, k: int = 2) -> list[Document]:
    """Keyword overlap, good enough for six documents."""
    wanted = _words(question)
    scored = sorted(
        KNOWLEDGE_BASE, key=lambda d: len(wanted & _words(d.page_content)), reverse=True
    )
    return [d for d in scored[:k] if wanted & _words(d.page_content)] or scored[:1]


def _chat(model: ChatModel, messages: list[dict[str, str]]) -> str:
    with tracejudge.start_span("chat.completions.create", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs(
            {"model": model.uri, "messages": messages, "temperature": 0.0, "max_tokens": 120}
        )
        result = model.chat(messages, temperature=0.0, max_tokens=120)
        span.set_outputs(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": result.text}}]}
        )
        span.set_attribute(c.LLM_MODEL, model.uri)
        span.set_attribute(
            c.CHAT_TOKEN_USAGE,
            {
                "input_tokens": result.usage.input_tokens,
                "output_tokens": result.usage.output_tokens,
                "total_tokens": result.usage.total_tokens,
            },
        )
        return result.text.strip()


def make_app(model: ChatModel, faulty: dict[str, tuple[str, str]] | None = None) -> Any:
    """The café assistant. ``faulty`` maps questions to (answer, kind): that release serves
    those known-bad answers instead of calling the model, and tags the trace with the kind."""

    @tracejudge.trace(name="cafe_assistant", span_type=SpanType.CHAIN)
    def answer(question: str) -> str:
        documents = retrieve(question)
        if faulty and question in faulty:
            text, kind = faulty[question]
            tracejudge.update_current_trace(tags={"demo.planted": kind})
            return text
        context = "\n".join(f"- {d.page_content}" for d in documents)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
        ]
        return _chat(model, messages)

    return answer
