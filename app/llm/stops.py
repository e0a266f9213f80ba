"""Stop strings over streamed text: shared by the MLX engine (which stops generating there) and
ChatService (which cuts any engine's reply there: a remote server takes at most four stops, and a
reply must never go on to speak for the user, issue 12)."""

from __future__ import annotations

from collections.abc import Sequence


class StopText:
    """Finds stop strings in streamed text, holding back a tail that may start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.pending = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop string was hit (text cut before it)."""
        if not self.stops:
            return delta, False
        self.pending += delta
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), hold, -1):
                if self.pending.endswith(s[:k]):
                    hold = k
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out) :]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def label_stops(speakers: Sequence[str]) -> tuple[str, ...]:
    """Where a reply that goes on to speak as someone of the transcript ends: a line, or a
    sentence's next words, opening with a speaker's label, or with a recalled note's "Pippa
    said: " (a small model goes on from Korean notes with "... Pippa said: "I'm", or on a line
    of its own: "함っ！\nPippa said: "I'm"); a new line in the notes' own form ("\n- 아빠 said: ")
    ends it before its dash."""
    forms = ("\n{}:", " {}: ", " {} said: ", "\n{} said: ", "\n- {} said: ")
    return tuple(f.format(name) for name in speakers for f in forms)


class ReplyCut:
    """The persona's part of a streamed reply: a speaker label it opens with is dropped (a small
    model imitating "Caroline: ..." turns writes "Caroline: I'd love to ..."), and it ends at the
    first stop string."""

    def __init__(self, stops: Sequence[str], speakers: Sequence[str] = ()) -> None:
        self.stops = StopText(stops)
        # the notes' form too ("- Pippa said: 응 ..."): recalled notes read that way (issue 11)
        forms = ("{}:", "{} said:", "- {} said:")
        self.labels = tuple(f.format(name) for name in speakers if name for f in forms)
        self.head: str | None = "" if self.labels else None  # None: past the opening
        self.trim = False  # a label was dropped: so is the space after it

    def feed(self, delta: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop string was hit (text cut before it)."""
        if self.head is not None:
            delta = self._opening(delta)
        if self.trim:
            delta = delta.lstrip()
            self.trim = not delta
        return self.stops.feed(delta)

    def _opening(self, delta: str) -> str:
        assert self.head is not None
        self.head += delta
        start = self.head.lstrip()
        for label in self.labels:
            if start.startswith(label):
                self.head, self.trim = None, True
                return start[len(label) :]
        if any(label.startswith(start) for label in self.labels):
            return ""  # may still become a label: held
        out, self.head = self.head, None
        return out

    def flush(self) -> str:
        """What is held at the end (nothing when what it held was a stop)."""
        held, self.head = self.head or "", None
        text, hit = self.stops.feed(held)
        return text if hit else text + self.stops.flush()


def cut(reply: str, stops: Sequence[str], speakers: Sequence[str] = ()) -> str:
    """A whole reply as ReplyCut streams it."""
    cutter = ReplyCut(stops, speakers)
    text, hit = cutter.feed(reply)
    return text if hit else text + cutter.flush()
