"""``python -m evalfleet``."""

from evalfleet.cli import main

main()
