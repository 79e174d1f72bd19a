"""``python -m evalfleet``."""

from evalfleet.cli import console_main

console_main()
