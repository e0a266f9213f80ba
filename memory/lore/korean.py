"""Where a Hangul key may end inside a word: the word start, then the key, then nothing or a
chain of particles and copula endings (용 fires in 용이, 용을, 용한테, 용은, 용이야, 용들에게,
never in 용기, 용서 or 사용).

memory/bm25.py strips a longer list to stem words for recall; that list also holds verb
endings (서, 고, 다, 지, 게, 면...) that follow a verb stem, and as key endings they would let a
noun key fire inside other nouns (용 in 용서, "forgiveness"). A lorebook key is a name or a
noun, so only what follows a noun is allowed here: case particles, plural 들, the copula and
its common endings. A one-syllable key stays ambiguous where Korean itself is: 용도 is "the
dragon too" and also "use"; no dictionary-free rule tells them apart.
"""

from __future__ import annotations

import functools

from memory.bm25 import _HANGUL_SYLLABLES

# what follows a noun: case particles, delimiters, plural, vocative, copula forms
_NOUN_ENDINGS_TEXT = """
    이 가 은 는 을 를 의 도 만 에 에서 에게 에게서 한테 한테서 께 께서 로 으로 와 과
    랑 이랑 하고 처럼 보다 까지 부터 마다 밖에 조차 마저 이나 나 이나마 이든 든 이든지
    들 아 야 이여 여 이야 이에요 예요 이었어 였어 이었어요 였어요 이었다 였다 이다 다
    입니다 이지 지 인데 이네 이라고 라고 이라서 라서 이잖아 잖아 인가 인지 이니 이라
    라 이고 고 이며 며 이랑은 이면 면 로서 으로서 로써 으로써 에는 에서는 에게는 한테는
    에도 에서도 에게도 한테도 와는 과는 처럼은 보다는 만은 만을 만이 들은 들이 들을 들의
"""
NOUN_ENDINGS = frozenset(_NOUN_ENDINGS_TEXT.split())
_LONGEST = max(len(e) for e in NOUN_ENDINGS)
MAX_CHAIN = 3  # 들 + 에게 + 는


@functools.lru_cache(maxsize=8192)
def is_ending_chain(rest: str, parts: int = MAX_CHAIN) -> bool:
    """Whether `rest` is one to `parts` noun endings in a row."""
    if not rest or parts <= 0:
        return False
    for n in range(1, min(_LONGEST, len(rest)) + 1):
        if rest[:n] in NOUN_ENDINGS and (n == len(rest) or is_ending_chain(rest[n:], parts - 1)):
            return True
    return False


@functools.lru_cache(maxsize=8192)
def key_forms(word: str) -> tuple[str, ...]:
    """The word itself and every start of it that a noun ending chain completes: the keys a
    Hangul word of a message fires (용한테서 -> 용한테서, 용; 용기 -> 용기 only)."""
    forms = [word]
    for cut in range(1, len(word)):
        if is_ending_chain(word[cut:]):
            forms.append(word[:cut])
    return tuple(forms)


def is_hangul(text: str) -> bool:
    return _HANGUL_SYLLABLES.fullmatch(text) is not None
