"""Run an ONNX classifier in onnxruntime the way the regression gate needs it.

A :class:`Classifier` has one 2-D input tensor whose columns are the feature spec's features (in
order), an integer label output ``[N]`` and a float probabilities output ``[N, K]`` (names from
the policy). Sessions run on one thread so that repeated runs add in the same order and latency
figures of two models are comparable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from include.regression.errors import UnsupportedModelError
from include.regression.stats import percentile_ms

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_ORT_FLOATS = {"tensor(float)": np.float32, "tensor(double)": np.float64}


@dataclass(frozen=True)
class Predictions:
    """Outputs of a classifier on a batch.

    Attributes:
        labels: predicted classes, shape ``[N]``.
        probabilities: class probabilities, shape ``[N, K]`` (float64 copy).
    """

    labels: np.ndarray
    probabilities: np.ndarray

    def frame(self) -> pd.DataFrame:
        """Return ``label``, ``probability_<k>`` per class and ``probability_sum`` as a DataFrame."""
        import pandas as pd

        cols: dict[str, Any] = {"label": self.labels.astype(np.int64)}
        for k in range(self.probabilities.shape[1]):
            cols[f"probability_{k}"] = self.probabilities[:, k]
        cols["probability_sum"] = self.probabilities.sum(axis=1)
        return pd.DataFrame(cols)

    @property
    def positive_scores(self) -> np.ndarray:
        """Score of the last class (the positive class of a binary classifier)."""
        return np.asarray(self.probabilities[:, -1])


class Classifier:
    """An ONNX classifier loaded in a single-threaded onnxruntime session."""

    def __init__(
        self, path: Path | str, label_output: str = "label", probabilities_output: str = "probabilities"
    ):
        """Load the model and check its inputs and outputs.

        Args:
            path: the ``.onnx`` file.
            label_output: name of the integer label output.
            probabilities_output: name of the float probabilities output.

        Raises:
            UnsupportedModelError: the model does not load, has more than one input, a non-float or
                non-2-D input, or lacks one of the outputs.
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UnsupportedModelError(
                f"{Path(path).name} does not load in onnxruntime: {str(e)[:300]}"
            ) from e
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise UnsupportedModelError(
                f"{Path(path).name} has {len(inputs)} inputs; the regression gate tests models with one "
                "2-D feature tensor"
            )
        self.input_name = inputs[0].name
        if inputs[0].type not in _ORT_FLOATS or len(inputs[0].shape) != 2:
            raise UnsupportedModelError(
                f"{Path(path).name}: input {self.input_name!r} is {inputs[0].type} {inputs[0].shape}; expected "
                "a float tensor [N, n_features]"
            )
        self.input_dtype = _ORT_FLOATS[inputs[0].type]
        width = inputs[0].shape[1]
        self.n_features: int | None = width if isinstance(width, int) else None
        names = [o.name for o in self.session.get_outputs()]
        missing = [n for n in (label_output, probabilities_output) if n not in names]
        if missing:
            raise UnsupportedModelError(
                f"{Path(path).name} has outputs {names}; missing {missing} (set outputs.label_output / "
                "outputs.probabilities_output in the model's regression policy)"
            )
        self.outputs = [label_output, probabilities_output]

    def matrix(self, frame: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
        """Return the model's input matrix: the features in order, cast to the input's float type.

        Args:
            frame: rows with at least the feature columns.
            feature_names: columns in input order.

        Returns:
            A C-contiguous ``[N, n_features]`` array.

        Raises:
            UnsupportedModelError: the width differs from the model's, or a column is not numeric.
        """
        if self.n_features is not None and self.n_features != len(feature_names):
            raise UnsupportedModelError(
                f"the model takes {self.n_features} features, the feature spec has {len(feature_names)}"
            )
        try:
            return np.ascontiguousarray(frame[feature_names].to_numpy(dtype=self.input_dtype))
        except (TypeError, ValueError) as e:
            raise UnsupportedModelError(
                f"features cannot be converted to {self.input_dtype.__name__}: {e}"
            ) from e

    def predict(self, x: np.ndarray) -> Predictions:
        """Score a batch.

        Args:
            x: input matrix from :meth:`matrix`.

        Returns:
            Labels and probabilities.

        Raises:
            UnsupportedModelError: the outputs do not have the shapes of a classifier.
        """
        labels, probs = self.session.run(self.outputs, {self.input_name: x})
        labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
        if labels.ndim != 1 or probs.ndim != 2 or not probs.shape[0] == labels.shape[0] == x.shape[0]:
            raise UnsupportedModelError(
                f"outputs have shapes {labels.shape} and {probs.shape}; expected [N] and [N, K] for {x.shape[0]} rows"
            )
        return Predictions(labels, probs)


def paired_latency(
    champion: Classifier,
    challenger: Classifier,
    x_champion: np.ndarray,
    x_challenger: np.ndarray,
    runs: int,
    warmup: int,
) -> dict[str, float]:
    """Time single-row ``session.run`` of both models, interleaved so load spikes hit both alike.

    Row ``i % N`` is used at step ``i``; ``warmup`` steps are not timed.

    Args:
        champion: the champion.
        challenger: the challenger.
        x_champion: the champion's input matrix.
        x_challenger: the challenger's input matrix (same rows).
        runs: timed steps.
        warmup: untimed steps first.

    Returns:
        ``champion_p50_ms``, ``champion_p99_ms``, ``challenger_p50_ms``, ``challenger_p99_ms``.
    """
    n = x_champion.shape[0]
    t_champ: list[float] = []
    t_chall: list[float] = []
    for i in range(warmup + runs):
        a = x_champion[i % n : i % n + 1]
        b = x_challenger[i % n : i % n + 1]
        t0 = time.perf_counter()
        champion.session.run(champion.outputs, {champion.input_name: a})
        t1 = time.perf_counter()
        challenger.session.run(challenger.outputs, {challenger.input_name: b})
        t2 = time.perf_counter()
        if i >= warmup:
            t_champ.append(t1 - t0)
            t_chall.append(t2 - t1)
    return {
        "champion_p50_ms": percentile_ms(t_champ, 50),
        "champion_p99_ms": percentile_ms(t_champ, 99),
        "challenger_p50_ms": percentile_ms(t_chall, 50),
        "challenger_p99_ms": percentile_ms(t_chall, 99),
    }
