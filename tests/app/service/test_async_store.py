"""AsyncStore is the Store, awaitable: every method has its Store twin's signature and gives
what the twin gives, off the event loop."""

from __future__ import annotations

import inspect
import threading
from typing import Any

from app.service.store import AsyncStore
from app.store.repo import Store


def _methods() -> dict[str, Any]:
    return {
        name: fn
        for name, fn in vars(AsyncStore).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(fn)
    }


def test_every_method_has_its_store_twins_signature() -> None:
    methods = _methods()
    assert len(methods) > 20
    for name, fn in methods.items():
        twin = getattr(Store, name, None)
        assert twin is not None, f"AsyncStore.{name} has no Store.{name}"
        assert not inspect.iscoroutinefunction(twin)
        assert inspect.signature(fn) == inspect.signature(twin), name


async def test_calls_run_in_a_thread_and_return_the_stores_answer(
    store: Store, monkeypatch: Any
) -> None:
    user = store.get_or_create_user()
    created = store.create_session(user.id, "pippa", "window", {}, "hello")
    astore = AsyncStore(store)
    threads: list[int] = []
    get_session = store.get_session

    def spy(user_id: str, session_id: str) -> Any:
        threads.append(threading.get_ident())
        return get_session(user_id, session_id)

    monkeypatch.setattr(store, "get_session", spy)
    assert await astore.get_session(user.id, created.id) == created
    assert threads and threads[0] != threading.get_ident()
    updated = await astore.update_session(user.id, created.id, clear_title=True)
    assert updated.title is None
    assert [s.id for s in await astore.list_sessions(user.id)] == [created.id]
    assert await astore.export_session(user.id, created.id) == store.export_session(
        user.id, created.id
    )
