"""LungSAM engine: Qt-free image I/O, SAM models, predictor, AdaLoRA and INT8."""
