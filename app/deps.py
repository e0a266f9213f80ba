"""FastAPI dependencies: the app's resources (built by the lifespan) and the current user.

Routes declare what they need with the `Annotated` aliases below (`MemoryAdminDep`,
`AsyncStoreDep`, `ChatDep`, `CurrentUser`...), never by reaching into `app.state` themselves:
the auth layer has one seam. Routes read the store through `AsyncStoreDep` (awaitable, never a
blocking call on the event loop) and leave multi-step work to the services of `app/service/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Protocol, TypeVar, runtime_checkable

from fastapi import Depends, Request

from app.config import Settings
from app.errors import ServiceStarting, UnauthorizedError
from app.llm.types import Engine
from app.personas.catalog import PersonaCatalog, UserPersonas
from app.service.chat import ChatService
from app.service.completion import Completions, ServedModel
from app.service.lore_admin import LoreAdmin
from app.service.memory_admin import MemoryAdmin
from app.service.persona_admin import PersonaAdmin
from app.service.relationship_admin import RelationshipAdmin
from app.service.store import AsyncStore
from app.store.repo import Store

if TYPE_CHECKING:  # built by the lifespan, imported there (after load_blas, for the MLX ones)
    from app.data_lock import DataDirLock
    from app.heap import HeapTrimmer
    from app.leases import LeaseKeeper
    from app.llm.worker import MLXWorker
    from app.recall_guard import GuardedRecaller
    from memory.vector_index import Embedder, VectorIndex


@runtime_checkable
class Closeable(Protocol):
    """A resource the lifespan closes at shutdown, if it has something to close. The vector
    index is checked against it: VectorIndex has no close() today, so nothing is closed for it;
    an index that holds a connection gets closed by adding one."""

    async def close(self) -> None: ...


@dataclass
class Services:
    """Every heavy resource of a running app; the lifespan fills it in and tears it down."""

    settings: Settings
    engine: Engine | None = None
    store: Store | None = None
    astore: AsyncStore | None = None  # the store, awaitable (app/service/store.py)
    personas: PersonaCatalog | None = None
    chat: ChatService | None = None
    memory_admin: MemoryAdmin | None = None  # sessions and their memory (app/service/)
    worker: MLXWorker | None = None
    embedder: Embedder | None = None
    index: VectorIndex | None = None
    recaller: GuardedRecaller | None = None
    blas: str | None = None
    local_user_id: str | None = None
    leases: LeaseKeeper | None = None
    heap: HeapTrimmer | None = None  # returns freed heap pages to the OS (app/heap.py)
    data_lock: DataDirLock | None = None  # when the data directory is ours alone

    def vector_backend(self) -> str:
        """What serves vector recall, for /healthz and the startup log."""
        index = self.index
        if index is None:
            return "none"
        described = getattr(index, "backend", None) or getattr(index, "description", None)
        if described:
            return str(described)
        return (
            f"chroma ({self.settings.chroma_url})"
            if self.settings.chroma_url
            else ("chroma (embedded)")
        )


@dataclass(frozen=True)
class CurrentUserInfo:
    id: str
    name: str


_T = TypeVar("_T")


def _ready(resource: _T | None, what: str) -> _T:
    """`resource`, or a 503 saying `what` while the lifespan has not built it yet."""
    if resource is None:
        raise ServiceStarting(what)
    return resource


def get_services(request: Request) -> Services:
    return _ready(getattr(request.app.state, "services", None), "the service is not ready")


Svc = Annotated[Services, Depends(get_services)]


def get_settings(services: Svc) -> Settings:
    return services.settings


def get_store(services: Svc) -> Store:
    return _ready(services.store, "the store is not ready")


def get_async_store(services: Svc) -> AsyncStore:
    return _ready(services.astore, "the store is not ready")


def get_engine(services: Svc) -> Engine:
    return _ready(services.engine, "the model is still loading")


def get_chat(services: Svc) -> ChatService:
    return _ready(services.chat, "the chat service is not ready")


def get_memory_admin(services: Svc) -> MemoryAdmin:
    return _ready(services.memory_admin, "the chat service is not ready")


@dataclass(frozen=True)
class ServiceStatus:
    """What /healthz says the running service is made of."""

    model_id: str
    context_window: int
    backend: str
    store: str
    vector: str
    blas: str | None
    max_tokens_limit: int


def get_status(services: Svc) -> ServiceStatus:
    engine, store = services.engine, services.store
    if engine is None or store is None:
        raise ServiceStarting("the service is starting")
    return ServiceStatus(
        model_id=engine.model_id,
        context_window=engine.context_window,
        backend=engine.backend,
        store=store.backend,
        vector=services.vector_backend(),
        blas=services.blas,
        max_tokens_limit=services.settings.max_tokens_limit,
    )


StatusDep = Annotated[ServiceStatus, Depends(get_status)]


def get_current_user(request: Request, services: Svc) -> CurrentUserInfo:
    """The caller. Auth off: the single local user. Auth on: whoever the auth layer put on
    `request.state.user` (an API-key middleware or a replacement of this dependency)."""
    user = getattr(request.state, "user", None)
    if user is not None:
        return CurrentUserInfo(id=user.id, name=getattr(user, "name", user.id))
    if services.settings.auth == "required":
        raise UnauthorizedError("missing or invalid API key (Authorization: Bearer <key>)")
    if services.local_user_id is None:
        raise ServiceStarting("the store is not ready")
    return CurrentUserInfo(id=services.local_user_id, name="local")


CurrentUser = Annotated[CurrentUserInfo, Depends(get_current_user)]


def get_personas(services: Svc, user: CurrentUser) -> UserPersonas:
    """The persona catalog as the caller sees it: the files and their own uploads only."""
    catalog: PersonaCatalog = _ready(services.personas, "personas are not loaded")
    return catalog.for_user(user.id)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
AsyncStoreDep = Annotated[AsyncStore, Depends(get_async_store)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
MemoryAdminDep = Annotated[MemoryAdmin, Depends(get_memory_admin)]


def get_relationship_admin(store: AsyncStoreDep) -> RelationshipAdmin:
    return RelationshipAdmin(store)  # holds nothing but the store: one per request


def get_lore_admin(store: AsyncStoreDep) -> LoreAdmin:
    return LoreAdmin(store)  # holds nothing but the store: one per request


RelationshipAdminDep = Annotated[RelationshipAdmin, Depends(get_relationship_admin)]
LoreAdminDep = Annotated[LoreAdmin, Depends(get_lore_admin)]
PersonasDep = Annotated[UserPersonas, Depends(get_personas)]


def get_persona_admin(personas: PersonasDep) -> PersonaAdmin:
    return PersonaAdmin(personas)  # holds nothing but the caller's view: one per request


PersonaAdminDep = Annotated[PersonaAdmin, Depends(get_persona_admin)]


def get_completions(chat: ChatDep, engine: EngineDep) -> Completions:
    # the chat service first: its 503 is what a completion answered before the engine's
    return Completions(chat, engine)  # holds nothing of its own: one per request


CompletionsDep = Annotated[Completions, Depends(get_completions)]


def get_served_model(engine: EngineDep) -> ServedModel:
    return ServedModel(engine)  # holds nothing but the engine: one per request


ServedModelDep = Annotated[ServedModel, Depends(get_served_model)]
