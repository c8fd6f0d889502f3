"""Model registry on MLflow: manifest tags, aliases, audit log, model URI resolution."""
