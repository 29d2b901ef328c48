"""`lungsam project check FOLDER [--repair]`: one line per problem, exit 0 only when healthy,
never a traceback, nothing written without --repair."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.cli.command import main
from tests.engine.project.store_helpers import CHILD_ENV, REPO, tree_digest
from tests.engine.project.test_damaged import DAMAGES, project  # noqa: F401 (fixture)


def run(capsys, *args: str) -> tuple[int, list[str], str]:
    code = main(["project", "check", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_a_healthy_project_exits_0(project, capsys):  # noqa: F811
    code, lines, err = run(capsys, project)
    assert (code, lines, err) == (0, [f"{project}: healthy"], "")


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_a_damaged_database_is_one_line_exit_1_and_repair_fixes_it(project, damage, capsys):  # noqa: F811
    expected = damage(project)
    before = tree_digest(project)
    code, lines, err = run(capsys, project)
    assert code == 1 and err == "" and len(lines) == 1
    assert lines[0].startswith(".lungsam/project.db: ") and expected in lines[0]
    assert tree_digest(project) == before  # a check without --repair writes nothing
    code, lines, err = run(capsys, project, "--repair")
    assert code == 0, (lines, err)
    assert lines[-1] == f"{project}: healthy" and any(line.startswith("repaired: rebuilt") for line in lines)


def test_damaged_masks_are_named_per_image(project, capsys):  # noqa: F811
    (project / ".lungsam" / "masks" / "2" / "v1_lungs.png").write_bytes(b"not a png")
    (project / "a.png").unlink()
    code, lines, _ = run(capsys, project)
    assert code == 1
    assert lines == ["a.png: the image file is missing (2 annotation versions are kept)",
                     "b.png: the 'lungs' mask of version 1 was changed outside LungSAM "
                     "(masks/2/v1_lungs.png differs from its sha256)"]
    code, lines, _ = run(capsys, project, "--repair")  # nothing it can repair: still exit 1
    assert code == 1 and len(lines) == 2


def test_no_traceback_on_a_missing_folder_or_a_folder_without_project(tmp_path, capsys):
    code, lines, err = run(capsys, tmp_path / "nope")
    assert code == 2 and "no such folder" in err and "Traceback" not in err
    code, lines, err = run(capsys, tmp_path)
    assert code == 1 and lines == [f"{tmp_path}: there is no LungSAM project here (no .lungsam/project.db)"]


def test_the_installed_command_prints_no_traceback(project):  # noqa: F811
    (project / ".lungsam" / "project.db").write_bytes(b"\0" * 4096)
    done = subprocess.run([sys.executable, "-m", "app.cli", "project", "check", str(project)],
                          cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "the project database is corrupt or not a database" in done.stdout
