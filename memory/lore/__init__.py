"""Lorebooks (World Info): entries that enter the Context when their keys appear in the chat.

model.py (the V3 `character_book` and where we follow SillyTavern instead), errors.py, korean.py and
keys.py (how a key matches), scan.py (which entries fire, and why), timed.py (sticky,
cooldown, delay), budget.py (what fits). The lore part itself: memory/strategies/_lore.py.
This package imports nothing at import time: memory.types imports its model.
"""
