"""Build the local engine from Settings: the embedded GGUF, a GGUF path, or an mlx-lm model."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from app.blas import load_blas

BLAS = load_blas()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402

from app.config import Settings  # noqa: E402
from app.llm.embedded import default_gguf_path  # noqa: E402
from app.llm.gguf import load_gguf  # noqa: E402
from app.llm.mlx_engine import MLXEngine  # noqa: E402
from app.llm.tokenizer import ChatTokenizer  # noqa: E402
from app.llm.types import Engine, ModelLoadError  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_HF_CONTEXT = 4096


def _prepare(model: nn.Module) -> str:
    """The CPU speed-up hook (app/llm/cpu_fast.py), when present."""
    try:
        from app.llm.cpu_fast import prepare_for_cpu
    except ImportError:
        return "weights as loaded"
    return prepare_for_cpu(model)


class HFChatTokenizer(ChatTokenizer):
    """ChatTokenizer over an mlx-lm TokenizerWrapper (Hugging Face tokenizer + its template)."""

    def __init__(self, wrapper: Any) -> None:  # no super().__init__: nothing GGUF to build
        self._wrapper = wrapper
        hf = wrapper._tokenizer
        self._hf = hf
        self.tokens = []
        self.special_ids = frozenset(getattr(hf, "all_special_ids", []) or [])
        self.stop_ids = frozenset(wrapper.eos_token_ids)
        self.bos_id = hf.bos_token_id
        self.eos_id = hf.eos_token_id
        self.bos_token = hf.bos_token or ""
        self.eos_token = hf.eos_token or ""
        # A template that starts with bos_token adds it; the tokenizer otherwise would.
        self.add_bos = bool(getattr(hf, "add_bos_token", False))
        self._marker = f"\x00c{os.urandom(6).hex()}:"
        self._probe = [{"role": "system", "content": "x"}]

    @property
    def vocab_size(self) -> int:
        return len(self._hf)

    def encode(self, text: str, *, special: bool = False) -> list[int]:
        if special:
            return list(self._hf.encode(text, add_special_tokens=False))
        return list(self._hf(text, add_special_tokens=False, split_special_tokens=True).input_ids)

    def encode_many(self, texts: Any, *, special: bool = False) -> list[list[int]]:
        return [self.encode(t, special=special) for t in texts]

    def decode(self, ids: Any, *, skip_special: bool = False) -> str:
        return self._hf.decode(list(ids), skip_special_tokens=skip_special)

    def token_bytes(self, token_id: int) -> bytes:
        return self.decode([token_id]).encode("utf-8")

    def tokenizer_json(self) -> str:
        backend = getattr(self._hf, "backend_tokenizer", None)
        if backend is None:
            raise ValueError("JSON mode needs a fast (Rust) Hugging Face tokenizer")
        return str(backend.to_str())

    def detokenizer(self) -> Any:
        return _WrapperDetokenizer(self._wrapper.detokenizer)

    def _render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
        try:
            return self._hf.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except Exception as exc:  # noqa: BLE001 - jinja and transformers errors alike
            raise ValueError(f"the chat template rejected the messages: {exc}") from exc


class _WrapperDetokenizer:
    def __init__(self, detok: Any) -> None:
        self._d = detok
        self.text = ""

    def add(self, token_id: int) -> str:
        self._d.add_token(token_id)
        delta = self._d.last_segment
        self.text += delta
        return delta

    def flush(self) -> str:
        self._d.finalize()
        delta = self._d.last_segment
        self.text += delta
        return delta


def _load_gguf_engine(
    path: Path, settings: Settings, worker: MLXWorker
) -> tuple[nn.Module, ChatTokenizer, int, dict[str, Any]]:
    def build() -> tuple[Any, str]:
        loaded = load_gguf(path)
        return loaded, _prepare(loaded.model)

    loaded, prepared = worker.call(build)
    tokenizer = ChatTokenizer.from_gguf_metadata(loaded.metadata)
    bits = sorted(set(loaded.quantization.values()))
    info = {"format": "gguf", "path": str(path), "quantized_bits": bits, "prepare": prepared}
    return loaded.model, tokenizer, loaded.context_length, info


def _load_mlx_lm_engine(
    spec: str, worker: MLXWorker
) -> tuple[nn.Module, ChatTokenizer, int, dict[str, Any]]:
    local = Path(spec).expanduser()
    if not local.exists() and (spec.startswith((".", "/", "~")) or spec.count("/") != 1):
        raise ModelLoadError(f"model path {spec} does not exist (and is not a Hugging Face id)")

    def build() -> tuple[Any, Any, dict[str, Any], str]:
        from mlx_lm import load

        loaded = load(str(local) if local.exists() else spec, return_config=True)
        # return_config=True: the 3-tuple (mlx_lm declares both shapes, without an overload)
        model, wrapper, config = cast(tuple[nn.Module, Any, dict[str, Any]], loaded)
        return model, wrapper, config, _prepare(model)

    try:
        model, wrapper, config, prepared = worker.call(build)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub, file and config errors alike
        hint = ""
        if not local.exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            hint = " (HF_HUB_OFFLINE=1: only models already in the Hugging Face cache load)"
        raise ModelLoadError(f"could not load model {spec!r}: {exc}{hint}") from exc
    context = int(config.get("max_position_embeddings") or DEFAULT_HF_CONTEXT)
    info = {"format": "mlx-lm", "path": spec, "prepare": prepared}
    return model, HFChatTokenizer(wrapper), context, info


def load_engine(settings: Settings, worker: MLXWorker) -> Engine:
    """The configured engine: a remote server when MEMENTO_LLM_URL is set, else the local model
    (weights loaded on the worker thread) in an MLXEngine."""
    if settings.llm_url:
        from app.llm.remote import load_remote_engine

        return load_remote_engine(settings, worker)
    spec = settings.model
    if spec is None:
        path = default_gguf_path()
        model, tokenizer, context, info = _load_gguf_engine(path, settings, worker)
        model_id = path.stem
    elif spec.lower().endswith(".gguf"):
        path = Path(spec).expanduser()
        model, tokenizer, context, info = _load_gguf_engine(path, settings, worker)
        model_id = path.stem
    else:
        model, tokenizer, context, info = _load_mlx_lm_engine(spec, worker)
        model_id = spec.rstrip("/").split("/")[-1] if Path(spec).exists() else spec
    info["blas"] = BLAS
    info["device"] = str(worker.call(mx.default_device))
    window = settings.context_window or context
    log.info("loaded %s (context %d): %s", model_id, window, info)
    return MLXEngine(
        model,
        tokenizer,
        worker,
        model_id=model_id,
        context_window=window,
        prompt_cache_bytes=settings.prompt_cache_bytes,
        prefill_step_size=settings.prefill_step_size,
        max_queued=settings.max_queued_replies,
        info=info,
    )
