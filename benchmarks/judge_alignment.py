"""What does few-shot alignment gain? A make_judge judge before and after ``judge.align(traces)``.

    python benchmarks/judge_alignment.py [--model local:/default] [--train 6] [--test 20]

A custom groundedness judge (``make_judge``) scores HaluEval-QA answers recorded as traces in a
temporary store. People's verdicts (the HaluEval labels, logged as HUMAN feedback) on ``--train``
traces are what ``align`` learns from; agreement (accuracy, Cohen's kappa, AUROC of the score) is
measured on ``--test`` other traces, before and after. The rows come from the development
split's source (HaluEval-QA) but not from the rows the development split uses (a different
seed offset), and never from the test splits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import tracejudge
from common import load_halueval, sample, slug, write_result
from tracejudge.entities import AssessmentSource
from tracejudge.judges import agreement, make_judge
from tracejudge.models import get_model, track_usage
from tracejudge.store import set_tracking_uri

INSTRUCTIONS = (
    "Is every claim in {{ outputs }} supported by the passage given in {{ inputs }}? "
    "Answer yes only if the passage states it or it follows directly from the passage."
)


def record(rows, experiment: str) -> list[str]:
    tracejudge.set_experiment(experiment)

    @tracejudge.trace(name="qa")
    def qa(question: str, passage: str, answer: str) -> str:
        return answer

    ids = []
    for row in rows:
        for answer, label in ((row["right_answer"], "yes"), (row["hallucinated_answer"], "no")):
            qa(row["question"], row["knowledge"], answer)
            trace_id = tracejudge.get_last_active_trace_id()
            ids.append(trace_id)
            tracejudge.flush()
            tracejudge.log_feedback(
                trace_id, "supported", label, source=AssessmentSource("HUMAN", "halueval")
            )
    return ids


def judge_all(judge, trace_ids) -> None:
    for trace_id in trace_ids:
        trace = tracejudge.get_trace(trace_id)
        fb = judge(inputs=trace.data.inputs, outputs=trace.data.outputs)
        tracejudge.log_feedback(
            trace_id,
            "supported",
            fb.value,
            source=fb.source,
            rationale=fb.rationale,
            metadata=fb.metadata,
            error=fb.error,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="local:/default")
    parser.add_argument("--train", type=int, default=6, help="traces people labelled, to align on")
    parser.add_argument("--test", type=int, default=20, help="held-out traces measured")
    parser.add_argument("--seed", type=int, default=1007)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tj-align-"))
    set_tracking_uri(f"sqlite:///{folder / 'align.db'}")
    model = get_model(args.model)
    rows = sample(load_halueval("qa"), (args.train + args.test) // 2, args.seed)
    n_train = args.train // 2
    train_ids = record(rows[:n_train], "align-train")
    test_ids = record(rows[n_train:], "align-test")
    judge = make_judge("supported", INSTRUCTIONS, model=model)
    lines = [f"# Few-shot alignment of a make_judge judge: {args.model}", ""]
    started = time.perf_counter()
    with track_usage() as meter:
        judge_all(judge, train_ids)  # the judge's own verdicts on the training traces
        judge_all(judge, test_ids)
        before = agreement(
            "supported", [tracejudge.get_trace(t) for t in test_ids], max_disagreements=0
        )
        aligned = judge.align([tracejudge.get_trace(t) for t in train_ids], max_examples=args.train)
        judge_all(aligned, test_ids)
        after = agreement(
            "supported", [tracejudge.get_trace(t) for t in test_ids], max_disagreements=0
        )
    lines += [
        f"HaluEval-QA answers (seed {args.seed}), labels as HUMAN feedback. {len(aligned.examples)} "
        f"examples from {len(train_ids)} training traces; measured on {len(test_ids)} other traces. "
        f"{meter.calls} model calls, {time.perf_counter() - started:.0f} s.",
        "",
        "| judge | accuracy | Cohen's kappa | AUROC of the score | says yes to right / hallucinated |",
        "|---|---|---|---|---|",
    ]
    for label, report in (("make_judge, no examples", before), ("after align()", after)):
        c = report.confusion
        lines.append(
            f"| {label} | {report.accuracy:.3f} | {report.kappa:.3f} | "
            f"{'n/a' if report.auroc is None else f'{report.auroc:.3f}'} | "
            f"{c['judge_yes_human_yes']}/{c['judge_yes_human_yes'] + c['judge_no_human_yes']} / "
            f"{c['judge_yes_human_no']}/{c['judge_yes_human_no'] + c['judge_no_human_no']} |"
        )
    print("\n".join(lines))
    path = write_result(f"judge_alignment_{slug(args.model)}.md", lines)
    print(f"\n(written to {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
