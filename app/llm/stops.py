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
