"""Running one judgement: prompt, call, parse, one repair attempt, and a Feedback either way.

A judge never raises for what goes wrong during a judgement: a failed call or an unreadable
reply becomes a Feedback whose ``error`` says so, with the raw reply kept in its metadata.
Only configuration mistakes (an unknown model URI, no model at all) raise, before any call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tracejudge.entities import AssessmentError, AssessmentSource, AssessmentSourceType, Feedback
from tracejudge.errors import MODEL_CONFIGURATION_ERRORS, ModelError
from tracejudge.judges.claims import ClaimSupport, split_claims
from tracejudge.judges.formatting import JUDGE_SYSTEM, delimit, fit_block, strip_block_markers
from tracejudge.judges.injection_guard import InjectionScan, scan_blocks
from tracejudge.judges.likelihood import ContextSupport, context_support
from tracejudge.judges.parsing import parse_verdict, yes_no
from tracejudge.judges.probes import Probe, ProbeResult, run_probe
from tracejudge.models import ChatModel, ChatResult, TokenLogprob, resolve_model

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "verdict": {"type": "string", "enum": ["yes", "no"]},
    },
    "required": ["rationale", "verdict"],
    "additionalProperties": False,
}
REPAIR_PROMPT = (
    "Your reply could not be read. Reply again with only one JSON object of the form "
    '{"rationale": "<reasoning>", "verdict": "yes"} or {"rationale": "<reasoning>", "verdict": "no"}, '
    "and nothing before or after it."
)
VERDICT_FORMAT = (
    "Reason first, then decide. Reply with one JSON object and nothing else: "
    '{"rationale": "<your reasoning in one to three sentences>", "verdict": "yes" or "no"}.'
)
MAX_TOKENS = 400
LOCAL_CHARS_PER_BLOCK = 5000
LOCAL_CHARS_PER_CONTEXT = 12_000
"""A local model (8,192 tokens of context by default) sees up to 12,000 characters of retrieved
context (about 3,000 tokens: a long news article whole) and 5,000 of every other block; a
groundedness verdict on a context cut short would call facts from the cut part unsupported."""
REMOTE_CHARS_PER_BLOCK = 200_000
DEFAULT_THRESHOLD = 0.5

Parser = Callable[[str], "tuple[Any, str | None] | None"]
Combiner = Callable[[Mapping[str, float]], float]


@dataclass(frozen=True)
class WithoutSupport:
    """How to judge when the context-support reads fail (a response too long for the model's
    window, say): the combination and threshold fitted without them, and the written verdict
    and probes that combination weighs, asked then if the judgement had not asked them."""

    combine: Combiner
    threshold: float
    probes: tuple[Probe, ...] = ()
    written: bool = True


@dataclass(frozen=True)
class JudgeSpec:
    """What one judgement needs: a task, the blocks of data it looks at, and how to score it.

    ``probes`` are one-word yes/no questions asked after the reasoned verdict; ``features`` are
    signals that need no model call. The judgement's score is ``combine(signals)`` (by default
    the mean of the model's P(yes) values) and its yes/no verdict is ``score >= threshold``.
    """

    name: str
    task: str
    blocks: Mapping[str, str]
    schema: dict[str, Any] | None = None
    parse: Parser = parse_verdict
    repair_prompt: str = REPAIR_PROMPT
    reply_format: str = VERDICT_FORMAT
    probes: tuple[Probe, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)
    combine: Combiner | None = None
    threshold: float = DEFAULT_THRESHOLD
    trusted_blocks: frozenset[str] = frozenset()
    """Blocks written by the developer (guidelines, ground truth), not scanned for injections."""
    guard: bool = True
    """Take suspected injections out of the judged blocks (off only to measure what it adds)."""
    boolean: bool = False
    """The judge's value is True/False rather than "yes"/"no"."""
    support_blocks: tuple[str, str, str] | None = None
    """The (request, context, response) blocks: where the model can read a given reply, how much
    the context makes the response likely is read too (:mod:`.likelihood`, two scoring passes)."""
    without_support: WithoutSupport | None = None
    """What to do when those reads fail: fitted for the other signals, rather than guessing
    the missing ones."""
    claims_block: str | None = None
    """A block whose sentences are checked one by one (:mod:`.claims`): each is shown as a CLAIM
    block after the data and ``claim_question`` is asked about it as a yes/no probe."""
    claim_question: str = ""
    written: bool = True
    """Ask for a written verdict with its reasoning. Without it the verdict comes from the score
    alone and the rationale names the signals behind it (for models whose written verdicts were
    measured to add nothing)."""


