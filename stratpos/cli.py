"""stratpos: per-strategy books, PnL and reconciliation for a shared Binance USD-M futures account.

Every command calls the same package functions the Airflow DAG uses; this module only
parses arguments, shows progress and turns known errors (:class:`StratposError`) into one
clear line and a non-zero exit code, caught once in :func:`main` (tracebacks with ``-v``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from stratpos.core.errors import SourceUnavailable, StratposError
from stratpos.core.logs import bytes_progress, configure_logging, minutes_progress
from stratpos.core.settings import Settings, export_env_file, load_settings
from stratpos.core.timeparse import epoch_ms, parse_time


def cmd_sandbox_generate(args: argparse.Namespace) -> int:
    from sandbox.generator import DEFAULT_START, GenerateConfig, generate

    cfg = GenerateConfig(
        out=Path(args.out),
        days=args.days,
        strategies=args.strategies,
        symbols=tuple(s.upper() for s in args.symbols),
        mode=args.mode,
        seed=args.seed,
        account_id=args.account_id,
        start=parse_time(args.start, option="--start") if args.start else DEFAULT_START,
        progress=None if args.quiet else minutes_progress("simulating"),
        history_start=parse_time(args.history_start, option="--history-start") if args.history_start else None,
        rebates=args.rebates,
        account_income=args.account_income,
        real_account=args.real_account,
    )
    summary = generate(cfg)
    print(
        f"wrote {cfg.out}: {summary.fills:,} fills, {summary.orders:,} order versions, "
        f"{summary.signals:,} signals, {summary.income:,} income rows, "
        f"{summary.snapshots:,} positionRisk rows, {summary.positions:,} expected strategy positions "
        f"({summary.files['_seconds']} s)"
    )
    if cfg.history_start is not None:
        print(f"served history starts {cfg.history_start.isoformat()} (symbols: {', '.join(cfg.symbols)})")
    return 0


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from sandbox.server import ServerConfig, serve_forever

    data = Path(args.data)
    if not data.is_dir():
        raise SystemExit(f"stratpos: {data} is not a replay directory (run `stratpos sandbox generate` first)")
    config = ServerConfig(weight_limit_1m=args.weight_limit)
    serve_forever(data, args.host, args.port, config)
    return 0


def _announce_new_warehouse(settings: Settings) -> None:
    """Ingestion creates the DuckDB warehouse when its file is missing: say so (the folder must exist)."""
    from stratpos.core.warehouse import prepare_new_warehouse

    if prepare_new_warehouse(settings):
        print(f"creating a new DuckDB warehouse at {settings.duckdb_path}", flush=True)


def _require_sandbox(creds, timeout: float = 3.0) -> None:
    """Without a key stratpos reads the paper exchange: fail at once, in one line, when it is not running."""
    import urllib.error
    import urllib.request

    url = (creds.base_url or "").rstrip("/").removesuffix("/fapi") + "/fapi/v1/ping"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
    except (urllib.error.URLError, OSError, ValueError):
        raise SourceUnavailable(
            f"no Binance key is set (BINANCE_API_KEY/BINANCE_API_SECRET), so stratpos used the paper exchange at "
            f"{creds.base_url} — it is not reachable; start it with `stratpos sandbox serve --data DIR` "
            "or set STRATPOS_SANDBOX_URL"
        ) from None


def _print_stats(stats) -> int:
    for st in stats:
        print(st.summary())
    return 0


def cmd_ingest_replay(args: argparse.Namespace) -> int:
    from ingestion.replay import load_replay

    settings = load_settings()
    print(f"loading {args.directory} into {settings.describe()}")
    _announce_new_warehouse(settings)
    stats = load_replay(
        Path(args.directory),
        settings,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=None if args.quiet else bytes_progress(),
    )
    return _print_stats(stats)


def cmd_ingest_binance(args: argparse.Namespace) -> int:
    from ingestion.binance_client import BinanceIngestError, resolve_credentials
    from ingestion.binance_source import ingest_binance

    settings = load_settings()
    since_ms, until_ms = epoch_ms(args.since, option="--since"), epoch_ms(args.until, option="--until")
    print(f"reading Binance USD-M into {settings.describe()}")
    if not args.account_id or args.account_id == "default":
        try:
            creds = resolve_credentials()  # refuses a key with a base URL but no STRATPOS_BINANCE_ENDPOINT opt-in
        except BinanceIngestError as exc:
            print(f"stratpos: {exc}", file=sys.stderr)
            return 1
        if not creds.real_key:
            _require_sandbox(creds)
    _announce_new_warehouse(settings)
    try:
        stats = ingest_binance(
            settings,
            symbols=[s.upper() for s in args.symbols] if args.symbols else None,
            since_ms=since_ms,
            until_ms=until_ms,
            account_id=args.account_id,
            progress=None if args.quiet else bytes_progress(),
        )
    except BinanceIngestError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    return _print_stats(stats)


def cmd_ingest_export(args: argparse.Namespace) -> int:
    from ingestion.export import ExportError, load_export_files

    settings = load_settings()
    print(f"loading {len(args.files)} Binance export file(s) into {settings.describe()}")
    _announce_new_warehouse(settings)
    try:
        stats = load_export_files([Path(f) for f in args.files], settings, account_id=args.account_id)
    except ExportError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    return _print_stats(stats)


def cmd_ingest_signals(args: argparse.Namespace) -> int:
    from ingestion.signals import SignalSourceError, ingest_signal_files, ingest_signal_table

    settings = load_settings()
    _announce_new_warehouse(settings)
    try:
        if args.sql_url:
            if not (args.table and args.incremental_column):
                raise SystemExit("stratpos: --sql-url needs --table and --incremental-column")
            stats = ingest_signal_table(settings, args.sql_url, args.table, args.incremental_column)
        else:
            if not args.landing:
                raise SystemExit("stratpos: give a landing folder or --sql-url")
            stats = ingest_signal_files(settings, Path(args.landing))
            if getattr(stats, "skipped", None):
                print(f"skipped {len(stats.skipped)} unchanged files")
    except SignalSourceError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    return _print_stats(stats)


def _nats_settings(args: argparse.Namespace):
    """NATS settings: the settings object's STRATPOS_NATS_*, overridden by the command line's options."""
    from ingestion.nats_source import nats_settings

    servers = getattr(args, "nats", None)
    return nats_settings(
        load_settings(),
        servers=tuple(s.strip() for s in servers.split(",") if s.strip()) if servers else None,
        stream=args.stream,
        signals_subject=args.signals_subject,
        links_subject=args.links_subject,
        durable=getattr(args, "durable", None),
        batch_size=getattr(args, "batch_size", None),
    )


def _nats_kinds(args: argparse.Namespace) -> tuple[str, ...]:
    return ("signals", "order_links") if args.only is None else (args.only,)


def _print_commit(kind: str, stats, last_sequence: int) -> None:
    print(
        f"  committed {kind}: received {stats.received:,} = loaded {stats.loaded:,} + duplicates "
        f"{stats.duplicates:,} + quarantined {stats.quarantined:,}; stream sequence {last_sequence}",
        flush=True,
    )


def cmd_ingest_nats(args: argparse.Namespace) -> int:
    from ingestion.nats_source import NatsSourceError, ingest_nats

    settings = load_settings()
    cfg = _nats_settings(args)
    print(f"consuming {cfg.describe()} into {settings.describe()}", flush=True)
    try:
        result = ingest_nats(
            settings,
            cfg,
            kinds=_nats_kinds(args),
            from_sequence=args.from_sequence,
            reset=args.reset,
            on_commit=None if args.quiet else _print_commit,
        )
    except NatsSourceError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    return _print_stats(result.as_list())


def cmd_listen_nats(args: argparse.Namespace) -> int:
    from ingestion.nats_source import NatsSourceError, listen_nats

    settings = load_settings()
    cfg = _nats_settings(args)
    print(f"listening on {cfg.describe()} into {settings.describe()} (SIGTERM stops after the batch)", flush=True)
    try:
        result = listen_nats(settings, cfg, kinds=_nats_kinds(args), on_commit=None if args.quiet else _print_commit)
    except NatsSourceError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    print("stopped")
    return _print_stats(result.as_list())


def cmd_sandbox_publish(args: argparse.Namespace) -> int:
    from ingestion.nats_source import NatsSourceError
    from sandbox.publish import publish_replay

    cfg = _nats_settings(args)
    try:
        result = publish_replay(cfg, Path(args.replay_dir))
    except (NatsSourceError, FileNotFoundError) as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    print(f"published to {cfg.describe()}: {result.summary()}")
    return 0


def cmd_transform(args: argparse.Namespace) -> int:
    from stratpos.core.warehouse import require_warehouse
    from stratpos.transform import TransformError, run_dbt, source_freshness

    settings = load_settings()
    require_warehouse(settings)
    print(f"dbt build on {settings.describe()}{' (full refresh)' if args.full_refresh else ''}")

    def show(node) -> None:
        mark = {"success": "ok", "pass": "ok"}.get(node.status, node.status.upper())
        print(f"  {mark:<6} {node.resource_type:<6} {node.name} ({node.seconds:.2f} s)", flush=True)
        if node.status in ("error", "fail", "warn") and node.message:
            print(f"         {node.message.splitlines()[0][:300]}")

    try:
        result = run_dbt(
            settings,
            "build",
            full_refresh=args.full_refresh,
            select=args.select,
            extra_args=["--quiet"],
            on_node=show,
        )
    except TransformError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    for line in source_freshness(settings):  # stale raw data: a warning line, not a failure
        print(f"warning: {line}", file=sys.stderr)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the reconciliation checks; exit 0 when nothing failed, 1 otherwise."""
    from stratpos.alerts import AlertConfigError
    from stratpos.core.warehouse import require_warehouse
    from stratpos.validate import NothingToValidate, run_validation

    settings = load_settings()
    require_warehouse(settings)
    try:
        report = run_validation(
            settings,
            run_id=args.run_id,
            send_alerts=not args.no_alerts,
            docs_dir=None if args.no_docs else Path(args.docs_dir) if args.docs_dir else settings.gx_docs_path,
        )
    except AlertConfigError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 2
    except NothingToValidate as exc:  # never transformed: not a reconciliation failure, nobody alerted
        print(f"stratpos: {exc}", file=sys.stderr)
        return NothingToValidate.exit_code
    print(report.render())
    return report.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    from stratpos.report import main_report

    return main_report(args.out)


