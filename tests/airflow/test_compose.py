"""docker-compose.yml, deploy/ and scripts/airflow_local.sh, validated without a Docker engine.

The compose file is parsed and checked for what `docker compose up` would only reveal late: every
service and profile present, healthchecks where something depends on them, pinned images, declared
volumes, secrets only from .env, `${VAR}`s documented in deploy/.env.example, and the Airflow
services wired to each other. The MariaDB init script is run for real against the test server to
prove the BI user can read the marts and nothing else. ``docker compose config`` (or the standalone
``docker-compose``) validates the file against the Compose schema when it is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import pymysql
import pytest
import yaml

from stratpos.core.settings import PROJECT_ROOT, Settings
from stratpos.core.warehouse import drop_schemas, mysql_connection

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DEPLOY = PROJECT_ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / ".env.example"
INIT_SCRIPT = DEPLOY / "mariadb" / "01-stratpos.sh"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
PROFILES = {
    "sandbox": "sandbox",
    "redis": "celery",
    "airflow-worker": "celery",
    "flower": "celery",
    "metabase": "bi",
    "nats": "nats",
    "listener": "nats",
}
CORE = ("warehouse", "airflow-db", "airflow-init", *AIRFLOW_SERVICES)
# ${NAME}, ${NAME:-default}, ${NAME:?message} …, but not $${NAME} (a literal $ for the container's shell)
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_services_and_profiles(compose):
    services = compose["services"]
    assert set(services) == set(CORE) | set(PROFILES)
    for name in CORE:
        assert "profiles" not in services[name], f"{name} must start without a profile"
    for name, profile in PROFILES.items():
        assert services[name]["profiles"] == [profile]


def test_healthchecks_and_dependencies(compose):
    services = compose["services"]
    for name, service in services.items():
        if name == "airflow-init":  # one-shot: the others wait for it to complete
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert "profiles" not in services[target] or services[target]["profiles"] == service.get("profiles"), (
                f"{name} depends on {target}, which only runs in a profile"
            )
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy"
            if rule["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no"


def test_images_are_pinned_and_the_airflow_image_is_built_from_the_lock(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: image {image} is not pinned"
        if "build" in service:
            assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
            assert image.startswith("stratpos-airflow:")
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M)
    assert "requirements.lock" in dockerfile and "pip install --no-deps -e ." in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_volumes_are_declared_and_bind_mounts_exist(compose):
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared
    warehouse = compose["services"]["warehouse"]["volumes"]
    assert "./deploy/mariadb:/docker-entrypoint-initdb.d:ro" in warehouse


def test_variables_have_defaults_or_are_documented(env_example):
    text = COMPOSE.read_text(encoding="utf-8")
    found = VAR.findall(text)
    assert found
    for name, op, _default in found:
        if op in ("", "?", ":?"):
            assert name in env_example, f"${{{name}}} has no default and is not in deploy/.env.example"
        if op in ("?", ":?"):
            assert env_example[name] == "change-me", f"{name} is a required secret: placeholder only"
    used = {name for name, _, _ in found}
    assert set(env_example) - used == {"COMPOSE_PROJECT_NAME"}, "deploy/.env.example documents unused variables"
    # every required secret of the MariaDB init script reaches the warehouse container
    for name in ("STRATPOS_MYSQL_PASSWORD", "STRATPOS_BI_PASSWORD", "MARIADB_ROOT_PASSWORD"):
        assert name in used


def test_no_secret_is_written_into_the_compose_file(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert value.startswith("${") and value.endswith("}"), f"{name}.{key} is not from .env"
                assert ":-" not in value or value.endswith(":-}"), f"{name}.{key} has a default secret"
            for password in re.findall(r"://[^:/@]+:([^@]*)@", value):
                assert password.startswith("${") and ":?" in password, f"{name}.{key}: password not from .env"


def test_airflow_services_share_one_configuration(compose):
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    for name in (*AIRFLOW_SERVICES, "airflow-worker", "flower", "sandbox"):
        assert services[name]["environment"] == env, f"{name} differs from the scheduler's environment"
    assert {k: v for k, v in services["airflow-init"]["environment"].items() if k in env} == env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert services["airflow-apiserver"]["command"][-2:] == ["--port", "8080"]
    assert "@airflow-db:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${")
    assert env["STRATPOS_TARGET"] == "mysql" and env["STRATPOS_MYSQL_HOST"] == "warehouse"
    # keyed ingestion is never pointed at the sandbox by default: no base URL, Binance as the endpoint; only the
    # keyless paper-exchange run uses the sandbox service
    assert env["STRATPOS_BINANCE_BASE_URL"] == "${STRATPOS_BINANCE_BASE_URL:-}"
    assert env["STRATPOS_BINANCE_ENDPOINT"] == "${STRATPOS_BINANCE_ENDPOINT:-binance}"
    assert env["STRATPOS_SANDBOX_URL"] == "${STRATPOS_SANDBOX_URL:-http://sandbox:8765}"
    assert "STRATPOS_BI_PASSWORD" not in env, "the pipeline's containers never hold the BI password"
    warehouse = services["warehouse"]["environment"]
    assert warehouse["STRATPOS_MYSQL_USER"] == env["STRATPOS_MYSQL_USER"]
    assert warehouse["STRATPOS_SCHEMA_PREFIX"] == env["STRATPOS_SCHEMA_PREFIX"]
    for name in ("airflow-worker", "flower"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


def _init_sql(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Source the init script the way the MariaDB entrypoint does; its SQL goes to stdout."""
    stubs = (
        'docker_process_sql() { cat; }; mysql_note() { echo "$*" >&2; }; '
        'mysql_error() { echo "ERROR: $*" >&2; exit 1; }; source "$0"'
    )
    return subprocess.run(
        ["bash", "-c", stubs, str(INIT_SCRIPT)], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True
    )


