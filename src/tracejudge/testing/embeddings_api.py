"""OpenAI's embeddings endpoint (``POST /v1/embeddings``) as the scripted chat server speaks
it: one deterministic vector per input, as floats or, when the client asks for it (the
``openai`` library does by default), as base64-packed little-endian float32."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

DEFAULT_DIMENSIONS = 8


def vector_of(text: str, dimensions: int) -> list[float]:
    """A unit-free vector that depends only on the text (the same text, the same vector)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(dimensions)]


def embeddings_body(request: dict[str, Any]) -> dict[str, Any]:
    raw = request.get("input", "")
    inputs = [raw] if isinstance(raw, str) else list(raw)
    dimensions = int(request.get("dimensions") or DEFAULT_DIMENSIONS)
    data = []
    for index, text in enumerate(inputs):
        vector = vector_of(str(text), dimensions)
        embedding: list[float] | str = vector
        if request.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(len(str(text).split()) for text in inputs)
    return {
        "object": "list",
        "model": request.get("model", "test-embedding"),
        "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
