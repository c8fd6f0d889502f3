"""Traffic simulator: paced OIP v2 requests with unit ids, inputs drawn from a feature spec.

See :mod:`modelgate_dev.traffic.generator` and ``python -m modelgate_dev.traffic --help``.
"""
