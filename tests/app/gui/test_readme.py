"""The README's shortcut table is the program's: every bound key and gesture is listed."""

from __future__ import annotations

from pathlib import Path

from app.gui import shortcuts

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_lists_every_shortcut_and_export_format():
    from app.gui.annotate.project import EXPORT_FORMATS

    text = README.read_text()
    section = text[text.index("## GUI: shortcuts and exports"):text.index("## Measured figures")]
    for menu, action, keys in shortcuts.rows():
        if menu == "Mouse":
            assert f"| {action} | {keys} |" in section, action
        else:
            row = f"| {menu} | {action} | " + ", ".join(f"`{k}`" for k in keys.split(", ")) + " |"
            assert row in section, row
    for name in ("PNG", "COCO JSON", "DICOM-SEG", "NIfTI", "LabelMe JSON", "YOLO-seg"):
        assert f"| {name} |" in section, name
    assert len(EXPORT_FORMATS) == 6
