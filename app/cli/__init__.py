"""The ``lungsam`` command line (``lungsam = "app.cli:main"``; ``python -m app.cli`` and
``torchrun -m app.cli`` run the same). :mod:`~app.cli.command` builds the parser and runs a
sub-command; each sub-command's module (:mod:`~app.cli.segment`, :mod:`~app.cli.train`,
:mod:`~app.cli.gui`, :mod:`~app.cli.eval`) imports its heavy modules only when it runs, so
``lungsam segment`` never imports Qt and ``lungsam --help`` starts instantly.
"""

from app.cli.command import EXIT_USAGE, build_parser, main

__all__ = ["EXIT_USAGE", "build_parser", "main"]
