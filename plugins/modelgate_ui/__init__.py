"""The modelgate evidence view inside the Airflow UI (FastAPI app mounted on the api-server)."""
