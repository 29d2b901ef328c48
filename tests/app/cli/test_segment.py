"""`lungsam segment` / `import-checkpoint`: outputs, exit status 2 on bad input, no Qt import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import main
from engine.models import load_model
from engine.predict import Predictor
from tests.conftest import synthetic_cxr
from tests.engine.imaging.image_files import pydicom_corpus_file


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "chest (1).png"
    Image.fromarray(synthetic_cxr(96, 80)).save(path)
    return path


def test_segment_writes_original_size_masks_equal_to_engine(model_dir, image_file, tmp_path):
    out = tmp_path / "out"
    rc = main(["segment", str(image_file), "--box", "5,10,40,90", "--box", "40,10,78,90",
               "--model", str(model_dir), "--device", "cpu", "-o", str(out)])
    assert rc == 0
    union = np.array(Image.open(out / "chest (1).png"))
    first = np.array(Image.open(out / "chest (1)_box1.png"))
    assert union.shape == (96, 80) and set(np.unique(union)) <= {0, 255}
    pred = Predictor(load_model(model_dir), device="cpu")
    pred.set_image(np.array(Image.open(image_file)))
    expected = pred.predict(boxes=[[5, 10, 40, 90], [40, 10, 78, 90]]).masks[:, 0]
    assert np.array_equal(first > 0, expected[0])
    assert np.array_equal(union > 0, expected.any(axis=0))


def test_prompts_file_drives_a_batch(model_dir, image_file, tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({image_file.name: [[5, 10, 40, 90]]}))
    out = tmp_path / "out"
    assert main(["segment", "--prompts", str(prompts), "--model", str(model_dir), "-o", str(out)]) == 0
    assert (out / "chest (1).png").is_file()


@pytest.mark.parametrize(
    "box, message",
    [("50,10,40,90", "x1 > x0"), ("500,500,600,600", "outside")],
)
def test_bad_box_exits_2_and_writes_nothing(model_dir, image_file, tmp_path, capsys, box, message):
    out = tmp_path / "out"
    rc = main(["segment", str(image_file), "--box", box, "--model", str(model_dir), "-o", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_missing_image_and_unreadable_model_exit_2(model_dir, image_file, tmp_path, capsys):
    assert main(["segment", str(tmp_path / "none.png"), "--box", "1,1,5,5",
                 "--model", str(model_dir), "-o", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(["segment", str(image_file), "--box", "1,1,5,5", "--model", str(bad),
                 "-o", str(tmp_path / "o")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "not found" in lines[0] and "bad.pth" in lines[1]


def test_import_checkpoint_converts_to_model_folder(tiny_sam, tmp_path):
    sam, _ = tiny_sam
    pth = tmp_path / "small.pth"
    torch.save(sam.state_dict(), pth)
    out = tmp_path / "imported"
    assert main(["import-checkpoint", str(pth), "-o", str(out)]) == 0
    loaded = load_model(out)
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(loaded.sam.state_dict()[key], sam.state_dict()[key])


def test_segment_command_never_imports_qt(model_dir, image_file, tmp_path):
    code = (
        "import sys; from app.cli import main; "
        f"rc = main(['segment', {str(image_file)!r}, '--box', '5,10,40,90', '--model', {str(model_dir)!r}, "
        f"'-o', {str(tmp_path / 'q')!r}]); "
        "assert rc == 0; assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_segment_writes_the_asked_mask_style(styled_tiny_sam, image_file, tmp_path, capsys):
    from engine.models import save_sam_folder

    folder = save_sam_folder(tmp_path / "styled", *styled_tiny_sam)
    box = [5, 10, 70, 90]
    pred = Predictor(load_model(folder), device="cpu")
    pred.set_image(np.array(Image.open(image_file)))
    for style in ("visible", "anatomical"):
        out = tmp_path / style
        assert main(["segment", str(image_file), "--box", "5,10,70,90", "--model", str(folder),
                     "--device", "cpu", "--style", style, "-o", str(out)]) == 0
        written = np.array(Image.open(out / "chest (1).png")) > 0
        assert np.array_equal(written, pred.predict(boxes=box, style=style).masks[0, 0]), style
    assert not np.array_equal(np.array(Image.open(tmp_path / "visible" / "chest (1).png")),
                              np.array(Image.open(tmp_path / "anatomical" / "chest (1).png")))
    capsys.readouterr()
    rc = main(["segment", str(image_file), "--box", "5,10,70,90", "--model", str(folder), "--style", "wide",
               "-o", str(tmp_path / "never")])
    assert rc == 2 and not (tmp_path / "never").exists()
    assert "unknown mask style 'wide'; this model has: visible, anatomical" in capsys.readouterr().err


def test_models_lists_installed_models_with_their_styles(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "* lungsam-compact-int8" in out and "styles: visible, anatomical" in out
    assert "lungsam-compact-base" in out
    twin = next(line for line in out.splitlines() if "lungsam-compact-fp32" in line)
    assert "float (float16 on disk)" in twin and "(FP32 twin of lungsam-compact-int8)" in twin


def segment_in_a_fresh_process(path: str, model_dir: Path, out: Path) -> subprocess.CompletedProcess:
    """The real command as a user's shell runs it (pydicom's loggers, C libraries' stderr)."""
    return subprocess.run([sys.executable, "-m", "app.cli", "segment", path, "--box", "10,100,240,900",
                           "--model", str(model_dir), "-o", str(out)],
                          cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=300)


def test_pydicom_corpus_files_reach_the_user_without_a_traceback(model_dir, tmp_path):
    """The trial's two files from pydicom's corpus: the 12-bit JPEG is segmented (GDCM), the
    broken JPEG 2000 gives our one clean line and exit 2; nothing else on stderr (no traceback,
    no decoder chatter)."""
    pytest.importorskip("gdcm")
    good = segment_in_a_fresh_process(pydicom_corpus_file("JPEG-lossy.dcm"), model_dir, tmp_path / "good")
    assert good.returncode == 0, good.stderr
    assert "Traceback" not in good.stderr and "Unsupported JPEG" not in good.stderr
    assert list((tmp_path / "good").glob("*.png"))
    bad = segment_in_a_fresh_process(pydicom_corpus_file("JPEG2000-embedded-sequence-delimiter.dcm"), model_dir,
                                     tmp_path / "bad")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr
    assert lines[0] == ("lungsam: error: JPEG2000-embedded-sequence-delimiter.dcm: the DICOM pixel data is "
                         "truncated or corrupt")
