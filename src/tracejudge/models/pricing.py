"""Known prices (USD per million tokens, input / output) so every call can report its cost.

Prices are list prices as published by the providers; a model not listed has cost ``None``
(unknown), and local models cost 0.
"""

from __future__ import annotations

PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "openai:gpt-4.1": (2.00, 8.00),
    "openai:gpt-4.1-mini": (0.40, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.40),
    "openai:gpt-4o": (2.50, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.60),
    "openai:o4-mini": (1.10, 4.40),
    "anthropic:claude-haiku-4-5": (1.00, 5.00),
    "anthropic:claude-sonnet-4-5": (3.00, 15.00),
    "anthropic:claude-opus-4-1": (15.00, 75.00),
    "anthropic:claude-3-5-haiku-latest": (0.80, 4.00),
    "anthropic:claude-sonnet-4-0": (3.00, 15.00),
}


def cost_usd(provider: str, model: str, input_tokens: int, output_tokens: int) -> float | None:
    if provider == "local":
        return 0.0
    price = PRICES_PER_MILLION.get(f"{provider}:{model}")
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
