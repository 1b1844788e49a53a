"""The ``aligniform`` command: a thin layer over the library, one module per sub-command.

Each sub-command module (:mod:`.train`, :mod:`.evaluate`, :mod:`.demo`,
:mod:`.sweep`, :mod:`.analyze`, :mod:`.study`, :mod:`.report`) adds its
sub-parser and a handler that turns the flags into the library's objects and
calls one library function. :mod:`.errors` turns the errors users can fix into
one line and an exit code; :mod:`.app` builds the parser and runs a command.
"""

from .app import build_parser, main

__all__ = ["build_parser", "main"]
