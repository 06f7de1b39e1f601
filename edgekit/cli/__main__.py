"""`python -m edgekit.cli`: the same as the `edgekit` command."""

from . import main

main()
