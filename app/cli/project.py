"""`lungsam project check FOLDER [--repair]`: is this project intact, and if not, what is damaged.

Prints one line per problem (the image or file, then what is wrong), exits 0 when healthy and
1 otherwise. Without ``--repair`` it reads only (the database through a private copy), so it
is safe on a project nothing else can open; ``--repair`` rebuilds a damaged database from the
mask files and moves orphans aside, never deleting anything (engine.project.repair).
"""

from __future__ import annotations

import argparse
import sys

EXIT_PROBLEMS = 1


def add_project_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="check (and repair) an annotation project folder")
    actions = p.add_subparsers(dest="project_command", required=True)
    check = actions.add_parser(
        "check", help="list what is damaged in a project: database, mask files, images",
        description="One line per problem; exit 0 when healthy, 1 otherwise. Reads only, "
        "unless --repair is given.",
    )
    check.add_argument("folder", help="the image folder (the one holding .lungsam/)")
    check.add_argument("--repair", action="store_true",
                       help="rebuild a damaged database from the mask files (after moving it "
                       "to .lungsam/backups/) and move orphaned mask files aside")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.errors import LungSamError
    from engine.project.health import check_project
    from engine.project.repair import repair_project

    folder = Path(args.folder).expanduser().absolute()
    if not folder.is_dir():
        print(f"lungsam: error: {folder}: no such folder", file=sys.stderr)
        return 2
    try:
        if args.repair:
            for line in repair_project(folder).done:
                print(f"repaired: {line}")
        problems = check_project(folder)
    except (LungSamError, OSError) as exc:
        print(f"lungsam: error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{folder}: healthy")
        return 0
    return EXIT_PROBLEMS
