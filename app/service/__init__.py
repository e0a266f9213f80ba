"""The service layer: every multi-step operation the routes ask for, over an async facade of
the store (`store.AsyncStore`). Routes parse, make one call here, and serialize; they touch
neither the sync `Store` nor the recaller, the engine or `SessionMemory` themselves.
"""