def _chars_per_block(model: ChatModel, name: str) -> int:
    if model.provider.spec.provider != "local":
        return REMOTE_CHARS_PER_BLOCK
    return LOCAL_CHARS_PER_CONTEXT if name.endswith("CONTEXT") else LOCAL_CHARS_PER_BLOCK


@dataclass(frozen=True)
class PreparedJudgement:
    """The judged data as the model sees it: injection-scanned, delimited, maybe truncated."""

    data: str
    truncated: bool
    scan: InjectionScan
    codes: tuple[str, ...] = ()
    blocks: Mapping[str, str] = field(default_factory=dict)
    """Each block's text as judged (injections taken out, cut to the block limit)."""
    shown: Mapping[str, str] = field(default_factory=dict)
    """Each block as the prompt shows it (a cut block ends with a note saying so): every call
    of the judgement delimits these, so that their prompts share one prefix."""

    def clean_rationale(self, rationale: str | None) -> str | None:
        """The rationale without the blocks' boundary markers or codes."""
        return strip_block_markers(rationale, self.codes)


def prepare(spec: JudgeSpec, model: ChatModel) -> PreparedJudgement:
    untrusted = {k: v for k, v in spec.blocks.items() if k not in spec.trusted_blocks}
    scan = scan_blocks(untrusted, clean=spec.guard)
    blocks = {k: scan.blocks.get(k, v) for k, v in spec.blocks.items()}
    limits = {k: _chars_per_block(model, k) for k in blocks}
    fitted = {k: fit_block(v, limits[k]) for k, v in blocks.items()}
    shown = {k: text for k, (text, _) in fitted.items()}
    data = delimit(shown)
    judged = {k: v[: limits[k]] for k, v in blocks.items()}
    truncated = any(cut for _, cut in fitted.values())
    return PreparedJudgement(data.text, truncated, scan, data.codes, judged, shown)


def build_messages(spec: JudgeSpec, model: ChatModel) -> tuple[list[dict[str, str]], bool]:
    prepared = prepare(spec, model)
    return _reasoned_messages(spec, prepared), prepared.truncated


def _reasoned_messages(spec: JudgeSpec, prepared: PreparedJudgement) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"{prepared.data}\n\n{spec.task}\n\n{spec.reply_format}"},
    ]


def _normal(token: str) -> str:
    return token.strip().strip("\"'`*.:, ").lower()


_VERDICT_KEY = re.compile(r"verdict[\"'*]*\s*[:=]", re.IGNORECASE)


def _json_verdict_key_end(text: str) -> int | None:
    """Where the value of the reply's JSON ``"verdict"`` key starts: the key as JSON sees it,
    outside every string, so a rationale that says "verdict: no" (before or after the key) is
    not taken for it. None when the reply has no such key (plain text, or broken JSON)."""
    found = None
    i, n = 0, len(text)
    while i < n:
        if text[i] != '"':
            i += 1
            continue
        j = i + 1  # the end of this string literal
        while j < n and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        if j >= n:
            break
        k = j + 1
        while k < n and text[k] in " \t\r\n":
            k += 1
        if text[i + 1 : j].strip().lower() == "verdict" and k < n and text[k] == ":":
            found = k + 1
        i = j + 1
    return found


def verdict_probabilities(
    logprobs: tuple[TokenLogprob, ...] | None, verdict: str
) -> dict[str, float]:
    """P(yes) and the probability of the chosen verdict, read at the verdict's own token.

    That is the first yes/no token of the JSON ``"verdict"`` key's value, wherever the key is
    (local models get no schema, so it may come before or after the rationale); for a reply
    that is not JSON, the first one after its last ``verdict:``. Its top alternatives give
    the yes/no split.
    """
    if not logprobs:
        return {}
    starts, text = [], ""
    for token in logprobs:
        starts.append(len(text))
        text += token.token
    after = _json_verdict_key_end(text)
    if after is None:
        keys = list(_VERDICT_KEY.finditer(text))
        if not keys:
            return {}
        after = keys[-1].end()
    for start, token in zip(starts, logprobs, strict=True):
        if start + len(token.token) <= after:
            continue
        word = _normal(token.token)
        if not word or not ("yes".startswith(word) or "no".startswith(word)):
            continue
        share_yes = token.share("yes", "no")
        if share_yes is None:
            return {}
        return {
            "p_yes": share_yes,
            "verdict_confidence": share_yes if verdict == "yes" else 1 - share_yes,
        }
    return {}


