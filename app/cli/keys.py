"""`memento keys create|list|revoke`: API keys for MEMENTO_AUTH=required.

Keys are stored hashed; `create` prints the plaintext key once, alone on stdout, so scripts can
capture it (`KEY=$(memento keys create --user alice)`). Everything else goes to stderr.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from app.config import Settings

err = Console(stderr=True)
out = Console(highlight=False, width=140)


def _store(settings: Settings) -> Any:
    from app.store.repo import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(settings.resolved_database_url)


def cmd_create(args: argparse.Namespace) -> int:
    name = (args.user or "").strip()
    if not name:
        err.print("[red]--user must not be empty[/]")
        return 2
    store = _store(Settings())
    try:
        user = store.get_or_create_user(name)
        record, key = store.create_api_key(user.id)
    finally:
        store.close()
    # plain print: rich would wrap or style a long key
    print(key, flush=True)
    err.print(
        f"created key {record.id} ({record.prefix}...) for user {user.name!r} ({user.id}); "
        "it is shown only this once"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from app.store.errors import NotFound

    store = _store(Settings())
    try:
        user_id = None
        if args.user:
            try:
                user_id = store.get_user_by_name(args.user).id
            except NotFound:
                err.print(f"[red]no user {args.user!r}[/]")
                return 1
        keys = store.list_api_keys(user_id)
    finally:
        store.close()
    table = Table("id", "prefix", "user", "created", "last used", "status")
    for k in keys:
        table.add_row(
            k.id,
            k.prefix + "...",
            k.user_name,
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
            f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active",
        )
    out.print(table)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from app.store.errors import Conflict, NotFound

    key = args.key.strip()
    if key.endswith("..."):  # pasted from `keys list`
        key = key[:-3]
    store = _store(Settings())
    try:
        record = store.revoke_api_key(key)
    except NotFound:
        err.print(f"[red]no API key {args.key!r}[/] (see `memento keys list`)")
        return 1
    except Conflict as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    finally:
        store.close()
    err.print(f"revoked key {record.id} ({record.prefix}...) of user {record.user_name!r}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="create, list or revoke API keys (MEMENTO_AUTH=required)")
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    q = ksub.add_parser("create", help="a new key for a user (created if new); printed once")
    q.add_argument("--user", required=True, help="the user's name")
    q.set_defaults(func=cmd_create)
    q = ksub.add_parser("list", help="keys (never their secrets)")
    q.add_argument("--user", default=None, help="only this user's keys")
    q.set_defaults(func=cmd_list)
    q = ksub.add_parser("revoke", help="revoke a key by id (key_...) or prefix (mk_...)")
    q.add_argument("key", metavar="ID_OR_PREFIX")
    q.set_defaults(func=cmd_revoke)
