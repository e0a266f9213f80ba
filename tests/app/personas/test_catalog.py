"""The persona catalog: files for everyone, uploads private to their uploader, per-user ids,
built-in ids refused, uploads reloaded per owner on restart. Real persona files, real SQLite."""

from __future__ import annotations

import pytest
from support.server import PERSONAS

from app.errors import ConflictError, NotFoundError
from app.personas.catalog import PersonaCatalog
from app.personas.errors import PersonaError
from app.personas.loader import load_personas
from app.store.repo import Store

FILES = load_personas(PERSONAS)


def upload(pid: str, secret: str) -> dict[str, object]:
    return {
        "id": pid,
        "name": pid.title(),
        "system_prompt": f"You are {pid}. {secret}",
        "pinned_facts": [secret],
    }


@pytest.fixture
def users(store: Store) -> tuple[str, str]:
    return store.get_or_create_user("alice").id, store.get_or_create_user("bob").id


def catalog_on(store: Store) -> PersonaCatalog:
    catalog = PersonaCatalog(FILES)
    catalog.attach_store(store)
    return catalog


def test_an_upload_is_seen_only_by_its_uploader(store: Store, users: tuple[str, str]) -> None:
    alice, bob = users
    catalog = catalog_on(store)
    catalog.add(upload("alice-bot", "Alice's diary key is 4711"), alice)

    a, b = catalog.for_user(alice), catalog.for_user(bob)
    assert "alice-bot" in a and "alice-bot" not in b
    assert "4711" in a.get("alice-bot").system_prompt
    assert [e.persona.id for e in a.list()] == [*sorted(FILES), "alice-bot"]
    assert [e.persona.id for e in b.list()] == sorted(FILES)
    # bob hears exactly what he hears for an id nobody has
    with pytest.raises(NotFoundError) as theirs:
        b.get("alice-bot")
    with pytest.raises(NotFoundError) as nobody:
        b.get("nobody-bot")
    assert str(theirs.value).replace("alice-bot", "X") == str(nobody.value).replace(
        "nobody-bot", "X"
    )
    assert theirs.value.field == nobody.value.field == "persona"
    # a lookup for no one (None) sees the files only
    assert catalog.has("pippa", None) and not catalog.has("alice-bot", None)


def test_ids_are_per_user(store: Store, users: tuple[str, str]) -> None:
    alice, bob = users
    catalog = catalog_on(store)
    catalog.add(upload("same-bot", "A's secret"), alice)
    catalog.add(upload("same-bot", "B's secret"), bob)
    assert "A's secret" in catalog.get("same-bot", alice).system_prompt
    assert "B's secret" in catalog.get("same-bot", bob).system_prompt
    with pytest.raises(ConflictError, match="you already uploaded a persona 'same-bot'") as err:
        catalog.add(upload("same-bot", "again"), alice)
    assert err.value.field == "id"


@pytest.mark.parametrize("builtin", sorted(FILES))
def test_a_builtin_id_cannot_be_uploaded(
    store: Store, users: tuple[str, str], builtin: str
) -> None:
    catalog = catalog_on(store)
    with pytest.raises(ConflictError, match=f"'{builtin}' is a built-in persona") as err:
        catalog.add(upload(builtin, "shadow"), users[0])
    assert err.value.field == "id"
    assert catalog.get(builtin, users[0]) == FILES[builtin]
    assert store.list_personas() == []


def test_restart_reloads_each_upload_for_its_owner_only(
    store: Store, users: tuple[str, str]
) -> None:
    alice, bob = users
    catalog_on(store).add(upload("alice-bot", "kept"), alice)
    # an upload taken over later by a new persona file: the file wins for everyone
    store.save_persona(
        bob, "pippa", '{"id": "pippa", "name": "Fake", "system_prompt": "x"}', "json"
    )

    again = catalog_on(store)  # a restart: a new catalog on the same database
    assert "kept" in again.get("alice-bot", alice).system_prompt
    assert not again.has("alice-bot", bob)
    assert again.get("pippa", bob) == FILES["pippa"]
    assert [e.source for e in again.list(bob)] == ["file"] * len(FILES)
    with pytest.raises(ConflictError):
        again.add(upload("alice-bot", "twice"), alice)  # still hers after the restart
    again.add(upload("alice-bot", "bob's own"), bob)


