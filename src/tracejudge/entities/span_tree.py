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

    def in_order(parent: str | None) -> list[Span]:  # reversed: the stack pops the first
        found = children.get(parent, [])
        return sorted(found, key=lambda x: (x.start_time_ns, x.span_id), reverse=True)

    # an explicit stack, not recursion: a trace may be nested thousands of levels deep
    stack = [(s, 0) for s in in_order(None)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append((span, depth))
        stack.extend((child, depth + 1) for child in in_order(span.span_id))
    return ordered