def cmd_run(args: argparse.Namespace) -> int:
    """ingest (Binance, or a replay directory) + transform + validate, as the DAG does."""
    from stratpos import pipeline
    from stratpos.transform import TransformError

    settings = load_settings()
    since_ms = epoch_ms(args.since, option="--since")
    print(f"stratpos run on {settings.describe()}")
    if not args.replay and settings.accounts in ((), ("default",)):
        from ingestion.binance_client import resolve_credentials

        creds = resolve_credentials()
        if not creds.real_key:
            _require_sandbox(creds)
    _announce_new_warehouse(settings)
    if args.replay:
        stats = pipeline.ingest_replay(settings, Path(args.replay))
    else:
        stats = pipeline.ingest_exchange_all(settings, since_ms=since_ms)
    stats += pipeline.ingest_signals(settings)
    for st in stats:
        print(
            f"  {st['source']}: received {st['received']:,} = loaded {st['loaded']:,} + duplicates "
            f"{st['duplicates']:,} + quarantined {st['quarantined']:,}"
        )
    try:
        print("  " + pipeline.transform(settings)["summary"])
    except TransformError as exc:
        print(f"stratpos: {exc}", file=sys.stderr)
        return 1
    return cmd_validate(argparse.Namespace(run_id=None, no_alerts=False, no_docs=False, docs_dir=None))


