"""Token counts of single messages, memoized per engine: what every part of a Context is
measured with (memory/strategies/_parts.py, _lore.py)."""

from __future__ import annotations

import weakref
from collections import OrderedDict

from memory.types import LLM

_MEMO_SIZE = 512
_memos: weakref.WeakKeyDictionary[object, OrderedDict[tuple[str, str], int]] = (
    weakref.WeakKeyDictionary()
)


def count_message(llm: LLM, role: str, content: str) -> int:
    """llm.count_message, memoized per engine: the persona, pinned facts and summary are the
    same text turn after turn, and templating + tokenizing one costs ~0.5 ms."""
    try:
        memo = _memos.setdefault(llm, OrderedDict())
    except TypeError:  # not weak-referenceable: no memo
        return llm.count_message({"role": role, "content": content})
    key = (role, content)
    n = memo.get(key)
    if n is None:
        n = memo[key] = llm.count_message({"role": role, "content": content})
        if len(memo) > _MEMO_SIZE:
            memo.popitem(last=False)
    else:
        memo.move_to_end(key)
    return n
