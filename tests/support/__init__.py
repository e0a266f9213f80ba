"""Helpers shared by the test suites (pytest puts tests/ on sys.path via tests/conftest.py)."""
