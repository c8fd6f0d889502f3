"""Evidence for people who decide: a model's versions and gate verdicts, routes per replica, approvals, audit.

Gathered from MLflow, the audit log and the router replicas; rendered as JSON and as an HTML page with
server-side SVG plots. No Airflow here: the Airflow UI plugin (``plugins/modelgate_ui``) passes in what
it reads from Airflow (pending approvals) and serves the result.
"""
