"""Train the two demo "churn" classifiers and export them to ONNX with one shared signature.

``python -m modelgate_dev.demo.train --out DIR [--seed N]`` or :func:`train_demo_models` writes into
``DIR``:

- ``churn-v1.onnx``: standardised linear logistic regression (the weaker model);
- ``churn-v2.onnx``: logistic regression on all pairwise interactions (measurably better);
- ``feature_spec.json``: :class:`include.synthetic.FeatureSpec` fitted on the training features;
- ``reference.parquet``: a sample of training rows (features ``f00`` … ``f29``);
- ``holdout.parquet``: the labelled holdout (features + ``label``);
- ``metrics.json``: holdout AUC and accuracy of both models, computed from the ONNX files in
  onnxruntime, plus hashes and parameters for lineage.

Both models take ``input`` float32 ``[N, 30]`` and return ``label`` int64 ``[N]`` and
``probabilities`` float32 ``[N, 2]``. Data is generated with
``sklearn.datasets.make_classification`` (no downloads); everything is deterministic in the
seed, including the ONNX bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.synthetic import FeatureSpec
from include.synthetic.files import atomic_write, atomic_write_bytes
from modelgate_dev.demo.errors import DemoError
from modelgate_dev.demo.models import OPSET

if TYPE_CHECKING:
    import onnx
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

N_FEATURES = 30
FEATURE_NAMES: tuple[str, ...] = tuple(f"f{i:02d}" for i in range(N_FEATURES))
"""Input columns of the demo models, in input order."""
LABEL_COLUMN = "label"
INPUT_NAME = "input"
OUTPUT_NAMES = ("label", "probabilities")

V1_FILE = "churn-v1.onnx"
V2_FILE = "churn-v2.onnx"
FEATURE_SPEC_FILE = "feature_spec.json"
REFERENCE_FILE = "reference.parquet"
HOLDOUT_FILE = "holdout.parquet"
METRICS_FILE = "metrics.json"
ARTIFACT_FILES = (V1_FILE, V2_FILE, FEATURE_SPEC_FILE, REFERENCE_FILE, HOLDOUT_FILE, METRICS_FILE)
"""Every file :func:`train_demo_models` writes."""

N_SAMPLES = 20_000
HOLDOUT_FRACTION = 0.25
REFERENCE_ROWS = 5_000


@dataclass(frozen=True)
class DemoArtifacts:
    """Paths of the files written by :func:`train_demo_models` and the metrics it measured.

    Attributes:
        out_dir: the output folder.
        v1_model: ``churn-v1.onnx`` (weaker model).
        v2_model: ``churn-v2.onnx`` (better model).
        feature_spec: ``feature_spec.json``.
        reference: ``reference.parquet``.
        holdout: ``holdout.parquet``.
        metrics_file: ``metrics.json``.
        metrics: the content of ``metrics.json``.
    """

    out_dir: Path
    v1_model: Path
    v2_model: Path
    feature_spec: Path
    reference: Path
    holdout: Path
    metrics_file: Path
    metrics: dict[str, Any] = field(repr=False)

    def model(self, version: str) -> Path:
        """Return the ONNX path of ``"v1"`` or ``"v2"``.

        Args:
            version: ``"v1"`` or ``"v2"``.

        Returns:
            The model path.

        Raises:
            DemoError: for another version.
        """
        paths = {"v1": self.v1_model, "v2": self.v2_model}
        if version not in paths:
            raise DemoError(f"demo model version must be 'v1' or 'v2', got {version!r}")
        return paths[version]


@dataclass(frozen=True)
class DemoData:
    """The generated dataset, split into training and holdout rows (float32 features, int64 labels)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray


def make_dataset(seed: int = 0, n_samples: int = N_SAMPLES) -> DemoData:
    """Generate the demo classification data and split it.

    A 30-feature ``make_classification`` problem with several clusters per class, so that
    interactions between features carry signal a linear model misses.

    Args:
        seed: random seed of the generator.
        n_samples: rows in total; a quarter is held out.

    Returns:
        The split data.

    Raises:
        DemoError: when ``seed`` is negative or ``n_samples`` is below 200.
    """
    _check_seed(seed)
    if n_samples < 200:
        raise DemoError(f"n_samples must be at least 200, got {n_samples}")
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_samples,
        n_features=N_FEATURES,
        n_informative=10,
        n_redundant=6,
        n_clusters_per_class=4,
        flip_y=0.02,
        class_sep=1.0,
        random_state=seed,
    )
    n_holdout = round(n_samples * HOLDOUT_FRACTION)
    x = x.astype(np.float32)
    y = y.astype(np.int64)
    return DemoData(x[:-n_holdout], y[:-n_holdout], x[-n_holdout:], y[-n_holdout:])


def build_estimators() -> dict[str, Pipeline]:
    """Return the two unfitted scikit-learn pipelines.

    Returns:
        ``{"v1": scaler + LogisticRegression, "v2": scaler + degree-2 interactions + LogisticRegression}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return {
        "v1": Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(C=1.0, max_iter=1000))]),
        "v2": Pipeline(
            [
                ("scale", StandardScaler()),
                ("interactions", PolynomialFeatures(degree=2, include_bias=False)),
                ("logreg", LogisticRegression(C=0.1, max_iter=3000)),
            ]
        ),
    }


def fit_estimators(data: DemoData) -> dict[str, Pipeline]:
    """Fit both pipelines on the training rows, single-threaded so that results are bit-identical.

    Args:
        data: the dataset from :func:`make_dataset`.

    Returns:
        The fitted pipelines by version.
    """
    from threadpoolctl import threadpool_limits

    estimators = build_estimators()
    for version, estimator in estimators.items():
        started = time.perf_counter()
        # One BLAS/OpenMP thread: parallel reductions may add in a different order from run to
        # run, and the ONNX bytes (hence sha256 and registry de-duplication) must not change.
        with threadpool_limits(limits=1):
            estimator.fit(data.x_train, data.y_train)
        log.info("fitted demo %s in %.2fs", version, time.perf_counter() - started)
    return estimators


def to_onnx(estimator: Pipeline, graph_name: str) -> onnx.ModelProto:
    """Convert a fitted classifier to ONNX with the demo signature.

    Args:
        estimator: a fitted scikit-learn classifier taking 30 features.
        graph_name: fixed graph name (skl2onnx would otherwise use a random one, and the bytes
            would change from run to run; the opset list is sorted for the same reason).

    Returns:
        The ONNX model: ``input`` float32 ``[N, 30]`` → ``label`` int64 ``[N]``,
        ``probabilities`` float32 ``[N, 2]``.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = convert_sklearn(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, N_FEATURES]))],
        options={id(estimator): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    model.graph.name = graph_name
    # skl2onnx lists the opsets in set order, which follows string hashing (PYTHONHASHSEED);
    # sort them so that the bytes do not change from process to process.
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.add(domain=domain, version=version)
    model.doc_string = f"modelgate demo classifier {graph_name}"
    del model.metadata_props[:]
    model.metadata_props.add(key="feature_names", value=",".join(FEATURE_NAMES))
    return model


def onnx_predict(model_path: Path | str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run an ONNX classifier with the demo signature in onnxruntime.

    Args:
        model_path: the ``.onnx`` file.
        x: float32 features ``[N, 30]``.

    Returns:
        ``(label, probabilities)``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(x, np.float32)})
    return np.asarray(label), np.asarray(probabilities)