def _metadata(model: ChatModel, results: list[ChatResult], truncated: bool) -> dict[str, Any]:
    costs = [r.cost_usd for r in results]
    meta: dict[str, Any] = {
        "model": model.uri,
        "input_tokens": sum(r.usage.input_tokens for r in results),
        "output_tokens": sum(r.usage.output_tokens for r in results),
        "latency_s": round(sum(r.latency_s for r in results), 4),
        "cost_usd": None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        "model_calls": sum(0 if r.cached else 1 for r in results),
        "cached": all(r.cached for r in results),
    }
    if truncated:
        meta["input_truncated"] = True
    return meta


def _score(spec: JudgeSpec, signals: Mapping[str, float]) -> float | None:
    """The spec's combination, or the mean of the model's P(yes) values (the written verdict's
    and the probes'; the lexical and context-support signals are not probabilities)."""
    if spec.combine is not None:
        return min(1.0, max(0.0, spec.combine(signals)))
    names = {"reasoned", *(p.name for p in spec.probes)}
    model_signals = [v for k, v in signals.items() if k in names]
    return sum(model_signals) / len(model_signals) if model_signals else None


def _schema_for(spec: JudgeSpec, model: ChatModel) -> dict[str, Any] | None:
    """The reply's JSON schema, except for local models: llama.cpp's grammar sampling made the
    1.5B judge's written verdict about 3x slower (rationales twice as long, fewer tokens/s). The
    reply is parsed leniently and repaired once instead (1 repair in 200 on the development
    split, whose figures were measured this way)."""
    if model.provider.spec.provider == "local":
        return None
    return spec.schema if spec.schema is not None else VERDICT_SCHEMA


@dataclass
class _Replies:
    """What the model said in one judgement."""

    reasoned: list[ChatResult] = field(default_factory=list)
    parsed: tuple[Any, str | None] | None = None
    probed: list[ChatResult] = field(default_factory=list)
    outcomes: list[ProbeResult] = field(default_factory=list)
    read: list[ChatResult] = field(default_factory=list)
    support: ContextSupport | None = None
    support_error: str | None = None
    claims: ClaimSupport | None = None
    claim_calls: list[ChatResult] = field(default_factory=list)

    @property
    def all(self) -> list[ChatResult]:
        return self.reasoned + self.probed + self.read + self.claim_calls


async def _ask(
    spec: JudgeSpec, model: ChatModel, prepared: PreparedJudgement, replies: _Replies
) -> None:
    """The reasoned verdict (with one repair attempt), then each probe, back to back."""
    messages = _reasoned_messages(spec, prepared)
    call: dict[str, Any] = {
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
        "logprobs": model.supports_logprobs,
        "top_logprobs": 5,
        "json_schema": _schema_for(spec, model),
        # a reply the judge cannot read is not cached: a rerun asks again (it may have been an
        # empty reply from an overloaded server)
        "cache_if": lambda result: spec.parse(result.text) is not None,
    }
    async with model.session():  # back to back: the shared prefix is evaluated once
        if spec.written:
            await _ask_written(spec, model, messages, call, replies)
        await _ask_probes(spec.probes, spec, model, prepared, replies)
        if spec.claims_block is not None:
            await _check_claims(spec, model, prepared, replies)
        if spec.support_blocks is not None and model.supports_reading:
            await _read_support(spec.support_blocks, model, prepared, replies)
        fallback = spec.without_support
        if fallback is not None and spec.support_blocks is not None and replies.support is None:
            if fallback.written and not spec.written:
                await _ask_written(spec, model, messages, call, replies)
            asked = {o.name for o in replies.outcomes}
            missing = tuple(p for p in fallback.probes if p.name not in asked)
            await _ask_probes(missing, spec, model, prepared, replies)


