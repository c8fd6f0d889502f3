"""Regression gate: a challenger model version against the champion on synthetic and labelled data.

Modules: :mod:`~include.regression.policy` (per-model thresholds from ``policies/``),
:mod:`~include.regression.stats` (KS, PSI, agreement, AUC), :mod:`~include.regression.expectations`
(great-expectations suites from ``validation/``), :mod:`~include.regression.scoring` (onnxruntime),
:mod:`~include.regression.checks` (each check as a result with figures),
:mod:`~include.regression.report` (JSON + HTML) and :mod:`~include.regression.pipeline` (what the
``regression_testing`` DAG's tasks call). See ``docs/regression.md``.
"""
