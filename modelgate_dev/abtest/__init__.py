"""A/B tooling: synthetic data with a known answer, a simulator through a real router, the demo."""