async def _ask_written(
    spec: JudgeSpec,
    model: ChatModel,
    messages: list[dict[str, str]],
    call: dict[str, Any],
    replies: _Replies,
) -> None:
    """The written verdict, with one repair request showing the model an unreadable reply."""
    replies.reasoned.append(await model.achat(messages, **call))
    replies.parsed = spec.parse(replies.reasoned[0].text)
    if replies.parsed is None:
        repair = [
            *messages,
            {"role": "assistant", "content": replies.reasoned[0].text},
            {"role": "user", "content": spec.repair_prompt},
        ]
        replies.reasoned.append(await model.achat(repair, **call))
        replies.parsed = spec.parse(replies.reasoned[1].text)


async def _ask_probes(
    probes: tuple[Probe, ...],
    spec: JudgeSpec,
    model: ChatModel,
    prepared: PreparedJudgement,
    replies: _Replies,
) -> None:
    prefix = f"{prepared.data}\n\n{spec.task}"
    for probe in probes:
        outcome, raw = await run_probe(model, JUDGE_SYSTEM, prefix, probe)
        replies.outcomes.append(outcome)
        if raw is not None:
            replies.probed.append(raw)


async def _check_claims(
    spec: JudgeSpec, model: ChatModel, prepared: PreparedJudgement, replies: _Replies
) -> None:
    """Each sentence of the claims block as a CLAIM block after the data, with the claim
    question as a probe; a failed check loses only its claim."""
    assert spec.claims_block is not None
    claims = split_claims(prepared.blocks.get(spec.claims_block, ""))
    scores: list[float | None] = []
    errors: list[str] = []
    for i, claim in enumerate(claims):
        data = delimit({**prepared.shown, "CLAIM": claim}).text
        outcome, raw = await run_probe(
            model, JUDGE_SYSTEM, data, Probe(f"claim {i + 1}", spec.claim_question)
        )
        scores.append(outcome.score)
        if outcome.error:
            errors.append(f"{outcome.name}: {outcome.error}")
        if raw is not None:
            replies.claim_calls.append(raw)
    if claims:
        replies.claims = ClaimSupport(tuple(claims), tuple(scores), tuple(errors))


async def _read_support(
    names: tuple[str, str, str], model: ChatModel, prepared: PreparedJudgement, replies: _Replies
) -> None:
    """The context-support signals; a failed read loses only them (as a failed probe does)."""
    request, context, response = names
    try:
        replies.support = await context_support(
            model,
            {request: prepared.shown.get(request, ""), context: prepared.shown.get(context, "")},
            prepared.blocks.get(response, ""),
            replies.read,
        )
    except MODEL_CONFIGURATION_ERRORS:
        raise
    except ModelError as exc:
        replies.support_error = f"{type(exc).__name__}: {exc}"


async def run_judge(spec: JudgeSpec, model: str | ChatModel | None) -> Feedback:
    """One judgement: a reasoned verdict and the probes, combined into a score and a verdict."""
    chat_model = resolve_model(model)  # configuration errors raise here, before any call
    source = AssessmentSource(AssessmentSourceType.LLM_JUDGE, chat_model.uri)
    prepared = prepare(spec, chat_model)
    replies = _Replies()
    try:
        await _ask(spec, chat_model, prepared, replies)
    except MODEL_CONFIGURATION_ERRORS:  # a configuration error: stop, do not record
        raise
    except ModelError as exc:
        meta = _metadata(chat_model, replies.all, prepared.truncated)
        meta.update(prepared.scan.metadata())
        return Feedback(
            spec.name, None, source=source, error=AssessmentError.from_exception(exc), metadata=meta
        )
    meta = _metadata(chat_model, replies.all, prepared.truncated)
    meta.update(prepared.scan.metadata())
    return _decide(spec, prepared, replies, source, meta)


