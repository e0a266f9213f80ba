"""The README's HTTP examples, copied from the README and run against a live server: the curl
block in a shell (it used $SID without setting it, issue 17) and the `openai` snippet."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import REPO, LiveServer, make_settings

README = (REPO / "README.md").read_text(encoding="utf-8")


def block_after(marker: str, lang: str) -> str:
    """The first ```lang block after `marker` in the README."""
    start = README.index(marker)
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(README, start)
    assert match is not None, f"no {lang} block after {marker!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("readme"))) as s:
        yield s


def test_curl_examples_run_verbatim(server: LiveServer, tmp_path: Path) -> None:
    script = block_after("Over HTTP", "sh").replace("localhost:8000", f"127.0.0.1:{server.port}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # two JSON documents: the turn, then the dry-run context
    decoder, text, docs = json.JSONDecoder(), done.stdout.strip(), []
    while text:
        doc, end = decoder.raw_decode(text)
        docs.append(doc)
        text = text[end:].strip()
    turn, context = docs
    assert turn["reply"]["content"] and turn["message"]["content"] == "아빠 왔다!"
    assert any(m["content"] == "아빠 왔다!" for p in context["parts"] for m in p["messages"])


def test_openai_snippet_runs_verbatim(server: LiveServer, capsys: pytest.CaptureFixture) -> None:
    code = block_after("```python\nfrom openai", "python").replace(
        "http://127.0.0.1:8000", server.url
    )
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example
    assert isinstance(json.loads(capsys.readouterr().out), dict)
