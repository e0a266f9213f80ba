"""The API schemas share the store's Literals, and OpenAPI still spells them out as enums."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from app.config import Settings
from app.main import create_app
from app.store.records import MessageStatus, Role

REPO = Path(__file__).resolve().parents[2]


def test_openapi_shows_message_status_and_role_as_enums(tmp_path: Path) -> None:
    # building the OpenAPI document needs no model: the lifespan (which loads one) never runs
    app = create_app(Settings(data_dir=tmp_path, personas_dir=REPO / "personas"))
    schemas = app.openapi()["components"]["schemas"]
    statuses = set(get_args(MessageStatus))
    assert statuses == {"complete", "interrupted", "error", "pending"}
    # ExportedMessage: the export format (app/store/transfer.py) spells the same values
    for model in ("MessageOut", "ExportedMessage"):
        props = schemas[model]["properties"]
        assert set(props["status"]["enum"]) == statuses, (model, props["status"])
        assert set(props["role"]["enum"]) == set(get_args(Role)), (model, props["role"])
