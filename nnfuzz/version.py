"""nnfuzz's version and the versions of what it runs on, for run.json and reproducers."""

from __future__ import annotations

import platform

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    import faiss
    import numpy
    import torch

    return {
        "nnfuzz": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "faiss": getattr(faiss, "__version__", "unknown"),
        "python": platform.python_version(),
    }
