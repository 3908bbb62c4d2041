"""Fixtures of the end-to-end tests; they and the helpers live in e2e_support.py, which the
tests import by that unique name (a `from conftest import` would find whichever conftest
another folder loaded first)."""

from e2e_support import browser_factory, start_stack  # noqa: F401 - fixtures
