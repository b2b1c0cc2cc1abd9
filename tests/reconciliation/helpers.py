"""Building, corrupting and inspecting small warehouses for the reconciliation tests."""

from __future__ import annotations

import base64
import json
import logging
import shutil
from pathlib import Path

from ingestion.replay import load_replay
from stratpos.alerts import load_channels
from stratpos.core.settings import Settings
from stratpos.core.warehouse import duckdb_connection, mysql_connection
from stratpos.transform import run_dbt
from stratpos.validate import ValidationReport, run_validation


def build(settings: Settings, replay: Path) -> None:
    """Load ``replay`` into raw and ``dbt run`` the project.

    ``run``, not ``build``: corrupted data fails the §4 singular tests, which would stop a build
    before the reconciliation views; that ``dbt build`` passes on clean data with these views in
    the project is what tests/dbt shows on both targets."""
    logging.getLogger("ingestion").setLevel(logging.WARNING)
    load_replay(replay, settings)
    transform(settings)


def transform(settings: Settings) -> None:
    """``stratpos transform`` without the tests (see :func:`build`)."""
    run_dbt(settings, "run", extra_args=["--quiet"])


def copy_duckdb(settings: Settings, directory: Path) -> Settings:
    """A copy of a built DuckDB warehouse, to corrupt without touching the original."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "warehouse.duckdb"
    shutil.copyfile(settings.duckdb_path, target)
    return settings.with_overrides(duckdb_path=target)


def late_records(directory: Path, account: dict, **files: list[dict]) -> Path:
    """A replay directory of ``account`` (an account.json object) with only the given records: late data."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "account.json").write_text(json.dumps(account))
    for name, records in files.items():
        with open(directory / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r) + "\n")
    return directory


def late_fill(replay: Path, index: int, id_offset: int, tran_offset: int) -> tuple[dict, list[dict]]:
    """A copy of the replay's ``index``-th fill under a new trade id, with copies of its income rows.

    Trade ids are per symbol (SPEC §3.2): the fill's income rows are those of its symbol and id."""
    trades = replay_lines(replay, "futures_trades")
    fill = trades[index]
    new_id = max(t["id"] for t in trades) + id_offset
    income = [
        dict(i, tranId=int(i["tranId"]) + tran_offset, tradeId=str(new_id))
        for i in replay_lines(replay, "income")
        if i.get("symbol") == fill["symbol"] and str(i.get("tradeId")) == str(fill["id"])
    ]
    return dict(fill, id=new_id), income


def move_wallet(settings: Settings, income: list[dict], sign: int = 1) -> None:
    """Move the wallet balance of every snapshot at or after each income row by its amount (§5 R9 holds)."""
    for i in income:
        query(
            settings,
            f"update {{raw}}.balance_snapshots set balance = balance + ({sign} * {i['income']}) "
            f"where asset = '{i['asset']}' and snapshot_time_ms >= {i['time']}",
        )


def query(settings: Settings, sql: str) -> list[dict]:
    """Rows of ``sql``; ``{raw}``, ``{marts}``, ``{audit}``, ``{intermediate}`` name the layer schemas."""
    sql = sql.format(**{layer: _schema(settings, layer) for layer in ("raw", "intermediate", "marts", "audit")})
    if settings.target == "duckdb":
        with duckdb_connection(settings) as con:
            cur = con.execute(sql)
            if cur.description is None:
                return []
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    with mysql_connection(settings) as con, con.cursor() as cur:
        cur.execute(sql)
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _schema(settings: Settings, layer: str) -> str:
    name = settings.schema(layer)
    return f'"{name}"' if settings.target == "duckdb" else f"`{name}`"


def replay_lines(replay: Path, name: str) -> list[dict]:
    with open(replay / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def alert_env(webhook, smtp) -> dict[str, str]:
    """Alert configuration pointing every channel at the local receivers."""
    return {
        "STRATPOS_ALERT_SLACK_WEBHOOK": webhook.url("/slack/T000/B000/secret-slack-token"),
        "STRATPOS_ALERT_WEBHOOK_URL": webhook.url("/hook"),
        "STRATPOS_ALERT_WEBHOOK_TOKEN": "secret-webhook-token",
        "STRATPOS_ALERT_SMTP_HOST": "127.0.0.1",
        "STRATPOS_ALERT_SMTP_PORT": str(smtp.port),
        "STRATPOS_ALERT_SMTP_USER": "alerts",
        "STRATPOS_ALERT_SMTP_PASSWORD": "secret-smtp-password",
        "STRATPOS_ALERT_SMTP_FROM": "stratpos@example.test",
        "STRATPOS_ALERT_SMTP_TO": "desk@example.test, risk@example.test",
    }


def validate(settings: Settings, tmp: Path, webhook=None, smtp=None, **kwargs) -> ValidationReport:
    channels = load_channels(alert_env(webhook, smtp)) if webhook and smtp else []
    return run_validation(settings, channels=channels, docs_dir=tmp / "gx_docs", **kwargs)


def failed_checks(report: ValidationReport) -> set[str]:
    return {r.check.check_id for r in report.failed}


def dq_alerts(settings: Settings, run_id: str) -> list[dict]:
    return query(settings, f"select * from {{audit}}.dq_alerts where run_id = '{run_id}'")


def failing_keys(settings: Settings, run_id: str, check_id: str) -> set[str]:
    return {
        r["check_key"] for r in dq_alerts(settings, run_id) if r["check_id"] == check_id and r["severity"] == "fail"
    }


def alert_payload(received) -> dict:
    """The structured alert a generic-webhook request carries as its ``<run_id>.json`` attachment."""
    [attachment] = received.body["attachments"]
    assert attachment["mimetype"] == "application/json"
    assert attachment["filename"] == f"{received.body['run_id']}.json"
    return json.loads(base64.b64decode(attachment["base64"]))
