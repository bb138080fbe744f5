"""How far to trust a judge: its verdicts against people's on the same traces.

For each trace that has both a judge's verdict and a person's (human feedback of the same name,
a human override of the judge's verdict, or an expectation), the report gives accuracy, Cohen's
kappa (agreement beyond chance), the AUROC of the judge's continuous score against the human
label, the confusion matrix and the traces where they disagree, worst first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracejudge.entities import AssessmentSourceType, Expectation, Feedback, Trace
from tracejudge.entities.assessment import numeric_value
from tracejudge.errors import InvalidArgumentError
from tracejudge.judges.parsing import yes_no


def as_pass(value: Any) -> bool | None:
    """A verdict as pass (True) / fail (False): yes/no, booleans, numbers at 0.5; else None."""
    verdict = yes_no(value) if isinstance(value, (str, bool)) else None
    if verdict is not None:
        return verdict == "yes"
    number = numeric_value(value)
    return None if number is None or isinstance(value, str) else number >= 0.5


@dataclass(frozen=True)
class Disagreement:
    trace_id: str
    judge_value: Any
    human_value: Any
    score: float | None
    rationale: str | None
    human_rationale: str | None


@dataclass
class AgreementReport:
    name: str
    compared: int = 0
    skipped: int = 0
    """Traces with a judge verdict but no human label (or the reverse), or a value not pass/fail."""
    accuracy: float | None = None
    kappa: float | None = None
    auroc: float | None = None
    """Of the judge's score (P(yes) or calibrated) against the human label; None if one class."""
    confusion: dict[str, int] = field(default_factory=dict)
    """``judge_yes_human_yes``, ``judge_yes_human_no``, ``judge_no_human_yes``, ``judge_no_human_no``."""
    disagreements: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "compared": self.compared,
            "skipped": self.skipped,
            "accuracy": self.accuracy,
            "kappa": self.kappa,
            "auroc": self.auroc,
            "confusion": dict(self.confusion),
            "disagreements": [d.__dict__ for d in self.disagreements],
        }


def _newest(items: Sequence[Any]) -> Any:
    return max(items, key=lambda a: a.create_time_ms or 0) if items else None


def judge_verdict(trace: Trace, name: str) -> Feedback | None:
    """The judge's newest verdict of that name, even if a person has since overridden it."""
    found = [
        a
        for a in trace.search_assessments(name, all=True, type="feedback")
        if a.error is None
        and a.source is not None
        and a.source.source_type != AssessmentSourceType.HUMAN
        and a.value is not None
    ]
    return _newest(found)


def human_label(trace: Trace, name: str, expectation: str | None) -> Feedback | Expectation | None:
    """A person's verdict: human feedback of that name (an override included), else the
    expectation named ``expectation``."""
    humans = [
        a
        for a in trace.search_assessments(name, type="feedback")
        if a.source is not None and a.source.source_type == AssessmentSourceType.HUMAN
    ]
    if humans:
        return _newest(humans)
    if expectation:
        return _newest(trace.search_assessments(expectation, type="expectation"))
    return None


def _score(feedback: Feedback) -> float | None:
    score = feedback.metadata.get("score")
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return float(score)
    passed = as_pass(feedback.value)
    number = numeric_value(feedback.value)
    return number if number is not None else (None if passed is None else float(passed))


def _auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def cohen_kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    p_judge = sum(a for a, _ in pairs) / n
    p_human = sum(b for _, b in pairs) / n
    expected = p_judge * p_human + (1 - p_judge) * (1 - p_human)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def agreement(
    name: str,
    traces: Sequence[Trace],
    *,
    expectation: str | None = None,
    max_disagreements: int = 20,
) -> AgreementReport:
    """Compare the judge verdicts called ``name`` with people's on ``traces``.

    Args:
        name: the feedback name the judge writes (e.g. ``"groundedness"``); human feedback of
            the same name (``log_feedback(..., source="HUMAN")`` or ``override_feedback``) is the label.
        traces: traces with their assessments, e.g. ``search_traces(..., return_type="list")``.
        expectation: also accept an expectation of this name as the label (a bool or yes/no).
        max_disagreements: how many disagreements to keep, the most confident mistakes first.

    >>> report = agreement("groundedness", tracejudge.search_traces(return_type="list"))
    >>> report.accuracy, report.kappa, report.confusion
    """
    if not name:
        raise InvalidArgumentError("agreement() needs the judge's feedback name.")
    report = AgreementReport(name)
    pairs: list[tuple[bool, bool]] = []
    scores: list[float] = []
    labels: list[bool] = []
    mistakes: list[tuple[float, Disagreement]] = []
    confusion = dict.fromkeys(
        ("judge_yes_human_yes", "judge_yes_human_no", "judge_no_human_yes", "judge_no_human_no"), 0
    )
    for trace in traces:
        judged = judge_verdict(trace, name)
        human = human_label(trace, name, expectation)
        if judged is None and human is None:
            continue
        judge_pass = as_pass(judged.value) if judged is not None else None
        human_pass = as_pass(human.value) if human is not None else None
        if judged is None or human is None or judge_pass is None or human_pass is None:
            report.skipped += 1
            continue
        pairs.append((judge_pass, human_pass))
        key = f"judge_{'yes' if judge_pass else 'no'}_human_{'yes' if human_pass else 'no'}"
        confusion[key] += 1
        score = _score(judged)
        if score is not None:
            scores.append(score)
            labels.append(human_pass)
        if judge_pass != human_pass:
            confidence = abs((score if score is not None else float(judge_pass)) - 0.5)
            mistakes.append(
                (
                    confidence,
                    Disagreement(
                        trace.info.trace_id,
                        judged.value,
                        human.value,
                        score,
                        judged.rationale,
                        human.rationale,
                    ),
                )
            )
    report.compared = len(pairs)
    report.confusion = confusion
    if pairs:
        report.accuracy = sum(a == b for a, b in pairs) / len(pairs)
        report.kappa = cohen_kappa(pairs)
        report.auroc = _auroc(scores, labels) if len(scores) == len(pairs) else None
    mistakes.sort(key=lambda m: -m[0])
    report.disagreements = [d for _, d in mistakes[:max_disagreements]]
    return report