def evaluate_onnx(model_path: Path | str, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Holdout AUC and accuracy of an ONNX model, from its onnxruntime outputs.

    Args:
        model_path: the ``.onnx`` file.
        x: float32 features.
        y: 0/1 labels.

    Returns:
        ``{"auc": ..., "accuracy": ...}``.
    """
    from sklearn.metrics import accuracy_score, roc_auc_score

    label, probabilities = onnx_predict(model_path, x)
    return {
        "auc": float(roc_auc_score(y, probabilities[:, 1])),
        "accuracy": float(accuracy_score(y, label)),
    }


def train_demo_models(out_dir: Path | str, seed: int = 0) -> DemoArtifacts:
    """Train, export and evaluate both demo models, and write every demo file into ``out_dir``.

    Each file is written atomically; running again with the same seed rewrites identical files.

    Args:
        out_dir: output folder (created when missing).
        seed: seed of the data, the split and the reference sample.

    Returns:
        Paths of the written files and the metrics.

    Raises:
        DemoError: when ``seed`` is invalid or ``out_dir`` exists and is not a folder.
        OSError: when a file cannot be written.
    """
    _check_seed(seed)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DemoError(f"output path {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = make_dataset(seed)
    estimators = fit_estimators(data)

    paths = {"v1": out / V1_FILE, "v2": out / V2_FILE}
    for version, estimator in estimators.items():
        model = to_onnx(estimator, graph_name=f"churn_{version}")
        atomic_write_bytes(paths[version], model.SerializeToString())

    train_frame = pd.DataFrame(data.x_train, columns=list(FEATURE_NAMES))
    spec = FeatureSpec.fit(train_frame)
    spec.to_json(out / FEATURE_SPEC_FILE)

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(train_frame), size=min(REFERENCE_ROWS, len(train_frame)), replace=False))
    reference = train_frame.iloc[rows].reset_index(drop=True)
    _write_parquet(reference, out / REFERENCE_FILE)
    holdout = pd.DataFrame(data.x_holdout, columns=list(FEATURE_NAMES))
    holdout[LABEL_COLUMN] = data.y_holdout
    _write_parquet(holdout, out / HOLDOUT_FILE)

    metrics: dict[str, Any] = {
        "seed": seed,
        "n_train": len(data.y_train),
        "n_holdout": len(data.y_holdout),
        "feature_names": list(FEATURE_NAMES),
        "training_data_sha256": _sha256_arrays(data.x_train, data.y_train),
        "metrics_source": "onnxruntime",
        "models": {
            version: {
                "file": paths[version].name,
                "sha256": hashlib.sha256(paths[version].read_bytes()).hexdigest(),
                "estimator": _describe(estimator),
                "params": _params(estimator),
                **evaluate_onnx(paths[version], data.x_holdout, data.y_holdout),
            }
            for version, estimator in estimators.items()
        },
    }
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    atomic_write(out / METRICS_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    log.info(
        "demo models written to %s in %.1fs: v1 AUC %.4f, v2 AUC %.4f",
        out,
        time.perf_counter() - started,
        metrics["models"]["v1"]["auc"],
        metrics["models"]["v2"]["auc"],
    )
    return DemoArtifacts(
        out_dir=out,
        v1_model=paths["v1"],
        v2_model=paths["v2"],
        feature_spec=out / FEATURE_SPEC_FILE,
        reference=out / REFERENCE_FILE,
        holdout=out / HOLDOUT_FILE,
        metrics_file=out / METRICS_FILE,
        metrics=metrics,
    )


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DemoError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow"))


def _sha256_arrays(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _describe(estimator: Pipeline) -> str:
    return " -> ".join(type(step).__name__ for _, step in estimator.steps)


def _params(estimator: Pipeline) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, step in estimator.steps:
        for key, value in step.get_params(deep=False).items():
            if isinstance(value, bool | int | float | str) or value is None:
                params[f"{name}.{key}"] = value
    return params


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m modelgate_dev.demo.train --out DIR [--seed N]``.

    Args:
        argv: arguments (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit status: 0 on success, 1 on a reported error.
    """
    parser = argparse.ArgumentParser(prog="python -m modelgate_dev.demo.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder for the demo files")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        artifacts = train_demo_models(args.out, seed=args.seed)
    except (DemoError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)  # noqa: T201 - CLI output
        return 1
    summary = {
        "out_dir": str(artifacts.out_dir),
        "files": list(ARTIFACT_FILES),
        "models": {
            v: {"auc": m["auc"], "accuracy": m["accuracy"]} for v, m in artifacts.metrics["models"].items()
        },
    }
    print(json.dumps(summary, indent=2))  # noqa: T201 - CLI output
    return 0


if __name__ == "__main__":
    sys.exit(main())
