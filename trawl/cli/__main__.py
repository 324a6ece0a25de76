"""`python -m trawl.cli`: the `trawl` command."""

from trawl.cli import main

main()
