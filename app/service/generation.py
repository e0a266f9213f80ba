"""The one path from the engine's stream to a reply, for a session turn and a stateless completion
alike: `EngineReply` reads the engine's chunks, cuts them where the reply must end (a session
turn's `ReplyCut`: its stops and the transcript's speaker labels), keeps the text, the
log-probabilities when asked for, the finish reason and the engine's usage. What each does with
the pieces differs and stays with it: a turn pushes them to its watchers and checkpoints them
onto its pending row (app/service/chat.py), a stateless completion only yields them
(app/service/completion.py).

Also the stops a persona's turn ends at (`role_stops`, `context_speakers`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from app.llm.stops import ReplyCut
from app.llm.types import Engine, FinishReason, GenerationParams, TokenLogprob, Usage
from app.personas.model import Persona
from memory.speakers import speakers_in

# A streamed piece: its text and, when asked for, its tokens' log-probabilities.
Piece = tuple[str, list[TokenLogprob] | None]


def role_stops(persona: Persona) -> tuple[str, ...]:
    """Where a reply that starts speaking for someone else ends. Recalled turns reach the model
    as "user: ..." / "assistant: ..." lines and the persona's example dialogue as "아빠: ...", so
    a small model tends to go on with the transcript ("... episode. user: Do you have"): the
    user's words are never hers to write (issue 12)."""
    return ("\nuser:", " user: ", "\nassistant:", f"\n{persona.user_name}:")


def context_speakers(persona: Persona, messages: Iterable[dict[str, str]]) -> tuple[str, ...]:
    """Who speaks in what the engine sees: the persona, her user, and the speakers of recalled
    or imported turns ("Caroline: ..."). The reply must not go on as one of them (issue 12)."""
    return speakers_in((m["content"] for m in messages), (persona.user_name, persona.name))


class EngineReply:
    """A reply streaming from the engine: iterate `pieces()` once; then `parts`, `finish`,
    `usage` and `logprobs` say what came. Closing the iteration early (a cancelled turn) closes
    the engine's stream at once.

    With `cut` (a session turn), a piece is what the cut lets through, and a stop it finds ends
    the reply with finish "stop" and the usage of the chunk it was found in (none before the
    engine's last one); the engine stops there too, but a remote one takes four stops at most,
    so neither the stream nor the stored reply speaks for the user. Without it (a stateless
    completion, the client's own stops) the engine's chunks pass as they come."""

    def __init__(
        self,
        engine: Engine,
        messages: list[dict[str, str]],
        params: GenerationParams,
        cache_key: str,
        cut: ReplyCut | None = None,
    ) -> None:
        self.engine, self.messages, self.params, self.cache_key = (
            engine,
            messages,
            params,
            cache_key,
        )
        self.cut = cut
        self.want_logprobs = params.logprobs is not None
        self.parts: list[str] = []  # the reply's text, piece by piece
        self.logprobs: list[TokenLogprob] = []  # when asked for
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None  # as the engine counted it, from its last chunk

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def _piece(self, text: str, lp: list[TokenLogprob] | None) -> Piece | None:
        if not (text or lp):
            return None
        self.parts.append(text)
        self.logprobs.extend(lp or ())
        return text, lp

    async def pieces(self) -> AsyncIterator[Piece]:
        stream = self.engine.stream(self.messages, self.params, cache_key=self.cache_key)
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                text, hit = (chunk.text, False) if self.cut is None else self.cut.feed(chunk.text)
                lp = chunk.logprobs if self.want_logprobs and chunk.logprobs else None
                if (piece := self._piece(text, lp)) is not None:
                    yield piece
                if hit:
                    self.finish, self.usage = "stop", chunk.usage
                    return
                if chunk.finish_reason is not None:
                    if (
                        self.cut is not None
                        and (piece := self._piece(self.cut.flush(), None)) is not None
                    ):
                        yield piece
                    self.finish, self.usage = chunk.finish_reason, chunk.usage