def _decide(
    spec: JudgeSpec,
    prepared: PreparedJudgement,
    replies: _Replies,
    source: AssessmentSource,
    meta: dict[str, Any],
) -> Feedback:
    """The Feedback from what the model said: signals, score, verdict and rationale."""
    parsed = replies.parsed
    if len(replies.reasoned) > 1 and parsed is not None:
        meta["repaired"] = True
    value, rationale = parsed if parsed is not None else (None, None)
    rationale = prepared.clean_rationale(rationale)
    reasoned_verdict = yes_no(value) if isinstance(value, (str, bool)) else None
    signals: dict[str, float] = dict(spec.features)
    if reasoned_verdict is not None:
        probs = verdict_probabilities(replies.reasoned[-1].logprobs, reasoned_verdict)
        meta.update(probs)
        # without (finite) log-probabilities the written verdict itself is the signal
        p_yes = probs.get("p_yes")
        hard = 1.0 if reasoned_verdict == "yes" else 0.0
        signals["reasoned"] = p_yes if p_yes is not None and math.isfinite(p_yes) else hard
    for outcome in replies.outcomes:
        if outcome.score is not None and math.isfinite(outcome.score):  # NaN: no signal
            signals[outcome.name] = outcome.score
    if replies.support is not None:
        signals.update(replies.support.signals())
        meta["least_supported"] = replies.support.weakest_passage()
    if replies.claims is not None:
        signals.update(replies.claims.signals())
        meta["claims"] = replies.claims.to_metadata()
        if replies.claims.errors:
            meta["claim_errors"] = list(replies.claims.errors)
    if replies.support_error is not None:
        meta["support_error"] = replies.support_error
    if replies.outcomes:
        meta["probes"] = {
            o.name: None if o.score is None else round(o.score, 4) for o in replies.outcomes
        }
        failed = [f"{o.name}: {o.error}" for o in replies.outcomes if o.error]
        if failed:
            meta["probe_errors"] = failed
    fallback = spec.without_support
    if replies.support is None and spec.support_blocks is not None and fallback is not None:
        meta["without_support"] = True
        spec = replace(
            spec,
            combine=fallback.combine,
            threshold=fallback.threshold,
            written=spec.written or fallback.written,
        )
    scored = (parsed is None or reasoned_verdict is not None) and len(signals) > len(spec.features)
    score = _score(spec, signals) if scored else None
    if parsed is None and spec.written:
        meta["raw_output"] = [r.text for r in replies.reasoned]
        if score is None:
            error = AssessmentError(
                "JUDGE_PARSE_ERROR",
                "The judge's reply could not be read, even after a repair request: "
                f"{replies.reasoned[-1].text[:300]!r}",
            )
            return Feedback(spec.name, None, source=source, error=error, metadata=meta)
    if score is not None:
        verdict = "yes" if score >= spec.threshold else "no"
        if score == spec.threshold and reasoned_verdict is not None:
            verdict = reasoned_verdict  # a tie: the written reasoning decides
        meta["score"] = round(score, 4)
        meta["threshold"] = spec.threshold
        if len(signals) > 1:
            meta["signals"] = {k: round(v, 4) for k, v in signals.items()}
        if reasoned_verdict is not None and reasoned_verdict != verdict:
            meta["reasoned_verdict"] = reasoned_verdict
            rationale = (
                f"[Overall {verdict}: score {score:.2f} against a threshold of "
                f"{spec.threshold:g}; the written reasoning concluded {reasoned_verdict}.] "
                f"{rationale or ''}"
            ).strip()
        if not spec.written:
            rationale = prepared.clean_rationale(
                _measured_rationale(verdict, score, spec.threshold, replies)
            )
        elif verdict == "no" and replies.support is not None:
            passage = prepared.clean_rationale(meta["least_supported"])
            rationale = f"{rationale or ''} Least supported by the context: “{passage}”.".strip()
        value = (verdict == "yes") if spec.boolean else verdict
    elif not spec.written:
        error = AssessmentError("JUDGE_NO_SIGNAL", "Every check of this judgement failed.")
        return Feedback(spec.name, None, source=source, error=error, metadata=meta)
    return Feedback(spec.name, value, source=source, rationale=rationale, metadata=meta)


def _measured_rationale(verdict: str, score: float, threshold: float, replies: _Replies) -> str:
    """What a judgement without written reasoning found: its score against the threshold, the
    least supported claim and, from the context-support read, the least supported words."""
    parts = [f"Score {score:.2f} against a threshold of {threshold:g}."]
    weakest = replies.claims.weakest() if replies.claims is not None else None
    if weakest is not None:
        claim, support = weakest
        if verdict == "no" or support < 0.5:
            parts.append(
                f"Least supported claim: “{claim}” (the judge model gives it "
                f"P(supported) = {support:.2f})."
            )
        else:
            parts.append(f"Each of the {len(replies.claims.checked)} claims checked was supported.")  # type: ignore[union-attr]
    if replies.support is not None and verdict == "no":
        parts.append(f"Least supported words: “{replies.support.weakest_passage()}”.")
    return " ".join(parts)
