"""`lungsam export-onnx`: files written, and one clear line when onnx is missing."""

from __future__ import annotations

import json
import sys

import pytest

from app.cli import main


def test_export_onnx_writes_encoder_decoder_and_manifest(model_dir, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "onnx"
    assert main(["export-onnx", str(model_dir), "-o", str(out)]) == 0
    manifest = json.loads((out / "lungsam-onnx.json").read_text())
    assert (out / manifest["encoder"]).is_file() and (out / "decoder.onnx").is_file()
    assert "decoder.onnx" in capsys.readouterr().out


def test_export_onnx_without_onnx_installed_is_one_line(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    assert main(["export-onnx", str(model_dir), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "onnx is not installed" in err and "lungsam[onnx]" in err
    assert not (tmp_path / "x").exists()
