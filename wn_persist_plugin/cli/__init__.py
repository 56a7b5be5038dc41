"""The `wn-persist` command: click commands that parse, call the library and print."""

from .main import main

__all__ = ["main"]
