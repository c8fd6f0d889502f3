#!/bin/sh
# Puts MLflow credentials from secret files (docker-compose `secrets:`, mounted at /run/secrets) into the
# variables MLflow reads, then runs the command. The files never enter the compose file or the image.
#
#   mlflow-secrets server COMMAND...       MLFLOW_AUTH_ADMIN_PASSWORD      <- mlflow-admin-password
#                                          MLFLOW_FLASK_SERVER_SECRET_KEY  <- mlflow-flask-secret-key
#   mlflow-secrets client USER COMMAND...  MLFLOW_TRACKING_USERNAME=USER,
#                                          MLFLOW_TRACKING_PASSWORD        <- mlflow-USER-password
#
# MLFLOW_SECRETS_DIR overrides /run/secrets. A missing or empty file stops with exit code 64.
set -eu
dir="${MLFLOW_SECRETS_DIR:-/run/secrets}"

secret() {
    if [ ! -s "$dir/$1" ]; then
        echo "mlflow-secrets: $dir/$1 is missing or empty (create it with: python -m include.registry.mlflow_users secrets DIR)" >&2
        exit 64
    fi
    cat "$dir/$1"
}

mode="${1:-}"
case "$mode" in
    server)
        shift
        MLFLOW_AUTH_ADMIN_PASSWORD="$(secret mlflow-admin-password)"
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(secret mlflow-flask-secret-key)"
        export MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY
        ;;
    client)
        if [ $# -lt 2 ]; then
            echo "usage: mlflow-secrets client USER COMMAND..." >&2
            exit 64
        fi
        MLFLOW_TRACKING_USERNAME="$2"
        shift 2
        MLFLOW_TRACKING_PASSWORD="$(secret "mlflow-$MLFLOW_TRACKING_USERNAME-password")"
        export MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
        ;;
    *)
        echo "usage: mlflow-secrets server COMMAND... | mlflow-secrets client USER COMMAND..." >&2
        exit 64
        ;;
esac
if [ $# -eq 0 ]; then
    echo "mlflow-secrets: no command to run" >&2
    exit 64
fi
exec "$@"
