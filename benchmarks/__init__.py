"""Benchmarks: scripts run as ``.venv/bin/python benchmarks/NAME.py`` (see the Makefiles ``bench-*`` targets)."""
