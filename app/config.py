"""Settings from the environment (prefix MEMENTO_) or a .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from memory.embedder_choice import DEFAULT_EMBEDDER, EmbedderName


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMENTO_", env_file=".env", extra="ignore")

    # where things live
    data_dir: Path = Path("./data")
    personas_dir: Path = Path("./personas")
    database_url: str | None = None  # default: sqlite:///<data_dir>/memento.db
    chroma_url: str | None = None  # default: embedded PersistentClient under <data_dir>/chroma
    # the vector index's sentence embedder (memory/embedder_choice.py); changing it on an
    # existing index needs `memento reindex`
    embedder: EmbedderName = DEFAULT_EMBEDDER

    # the model
    model: str | None = None  # GGUF path, mlx-lm model dir or HF id; default: embedded SmolLM2
    llm_url: str | None = None  # remote OpenAI-compatible server (OpenAIEngine) instead of MLX
    llm_api_key: str | None = None
    context_window: int | None = None  # override the model's own (e.g. to test budgeting)
    prompt_cache_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    prefill_step_size: int = Field(default=512, ge=16)

    # the server
    host: str = "127.0.0.1"
    port: int = 8000
    auth: Literal["off", "required"] = "off"
    allow_insecure_bind: bool = False

    # limits
    max_message_chars: int = Field(default=32_000, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1)
    max_history_import: int = Field(default=5_000, ge=1)
    max_tokens_limit: int = Field(default=1024, ge=1)
    default_max_tokens: int = Field(default=256, ge=1)
    max_sessions_per_user: int = Field(default=1_000, ge=1)
    max_persona_bytes: int = Field(default=256_000, ge=1)
    rate_limit_per_minute: int = Field(default=120, ge=1)
    max_concurrent_per_user: int = Field(default=4, ge=1)
    # replies decoding together in one batched step (each holds a KV cache: this bounds their
    # memory at about max_batch x (prompt + reply) tokens); more wait their turn in a queue
    max_batch: int = Field(default=32, ge=1, le=256)
    # replies waiting for a place in the batch beyond which a new one gets 429 + Retry-After
    max_queued_replies: int = Field(default=64, ge=0)
    session_wait_seconds: float = Field(default=30.0, ge=0)  # then 409 session busy
    # a streamed reply's text so far is written to its row this often, so that a hard kill
    # loses at most about this much of it (0: whenever the previous write has finished)
    reply_checkpoint_seconds: float = Field(default=1.0, ge=0)
    # a reply being generated is vouched for this long past each renewal (every third of it);
    # another process or replica takes it for abandoned (interrupted) only once it runs out,
    # at its next sweep (every third too): a killed instance's reply within 8 s, the issue 15
    # target being 10 s. Renewals measured at most 0.1 s late on a loaded 2-core machine, so
    # one may come 4 s late before a live reply looks abandoned (app/leases.py warns)
    reply_lease_seconds: float = Field(default=6.0, ge=1)
    # after a reply, prefill the start of the session's next prompt while the user types
    warm_next_turn: bool = True
    # a turn waits at most this long for recall (a vector server that hangs instead of
    # stopping); then it goes on without recalled turns and its Context says so
    recall_timeout_seconds: float = Field(default=20.0, gt=0)

    # memory: the caches that make a turn cheap, each an LRU over sessions. Resident memory
    # grows with what they hold until their caps (soak run, per stored message, issue 15)
    # the completed histories every turn reads: ~1.2 KB a message (up to ~300 MB at 200k).
    # Below the messages of a user's recall scope (their other sessions) it reloads that scope
    # from the database on every turn
    history_cache_messages: int = Field(default=200_000, ge=1)
    # recall's vectors and BM25 state: ~2.3 KB a message with E5 (a 1.5 KB vector, up to a
    # quarter more as room to grow, and ~0.75 KB of lexical state), ~100k messages at 256.
    # Below a recall scope it reloads that scope's vectors from the vector index every turn
    recall_cache_mb: int = Field(default=256, ge=1)
    # how often freed heap pages go back to the OS (app/heap.py); resident memory is a saw of
    # this period, a few ms of work per trim
    heap_trim_seconds: float = Field(default=60.0, ge=1)

    @property
    def recall_cache_bytes(self) -> int:
        return self.recall_cache_mb * 1024 * 1024

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'memento.db').resolve()}"


def settings_problem(exc: ValidationError) -> str | None:
    """What is wrong with the environment's settings, naming each variable (MEMENTO_...), or
    None when `exc` is not about Settings."""
    if exc.title != Settings.__name__:
        return None
    prefix = Settings.model_config.get("env_prefix", "")
    return "; ".join(
        f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}={e.get('input')!r}: {e['msg']}"
        for e in exc.errors()
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
