"""Cut a replay directory at a point in time: what an account looked like earlier."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TIME_FIELD = {
    "futures_trades.jsonl": "time",
    "futures_orders.jsonl": "updateTime",
    "futures_algo_orders.jsonl": "updateTime",
    "position_risk.jsonl": "snapshotTime",
    "income.jsonl": "time",
}


def cut_replay(source: Path, target: Path, until_ms: int) -> Path:
    """Copy ``source`` to ``target`` keeping exchange records with time < ``until_ms``.

    Signals, links and the account are kept whole: later signals without fills are harmless.
    """
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.name == "expected_strategy_positions.jsonl":
            continue
        field = TIME_FIELD.get(path.name)
        if field is None:
            shutil.copy(path, target / path.name)
            continue
        with open(path, encoding="utf-8") as src, open(target / path.name, "w", encoding="utf-8") as dst:
            for line in src:
                if json.loads(line)[field] < until_ms:
                    dst.write(line)
    return target
