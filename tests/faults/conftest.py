"""The fault suite (issue 15): second processes, replicas, a remote model, the vector server,
a full disk, user edits. Most cases are fast and run in `make test`; `make chaos` runs all of
them plus the opt-in `chaos` ones (the soak run, tests/conftest.py), which are skipped unless
selected with `-m chaos`, like `make crash`."""
