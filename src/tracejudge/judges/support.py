"""Lexical support: how much of a response can be found, word for word, in its context.

No model call. A hallucinated answer often brings a number, a name or a content word that
appears nowhere in the retrieved context or the request; a grounded one mostly reuses their
words. These signals are weak alone (a paraphrase is not a hallucination) and are combined
with the model's probabilities in :mod:`tracejudge.judges.calibration`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+(?:[.,'’][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
STOPWORDS = frozenset(
    """a an the and or but nor so yet for of to in on at by with from into onto upon about above
    below over under between among through during before after since until while as than then
    that this these those there here it its it's he she they them his her their our we you your
    i me my mine us is are was were be been being am do does did done have has had having will
    would shall should can could may might must not no yes also only just very more most less
    least much many some any each every all both either neither other another such own same
    what which who whom whose when where why how if else because although though whether
    one ones s t""".split()  # noqa: SIM905
)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s", "ed", "ing", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _number_key(token: str) -> str:
    """ "1,000", "1000" and "1000.00" are the same number."""
    plain = token.replace(",", "")
    try:
        return f"{float(plain):f}".rstrip("0").rstrip(".")
    except ValueError:
        return plain


def content_words(text: str) -> list[str]:
    """Lower-cased, accent-folded, lightly stemmed words that are not stop words."""
    words = []
    for raw in _WORD.findall(_fold(text)):
        word = raw.replace("’", "'")
        if word in STOPWORDS or (len(word) < 3 and not word.isdigit()):
            continue
        words.append(word if any(ch.isdigit() for ch in word) else _stem(word))
    return words


def _names(text: str) -> list[str]:
    """Capitalised words that do not start a sentence (a rough stand-in for named entities)."""
    names = []
    for match in re.finditer(r"(?<![.!?:]\s)(?<!^)\b[A-Z][\w'’-]+", text):
        if match.start() > 0 and text[match.start() - 1] not in "\n":
            names.append(_stem(_fold(match.group())))
    return names


@dataclass(frozen=True)
class LexicalSupport:
    unsupported_words: float
    """Share of the response's content words found in neither the context nor the request."""
    unsupported_numbers: int
    """Numbers in the response that appear in neither the context nor the request."""
    unsupported_names: float
    """Share of capitalised mid-sentence words found in neither."""
    response_words: int

    def features(self) -> dict[str, float]:
        return {
            "unsupported_words": self.unsupported_words,
            "unsupported_number": 1.0 if self.unsupported_numbers else 0.0,
            "unsupported_names": self.unsupported_names,
        }

    def to_dict(self) -> dict[str, float | int]:
        return {
            "unsupported_words": round(self.unsupported_words, 4),
            "unsupported_numbers": self.unsupported_numbers,
            "unsupported_names": round(self.unsupported_names, 4),
            "response_words": self.response_words,
        }


def lexical_support(response: str, context: str, request: str = "") -> LexicalSupport:
    source = f"{context}\n{request}"
    known = set(content_words(source))
    words = content_words(response)
    missing = [w for w in words if w not in known]
    known_numbers = {_number_key(n) for n in _NUMBER.findall(source)}
    numbers = {_number_key(n) for n in _NUMBER.findall(response)}
    source_folded = _fold(source)
    names = _names(response)
    missing_names = [n for n in names if n not in source_folded]
    return LexicalSupport(
        unsupported_words=len(missing) / len(words) if words else 0.0,
        unsupported_numbers=len(numbers - known_numbers),
        unsupported_names=len(missing_names) / len(names) if names else 0.0,
        response_words=len(words),
    )
