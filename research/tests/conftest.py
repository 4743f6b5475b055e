"""The fixtures shared with the product's tests (tests/shared_fixtures.py)."""

from shared_fixtures import *  # noqa: F403
