#!/usr/bin/env bash
# `sandbox` service (profile `sandbox`): a paper account of the last three days (generated once into
# the sandbox volume), its signals in the landing folder the DAG reads, its explicit order links
# loaded into the warehouse (the trade engine's part, which Binance does not have), then the fake
# Binance USD-M API on 0.0.0.0:8765 for the Airflow containers.
set -euo pipefail
replay=/data/sandbox/replay
if [ ! -f "$replay/expected_strategy_positions.jsonl" ]; then
  start=$(python -c "from datetime import UTC, datetime, timedelta
print((datetime.now(UTC) - timedelta(days=3)).strftime('%Y-%m-%dT%H:00'))")
  stratpos sandbox generate --out "$replay" --days 3 --strategies 6 --start "$start" --seed 42 --quiet
  mkdir -p "$STRATPOS_SIGNALS_LANDING" /data/sandbox/links
  cp "$replay/signals.jsonl" "$STRATPOS_SIGNALS_LANDING/"
  if [ -f "$replay/order_links.jsonl" ]; then cp "$replay/order_links.jsonl" /data/sandbox/links/; fi
fi
stratpos ingest replay /data/sandbox/links --quiet
exec stratpos sandbox serve --data "$replay" --host 0.0.0.0 --port 8765
