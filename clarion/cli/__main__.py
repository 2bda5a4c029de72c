"""``python -m clarion.cli``."""

from clarion.cli import main

main()
