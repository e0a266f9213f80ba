"""The benchmarks' server launcher runs the code it was given, not the tree the venv was
installed from: a benchmark run from another work tree (an A/B of two commits) once measured
the venv's tree while reporting the other one's commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchmarks._server import ROOT, Server


def test_the_command_imports_the_given_tree(tmp_path: Path) -> None:
    other = tmp_path / "tree"
    (other / "app").mkdir(parents=True)
    (other / "app" / "__init__.py").write_text("")
    cli = "def main():\n    print('tree', __file__)\n    return 0\n"
    (other / "app" / "cli.py").write_text(cli)
    server = Server(tmp_path / "data", code=other)
    out = subprocess.run(
        [*server.cli(), "serve"],
        cwd=server.code,  # as `start` runs it
        env=server.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"tree {other.resolve() / 'app' / 'cli.py'}"
    # the default tree is the one this benchmark file sits in, first on the path
    assert Server(tmp_path / "data").env()["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
