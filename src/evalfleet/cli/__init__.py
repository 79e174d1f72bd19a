"""The ``evalfleet`` command line."""

from evalfleet.cli.main import app, main

__all__ = ["app", "main"]
