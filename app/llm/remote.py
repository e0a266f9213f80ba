"""Build an OpenAIEngine from Settings: a model served elsewhere (MEMENTO_LLM_URL)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import httpx

from app.config import Settings
from app.llm.approx_counter import ApproxCounter, encoding_from_bpe_vocab
from app.llm.embedded import default_gguf_path
from app.llm.openai_engine import OpenAIEngine, TokenCounter
from app.llm.tokenizer import ChatTokenizer
from app.llm.types import ModelLoadError
from app.llm.worker import MLXWorker

log = logging.getLogger(__name__)

UNKNOWN_CONTEXT = 4096  # conservative when neither the settings nor a local GGUF say


class ExactCounter:
    """The model's own tokenizer and chat template: budgets are exact."""

    def __init__(self, tokenizer: ChatTokenizer) -> None:
        self._tok = tokenizer

    def count(self, messages: Sequence[Mapping[str, str]]) -> int:
        return self._tok.count(messages)

    def count_message(self, message: Mapping[str, str]) -> int:
        return self._tok.count_message(message)

    def count_overhead(self) -> int:
        return self._tok.overhead


def _gguf_metadata(path: Path, worker: MLXWorker) -> dict:
    import mlx.core as mx  # app.llm's __init__ has loaded BLAS already

    if not path.is_file():
        raise ModelLoadError(f"tokenizer GGUF {path} does not exist")
    try:
        # return_metadata=True: (tensors, metadata); the stub has one union for every form
        loaded = worker.call(mx.load, str(path), return_metadata=True)
        _, meta = cast(tuple[dict[str, mx.array], dict[str, Any]], loaded)
    except Exception as exc:  # noqa: BLE001 - any reader error is a bad file
        raise ModelLoadError(f"{path} is not a readable GGUF file: {exc}") from exc
    return meta


def _counter(settings: Settings, worker: MLXWorker) -> tuple[TokenCounter, int, str]:
    """Exact when MEMENTO_MODEL names the served model's GGUF; approximate otherwise."""
    if settings.model and settings.model.lower().endswith(".gguf"):
        meta = _gguf_metadata(Path(settings.model).expanduser(), worker)
        context = int(meta.get("llama.context_length") or UNKNOWN_CONTEXT)
        return ExactCounter(ChatTokenizer.from_gguf_metadata(meta)), context, "exact"
    meta = _gguf_metadata(default_gguf_path(), worker)
    encoding = encoding_from_bpe_vocab(list(meta["tokenizer.ggml.tokens"]))
    return ApproxCounter(encoding), UNKNOWN_CONTEXT, "approximate (+15%)"


def _discover_model(url: str, api_key: str | None) -> str | None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(f"{url.rstrip('/')}/models", headers=headers, timeout=5.0)
        resp.raise_for_status()
        data = resp.json().get("data") or []
        return str(data[0]["id"]) if data else None
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        log.warning("model server at %s is not answering yet (%s); requests will get 503", url, exc)
        return None


def load_remote_engine(settings: Settings, worker: MLXWorker) -> OpenAIEngine:
    assert settings.llm_url is not None
    counter, context, counting = _counter(settings, worker)
    model_id = _discover_model(settings.llm_url, settings.llm_api_key)
    engine = OpenAIEngine(
        settings.llm_url,
        counter,
        context_window=settings.context_window or context,
        model_id=model_id,
        api_key=settings.llm_api_key,
    )
    log.info(
        "generating on %s (model %s, context %d, token counts %s)",
        settings.llm_url,
        engine.model_id,
        engine.context_window,
        counting,
    )
    return engine
