"""The ``tracejudge`` command line; each command mirrors a Python API call."""

from tracejudge.cli.main import main

__all__ = ["main"]
