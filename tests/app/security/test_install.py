"""install_security on the real create_app (no lifespan: nothing heavy is loaded)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from app.security import install_security
from app.security.auth import AuthMiddleware
from app.security.ratelimit import RateLimitMiddleware


def settings(tmp_path: Path, auth: str) -> Settings:
    return Settings(data_dir=tmp_path, auth=auth, database_url=None, chroma_url=None)


def middleware(app: object) -> list[type]:
    return [m.cls for m in app.user_middleware]  # type: ignore[attr-defined]


def test_auth_required_installs_auth_outside_the_rate_limit_once(tmp_path: Path) -> None:
    s = settings(tmp_path, "required")
    app = create_app(s)
    install_security(app, s)
    install_security(app, s)  # idempotent: create_app may already have called it
    classes = middleware(app)
    assert classes.count(AuthMiddleware) == 1 and classes.count(RateLimitMiddleware) == 1
    # user_middleware is outermost first: auth must run before the rate limit (it names the user)
    assert classes.index(AuthMiddleware) < classes.index(RateLimitMiddleware)


def test_auth_required_is_documented(tmp_path: Path) -> None:
    s = settings(tmp_path, "required")
    app = create_app(s)
    install_security(app, s)
    doc = app.openapi()
    assert doc["components"]["securitySchemes"]["bearer"]["type"] == "http"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path == "/healthz":
                assert "401" not in op["responses"], (method, path)
                continue
            assert {"401", "429"} <= set(op["responses"]), (method, path)
            assert op["security"] == [{"bearer": []}]


def test_auth_off_keeps_the_rate_limit_and_no_auth(tmp_path: Path) -> None:
    s = settings(tmp_path, "off")
    app = create_app(s)
    install_security(app, s)
    classes = middleware(app)
    assert AuthMiddleware not in classes and RateLimitMiddleware in classes
    doc = app.openapi()
    assert "securitySchemes" not in doc.get("components", {})
    op = doc["paths"]["/v1/sessions"]["get"]
    assert "429" in op["responses"] and "401" not in op["responses"]


def test_the_startup_log_says_which_auth_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="memento.security"):
        create_app(settings(tmp_path, "off"))
    assert "auth: off" in caplog.text and "single local user" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="memento.security"):
        create_app(settings(tmp_path, "required"))
    assert "auth: required" in caplog.text