def cmd_demo(args: argparse.Namespace) -> int:
    from stratpos.demo import run_demo

    return run_demo(Path(args.out), days=args.days, seed=args.seed, strategies=args.strategies)


def cmd_bench(args: argparse.Namespace) -> int:
    from stratpos.bench import run_bench, run_hourly_bench, run_nats_bench

    if args.stage == "nats":
        targets = (args.target,) if args.target else tuple(args.targets)
        return run_nats_bench(Path(args.workdir), messages=args.messages, targets=targets, servers=args.nats)
    if args.stage == "hourly":
        return run_hourly_bench(
            Path(args.workdir),
            history_days=args.history_days,
            baseline_days=args.baseline_days,
            strategies=args.strategies,
            symbols=args.symbols,
            targets=(args.target,) if args.target else tuple(args.targets),
            dag=not args.no_dag,
        )
    return run_bench(
        args.stage,
        Path(args.workdir),
        days=args.days,
        strategies=args.strategies,
        symbols=args.symbols,
        replay=Path(args.replay) if args.replay else None,
        targets=tuple(args.targets),
    )


def cmd_config(args: argparse.Namespace) -> int:
    """Every setting in effect and where it came from (default, environment, .env file); secrets as set/unset."""
    s = load_settings()
    print(f"warehouse: {s.describe()}")
    for layer, schema in s.schemas.items():
        print(f"  {layer:<13} -> {schema}")
    rows = s.rows()
    width = max(len(var) for var, _, _ in rows)
    print("settings (variable, value, from):")
    for var, shown, origin in rows:
        print(f"  {var:<{width}}  {shown}  [{origin}]")
    return 0


