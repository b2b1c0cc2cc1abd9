#!/usr/bin/env bash
# `make airflow`: the DAG stratpos_hourly in a local Airflow 3 against the paper exchange.
#
# 1. generates a paper account of the last three days into warehouse/airflow/replay (once; remove
#    warehouse/airflow to start over) and serves it as the fake Binance API on 127.0.0.1:8765; its
#    signals go to the signal landing folder the DAG reads, its explicit order links (which only
#    the trade engine knows) are loaded with `stratpos ingest replay`;
# 2. runs what `airflow standalone` runs — api-server (UI on localhost:8080), scheduler,
#    dag-processor, triggerer; LocalExecutor — with AIRFLOW_HOME=warehouse/airflow/home. Metadata
#    database: PostgreSQL database `stratpos_airflow` when a server answers on 127.0.0.1:5432 and
#    psycopg is installed, else SQLite in AIRFLOW_HOME;
# 3. unpauses the DAG: the latest hour runs at once (ingest → dbt → validate), then every hour.
# The warehouse is DuckDB (warehouse/airflow/stratpos.duckdb) unless STRATPOS_TARGET says otherwise.
# Ctrl-C stops everything. Local use only: the generated login is kept in plain text under warehouse/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
export PATH=$BIN:$PATH
DIR=${STRATPOS_AIRFLOW_DIR:-$ROOT/warehouse/airflow}
REPLAY=$DIR/replay
LANDING=$DIR/landing
PORT=${AIRFLOW_PORT:-8080}
SANDBOX_PORT=${STRATPOS_SANDBOX_PORT:-8765}

export AIRFLOW_HOME=$DIR/home
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__API__PORT=$PORT
export AIRFLOW__API__BASE_URL=http://localhost:$PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$PORT/execution/
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
export AIRFLOW__COSMOS__CACHE_DIR=$DIR/cosmos
export AIRFLOW__COSMOS__ENABLE_TELEMETRY=False
export DO_NOT_TRACK=1 DBT_SEND_ANONYMOUS_USAGE_STATS=False GX_ANALYTICS_ENABLED=False
export STRATPOS_BINANCE_BASE_URL=http://127.0.0.1:$SANDBOX_PORT
export STRATPOS_TARGET=${STRATPOS_TARGET:-duckdb}
export STRATPOS_DUCKDB_PATH=${STRATPOS_DUCKDB_PATH:-$DIR/stratpos.duckdb}
export STRATPOS_SIGNALS_LANDING=$LANDING
mkdir -p "$AIRFLOW_HOME"

if [ ! -f "$REPLAY/expected_strategy_positions.jsonl" ]; then
  # three days ending now: the scheduled runs' default window (30 days back) finds them without `since`
  START=$("$BIN/python" -c "from datetime import UTC, datetime, timedelta
print((datetime.now(UTC) - timedelta(days=3)).strftime('%Y-%m-%dT%H:00'))")
  echo "airflow: generating a paper account from $START in $REPLAY"
  "$BIN/stratpos" sandbox generate --out "$REPLAY" --days 3 --strategies 4 --symbols BTCUSDT ETHUSDT \
    --start "$START" --seed 42 --quiet
  mkdir -p "$LANDING" "$DIR/links"
  cp "$REPLAY/signals.jsonl" "$LANDING/"
  if [ -f "$REPLAY/order_links.jsonl" ]; then cp "$REPLAY/order_links.jsonl" "$DIR/links/"; fi
fi
# the trade engine's explicit order links have no Binance source: load them (idempotent) before the runs
"$BIN/stratpos" ingest replay "$DIR/links" > "$DIR/links.log" 2>&1 \
  || { echo "airflow: loading the order links failed, see $DIR/links.log" >&2; exit 1; }

# Metadata database: PostgreSQL if usable, else SQLite (fine for one person on one machine).
if [ -z "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}" ]; then
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$("$BIN/python" - <<'PY'
import importlib.util
import os

url = "postgresql+psycopg://{}@{}:{}".format(
    os.environ.get("PGUSER", "postgres"), os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432")
)
if importlib.util.find_spec("psycopg") is not None:
    from sqlalchemy import create_engine, text

    try:
        with create_engine(f"{url}/postgres", isolation_level="AUTOCOMMIT").connect() as con:
            if not con.execute(text("select 1 from pg_database where datname = 'stratpos_airflow'")).scalar():
                con.execute(text("create database stratpos_airflow"))
        print(f"{url}/stratpos_airflow")
    except Exception:
        pass  # no usable server: SQLite
PY
)
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
fi
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
if [[ $AIRFLOW__DATABASE__SQL_ALCHEMY_CONN == postgresql+psycopg:* ]]; then
  # psycopg 3 also drives the api-server's async engine (Airflow would otherwise want asyncpg)
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC:-$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN}
fi

