"""Bytes on disk per span: tracejudge's SQLite store against MLflow's SQL store, same traces.

    python benchmarks/storage_cost.py [--n 2000]

The same small RAG app (a chain, a retriever returning three passages, an LLM call) runs N
times under ``@tracejudge.trace`` into a fresh SQLite store and under ``@mlflow.trace`` into a
fresh MLflow SQLite tracking store (its artifact folder counted too). Both files are
checkpointed and vacuumed before they are measured, so free pages count for neither. Also
printed: what zlib would save on tracejudge's span payloads, the question behind "compress
large payloads" (word search over ``span.content`` reads the payload as text, which a
compressed column would no longer be).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import zlib
from pathlib import Path

from common import write_result

WORDS = [
    "the",
    "order",
    "refund",
    "policy",
    "shipping",
    "invoice",
    "customer",
    "account",
    "days",
    "within",
    "return",
    "item",
    "payment",
    "card",
    "label",
    "warehouse",
    "support",
    "agent",
    "ticket",
    "receipt",
    "price",
    "discount",
    "delivery",
]


def passage(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_app(trace_decorator):
    """The app, traced by the given decorator: 3 spans per call."""

    @trace_decorator(span_type="RETRIEVER")
    def retrieve(question: str, seed: int) -> list[dict]:
        rng = random.Random(seed)
        return [
            {"page_content": passage(rng, 60), "metadata": {"doc_uri": f"kb/{seed % 97}/{i}"}}
            for i in range(3)
        ]

    @trace_decorator(span_type="LLM")
    def generate(messages: list[dict], seed: int) -> str:
        return passage(random.Random(seed + 1), 45)

    @trace_decorator(span_type="CHAIN")
    def answer(question: str, seed: int) -> str:
        docs = retrieve(question, seed)
        context = "\n".join(d["page_content"] for d in docs)
        return generate(
            [
                {"role": "system", "content": "Answer from the context.\n" + context},
                {"role": "user", "content": question},
            ],
            seed,
        )

    return answer


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def compact(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.close()


def run_tracejudge(n: int, folder: Path) -> tuple[int, int, int, int]:
    import tracejudge
    from tracejudge.store import set_tracking_uri

    db = folder / "tracejudge.db"
    set_tracking_uri(f"sqlite:///{db}")
    app = make_app(tracejudge.trace)
    for i in range(n):
        app(f"question {i} about a refund?", i)
    tracejudge.flush()
    compact(db)
    conn = sqlite3.connect(db)
    spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    payload = conn.execute("SELECT sum(length(CAST(content AS BLOB))) FROM spans").fetchone()[0]
    packed = sum(
        len(zlib.compress(row[0].encode(), 6)) for row in conn.execute("SELECT content FROM spans")
    )
    fts = conn.execute(
        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'traces_fts%' OR name LIKE 'spans_fts%'"
    ).fetchone()[0]
    conn.close()
    return db.stat().st_size, spans, payload - packed, fts or 0


def run_mlflow(n: int, folder: Path) -> tuple[int, int]:
    import mlflow

    db = folder / "mlflow.db"
    artifacts = folder / "mlartifacts"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    experiment = mlflow.create_experiment("storage", artifact_location=artifacts.as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    app = make_app(mlflow.trace)
    for i in range(n):
        app(f"question {i} about a refund?", i)
    mlflow.flush_trace_async_logging()
    compact(db)
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0] if "spans" in tables else 0
    conn.close()
    size = db.stat().st_size + (folder_bytes(artifacts) if artifacts.exists() else 0)
    return size, spans or 3 * n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    base = Path(tempfile.mkdtemp(prefix="tj-storage-"))
    (base / "tj").mkdir()
    (base / "mlflow").mkdir()
    tj_bytes, tj_spans, saved, fts = run_tracejudge(args.n, base / "tj")
    ml_bytes, ml_spans = run_mlflow(args.n, base / "mlflow")
    tj_per, ml_per = tj_bytes / tj_spans, ml_bytes / ml_spans
    lines = [
        f"# Storage per span: {args.n:,} traces of 3 spans (a chain, a retriever, an LLM call)",
        "",
        f"`python benchmarks/storage_cost.py --n {args.n}`",
        "",
        "| store | bytes on disk | spans | bytes per span |",
        "|---|---|---|---|",
        f"| tracejudge, SQLite (word-search index included) | {tj_bytes:,} | {tj_spans:,} | {tj_per:,.0f} |",
        f"| MLflow SQL store, SQLite (+ artifact folder) | {ml_bytes:,} | {ml_spans:,} | {ml_per:,.0f} |",
        "",
        f"- tracejudge / MLflow: **{tj_per / ml_per:.2f}×** the bytes per span",
        f"- of tracejudge's file, the word-search (FTS5) index takes {fts:,} bytes ({fts / tj_bytes:.0%})",
        f"- zlib (level 6) on every span payload would save {saved:,} bytes, "
        f"{saved / tj_bytes:.0%} of the file",
    ]
    write_result("storage_cost.md", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
