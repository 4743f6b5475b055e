"""The fixtures shared by this folder's tests and research/tests (shared_fixtures.py)."""

from shared_fixtures import *  # noqa: F403
