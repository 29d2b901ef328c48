"""ONNX export of a model (:mod:`~engine.onnx_export.writer`: encoder and one prompt-encoder +
mask-decoder file per mask style, in segment-anything's ONNX interface; :mod:`~engine.onnx_export.graphs`
holds the traced wrappers) and running such a folder with ONNX Runtime
(:mod:`~engine.onnx_export.runtime`). ``onnx`` and ``onnxruntime`` are optional dependencies
(``pip install 'lungsam[onnx]'``), imported only when used.
"""

from engine.onnx_export.graphs import DecoderGraph, EncoderGraph
from engine.onnx_export.runtime import OnnxEmbedding, OnnxModel, session
from engine.onnx_export.writer import (
    ENCODER_FILE,
    MANIFEST,
    MissingDependencyError,
    decoder_file,
    export_onnx,
    require,
)

__all__ = [
    "DecoderGraph",
    "ENCODER_FILE",
    "EncoderGraph",
    "MANIFEST",
    "MissingDependencyError",
    "OnnxEmbedding",
    "OnnxModel",
    "decoder_file",
    "export_onnx",
    "require",
    "session",
]
