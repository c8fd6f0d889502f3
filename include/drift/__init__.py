"""Drift monitoring: calibrated PSI / KS / Jensen-Shannon per feature (``docs/drift.md``)."""
