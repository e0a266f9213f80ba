"""One decode step for many sequences at once: the numpy path's continuous-batching kernel.

Why: a single-token step is bandwidth-bound (every weight read once per token, as a GEMV). B
sequences stepping together read each weight matrix once for all of them, as one cblas_sgemm
with B rows, so the step costs far less than B single steps (measured on 2 cores with
SmolLM2-135M: see benchmarks/throughput.py and the README). Attention stays per sequence, over
its own KV cache at its own position; the KV of each sequence is written in place into its own
`KVCache`, exactly as `NumpyDecoder.step` does, so a cache handed back after a batched turn is
the cache a single-stream turn would have left.

Rows of one GEMM do not interact, but sgemm and sgemv sum in different orders, so a batched
step's logits match a single step's to float32 rounding (tests state the tolerance), not bit
for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.blas import load_blas

load_blas()

import numpy as np  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm.cpu_decode import NumpyDecoder  # noqa: E402
from app.llm.cpu_kernels import (  # noqa: E402
    Layer,
    append_and_attend,
    lin_rows,
    mlp_rows,
    rms_rows,
    rope_angles,
    rope_rows,
)


class BatchDecoder:
    """`NumpyDecoder.step` for B sequences: (B,) tokens, B caches -> (B, vocab) logits."""

    def __init__(self, decoder: NumpyDecoder) -> None:
        self.dec = decoder

    def step(self, tokens: Sequence[int], caches: Sequence[list[KVCache]]) -> np.ndarray:
        dec = self.dec
        h = dec.embed[np.asarray(tokens, dtype=np.int64)]
        positions = np.array([c[0].offset for c in caches], dtype=np.float32)
        cos, sin = rope_angles(dec.rope, positions)
        for i, layer in enumerate(dec.layers):
            h = self._layer(layer, h, [c[i] for c in caches], cos, sin)
        h = rms_rows(h, dec.norm, dec.norm_eps)
        return lin_rows(dec.head, dec.head_bias, h)

    def _layer(
        self,
        ly: Layer,
        x: np.ndarray,
        caches: list[KVCache],
        cos: np.ndarray,
        sin: np.ndarray,
    ) -> np.ndarray:
        b, d, kvh = x.shape[0], ly.head_dim, ly.n_kv
        qkv = lin_rows(ly.wqkv, ly.bqkv, rms_rows(x, ly.attn_norm, ly.attn_eps))
        qk = rope_rows(self.dec.rope, qkv[:, : ly.k_end].reshape(b, ly.n_heads + kvh, d), cos, sin)
        vals = qkv[:, ly.k_end :].reshape(b, kvh, d)
        rep = ly.n_heads // kvh
        q = qk[:, : ly.n_heads].reshape(b, kvh, rep, d) * np.float32(ly.scale)
        attn = np.empty((b, kvh, rep, d), dtype=np.float32)
        for i, c in enumerate(caches):
            attn[i] = append_and_attend(c, c.offset, q[i], qk[i, ly.n_heads :], vals[i])
        return mlp_rows(ly, x, attn.reshape(b, -1))
