"""A trace's spans in tree order: each parent before its children, siblings by start time."""

from __future__ import annotations

from collections.abc import Sequence

from tracejudge.entities.span import Span


def span_tree(spans: Sequence[Span]) -> list[tuple[Span, int]]:
    """``(span, depth)`` depth-first; a span whose parent is not among them counts as a root,
    and a span id seen twice (bad data) is shown once."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    ordered: list[tuple[Span, int]] = []
    seen: set[str] = set()

    def visit(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: (x.start_time_ns, x.span_id)):
            if s.span_id in seen:
                continue
            seen.add(s.span_id)
            ordered.append((s, depth))
            visit(s.span_id, depth + 1)

    visit(None, 0)
    return ordered
