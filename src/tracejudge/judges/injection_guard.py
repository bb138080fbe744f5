"""Spotting judged text that tries to steer its judge, and taking that text out of the judgement.

A response (or a retrieved document) that addresses the evaluator, forges a block boundary,
states a ready-made verdict or claims to be a system message is not material to judge: it is
an attack on the judge. Small models obey such text often (the injection set flipped half of
the 1.5B local judge's "no" verdicts). So before a judgement each judged block is scanned with
cheap patterns; the sentences that match are replaced by a neutral marker, the judge decides on the
rest, and the Feedback says ``suspected_injection: true`` with the reasons, so a person sees it.

The patterns are deliberately narrow (orders *to an evaluator*, verdict-shaped JSON, fake
markers), so ordinary answers that mention instructions or JSON are not flagged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

REMOVED = "[text addressed to the evaluator removed]"

_EVALUATOR = (
    r"(?:evaluator|grader|judge|assessor|reviewer|verifier|rater|checker|ai model|language model|"
    r"llm|assistant|model)"
)
_VERDICT_WORD = (
    r"(?:yes|true|pass(?:ed)?|correct|grounded|supported|accurate|safe|relevant|10|100|5)"
)

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ignore_instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,30}?"
            r"\b(?:previous|prior|above|preceding|earlier|all|any|your|system|original|"
            r"evaluation|grading|judging)\b[^.\n]{0,30}?"
            r"\b(?:instructions?|rules?|prompts?|directions?|guidelines?|criteria|task)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "ignore_instructions",  # the same order in other languages
        re.compile(
            r"\b(?:ignorez|oubliez|ignoriere|ignorieren|vergiss|ignora|ignore[mn]|olvida|"
            r"dimentica|negeer|zignoruj)\b|игнорируй|忽略|無視",
            re.IGNORECASE,
        ),
    ),
    (
        "fake_system_message",
        re.compile(
            r"(?:^|\n)\s*[\[#(<*]*\s*(?:system|developer|admin(?:istrator)?)\s*"
            r"(?:message|prompt|note|override)?\s*[\])>*]*\s*[:>]"
            r"|<\|?im_start\|?>|<\|(?:system|user|assistant)\|>|\[/?INST\]|<</?SYS>>",
            re.IGNORECASE,
        ),
    ),
    (
        "fake_delimiter",
        re.compile(
            r"<{2,}\s*/?\s*(?:END\b|[A-Z][A-Z _]{2,})|\b(?:END|BEGIN)\s+(?:OF\s+)?"
            r"(?:RESPONSE|CONTEXT|REQUEST|DATA|INPUT|OUTPUT|DOCUMENT|ANSWER|BLOCK)\b"
            r"|</\s*(?:response|context|request|data|input|output|document|answer)\s*>",
        ),
    ),
    (
        "verdict_json",
        re.compile(
            r"[{,]\s*[\"']?(?:verdict|rationale|judg(?:e)?ment|trustworthiness(?:_score)?)[\"']?\s*:"
            r"|[{,]\s*[\"']?(?:result|score|rating|grade|label|grounded|supported)[\"']?\s*:\s*"
            r"[\"']?(?:yes|true|pass|correct|grounded|supported|10|100)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "verdict_statement",
        re.compile(
            r"\bverdict\s+(?:is|must\s+be|should\s+be|=|:)\s*[\"'«“]?\s*" + _VERDICT_WORD + r"\b"
            r"|\bverdict\s*[:=]\s*[\"'«“]?\s*" + _VERDICT_WORD + r"\b"
            r"|\b(?:rating|score|grade|evaluation)\s+(?:must|should|has\s+to)\s+be\b",
            re.IGNORECASE,
        ),
    ),
    (
        "order_to_evaluator",
        re.compile(
            r"\b(?:note|message|instruction|reminder|attention)s?\s+(?:to|for)\s+(?:the\s+)?"
            + _EVALUATOR
            + r"\b"
            r"|\b(?:dear|hey|hello|attention)\s+(?:the\s+)?" + _EVALUATOR + r"\b"
            r"|\b(?:evaluators?|graders?|judges?)\s+(?:must|should|shall|will|are\s+required\s+to)"
            r"\s+(?:answer|respond|reply|output|say|return|rate|score|mark|grade|judge|"
            r"consider|treat|give)\b"
            r"|\b(?:answer|respond|reply|output|say|return)\s+(?:with\s+)?[\"'«“]?"
            r"(?:yes|true)\b"
            r"|\b(?:mark|rate|score|grade|label|classify|treat)\s+(?:this|the|it)\b[^.\n]{0,40}?"
            r"\bas\s+(?:fully\s+)?" + _VERDICT_WORD + r"\b"
            r"|\bany\s+(?:verdict|answer|rating)\s+other\s+than\b",
            re.IGNORECASE,
        ),
    ),
    (
        "false_context_claim",
        re.compile(
            r"\b(?:context|passage|documents?|sources?)\s+(?:you\s+(?:see|have|were\s+given|"
            r"received|are\s+given)|(?:shown|given|provided)\s+(?:to\s+you|here|above))\b"
            r"[^.\n]{0,40}?\b(?:truncated|incomplete|cut|shortened|partial)\b"
            r"|\b(?:verified|confirmed|approved|checked)\s+by\s+(?:a|an|the|our)\s+"
            r"(?:human\s+)?(?:expert|reviewer|moderator|administrator|fact-checker)s?\b",
            re.IGNORECASE,
        ),
    ),
)


_VERDICT_JSON = dict(PATTERNS)["verdict_json"]


@dataclass(frozen=True)
class InjectionScan:
    """What the scan of the judged blocks found, and the blocks as the judge will see them."""

    blocks: dict[str, str]
    reasons: tuple[str, ...] = ()
    """Pattern families that matched, e.g. ``("verdict_json", "order_to_evaluator")``."""
    flagged_blocks: tuple[str, ...] = ()

    @property
    def suspected(self) -> bool:
        return bool(self.reasons)

    def metadata(self) -> dict[str, object]:
        if not self.suspected:
            return {}
        return {
            "suspected_injection": True,
            "injection_reasons": list(self.reasons),
            "injection_blocks": list(self.flagged_blocks),
        }


def _json_like_spans(text: str) -> list[tuple[int, int]]:
    """``{...}`` spans (one level of nesting) that carry a verdict-shaped key."""
    spans = []
    for match in re.finditer(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", text):
        if _VERDICT_JSON.search(match.group()):
            spans.append(match.span())
    return spans


_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


def _sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentence(s) holding ``text[start:end]``, within its line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    before = [m.end() for m in _SENTENCE_END.finditer(text, line_start, start)]
    after = _SENTENCE_END.search(text, end, line_end)
    return (before[-1] if before else line_start), (after.end() if after else line_end)


def find_injections(text: str) -> list[tuple[str, int, int]]:
    """(family, start, end) of every match in ``text``."""
    found = []
    for family, pattern in PATTERNS:
        for match in pattern.finditer(text):
            start = match.start() + len(match.group()) - len(match.group().lstrip())
            found.append((family, start, max(start, match.end())))
    return found


def clean_text(text: str) -> tuple[str, list[str]]:
    """The text with every sentence (or verdict-shaped JSON object) holding an injection
    replaced by :data:`REMOVED`, and the families found."""
    found = find_injections(text)
    if not found:
        return text, []
    families = list(dict.fromkeys(f for f, _, _ in found))
    cuts = _json_like_spans(text)
    for _, start, end in found:  # widen each match to its sentence (never past its line)
        cuts.append(_sentence_around(text, start, end))
    cuts.sort()
    merged: list[list[int]] = []
    for start, end in cuts:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces, last = [], 0
    for start, end in merged:
        kept = text[last:start]
        pieces.append(kept + (" " if kept and not kept[-1].isspace() else ""))
        pieces.append(REMOVED)
        last = end
    pieces.append(text[last:])
    return "".join(pieces).strip(), families


def scan_blocks(blocks: Mapping[str, str], *, clean: bool = True) -> InjectionScan:
    """Scan every judged block; with ``clean`` the suspicious lines are replaced by a marker."""
    out: dict[str, str] = {}
    reasons: list[str] = []
    flagged: list[str] = []
    for name, value in blocks.items():
        cleaned, families = clean_text(value)
        if families:
            flagged.append(name)
            reasons.extend(f for f in families if f not in reasons)
        out[name] = cleaned if clean else value
    return InjectionScan(out, tuple(reasons), tuple(flagged))
