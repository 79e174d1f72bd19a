"""The ``evalfleet`` command line."""

from evalfleet.cli.main import app, console_main, main

__all__ = ["app", "console_main", "main"]
