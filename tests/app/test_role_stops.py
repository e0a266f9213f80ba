"""A reply never goes on to speak for the user: role prefixes end generation (issue 12)."""

from __future__ import annotations

from pathlib import Path

from support.server import make_settings

from app.chat import ChatService, role_stops
from app.personas.loader import load_personas
from app.turns import TurnOptions

PERSONAS = Path(__file__).resolve().parents[2] / "personas"


def test_turns_stop_at_a_role_prefix_after_the_callers_own_stops(tmp_path: Path) -> None:
    pippa = load_personas(PERSONAS)["pippa"]
    chat = ChatService(make_settings(tmp_path), None, None, None)  # type: ignore[arg-type]
    params = chat.generation_params(pippa, TurnOptions(stop=("END", "\nuser:")))
    assert params.stop[:2] == ("END", "\nuser:")  # the caller's first, none twice
    assert set(role_stops(pippa)) <= set(params.stop)
    assert "\n아빠:" in params.stop and len(params.stop) == len(set(params.stop))
    assert chat.generation_params(pippa, TurnOptions()).stop == role_stops(pippa)
