"""Traffic simulator: paced OIP v2 requests with unit ids, inputs drawn from a feature spec.

See :mod:`include.traffic.generator` and ``python -m include.traffic --help``.
"""