# -- choose an id, replace, delete, set a book -------------------------------------------------
def test_an_upload_may_choose_its_id(store: Store, users: tuple[str, str]) -> None:
    alice, _ = users
    catalog = catalog_on(store)
    assert catalog.add(upload("alice-bot", "x"), alice, persona_id="my-bot").id == "my-bot"
    assert catalog.has("my-bot", alice) and not catalog.has("alice-bot", alice)
    with pytest.raises(ConflictError) as err:
        catalog.add(upload("other", "y"), alice, persona_id="my-bot")
    assert "'my-bot'" in str(err.value) and "PUT /v1/personas/my-bot" in str(err.value)
    with pytest.raises(PersonaError) as bad:
        catalog.add(upload("other", "y"), alice, persona_id="Not A Slug")
    assert bad.value.field == "id"


def test_replace_keeps_the_id_and_survives_a_restart(store: Store, users: tuple[str, str]) -> None:
    alice, bob = users
    catalog = catalog_on(store)
    catalog.add(upload("alice-bot", "old secret"), alice)
    new = catalog.replace("alice-bot", upload("renamed-in-body", "new secret"), alice)
    assert new.id == "alice-bot" and "new secret" in new.system_prompt
    assert "new secret" in catalog_on(store).get("alice-bot", alice).system_prompt
    with pytest.raises(NotFoundError):  # not bob's: the same answer as no persona at all
        catalog.replace("alice-bot", upload("x", "bob's"), bob)
    with pytest.raises(NotFoundError):
        catalog.replace("nobody", upload("x", "y"), alice)
    with pytest.raises(ConflictError, match="built-in"):
        catalog.replace("pippa", upload("pippa", "shadow"), alice)
    assert catalog.get("pippa", alice) == FILES["pippa"]
    assert "new secret" in catalog.get("alice-bot", alice).system_prompt  # untouched by bob


def test_a_failed_replace_keeps_the_old_persona(store: Store, users: tuple[str, str]) -> None:
    alice, _ = users
    catalog = catalog_on(store)
    catalog.add(upload("alice-bot", "kept"), alice)
    with pytest.raises(PersonaError):
        catalog.replace("alice-bot", {"name": "No prompt"}, alice)
    assert "kept" in catalog.get("alice-bot", alice).system_prompt
    assert "kept" in catalog_on(store).get("alice-bot", alice).system_prompt


def test_delete_is_per_user_and_frees_the_id(store: Store, users: tuple[str, str]) -> None:
    alice, bob = users
    catalog = catalog_on(store)
    catalog.add(upload("same-bot", "A"), alice)
    catalog.add(upload("same-bot", "B"), bob)
    with pytest.raises(ConflictError, match="built-in"):
        catalog.delete("pippa", alice)
    catalog.delete("same-bot", alice)
    assert not catalog.has("same-bot", alice) and catalog.has("same-bot", bob)
    with pytest.raises(NotFoundError):
        catalog.delete("same-bot", alice)
    assert [r.user_id for r in store.list_personas()] == [bob]
    assert not catalog_on(store).has("same-bot", alice)
    catalog.add(upload("same-bot", "again"), alice)  # the id is free again


def test_a_session_whose_persona_was_deleted_says_how_to_go_on(
    store: Store, users: tuple[str, str]
) -> None:
    alice, _ = users
    catalog = catalog_on(store)
    catalog.add(upload("alice-bot", "x"), alice)
    session = store.create_session(alice, "alice-bot", "buffer", {}, None)
    assert catalog.session_persona(session).id == "alice-bot"
    catalog.delete("alice-bot", alice)
    with pytest.raises(ConflictError) as err:
        catalog.session_persona(session)
    assert err.value.field == "persona" and session.id in err.value.message
    assert "POST /v1/personas?id=alice-bot" in err.value.message
    catalog.add(upload("alice-bot", "back"), alice)
    assert "back" in catalog.session_persona(session).system_prompt


def test_set_book_validates_and_replaces(store: Store, users: tuple[str, str]) -> None:
    alice, bob = users
    catalog = catalog_on(store)
    catalog.add(upload("alice-bot", "x"), alice)
    book = {"entries": [{"keys": ["dragon"], "content": "Ember is a red dragon."}]}
    persona = catalog.set_book("alice-bot", book, alice)
    assert persona.character_book is not None
    assert persona.character_book["entries"][0]["use_regex"] is False
    assert catalog_on(store).get("alice-bot", alice).character_book == persona.character_book
    with pytest.raises(PersonaError, match="keys"):
        catalog.set_book("alice-bot", {"entries": [{"content": "no keys"}]}, alice)
    with pytest.raises(NotFoundError):
        catalog.set_book("alice-bot", book, bob)
    with pytest.raises(ConflictError):
        catalog.set_book("pippa", book, alice)
    assert catalog.set_book("alice-bot", None, alice).character_book is None
