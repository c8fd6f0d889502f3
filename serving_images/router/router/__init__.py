"""modelgate's online ONNX router: OIP v2 and MLflow scoring protocols, sticky splits, guard, events."""

from __future__ import annotations

__version__ = "0.1.0"
