"""LungSAM engine: Qt-free image I/O, SAM models, predictor, AdaLoRA and INT8.

One concept per sub-package: :mod:`engine.imaging`, :mod:`engine.sam`, :mod:`engine.adalora`,
:mod:`engine.quant`, :mod:`engine.models`, :mod:`engine.predict`, :mod:`engine.project`; the
small modules here (``errors``, ``atomic``, ``device``, ``modules``) are shared by all of them.
Callers outside a sub-package import from the sub-package, not from its modules.
"""
