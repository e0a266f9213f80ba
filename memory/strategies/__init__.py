"""The memory strategies, one class per name (see memory.registry)."""

from memory.strategies.simple import BufferStrategy, TokenBufferStrategy, WindowStrategy
from memory.strategies.summary import SummaryBufferStrategy, SummaryStrategy
from memory.strategies.vector import HybridStrategy, VectorStrategy

__all__ = [
    "BufferStrategy",
    "HybridStrategy",
    "SummaryBufferStrategy",
    "SummaryStrategy",
    "TokenBufferStrategy",
    "VectorStrategy",
    "WindowStrategy",
]
