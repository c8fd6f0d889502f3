"""Developer tools above the domains: the local stack, the ``modelgate`` CLI, the demo, traffic
generators, simulators and fault-injecting models.

Nothing in ``include/``, ``plugins/`` or ``dags/`` imports this package; tests, benchmarks and the
console script do (``docs/architecture.md``).
"""
