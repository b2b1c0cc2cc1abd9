#!/usr/bin/env bash
# One-shot `airflow-init` service: migrate Airflow's metadata database and write the simple auth
# manager's password file (shared volume) from AIRFLOW_ADMIN_USER / AIRFLOW_ADMIN_PASSWORD.
set -euo pipefail
: "${AIRFLOW_ADMIN_USER:?}" "${AIRFLOW_ADMIN_PASSWORD:?}" "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
airflow db migrate
# the pool every Binance task holds slots of (stratpos.pipeline.BINANCE_POOL_SLOTS: the tasks of one IP share
# Binance's request-weight limit)
airflow pools set binance_api 96 "Binance request weight shared by the tasks of this IP (stratpos)"
umask 077
python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
with open(path, "w", encoding="utf-8") as fh:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, fh)
print(f"airflow-init: login for {os.environ['AIRFLOW_ADMIN_USER']} written to {path}")
PY
