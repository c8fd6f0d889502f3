"""Canary tooling: the demo outcome and fault-injecting model copies."""
