"""Reading how likely a model finds a given reply (teacher forcing) with llama.cpp, in one pass.

The prompt and the reply are evaluated as one sequence; the logits are asked for only at the
positions that predict a reply token (llama-cpp-python's own ``logprobs`` would need every
position's logits, ``logits_all``, for the whole context window: 2.5 GB for this model and a
slower decode). The evaluated tokens are recorded as the model's state, so a later call that
shares the prefix (the same prompt, say) evaluates only what differs.
"""

from __future__ import annotations

import math
from typing import Any

from tracejudge.models.types import TokenLogprob


def chat_prompt(llama: Any, messages: list[dict[str, Any]]) -> str:
    """The model's own chat template applied to ``messages``, ready for the assistant's reply."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError("the model has no chat template to score a reply with")
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=_token_text(llama, llama.token_eos()),
        bos_token=_token_text(llama, llama.token_bos()),
        add_generation_prompt=True,
    )
    return str(formatter(messages=messages).prompt)  # type: ignore[arg-type]


def _token_text(llama: Any, token: int) -> str:
    return (
        ""
        if token < 0
        else bytes(llama.detokenize([token], special=True)).decode("utf-8", "replace")
    )


def reply_logprobs(llama: Any, prompt: str, reply: str) -> tuple[list[TokenLogprob], int]:
    """Each reply token with its log-probability after ``prompt`` and the reply before it, and how
    many tokens had to be evaluated (the rest were the model's state already)."""
    import numpy as np
    from llama_cpp._internals import LlamaBatch

    prompt_tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    reply_tokens = llama.tokenize(reply.encode("utf-8"), add_bos=False, special=False)
    if not prompt_tokens or not reply_tokens:
        return [], 0
    tokens = prompt_tokens + reply_tokens
    if len(tokens) > llama.n_ctx():
        raise ValueError(f"prompt and reply take {len(tokens)} tokens, over the context window")
    # reuse what the model has evaluated already, but re-evaluate the prompt's last token: its
    # logits predict the reply's first
    state = llama.input_ids[: llama.n_tokens].tolist()
    keep = 0
    while keep < min(len(state), len(prompt_tokens) - 1) and state[keep] == tokens[keep]:
        keep += 1
    llama._ctx.kv_cache_seq_rm(-1, keep, -1)
    llama.n_tokens = keep
    wanted = range(len(prompt_tokens) - 1, len(tokens) - 1)  # positions predicting a reply token
    n_vocab = llama.n_vocab()
    batch = LlamaBatch(n_tokens=llama.n_batch, embd=0, n_seq_max=1, verbose=False)
    out: list[TokenLogprob] = []
    try:
        for start in range(keep, len(tokens), llama.n_batch):
            chunk = tokens[start : start + llama.n_batch]
            raw = batch.batch
            raw.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                raw.token[i] = token
                raw.pos[i] = start + i
                raw.seq_id[i][0] = 0
                raw.n_seq_id[i] = 1
                raw.logits[i] = (start + i) in wanted
            llama._ctx.decode(batch)
            for i in range(len(chunk)):
                if (start + i) not in wanted:
                    continue
                logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(i), shape=(n_vocab,))
                peak = float(logits.max())
                log_total = peak + math.log(float(np.exp(logits - peak).sum()))
                following = tokens[start + i + 1]
                out.append(
                    TokenLogprob(
                        _token_text(llama, following), float(logits[following]) - log_total
                    )
                )
            llama.input_ids[start : start + len(chunk)] = chunk
            llama.n_tokens = start + len(chunk)
    finally:
        batch.close()
    return out, len(tokens) - keep
