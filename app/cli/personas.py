"""`memento personas list|show|validate|import`: the persona files of personas/
(MEMENTO_PERSONAS_DIR), read the way the server reads them at start-up."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape

from app.cli.common import console, out, settings_from


def cmd_personas_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from app.personas.loader import load_personas

    settings = settings_from(args)
    personas = load_personas(settings.personas_dir, settings.max_persona_bytes)
    table = Table("id", "name", "memory", "description")
    for p in personas.values():
        table.add_row(p.id, p.name, p.memory.strategy, p.description)
    out.print(table)
    return 0


def cmd_personas_show(args: argparse.Namespace) -> int:
    import yaml

    from app.personas.loader import load_personas

    settings = settings_from(args)
    personas = load_personas(settings.personas_dir, settings.max_persona_bytes)
    persona = personas.get(args.id)
    if persona is None:
        console.print(f"[red]no persona {args.id!r}[/] (known: {', '.join(personas)})")
        return 1
    # Plain stdout, not rich: rich wraps long values at the terminal's width (80 columns when
    # redirected) and reads [brackets] as markup, and `show pippa > p.yaml` must give a file
    # that parses. The rendered prompt follows as YAML comments for the same reason.
    text = yaml.safe_dump(persona.model_dump(), allow_unicode=True, sort_keys=False, width=10**6)
    rendered = persona.render_system_prompt().splitlines()
    comments = "".join(f"# {line}".rstrip() + "\n" for line in rendered)
    sys.stdout.write(f"{text}\n# --- system prompt as the model sees it ---\n{comments}")
    return 0


def cmd_personas_validate(args: argparse.Namespace) -> int:
    from app.personas.errors import PersonaError
    from app.personas.loader import PERSONA_SUFFIXES, load_persona_file

    settings = settings_from(args)
    paths = [Path(p) for p in args.files] or sorted(
        p for p in settings.personas_dir.glob("*") if p.suffix in PERSONA_SUFFIXES
    )
    if not paths:
        console.print(f"[red]no persona files in {settings.personas_dir}[/]")
        return 1
    bad = 0
    for path in paths:
        try:
            persona = load_persona_file(path, settings.max_persona_bytes)
            if args.files:
                persona = _as_imported(path, persona, settings.max_persona_bytes)
        except PersonaError as exc:
            bad += 1
            out.print(f"[red]✗[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        else:
            # soft_wrap: one line per file however long the path (rich wraps at 80 when piped)
            line = f"[green]✓[/] {escape(str(path))}: {persona.id} ({escape(persona.name)})"
            out.print(line, highlight=False, soft_wrap=True)
    return 1 if bad else 0


def _as_imported(path: Path, persona: Any, max_bytes: int) -> Any:
    """A file named on the command line is usually a card about to be imported: report the id
    `personas import` gives it (from the card's name), not the file name's (seraphina_v2.json
    was reported as `seraphina_v2`, then imported as `seraphina`)."""
    from app.personas.errors import PersonaError
    from app.personas.loader import parse_persona_text

    try:
        imported, fmt = parse_persona_text(
            path.read_text(encoding="utf-8"), str(path), default_id=None, max_bytes=max_bytes
        )
    except PersonaError:
        return persona  # our own form without an id: import needs --id, the file name stands
    return imported if fmt == "card" else persona


def cmd_personas_import(args: argparse.Namespace) -> int:
    import yaml

    from app.personas.errors import PersonaError
    from app.personas.loader import parse_persona_upload

    settings = settings_from(args)
    path = Path(args.file)
    try:
        # bytes: a card PNG is read as one, anything else as UTF-8 text (YAML/JSON, a card)
        persona, fmt = parse_persona_upload(
            path.read_bytes(), str(path), args.id, settings.max_persona_bytes
        )
    except OSError as exc:
        console.print(f"[red]cannot read {path}[/]: {exc.strerror or exc}")
        return 1
    except PersonaError as exc:
        console.print(f"[red]invalid persona[/] {exc}")
        return 1
    target_dir = Path(args.dir) if args.dir else settings.personas_dir
    target = target_dir / f"{persona.id}.yaml"
    if target.exists() and not args.force:
        console.print(f"[red]{target} exists[/]; pass --force to replace it")
        return 1
    target_dir.mkdir(parents=True, exist_ok=True)
    data = persona.model_dump(mode="json")
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    out.print(f"imported {path} ({fmt}) as persona {persona.id!r} -> {target}")
    # personas are read at start-up: a running server does not see the new file (issue 17)
    out.print(
        "a running server loads personas at start-up: restart it, or upload the card to it "
        "instead (POST /v1/personas)",
        markup=False,
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("personas", help="list, show, validate or import personas")
    psub = p.add_subparsers(dest="personas_command", required=True, metavar="ACTION")
    q = psub.add_parser("list", help="the personas in personas/ (MEMENTO_PERSONAS_DIR)")
    q.set_defaults(func=cmd_personas_list)
    q = psub.add_parser("show", help="one persona and its rendered system prompt")
    q.add_argument("id")
    q.set_defaults(func=cmd_personas_show)
    q = psub.add_parser("validate", help="check persona files (default: all of personas/)")
    q.add_argument("files", nargs="*")
    q.set_defaults(func=cmd_personas_validate)
    q = psub.add_parser(
        "import", help="a persona file or Character Card V1/V2/V3 (JSON or PNG) -> personas/"
    )
    q.add_argument("file")
    q.add_argument("--id", default=None, help="the persona id (default: from the file)")
    q.add_argument("--dir", default=None, help="target directory (default: personas/)")
    q.add_argument("--force", action="store_true", help="replace an existing file")
    q.set_defaults(func=cmd_personas_import)
