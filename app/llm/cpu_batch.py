"""One decode step for many sequences at once: the numpy path's continuous-batching kernel.

Why: a single-token step is bandwidth-bound (every weight read once per token, as a GEMV). B
sequences stepping together read each weight matrix once for all of them, as one GEMM with B
rows (app/llm/cpu_kernels.py `gemm`), so the step costs far less than B single steps
(measured on 2 cores with SmolLM2-135M: see benchmarks/throughput.py and the README).
Attention stays per sequence, over its own KV cache at its own position (the decoded tokens'
in one compiled call per layer, `attend_decoded`); the KV of each sequence is written in place
into its own `KVCache`, exactly as `NumpyDecoder.step` does, so a cache handed back after a
batched turn is the cache a single-stream turn would have left.

Rows of one GEMM do not interact, and where app/llm/gemm.c serves a single step's GEMVs sum
as its row of the batch does; but the norms are computed by other numpy calls (and OpenBLAS's
sgemv and sgemm sum in different orders where gemm.c is not built), so a batched step's logits
match a single step's to float32 rounding (tests state the tolerance), not bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

from app.blas import load_blas

load_blas()

import numpy as np  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm.cpu_decode import NumpyDecoder  # noqa: E402
from app.llm.cpu_kernels import (  # noqa: E402
    Layer,
    attend_decoded,
    lin_rows,
    mlp_rows,
    rms_rows,
    rope_angles,
    rope_rows,
)
from app.llm.cpu_prefill import attend_chunk, causal_mask  # noqa: E402


class BatchDecoder:
    """`NumpyDecoder.step` for B sequences in one pass: each item of `tokens` is one token to
    decode (an int) or a prompt chunk to prefill (a list of ids); (B, vocab) logits, each of
    its item's last token. A prompt chunk's rows join the same GEMMs, so prompts
    arriving together, and prompts arriving while others decode, read the weights once between
    them (on 2 cores a 35-token prompt alone prefilled in ~97 ms, ~55 ms of it reading the
    weights; 140 tokens in one pass took ~230 ms)."""

    def __init__(self, decoder: NumpyDecoder) -> None:
        self.dec = decoder

    def step(
        self, tokens: Sequence[int | Sequence[int]], caches: Sequence[list[KVCache]]
    ) -> np.ndarray:
        dec = self.dec
        chunks = [[t] if isinstance(t, int) else list(t) for t in tokens]
        if any(not c for c in chunks):
            raise ValueError("a prompt chunk to prefill is empty")
        h = dec.embedding(np.asarray([t for c in chunks for t in c], dtype=np.int64))
        positions = np.concatenate(
            [
                np.arange(c[0].offset, c[0].offset + len(ch))
                for ch, c in zip(chunks, caches, strict=True)
            ]
        ).astype(np.float32)
        cos, sin = rope_angles(dec.rope, positions)
        sizes = [len(c) for c in chunks]
        masks = {n: causal_mask(n) for n in set(sizes) if n > 1}
        for i, layer in enumerate(dec.layers):
            h = self._layer(layer, h, [c[i] for c in caches], sizes, masks, cos, sin)
        h = rms_rows(h[np.cumsum(sizes) - 1], dec.norm, dec.norm_eps)
        return lin_rows(dec.head, dec.head_bias, h)

    def _layer(
        self,
        ly: Layer,
        x: np.ndarray,
        caches: list[KVCache],
        sizes: list[int],
        masks: dict[int, np.ndarray],
        cos: np.ndarray,
        sin: np.ndarray,
    ) -> np.ndarray:
        b, d, kvh = x.shape[0], ly.head_dim, ly.n_kv
        qkv = lin_rows(ly.wqkv, ly.bqkv, rms_rows(x, ly.attn_norm, ly.attn_eps))
        qk = rope_rows(self.dec.rope, qkv[:, : ly.k_end].reshape(b, ly.n_heads + kvh, d), cos, sin)
        vals = qkv[:, ly.k_end :].reshape(b, kvh, d)
        attn = np.empty((b, ly.n_heads * d), dtype=np.float32)
        starts = list(accumulate(sizes, initial=0))
        decoded = [i for i, n in enumerate(sizes) if n == 1]
        attend_decoded(
            ly, [caches[i] for i in decoded], [starts[i] for i in decoded], qk, vals, attn
        )
        for c, n, row in zip(caches, sizes, starts[:-1], strict=True):
            if n > 1:
                at = slice(row, row + n)
                attn[at] = attend_chunk(ly, c, qk[at], vals[at], masks[n])
        return mlp_rows(ly, x, attn)
