"""A retrieved document, the output element of a RETRIEVER span."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracejudge.entities._json import to_jsonable


@dataclass
class Document:
    page_content: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "page_content": self.page_content,
            "metadata": to_jsonable(self.metadata),
            "id": self.id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Document:
        return cls(
            page_content=str(data.get("page_content", "")),
            metadata=dict(data.get("metadata") or {}),
            id=data.get("id"),
        )
