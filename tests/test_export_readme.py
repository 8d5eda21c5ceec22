"""README's "feeding a real image" block for ONNX and torch.export runs as written, on an export of
the shipped digits model and a real handwritten digit saved as a PNG."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from gdas_cli.export import ExportRequest, export

ROOT = Path(__file__).resolve().parent.parent


def test_readme_feeds_a_real_image_to_onnx_and_pt2(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from PIL import Image

    from gdas_cli.data import load_images

    weights = ROOT / "zoo" / "weights" / "gdas_frc_digits" / "model.safetensors"
    export(ExportRequest(source=str(weights), output=tmp_path / "out", formats=("onnx", "pt2")))
    test = load_images("digits").test
    index = int((test.labels == 7).nonzero()[0])
    Image.fromarray(test.images[index].permute(1, 2, 0).numpy().astype(np.uint8)).save(tmp_path / "seven.png")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "model.onnx.json" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md: feeding a real image", "exec"), {})
    assert capsys.readouterr().out.split() == ["7", "7"]  # the label name from ONNX, the class index from .pt2
    assert os.path.exists(tmp_path / "out" / "model.pt2.json")
