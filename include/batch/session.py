"""The model a batch job scores with: resolved, verified, loaded into onnxruntime on GPU or CPU.

On CUDA, inputs are bound from host memory and outputs copied back once per batch (I/O binding).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from include.batch.columns import ONNX_TO_NUMPY, ModelInput
from include.batch.errors import BatchModelError, ProviderUnavailableError

log = logging.getLogger(__name__)

Providers = Literal["auto", "cpu", "cuda"]
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


@dataclass
class LoadedModel:
    """A loaded model with its identity (URI, name, version, sha256), session and signature."""

    uri: str
    name: str | None
    version: str | None
    sha256: str
    session: Any
    providers: list[str]
    inputs: tuple[ModelInput, ...]
    outputs: list[str] = field(default_factory=list)

    @property
    def on_gpu(self) -> bool:
        return bool(self.providers and self.providers[0] == _CUDA)


def choose_providers(requested: Providers, available: Sequence[str]) -> list[str]:
    """Map ``--providers`` to an onnxruntime provider list.

    Args:
        requested: ``auto``, ``cpu`` or ``cuda``.
        available: ``onnxruntime.get_available_providers()``.

    Returns:
        Providers in priority order.

    Raises:
        ProviderUnavailableError: ``cuda`` was requested and this onnxruntime has no CUDA provider.
    """
    if requested == "cpu":
        return [_CPU]
    if requested == "cuda" and _CUDA not in available:
        raise ProviderUnavailableError(
            f"--providers cuda: this onnxruntime offers only {list(available)}; install onnxruntime-gpu "
            "and run on a machine with an NVIDIA GPU, or use --providers auto|cpu"
        )
    return [_CUDA, _CPU] if _CUDA in available else [_CPU]


def load_model(uri: str, providers: Providers, tracking_uri: str | None = None) -> LoadedModel:
    """Resolve, verify and load a model into an onnxruntime session.

    Args:
        uri: the model URI (see :class:`BatchConfig`).
        providers: ``auto``, ``cpu`` or ``cuda``.
        tracking_uri: MLflow server for ``models:/`` URIs.

    Returns:
        The loaded model with its identity and signature.

    Raises:
        BatchModelError: the file is not a loadable ONNX model or has no tensor outputs.
        ProviderUnavailableError: see :func:`choose_providers`.
        ModelgateError: resolution failed (not found, sha256 mismatch).
    """
    import onnxruntime as ort

    from include.registry.resolve import resolve_model_uri

    resolved = resolve_model_uri(uri, tracking_uri=tracking_uri)
    chosen = choose_providers(providers, ort.get_available_providers())
    try:
        sess = ort.InferenceSession(str(resolved.path), providers=chosen)
    except Exception as e:  # onnxruntime raises several unrelated types for bad files
        raise BatchModelError(f"{uri}: onnxruntime cannot load {resolved.path.name} ({e})") from e
    inputs = []
    for i in sess.get_inputs():
        dtype = ONNX_TO_NUMPY.get(i.type)
        if dtype is None:
            raise BatchModelError(
                f"{uri}: input {i.name!r} has type {i.type}; the batch job feeds numeric tensors"
            )
        inputs.append(ModelInput(i.name, dtype, tuple(i.shape)))
    outputs = [o.name for o in sess.get_outputs() if str(o.type).startswith("tensor(")]
    skipped = [o.name for o in sess.get_outputs() if o.name not in outputs]
    if skipped:
        log.warning("event=skip_outputs model=%s outputs=%s reason=not_tensors", uri, skipped)
    if not outputs:
        raise BatchModelError(f"{uri}: the model has no tensor outputs (export classifiers without ZipMap)")
    used = sess.get_providers()
    log.info(
        "event=model_loaded uri=%s version=%s sha256=%s providers=%s",
        uri,
        resolved.version,
        resolved.sha256[:12],
        used,
    )
    return LoadedModel(
        uri, resolved.name, resolved.version, resolved.sha256, sess, used, tuple(inputs), outputs
    )


def run_model(model: LoadedModel, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run one batch (I/O binding on CUDA) and return the outputs on the host."""
    if not model.on_gpu:
        return list(model.session.run(model.outputs, feed))
    binding = model.session.io_binding()
    for name, arr in feed.items():
        binding.bind_cpu_input(name, arr)
    for name in model.outputs:
        binding.bind_output(name, "cuda")
    model.session.run_with_iobinding(binding)
    return list(binding.copy_outputs_to_cpu())


def output_columns(model: LoadedModel, results: list[np.ndarray], n: int) -> list[tuple[str, pa.Array]]:
    """Turn the outputs of ``n`` rows into named Arrow columns (2-D outputs become one column each)."""
    cols: list[tuple[str, pa.Array]] = []
    for name, arr in zip(model.outputs, results, strict=True):
        a = np.asarray(arr)
        if a.ndim == 0 or a.shape[0] != n:
            raise BatchModelError(
                f"{model.uri}: output {name!r} has shape {list(a.shape)}, not one row per input row"
            )
        if a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1):
            cols.append((name, pa.array(a.reshape(n))))
        elif a.ndim == 2:
            cols.extend((f"{name}_{j}", pa.array(np.ascontiguousarray(a[:, j]))) for j in range(a.shape[1]))
        else:
            raise BatchModelError(
                f"{model.uri}: output {name!r} has {a.ndim} dimensions; the job writes 1-D or 2-D outputs"
            )
    return cols
