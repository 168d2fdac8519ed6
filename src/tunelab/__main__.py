"""`python -m tunelab <verb> ...`: the same as the `tunelab` console command."""

from tunelab.cli import entry_point

entry_point()
