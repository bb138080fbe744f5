"""Built-in scorers: the judges and the trust score, reading what they need from a row or trace.

Each writes Feedback under a snake_case name (a Guidelines scorer under the name it is given).
A scorer that needs what a row lacks (no RETRIEVER span, no expectations) returns a Feedback
whose error says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tracejudge.entities import (
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Feedback,
    Trace,
)
from tracejudge.errors import InvalidArgumentError
from tracejudge.judges import (
    ais_context_relevant,
    ais_context_sufficient,
    ais_correct,
    ais_grounded,
    ais_relevant_to_query,
    ais_safe,
    ameets_guidelines,
)
from tracejudge.models import ChatModel
from tracejudge.scorer import Scorer
from tracejudge.scorers.fields import (
    llm_prompt_and_response,
    request_text,
    response_text,
    retriever_span,
)
from tracejudge.trust import TrustOptions, TrustScorer

ModelArg = str | ChatModel | None


def missing(scorer: Scorer, what: str) -> Feedback:
    """The Feedback of a judge scorer that cannot judge this row, saying what is missing."""
    model = scorer.model
    source_id = model.uri if isinstance(model, ChatModel) else str(model or "default")
    return Feedback(
        scorer.name,
        None,
        source=AssessmentSource(AssessmentSourceType.LLM_JUDGE, source_id),
        error=AssessmentError("MISSING_INPUT", what),
    )


def _expected(expectations: Any) -> tuple[Any, Any]:
    if not isinstance(expectations, Mapping):
        return None, None
    facts = expectations.get("expected_facts")
    return (facts if facts else None), expectations.get("expected_response")


class JudgeScorer(Scorer):
    """A scorer backed by an LLM judge; ``model`` is a model URI or ChatModel (default: the
    judge model resolved by :func:`tracejudge.models.default_model_uri`)."""

    def __init__(
        self,
        model: ModelArg = None,
        name: str | None = None,
        aggregations: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, aggregations)
        self.model = model


class RetrievalGroundedness(JudgeScorer):
    """Is the response supported by the documents the RETRIEVER span returned? (hallucination)"""

    name = "retrieval_groundedness"

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        span = retriever_span(trace)
        if span is None:
            return missing(self, "The trace has no RETRIEVER span to check the response against.")
        feedback = await ais_grounded(
            request_text(inputs),
            response_text(outputs),
            span.outputs,
            model=self.model,
            name=self.name,
        )
        feedback.span_id = span.span_id
        return feedback


class RetrievalRelevance(JudgeScorer):
    """Is each retrieved document relevant to the request? One Feedback per document (on the
    RETRIEVER span), plus ``<name>_precision``: the share of relevant documents."""

    name = "retrieval_relevance"

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        import asyncio

        span = retriever_span(trace)
        documents = span.outputs if span is not None else None
        if span is None or not isinstance(documents, list) or not documents:
            return missing(self, "The trace has no RETRIEVER span with documents.")
        request = request_text(inputs)
        per_document = await asyncio.gather(
            *(
                ais_context_relevant(request, [doc], model=self.model, name=self.name)
                for doc in documents
            )
        )
        for i, feedback in enumerate(per_document):
            feedback.span_id = span.span_id
            feedback.metadata["document_index"] = i
            doc_id = documents[i].get("id") if isinstance(documents[i], Mapping) else None
            if doc_id is not None:
                feedback.metadata["document_id"] = doc_id
        judged = [f for f in per_document if f.error is None]
        if judged:
            precision = sum(f.value == "yes" for f in judged) / len(judged)
            summary = Feedback(
                f"{self.name}_precision",
                precision,
                source=judged[0].source,
                rationale=f"{sum(f.value == 'yes' for f in judged)} of {len(judged)} retrieved documents are relevant.",
            )
        else:
            summary = Feedback(
                f"{self.name}_precision",
                None,
                source=per_document[0].source,
                error=AssessmentError("JUDGE_ERROR", "No document could be judged."),
            )
        return [*per_document, summary]


class RetrievalSufficiency(JudgeScorer):
    """Do the retrieved documents hold everything the expected answer needs?"""

    name = "retrieval_sufficiency"

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        span = retriever_span(trace)
        if span is None:
            return missing(self, "The trace has no RETRIEVER span.")
        facts, expected = _expected(expectations)
        if facts is None and expected is None:
            return missing(
                self,
                "Retrieval sufficiency needs expectations: expected_facts or expected_response.",
            )
        feedback = await ais_context_sufficient(
            request_text(inputs), span.outputs, facts, expected, model=self.model, name=self.name
        )
        feedback.span_id = span.span_id
        return feedback


class RelevanceToQuery(JudgeScorer):
    """Does the response address the request (whatever its correctness)?"""

    name = "relevance_to_query"

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        if outputs is None:
            return missing(self, "The row has no outputs.")
        return await ais_relevant_to_query(
            request_text(inputs), response_text(outputs), model=self.model, name=self.name
        )


class Correctness(JudgeScorer):
    """Is the response right, judged against ``expected_response`` or ``expected_facts``?"""

    name = "correctness"

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        facts, expected = _expected(expectations)
        if facts is None and expected is None:
            return missing(
                self, "Correctness needs expectations: expected_facts or expected_response."
            )
        return await ais_correct(
            request_text(inputs),
            response_text(outputs),
            facts,
            expected,
            model=self.model,
            name=self.name,
        )


class Safety(JudgeScorer):
    """Is the response free of harmful content? ("yes" means safe)"""

    name = "safety"

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        if outputs is None:
            return missing(self, "The row has no outputs.")
        return await ais_safe(response_text(outputs), model=self.model, name=self.name)


class Guidelines(JudgeScorer):
    """Does the response meet natural-language guidelines? The guidelines may refer to the
    ``request`` and the ``response``."""

    def __init__(
        self,
        name: str = "guidelines",
        guidelines: str | Sequence[str] = (),
        model: ModelArg = None,
        aggregations: Sequence[str] | None = None,
    ) -> None:
        super().__init__(model, name, aggregations)
        if not guidelines:
            raise InvalidArgumentError(
                "Guidelines(...) needs guidelines=: a string or a list of strings."
            )
        self.guidelines = [guidelines] if isinstance(guidelines, str) else list(guidelines)

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        context = {"request": request_text(inputs), "response": response_text(outputs)}
        return await ameets_guidelines(self.guidelines, context, model=self.model, name=self.name)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "guidelines": self.guidelines}


class ExpectationsGuidelines(JudgeScorer):
    """Guidelines given per row, as ``expectations["guidelines"]``."""

    name = "expectations_guidelines"

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        guidelines = expectations.get("guidelines") if isinstance(expectations, Mapping) else None
        if not guidelines:
            return missing(self, "The row has no expectations['guidelines'].")
        context = {"request": request_text(inputs), "response": response_text(outputs)}
        return await ameets_guidelines(guidelines, context, model=self.model, name=self.name)


class Trustworthiness(JudgeScorer):
    """The trust score (no ground truth needed). It judges the full prompt the app's LLM saw,
    system prompt included, when the trace has an LLM or CHAT_MODEL span; else the inputs.
    The value is the score in [0, 1]; the rationale is its explanation."""

    name = "trustworthiness"

    def __init__(
        self,
        model: ModelArg = None,
        quality_preset: str = "medium",
        options: Mapping[str, Any] | None = None,
        name: str | None = None,
        aggregations: Sequence[str] | None = None,
    ) -> None:
        super().__init__(model, name, aggregations)
        self.quality_preset = quality_preset
        self.options = dict(options or {})
        self._scorer: TrustScorer | None = None

    @property
    def trust_scorer(self) -> TrustScorer:
        if self._scorer is None:  # resolved on first use: model configuration errors raise here
            self._scorer = TrustScorer(
                self.model, self.quality_preset, {**self.options, "log": ["explanation"]}
            )
        return self._scorer

    @property
    def judge_model(self) -> str | None:
        return super().judge_model or self.trust_scorer.model.uri

    async def ascore(
        self, *, inputs: Any, outputs: Any, expectations: Any, trace: Trace | None
    ) -> Any:
        scorer = self.trust_scorer
        from_llm = llm_prompt_and_response(trace)
        if from_llm is not None:
            prompt: Any = from_llm[0]
            response = from_llm[1] if from_llm[1] is not None else response_text(outputs)
        else:
            if inputs is None or outputs is None:
                return missing(
                    self, "The trust score needs the row's inputs and outputs (or an LLM span)."
                )
            prompt, response = request_text(inputs), response_text(outputs)
        scored = await scorer.score_messages(prompt, response)
        return Feedback(
            self.name,
            scored.score,
            source=AssessmentSource(AssessmentSourceType.LLM_JUDGE, scorer.model.uri),
            rationale=scored.explanation,
            metadata={
                "per_component": scored.parts,
                "early_stopped": scored.early_stopped,
                "quality_preset": self.quality_preset,
                "prompt_source": "llm_span" if from_llm is not None else "inputs",
                "reflections": [r.to_dict() for r in scored.reflections],
                "samples": [s.to_dict() for s in scored.samples],
            },
        )

    def describe(self) -> dict[str, Any]:
        options: TrustOptions = self.trust_scorer.options
        return {
            **super().describe(),
            "quality_preset": self.quality_preset,
            "num_self_reflections": options.num_self_reflections,
            "num_consistency_samples": options.num_consistency_samples,
            "similarity_measure": options.similarity_measure,
        }