# One admin login for the simple auth manager, generated once.
PASSWORDS=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
if [ ! -s "$PASSWORDS" ]; then
  (umask 077 && "$BIN/python" -c "import json, secrets; print(json.dumps({'admin': secrets.token_urlsafe(12)}))" > "$PASSWORDS")
fi
PASSWORD=$("$BIN/python" -c "import json, sys; print(json.load(open(sys.argv[1]))['admin'])" "$PASSWORDS")

pids=()
cleanup() {
  trap - INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN/stratpos" sandbox serve --data "$REPLAY" --port "$SANDBOX_PORT" > "$DIR/sandbox.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  curl -fsS "$STRATPOS_BINANCE_BASE_URL/fapi/v1/time" > /dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$STRATPOS_BINANCE_BASE_URL/fapi/v1/time" > /dev/null \
  || { echo "airflow: the sandbox API did not start, see $DIR/sandbox.log" >&2; exit 1; }

echo "airflow: migrating the metadata database (${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN%%:*})"
"$BIN/airflow" db migrate > "$DIR/migrate.log" 2>&1 || { echo "airflow: db migrate failed, see $DIR/migrate.log" >&2; exit 1; }
# the pool every Binance task holds slots of (the tasks of one IP share Binance's request-weight limit)
"$BIN/airflow" pools set binance_api 96 "Binance request weight shared by the tasks of this IP (stratpos)" >> "$DIR/migrate.log" 2>&1
# the same components as `airflow standalone`, each with its own log, all stopped by Ctrl-C
components=()
for component in api-server scheduler dag-processor triggerer; do
  "$BIN/airflow" "$component" > "$DIR/$component.log" 2>&1 &
  pids+=($!)
  components+=("$component:$!")
done

if [ "$STRATPOS_TARGET" = duckdb ]; then
  WAREHOUSE="DuckDB $STRATPOS_DUCKDB_PATH"
else
  WAREHOUSE="MySQL/MariaDB (STRATPOS_MYSQL_*)"
fi
echo "airflow: starting on http://localhost:$PORT (logs: $DIR/*.log)"
for _ in $(seq 1 180); do
  curl -fsS "http://localhost:$PORT/api/v2/monitor/health" 2>/dev/null \
    | grep -q '"dag_processor":{"status":"healthy"' && break
  sleep 1
done
for _ in $(seq 1 60); do
  "$BIN/airflow" dags unpause stratpos_hourly > "$DIR/unpause.log" 2>&1 && break
  sleep 2
done
cat <<EOF

  Airflow UI        http://localhost:$PORT        login: admin / $PASSWORD
  REST API          http://localhost:$PORT/api/v2  (token: POST /auth/token with the login above)
  DAG               http://localhost:$PORT/dags/stratpos_hourly  (unpaused: the latest hour runs now, then hourly)
  fake Binance API  $STRATPOS_BINANCE_BASE_URL  (paper account in $REPLAY)
  signals           $STRATPOS_SIGNALS_LANDING
  warehouse         $WAREHOUSE
  AIRFLOW_HOME      $AIRFLOW_HOME

  Ctrl-C stops Airflow and the sandbox.
EOF

while :; do
  for entry in "${components[@]}"; do
    kill -0 "${entry#*:}" 2>/dev/null || { echo "airflow: ${entry%%:*} exited, see $DIR/${entry%%:*}.log" >&2; exit 1; }
  done
  sleep 2
done