def _nats_arguments(p: argparse.ArgumentParser, consumer: bool = False) -> None:
    """Options overriding the STRATPOS_NATS_* settings (secrets only from the environment)."""
    if consumer:
        p.add_argument("--nats", metavar="SERVERS", help="NATS server URLs, comma-separated (STRATPOS_NATS_SERVERS)")
        p.add_argument("--durable", help="consumer name prefix (STRATPOS_NATS_DURABLE)")
        p.add_argument("--batch-size", type=int, help="messages per fetch and commit (STRATPOS_NATS_BATCH_SIZE)")
        p.add_argument("--only", choices=("signals", "order_links"), help="consume one kind only")
        p.add_argument("--quiet", action="store_true", help="no line per committed batch")
    p.add_argument("--stream", help="JetStream stream (STRATPOS_NATS_STREAM)")
    p.add_argument("--signals-subject", help="signals subject (STRATPOS_NATS_SIGNALS_SUBJECT)")
    p.add_argument("--links-subject", help="order-link subject (STRATPOS_NATS_LINKS_SUBJECT)")


def build_parser() -> argparse.ArgumentParser:
    from sandbox.instruments import DEFAULT_SYMBOLS, INSTRUMENTS

    p = argparse.ArgumentParser(prog="stratpos", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="generate a paper account, serve it, read it back with python-binance")
    demo.add_argument("--out", default="warehouse/demo", help="replay directory to (re)create")
    demo.add_argument("--days", type=float, default=7)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--strategies", type=int, default=None, help="strategies of the paper account (default 6)")
    demo.set_defaults(func=cmd_demo)

    sandbox = sub.add_parser("sandbox", help="the paper exchange: a simulated account served as a fake Binance API")
    ssub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    gen = ssub.add_parser("generate", help="simulate an account and write a replay directory + ground truth")
    gen.add_argument("--out", required=True, help="directory to write (its replay files are replaced)")
    gen.add_argument("--days", type=float, default=7)
    gen.add_argument("--strategies", type=int, default=6)
    gen.add_argument(
        "--symbols",
        nargs="+",
        default=list(DEFAULT_SYMBOLS),
        metavar="SYMBOL",
        help=f"symbols to trade (known: {', '.join(INSTRUMENTS)}, and quarterlies like BTCUSDT_260327)",
    )
    gen.add_argument("--mode", choices=("hedge", "one_way"), default="hedge")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--account-id", default="default")
    gen.add_argument("--start", default=None, help="UTC start, e.g. 2026-01-05T00:00")
    gen.add_argument(
        "--history-start",
        default=None,
        help="UTC time the served history starts: the account trades from --start, the replay holds only "
        "what Binance still serves from here on (keys may be open at that time)",
    )
    gen.add_argument("--rebates", action="store_true", help="maker rebates (negative commission) for a stretch")
    gen.add_argument(
        "--account-income",
        action="store_true",
        help="transfers, INSURANCE_CLEAR on liquidations, a daily rebate-programme payment",
    )
    gen.add_argument(
        "--real-account",
        action="store_true",
        help="all real-account shapes: hedge mode, history from a quarter into the run, rebates, BNB fees, "
        "transfers, liquidations with INSURANCE_CLEAR, a quarterly delivered in the run and ETHBTC "
        "(with the default --symbols)",
    )
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_sandbox_generate)
    srv = ssub.add_parser("serve", help="serve a replay directory as a fake Binance USD-M REST API")
    srv.add_argument("--data", required=True, help="replay directory written by `sandbox generate`")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8765)
    srv.add_argument("--weight-limit", type=int, default=2400, help="request weight per minute before 429")
    srv.set_defaults(func=cmd_sandbox_serve)
    pub = ssub.add_parser("publish", help="publish a replay directory's signals and order links to NATS JetStream")
    pub.add_argument("replay_dir", metavar="REPLAY_DIR", help="replay directory (signals.jsonl, order_links.jsonl)")
    pub.add_argument("--nats", required=True, metavar="SERVERS", help="NATS server URLs, comma-separated")
    _nats_arguments(pub)
    pub.set_defaults(func=cmd_sandbox_publish)

    ingest = sub.add_parser("ingest", help="load sources into the raw layer (idempotent)")
    isub = ingest.add_subparsers(dest="ingest_command", required=True, metavar="SOURCE")
    rep = isub.add_parser("replay", help="a replay directory (JSONL files as the paper exchange writes them)")
    rep.add_argument("directory")
    rep.add_argument("--batch-size", type=int, default=50_000, help="records per transaction")
    rep.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that parse and validate while the main one merges (default: 2 for replays over 64 MB, else 0)",
    )
    rep.add_argument("--quiet", action="store_true", help="no progress bars")
    rep.set_defaults(func=cmd_ingest_replay)
    bn = isub.add_parser(
        "binance",
        help="the Binance USD-M API through python-binance (BINANCE_API_KEY/SECRET; none: the paper exchange)",
    )
    bn.add_argument("--symbols", nargs="*", help="symbols to read besides those seen in income/positions/signals")
    bn.add_argument(
        "--since",
        help="UTC start for keys without a watermark: ISO date/time, today, yesterday or e.g. 2d, 36h "
        "(default: 30 days ago)",
    )
    bn.add_argument("--until", help="UTC end, same forms as --since (default: now)")
    bn.add_argument("--account-id", default=None, help="account id to store the data under (default: default)")
    bn.add_argument("--quiet", action="store_true", help="no progress bars")
    bn.set_defaults(func=cmd_ingest_binance)
    ex = isub.add_parser(
        "export",
        help="Binance's trade/order/income history exports (CSV) for history older than the API's retention",
    )
    ex.add_argument("files", nargs="+", metavar="FILE", help="CSV files downloaded from the .../asyn/id links")
    ex.add_argument("--account-id", default="default", help="account id to store the data under (default: default)")
    ex.set_defaults(func=cmd_ingest_export)
    sg = isub.add_parser("signals", help="signal files (JSONL/CSV/Parquet, each once) or a SQL table (incremental)")
    sg.add_argument("landing", nargs="?", help="landing folder of signal files")
    sg.add_argument("--sql-url", help="SQLAlchemy URL of a signal table instead of files")
    sg.add_argument("--table", help="table name (with --sql-url)")
    sg.add_argument("--incremental-column", help="monotonic column, e.g. updated_at (with --sql-url)")
    sg.set_defaults(func=cmd_ingest_signals)
    na = isub.add_parser("nats", help="signals and order links from NATS JetStream (durable pull consumers)")
    _nats_arguments(na, consumer=True)
    na.add_argument("--from-sequence", type=int, help="recreate the consumers to replay the stream from this sequence")
    na.add_argument("--reset", action="store_true", help="recreate the consumers after the stored stream sequence")
    na.set_defaults(func=cmd_ingest_nats)
    listen = sub.add_parser("listen", help="long-running, low-latency ingestion (stops on SIGTERM)")
    lsub = listen.add_subparsers(dest="listen_command", required=True, metavar="SOURCE")
    ln = lsub.add_parser("nats", help="consume signals and order links from NATS JetStream until SIGTERM")
    _nats_arguments(ln, consumer=True)
    ln.set_defaults(func=cmd_listen_nats)

    rp = sub.add_parser("report", help="write the self-contained HTML report from the marts")
    rp.add_argument("--out", help="HTML file (default warehouse/report.html)")
    rp.set_defaults(func=cmd_report)
    rn = sub.add_parser("run", help="ingest + transform + validate (exit 1 when a check fails)")
    rn.add_argument("--replay", help="ingest this replay directory instead of the Binance API")
    rn.add_argument("--since", help="UTC start for keys without a watermark (Binance): ISO, yesterday, 2d, …")
    rn.set_defaults(func=cmd_run)

    tr = sub.add_parser("transform", help="dbt build: staging, attribution and marts, with their tests")
    tr.add_argument("--full-refresh", action="store_true", help="rebuild incremental models from scratch")
    tr.add_argument("--select", help="dbt node selection, e.g. strategy_positions+")
    tr.set_defaults(func=cmd_transform)

    va = sub.add_parser("validate", help="reconcile the books with the exchange (GX), record and alert mismatches")
    va.add_argument("--run-id", help="id of this validation (default: a new one); re-using an id replaces its alerts")
    va.add_argument("--docs-dir", help="where to write the GX data docs (default: beside the warehouse, see config)")
    va.add_argument("--no-docs", action="store_true", help="do not build GX data docs")
    va.add_argument("--no-alerts", action="store_true", help="record mismatches in audit.dq_alerts only")
    va.set_defaults(func=cmd_validate)

    bench = sub.add_parser("bench", help="measure throughput and peak memory of a pipeline stage")
    bench.add_argument("stage", choices=("generate", "ingest", "transform", "hourly", "nats"), help="stage to measure")
    bench.add_argument("--messages", type=int, default=100_000, help="nats: signals to publish and ingest")
    bench.add_argument("--nats", metavar="SERVERS", help="nats: server URLs (default: STRATPOS_NATS_SERVERS or local)")
    bench.add_argument("--workdir", default="warehouse/bench")
    bench.add_argument("--days", type=float, default=30)
    bench.add_argument("--strategies", type=int, default=10)
    bench.add_argument("--symbols", type=int, default=8, help="how many symbols (first N known ones)")
    bench.add_argument("--replay", help="replay directory to write (generate) or load (ingest); default WORKDIR/replay")
    bench.add_argument("--targets", nargs="+", choices=("duckdb", "mysql"), default=["duckdb", "mysql"])
    bench.add_argument("--target", choices=("duckdb", "mysql"), help="one target (overrides --targets)")
    bench.add_argument("--history-days", type=float, default=70, help="hourly: days of history before the hour")
    bench.add_argument("--baseline-days", type=float, default=2, help="hourly: the short history to compare with")
    bench.add_argument("--no-dag", action="store_true", help="hourly: skip the dag.test() measurement")
    bench.set_defaults(func=cmd_bench)

    cfg = sub.add_parser("config", help="show every setting in effect and where it came from (no secrets)")
    cfg.set_defaults(func=cmd_config)
    return p


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    verbose = any(a in ("-v", "--verbose") for a in (sys.argv[1:] if argv is None else argv))
    export_env_file()  # .env values reach every module and child process that reads the environment
    configure_logging(verbose)  # before any third-party library is imported
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except StratposError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"stratpos: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:  # a bad value deeper down (e.g. a file's content): one line too
        if args.verbose:
            traceback.print_exc()
        print(f"stratpos: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stratpos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
