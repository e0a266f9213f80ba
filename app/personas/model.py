"""The Persona: who the model speaks as, validated from a YAML file or an imported card."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.llm.types import DEFAULT_MEMORY_BIAS, MAX_MEMORY_BIAS
from app.personas.book import normalize_book
from app.personas.errors import PersonaError
from memory.persona import with_examples
from memory.types import MemoryScope, PinnedFact

__all__ = ["DialogueLine", "Persona", "PersonaError", "PersonaGeneration", "PersonaMemory"]

StrategyName = Literal[
    "buffer", "window", "token_buffer", "summary", "summary_buffer", "vector", "hybrid"
]
DEFAULT_USER_NAME = "User"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# SillyTavern's macros are case-insensitive ({{User}}, {{CHAR}} are common in shared cards)
_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DialogueLine(_Strict):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class PersonaMemory(_Strict):
    strategy: StrategyName = "summary_buffer"
    params: dict[str, Any] = Field(default_factory=dict)
    # what her sessions remember beyond themselves (a session's own `scope` param wins)
    scope: MemoryScope = "persona"


class PersonaGeneration(_Strict):
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=2.0)
    # added to the logit of each word her recalled notes quote (app/llm/types.py)
    memory_bias: float = Field(default=DEFAULT_MEMORY_BIAS, ge=0.0, le=MAX_MEMORY_BIAS)


class Persona(_Strict):
    """One character. Text may use {{char}} (the persona's name) and {{user}} (the user's)."""

    id: str = Field(pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    description: str = ""  # a blurb for listings; the model sees system_prompt
    system_prompt: str = Field(min_length=1)
    greeting: str = ""
    # said instead of `greeting` to a user she already knows (the relationship holds anything)
    returning_greeting: str = ""
    example_dialogue: list[DialogueLine] = Field(default_factory=list)
    pinned_facts: list[str] = Field(default_factory=list)  # always in context, never summarized
    style_rules: list[str] = Field(default_factory=list)  # how to speak; pinned like facts
    # what the persona calls the user: fills {{user}} and labels the user in example dialogue
    user_name: str = Field(default=DEFAULT_USER_NAME, min_length=1, max_length=100)
    # her lorebook (World Info), kept as the Character Card V3 `character_book` object itself so
    # every field, extensions included, round-trips; memory/lore reads and validates it
    character_book: dict[str, Any] | None = None
    # the card she was imported from: its `data` object minus `character_book` (held above),
    # verbatim, so a V3 export gives back what we do not map (tags, creator, alternate
    # greetings, extensions, the unmerged description/personality/scenario, ...)
    card: dict[str, Any] | None = None
    memory: PersonaMemory = Field(default_factory=PersonaMemory)
    generation: PersonaGeneration = Field(default_factory=PersonaGeneration)

    @field_validator("pinned_facts", "style_rules")
    @classmethod
    def _no_blank_items(cls, items: list[str]) -> list[str]:
        for i, item in enumerate(items):
            if not item.strip():
                raise ValueError(f"item {i} is empty")
        return [item.strip() for item in items]

    @field_validator("character_book")
    @classmethod
    def _book_shape(cls, book: dict[str, Any] | None) -> dict[str, Any] | None:
        # the same check and V3 normalization a card's book gets (a YAML persona may hold one)
        if book is None:
            return None
        try:
            return normalize_book(book, "persona", "character_book")
        except PersonaError as e:
            raise ValueError(f"{e.field}: {e.problem}") from None

    def fill(self, text: str, user_name: str | None = None) -> str:
        """Replace the {{char}} and {{user}} macros, in any letter case as SillyTavern does
        (user_name defaults to self.user_name)."""
        user = user_name or self.user_name
        return _MACRO.sub(lambda m: self.name if m[1].lower() == "char" else user, text)

    def render_system_prompt(self, user_name: str | None = None) -> str:
        """The system message with the whole example dialogue (the Context shows as much of it
        as its budget affords: memory/persona.py)."""
        user_name = user_name or self.user_name
        return with_examples(
            self.fill(self.system_prompt, user_name), self.example_lines(user_name)
        )

    def example_lines(self, user_name: str | None = None) -> list[str]:
        """The example dialogue as transcript lines ("아빠: 피파야, 뭐 하고 있었어?")."""
        user_name = user_name or self.user_name
        return [
            f"{user_name if ln.role == 'user' else self.name}: {self.fill(ln.content, user_name)}"
            for ln in self.example_dialogue
        ]

    def pinned(self, user_name: str | None = None) -> list[PinnedFact]:
        """Pinned facts (source "persona") then style rules (source "style"), stable ids."""
        facts = [
            PinnedFact(id=f"{self.id}:fact:{i}", text=self.fill(t, user_name), source="persona")
            for i, t in enumerate(self.pinned_facts)
        ]
        rules = [
            PinnedFact(id=f"{self.id}:style:{i}", text=self.fill(t, user_name), source="style")
            for i, t in enumerate(self.style_rules)
        ]
        return facts + rules

    def example_messages(self, user_name: str | None = None) -> list[dict[str, str]]:
        """The example dialogue as chat messages, macros filled."""
        return [
            {"role": line.role, "content": self.fill(line.content, user_name)}
            for line in self.example_dialogue
        ]