INIT_ENV = {
    "STRATPOS_MYSQL_USER": "writer",
    "STRATPOS_MYSQL_PASSWORD": "w-pass",
    "STRATPOS_BI_USER": "bi",
    "STRATPOS_BI_PASSWORD": "bi-pass",
    "STRATPOS_BI_HOST": "%",
}


def test_init_script_grants_the_bi_user_select_on_the_marts_only():
    done = _init_sql(INIT_ENV)
    assert done.returncode == 0, done.stderr
    grants = [s.strip() for s in done.stdout.split(";") if s.strip().upper().startswith("GRANT")]
    assert [g for g in grants if "'bi'@" in g] == ["GRANT SELECT ON `marts`.* TO 'bi'@'%'"]
    layers = ("raw", "staging", "intermediate", "marts", "audit")
    assert [g for g in grants if "'writer'@" in g] == [
        f"GRANT ALL PRIVILEGES ON `{x}`.* TO 'writer'@'%'" for x in layers
    ]
    prefixed = _init_sql({**INIT_ENV, "STRATPOS_SCHEMA_PREFIX": "p1_"})
    assert "GRANT SELECT ON `p1_marts`.* TO 'bi'@'%'" in prefixed.stdout
    # the BI user's host is what STRATPOS_BI_HOST says: `%` only when it is set so
    narrowed = _init_sql({**INIT_ENV, "STRATPOS_BI_HOST": "172.18.%"})
    assert "CREATE USER IF NOT EXISTS 'bi'@'172.18.%'" in narrowed.stdout
    assert "GRANT SELECT ON `marts`.* TO 'bi'@'172.18.%'" in narrowed.stdout and "'bi'@'%'" not in narrowed.stdout


@pytest.mark.parametrize(
    "change",
    [
        {"STRATPOS_BI_PASSWORD": ""},
        {"STRATPOS_BI_PASSWORD": "a'b"},
        {"STRATPOS_SCHEMA_PREFIX": "x;"},
        {"STRATPOS_BI_HOST": ""},
        {"STRATPOS_BI_HOST": "h' or '1"},
    ],
)
def test_init_script_refuses_unsafe_values(change):
    done = _init_sql({**INIT_ENV, **change})
    assert done.returncode != 0 and "ERROR:" in done.stderr and not done.stdout


@pytest.mark.mysql
def test_init_script_on_mariadb_bi_user_reads_marts_and_nothing_else(mysql_available):
    """Run the init SQL on the test server (unique prefix and users), then act as the BI user."""
    tag = uuid.uuid4().hex[:8]
    prefix, writer, bi = f"t{tag}_", f"w_{tag}", f"bi_{tag}"
    env = {**INIT_ENV, "STRATPOS_SCHEMA_PREFIX": prefix, "STRATPOS_MYSQL_USER": writer, "STRATPOS_BI_USER": bi}
    sql = _init_sql(env)
    assert sql.returncode == 0, sql.stderr
    root = Settings(target="mysql", mysql=mysql_available, schema_prefix=prefix)
    try:
        with mysql_connection(root) as con, con.cursor() as cur:
            for statement in filter(str.strip, sql.stdout.split(";")):
                cur.execute(statement)
            cur.execute(f"create table `{prefix}marts`.t (x int)")
            cur.execute(f"insert into `{prefix}marts`.t values (1)")
            cur.execute(f"create table `{prefix}raw`.t (x int)")

        def as_user(user: str, password: str):
            return pymysql.connect(
                host=mysql_available.host, port=mysql_available.port, user=user, password=password, autocommit=True
            )

        with as_user(bi, "bi-pass") as con, con.cursor() as cur:
            cur.execute(f"select x from `{prefix}marts`.t")
            assert cur.fetchall() == ((1,),)
            for denied in (
                f"select x from `{prefix}raw`.t",
                f"insert into `{prefix}marts`.t values (2)",
                f"drop table `{prefix}marts`.t",
                f"create table `{prefix}marts`.u (x int)",
            ):
                with pytest.raises(pymysql.err.OperationalError) as exc:
                    cur.execute(denied)
                assert exc.value.args[0] in (1142, 1044), denied  # command denied / access denied
        with as_user(writer, "w-pass") as con, con.cursor() as cur:
            cur.execute(f"insert into `{prefix}raw`.t values (2)")
            cur.execute(f"create table `{prefix}audit`.t (x int)")
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute("create database `not_ours_" + tag + "`")
    finally:
        with mysql_connection(root) as con, con.cursor() as cur:
            cur.execute("drop user if exists %s@'%%', %s@'%%'", (bi, writer))
        drop_schemas(root)


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_file(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed; the YAML checks above still ran")
    env = {k: v for k, v in os.environ.items() if k not in _names_in_env_example()}
    profiles = [arg for p in ("sandbox", "celery", "bi") for arg in ("--profile", p)]
    done = subprocess.run(
        [*cli, "--env-file", str(ENV_EXAMPLE), *profiles, "config", "--services"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == set(CORE) | set(PROFILES)
    # without the secrets of .env the file refuses to render, naming what is missing
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run(
        [*cli, "--env-file", str(empty), "config", "-q"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "set " in missing.stderr and "in .env" in missing.stderr


def _names_in_env_example() -> set[str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return {line.split("=")[0] for line in lines if "=" in line and not line.startswith("#")}


def test_shell_scripts_parse():
    for script in (PROJECT_ROOT / "scripts" / "airflow_local.sh", *DEPLOY.glob("*.sh"), INIT_SCRIPT):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script}: {done.stderr}"
