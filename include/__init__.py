"""modelgate's domain library: importable and testable without Airflow."""
