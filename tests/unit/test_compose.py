"""Static checks of docker-compose.yml, the Dockerfile and deploy/ (no Docker needed).

Nothing here can be built or run in CI, so these tests guard against the mistakes that
would only show up at ``docker compose up``: a ``TRADEBUS_*`` variable that is not a
setting (services refuse to start on unknown settings), a service whose ``PACKAGE``
build argument or command names nothing, a Dockerfile that does not give uv every
workspace member, an image that drags in another service's dependencies (what it
installs is resolved from uv.lock as ``uv sync --package`` does), a
``strategy`` that cannot be scaled, ``depends_on``/volumes/mounts pointing at nothing,
Prometheus scraping the wrong host or port, Grafana provisioning or dashboards that
do not parse or query metrics no service exports, a nats-server config that does not
load, and a service connecting to NATS with another user's credentials (or holding
more of the identities volume than its own ``.creds``).
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import importlib.util
import json
import os
import re
import subprocess
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tradebus.cli.localstack import _venv_bin
from tradebus.common.config import PREFIX, load_settings
from tradebus.execution.settings import ExecutionSettings
from tradebus.gateway.settings import GatewaySettings
from tradebus.ledger.migrate import MigrateSettings
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.natsauth.identities import CONF
from tradebus.natsauth.init import PEOPLE_CREDS_DIR, NatsInitSettings
from tradebus.natsauth.init import run as run_nats_init
from tradebus.natsauth.permissions import SYSTEM_USERS
from tradebus.notifier.settings import NotifierSettings
from tradebus.reconciler.settings import ReconcilerSettings
from tradebus.strategy.apply import BotsApplySettings
from tradebus.strategy.settings import StrategySettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, Any] = {
    "marketdata": MarketdataSettings,
    "marketdata-backpack": MarketdataSettings,
    "strategy": StrategySettings,
    "execution": ExecutionSettings,
    "reconciler": ReconcilerSettings,
    "migrate": MigrateSettings,
    "bots-apply": BotsApplySettings,
    "nats-init": NatsInitSettings,
    "gateway": GatewaySettings,
    "notifier": NotifierSettings,
}
TRADEBUS = ("marketdata", "marketdata-backpack", "strategy", "execution", "reconciler")
SCRAPED = (*TRADEBUS, "gateway", "notifier")
"""The services Prometheus scrapes (the gateway publishes its HTTP port, the others none)."""
EXPORTERS = {
    "nats-exporter": r"(?:^|\s)-port[= ](\d+)(?:\s|$)",
    "postgres-exporter": r"(?:^|\s)--web\.listen-address[= ]:(\d+)(?:\s|$)",
}
"""Exporter services Prometheus scrapes too (a job each) -> how their command names the
port they serve metrics on."""
TOOLS = {"cli": "tradebus-cli"}
"""Services run on demand only (``docker compose run --rm cli ...``) -> their package."""
NATS_NODES = ("nats", "nats-2", "nats-3")
"""nats-server and the two more nodes of the optional profile ``cluster``."""
NATS_BOX = "nats-box"
"""The NATS CLI on demand (``docker compose run --rm nats-box nats ...``), a pinned image."""
REQUIRED = {
    "nats",
    "postgres",
    "prometheus",
    "alertmanager",
    "grafana",
    NATS_BOX,
    *SETTINGS,
    *TOOLS,
}
NATS_USER = {
    "marketdata": "marketdata",
    "marketdata-backpack": "marketdata",
    "bots-apply": "strategy",  # writes KV bots, as the hosts do
    "strategy": "strategy",
    "execution": "execution",
    "reconciler": "reconciler",
    "gateway": "gateway",
    "notifier": "notifier",
}
"""The NATS user of every service that connects to NATS (its ``.creds`` of nats-init)."""
REGISTRAR_FILES = {"creds/sys.creds", "keys/operator-signing.nk", "keys/people-signing.nk"}
"""What else of nats-auth the gateway holds: it registers people's NATS accounts."""
SERVICE_KEYS = "service-keys"
"""The volume of execution's sealing key pair and the gateway's token secret."""
NATS_AUTH = "nats-auth"
"""The volume of nats-init's identities."""
NOT_IN_IMAGE = {
    # Bots hold no keys. The ledger's package comes in (not its database: the strategy
    # service has no DATABASE_URL) with the engine, whose paper venue runs a dry-run
    # bot's orders and imports the ledger's entry types (README "Dry run").
    "tradebus-strategy": {"ccxt"},
    "tradebus-marketdata": {"asyncpg", "tradebus-ledger"},
    "tradebus-reconciler": {"ccxt"},  # asks execution for venue balances: no keys
    # talks to people through Apprise, never to a venue; no web framework of the gateway
    "tradebus-notifier": {"ccxt", "tradebus-engine", "litestar"},
}
"""Packages an image must not install (on top of other services, the CLI and the backtest)."""
INTERPOLATION = re.compile(r"\$\{(\w+)(:?-([^}]*))?\}")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def read_yaml(path: Path) -> Any:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    return yaml.safe_load(path.read_text())


@functools.cache
def compose() -> dict[str, Any]:
    data = read_yaml(ROOT / "docker-compose.yml")
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services:"
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def tradebus_env(name: str) -> dict[str, str]:
    """The service's ``TRADEBUS_*`` variables, ``${VAR:-default}`` replaced by its default."""
    env = services()[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    sub = functools.partial(INTERPOLATION.sub, lambda m: m[3] or "")
    return {k: sub("" if v is None else str(v)) for k, v in env.items() if k.startswith(PREFIX)}


def settings_of(name: str) -> Any:
    """Service ``name``'s settings from its compose environment; secrets read from files
    (``TRADEBUS_<FIELD>_FILE``, mounted in the container) are left out."""
    env = {k: v for k, v in tradebus_env(name).items() if not k.endswith("SECRET_FILE")}
    return load_settings(SETTINGS[name], env)


def metrics_port(name: str) -> int:
    return settings_of(name).metrics_port


def exporter_port(name: str) -> int:
    """The port exporter service ``name`` serves metrics on, from its command."""
    command = services()[name]["command"]
    text = " ".join(command) if isinstance(command, list) else command
    match = re.search(EXPORTERS[name], text)
    assert match, f"{name}: the command names no metrics port ({command})"
    return int(match[1])


def mounts(name: str) -> list[tuple[str, str]]:
    """``(source, target)`` of every volume of a service (short or long syntax)."""
    volumes = services()[name].get("volumes") or []
    return [
        (v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
        for v in volumes
    ]


def host_path(name: str, container_path: str) -> Path:
    """The repository path bind-mounted at ``container_path`` in service ``name``."""
    binds = [(s, t.rstrip("/")) for s, t in mounts(name) if s.startswith(".")]
    for source, target in sorted(binds, key=lambda bind: -len(bind[1])):
        if (container_path + "/").startswith(target + "/"):
            return ROOT / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{name}: nothing from the repository is mounted at {container_path}")


def pyproject(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


@functools.cache
def lock() -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}


def closure(dist: str) -> set[str]:
    """Every package ``uv sync --frozen --no-dev --package <dist>`` installs, from uv.lock.

    The package's dependencies, followed through the extras they ask for; markers
    are ignored, so this is what the image may hold on any platform (for the checks
    of what an image must not hold, more is the safe side). Checked against
    ``uv export --frozen --no-dev --package <dist>`` when this was written.
    """
    seen: set[str] = set()
    todo = [dist]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = lock()[name]
        for dep in package.get("dependencies", []):
            todo.append(dep["name"])
            for extra in dep.get("extra", []):
                optional = lock()[dep["name"]].get("optional-dependencies", {})
                todo += [d["name"] for d in optional.get(extra, [])]
    return seen


def workspace_members() -> dict[str, Path]:
    """Every workspace distribution (name -> folder), from the root pyproject's members."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = [f for g in root["tool"]["uv"]["workspace"]["members"] for f in ROOT.glob(g)]
    return {pyproject(f)["name"]: f for f in folders if (f / "pyproject.toml").is_file()}


def scripts_of(dist: str) -> dict[str, str]:
    """Console scripts (name -> entry point) of the workspace packages an image of ``dist``
    installs."""
    members = workspace_members()
    return {
        script: entry
        for d in sorted(closure(dist) & set(members))
        for script, entry in pyproject(members[d]).get("scripts", {}).items()
    }


def dockerfile() -> str:
    """The one Dockerfile of the tradebus images, continuation lines joined."""
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def build_args(name: str) -> dict[str, str]:
    """The build arguments of service ``name``, after checking it builds ./Dockerfile."""
    build = services()[name]["build"]
    assert isinstance(build, dict), f"{name}: build: must name context and args"
    assert (ROOT / build["context"]).resolve() == ROOT, f"{name}: build context must be ."
    path = (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
    assert path == ROOT / "Dockerfile", f"{name}: build the one ./Dockerfile, not {path}"
    args = build.get("args") or {}
    return dict(a.split("=", 1) for a in args) if isinstance(args, list) else args


def dockerfile_default(arg: str) -> str | None:
    """The default of ``ARG <arg>=...`` in the image's last stage (None without one)."""
    last_stage = re.split(r"^FROM\s", dockerfile(), flags=re.M)[-1]
    match = re.search(rf"^ARG\s+{arg}(?:=(\S+))?\s*$", last_stage, re.M)
    assert match, f"Dockerfile: the last stage must declare ARG {arg}"
    return match[1]


def test_the_file_is_valid_against_the_compose_specification() -> None:
    """The compose-spec JSON Schema (as vendored by check-jsonschema) accepts the file:
    a misspelt key, a wrong type or a long-syntax mount Docker would reject fails here."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert errors == []
    broken = copy.deepcopy(compose())
    broken["services"]["nats"]["healthcheck"]["retires"] = 3
    assert any("retires" in e.message for e in validator.iter_errors(broken))


def test_required_services_exist() -> None:
    missing = REQUIRED - set(services())
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"
    built = {n for n, s in services().items() if "build" in s}
    known = set(SETTINGS) | set(TOOLS)
    assert built <= known, f"{sorted(built - known)}: add to SETTINGS (or TOOLS) here"
    migrate, execution = services()["migrate"], services()["execution"]
    same = (migrate["build"], migrate.get("image")) == (execution["build"], execution.get("image"))
    assert same, "migrate must build and name the same image as execution"


def test_every_image_of_ours_is_the_one_dockerfile_with_a_package() -> None:
    """Issue 20: one Dockerfile with a build argument, not one per service. Every service
    compose builds builds ./Dockerfile with PACKAGE naming a workspace distribution, and
    the repository holds no other Dockerfile."""
    built = [n for n, s in services().items() if "build" in s]
    assert built, "docker-compose.yml builds nothing"
    members = workspace_members()
    for name in built:
        package = build_args(name).get("PACKAGE")  # asserts context . and ./Dockerfile
        assert package in members, f"{name}: build arg PACKAGE {package!r} is no distribution"
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    dockerfiles = [p for p in tracked if re.search(r"(^|/)(Dockerfile|[^/]*\.Dockerfile)", p)]
    assert dockerfiles == ["Dockerfile"], f"one Dockerfile only, found {dockerfiles}"


def test_interpolations_have_defaults() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    bare = [m[0] for m in INTERPOLATION.finditer(text) if not m[2]]
    assert not bare, f"{bare}: give a default (${{VAR:-default}}) so `up` works without .env"


def test_env_example_lists_every_variable_with_the_compose_default() -> None:
    """``.env.example`` names each ``${VAR}`` of the compose file, with the default the
    compose file falls back to, and nothing compose does not read."""
    text = (ROOT / "docker-compose.yml").read_text()
    defaults: dict[str, set[str]] = {}
    for m in INTERPOLATION.finditer(text):
        defaults.setdefault(m[1], set()).add(m[3] or "")
    example = ROOT / ".env.example"
    assert example.is_file(), ".env.example is missing"
    listed = dict(
        line.split("=", 1)
        for line in example.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    missing = sorted(set(defaults) - set(listed))
    assert not missing, f".env.example lacks {missing}"
    unused = sorted(set(listed) - set(defaults))
    assert not unused, f".env.example lists {unused}, which docker-compose.yml does not read"
    for name, values in defaults.items():
        assert values == {listed[name]}, (
            f"{name}: compose's default {sorted(values)} is not .env.example's {listed[name]!r}"
        )


def test_the_dockerfile_installs_one_package_as_a_non_root_user() -> None:
    text = dockerfile()
    stages = re.split(r"^FROM\s", text, flags=re.M)[1:]
    assert len(stages) >= 2, "Dockerfile: a builder stage, then the image (the venv only)"
    sync = re.search(r"^RUN\b.*\buv sync\b(.*)$", text, re.M)
    assert sync, "Dockerfile: install with uv sync"
    for flag in ("--frozen", "--no-dev", "--no-editable"):
        assert flag in sync[1].split(), f"Dockerfile: uv sync {flag}"
    package = re.search(r"--package\s+(\S+)", sync[1])
    assert package and package[1].strip("\"'") in ("$PACKAGE", "${PACKAGE}"), (
        "Dockerfile: uv sync --package $PACKAGE"
    )
    builder = next(s for s in stages if "uv sync" in s)
    assert re.search(r"^ARG\s+PACKAGE\s*$", builder, re.M), "ARG PACKAGE, without a default"
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert cmd, 'Dockerfile: needs an exec-form CMD ["<program>"]'
    users = re.findall(r"^USER\s+(\S+)", stages[-1], re.M)
    assert users and users[-1] not in ("root", "0"), "Dockerfile: must run as a non-root USER"
    env_in_image = re.search(r"^(ENV|ARG)\b[^\n]*\bTRADEBUS_", text, re.M)
    assert not env_in_image, "Dockerfile: TRADEBUS_* belong in compose, not in the image"


def test_the_dockerfile_gives_uv_every_workspace_member() -> None:
    """uv reads uv.lock only with every member's pyproject.toml in place, whichever
    package it installs; .dockerignore must not drop one either."""
    text = dockerfile()
    sources = [
        item.rstrip("/")
        for src in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.M)
        for item in src.split()
    ]
    for item in sources:
        assert (ROOT / item).exists(), f"Dockerfile: COPY source {item} does not exist"
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["pyproject.toml", "uv.lock"]
    needed += [str(f.relative_to(ROOT) / "pyproject.toml") for f in workspace_members().values()]
    for path in needed:
        parts = Path(path).parts
        copied = any(path == s or parts[: len(Path(s).parts)] == Path(s).parts for s in sources)
        assert copied, f"Dockerfile: no COPY gives uv {path}"
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        dropped = [p for p in ignored if any(fnmatch.fnmatch(x, p) for x in prefixes)]
        assert not dropped, f".dockerignore {dropped} drops {path}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_image_installs_its_package_and_runs_its_command(name: str) -> None:
    args = build_args(name)
    package = args.get("PACKAGE")
    members = workspace_members()
    assert package is not None, f"{name}: build: args: must give PACKAGE"
    assert package in members, f"{name}: build arg PACKAGE {package} is no workspace package"
    assert members[package].parent.name == "services", f"{name}: PACKAGE must be a service"
    scripts = scripts_of(package)
    default = args.get("COMMAND") or (dockerfile_default("COMMAND") or "").replace(
        "$PACKAGE", package
    ).replace("${PACKAGE}", package)
    assert default in scripts, f"{name}: default command {default!r} is not installed"
    command = services()[name].get("command")
    if command:
        program = command[0] if isinstance(command, list) else command.split()[0]
        assert program in scripts, f"{name}: command {program} is not installed by {package}"
    else:
        program = default
    # the program is the one whose settings this file checks the environment against
    runs = ".".join(scripts[program].split(":")[0].split(".")[:2])
    settings = SETTINGS[name]
    checked = ".".join(settings.__module__.split(".")[:2])
    assert runs == checked, f"{name} runs {program} ({runs}), not {checked}'s {settings.__name__}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_image_holds_only_what_its_service_needs(name: str) -> None:
    package = build_args(name)["PACKAGE"]
    members = workspace_members()
    service_dists = {d for d, f in members.items() if f.parent.name == "services"}
    others = closure(package) & (
        (service_dists - {package}) | {"tradebus-cli", "tradebus-backtest"}
    )
    assert not others, f"{name}: the {package} image would install {sorted(others)}"
    extra = closure(package) & NOT_IN_IMAGE.get(package, set())
    assert not extra, f"{name}: the {package} image would install {sorted(extra)}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_environment_is_valid_settings(name: str) -> None:
    cls = SETTINGS[name]
    fields = set(cls.__struct_fields__)
    env = tradebus_env(name)
    secret_files = {k for k in env if k.endswith("_FILE") and k[len(PREFIX) : -5].lower() in fields}
    unknown = [k for k in env if k[len(PREFIX) :].lower() not in fields and k not in secret_files]
    known = sorted(PREFIX + f.upper() for f in fields)
    assert not unknown, f"{name}: {unknown} are not settings of {cls.__name__} (known: {known})"
    # The real loader: converts every value and checks that required settings are set.
    load_settings(cls, {k: v for k, v in env.items() if k not in secret_files})
    for key, value in env.items():
        if key.endswith("_URL") and "://" in value and key != "TRADEBUS_PUBLIC_URL":
            host = urlsplit(value).hostname
            assert host in services(), f"{name}: {key} points at {host}, not a compose service"


@pytest.mark.parametrize("name", TRADEBUS)
def test_metrics_listen_on_the_compose_network(name: str) -> None:
    # services listen on 127.0.0.1 unless told; Prometheus scrapes them from its container
    host = load_settings(SETTINGS[name], tradebus_env(name)).metrics_host
    assert host == "0.0.0.0", f"{name}: set TRADEBUS_METRICS_HOST: 0.0.0.0 (now {host})"
    assert not services()[name].get("ports"), f"{name}: publish no port (metrics included)"


def test_strategy_is_scalable() -> None:
    strategy = services()["strategy"]
    assert "container_name" not in strategy, "strategy: container_name prevents --scale"
    assert not strategy.get("ports"), "strategy: published ports prevent --scale"


def test_restart_policies_and_dependencies() -> None:
    for name in TRADEBUS:
        assert services()[name].get("restart") == "unless-stopped", f"{name}: restart policy"
    assert str(services()["migrate"].get("restart")) == "no", "migrate is one-shot"
    assert str(services()["bots-apply"].get("restart")) == "no", "bots-apply is one-shot"
    assert str(services()["nats-init"].get("restart")) == "no", "nats-init is one-shot"
    for name, service in services().items():
        deps = service.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            assert dep in services(), f"{name}: depends_on unknown service {dep}"
            assert spec.get("condition") in CONDITIONS, f"{name} -> {dep}: bad condition"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services()[dep], f"{name} waits for {dep}'s health"
    for name in ("execution", "reconciler"):
        cond = services()[name]["depends_on"]["migrate"]["condition"]
        assert cond == "service_completed_successfully", f"{name} must wait for migrate"


def test_volumes_exist() -> None:
    declared = set(compose().get("volumes") or {})
    for name in services():
        for source, _ in mounts(name):
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: host path {source} does not exist"
            else:
                assert source in declared, f"{name}: named volume {source} is not declared"


def test_prometheus_scrapes_every_service() -> None:
    config = read_yaml(host_path("prometheus", "/etc/prometheus/prometheus.yml"))
    assert config["global"]["scrape_interval"] == "5s"
    for pattern in config.get("rule_files", []):
        folder = host_path("prometheus", pattern.rsplit("/", 1)[0])
        files = sorted(folder.glob(pattern.rsplit("/", 1)[1]))
        assert files, f"rule_files {pattern} matches no file in the repository"
        for path in files:
            assert isinstance(read_yaml(path).get("groups"), list), f"{path}: no groups list"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {*SCRAPED, *EXPORTERS}
    assert set(jobs) == expected, f"scrape jobs {sorted(jobs)} != {sorted(expected)}"
    for name, job in jobs.items():
        targets = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for sd in job.get("dns_sd_configs", []):
            assert sd.get("type") == "A" and sd.get("port"), f"{name}: dns_sd needs type A, port"
            targets += [f"{host}:{sd['port']}" for host in sd["names"]]
        assert targets, f"job {name} has no targets"
        for target in targets:
            host, _, port = target.rpartition(":")
            assert host == name, f"job {name} scrapes {host}"
            served = exporter_port(name) if name in EXPORTERS else metrics_port(name)
            assert int(port) == served, f"job {name}: port {port} != metrics port {served}"
    assert "dns_sd_configs" in jobs["strategy"], "strategy: use DNS so every replica is scraped"


def deployed() -> set[str]:
    """The long-running services ``docker compose up`` starts: not in a profile (run on
    demand), not a one-shot step (``restart: "no"``)."""
    return {
        name
        for name, svc in services().items()
        if not svc.get("profiles") and str(svc.get("restart", "")) != "no"
    }


def test_every_scrape_job_names_a_deployed_service() -> None:
    """A job whose service does not run is ``up == 0`` forever (TradebusServiceDown never
    resolves), or, found by DNS, no target at all: every job must scrape a service that
    ``docker compose up`` runs."""
    config = read_yaml(host_path("prometheus", "/etc/prometheus/prometheus.yml"))
    for job in config["scrape_configs"]:
        static = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        hosts = {t.rpartition(":")[0] for t in static}
        hosts |= {h for sd in job.get("dns_sd_configs", []) for h in sd["names"]}
        assert hosts, f"job {job['job_name']}: no target"
        for host in hosts:
            assert host in deployed(), f"job {job['job_name']} scrapes {host}: not deployed"
    rules = host_path("prometheus", "/etc/prometheus/rules/tradebus.yml")
    down = [
        r
        for g in read_yaml(rules)["groups"]
        for r in g["rules"]
        if r.get("alert") == "TradebusServiceDown"
    ]
    (rule,) = down
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    watched = set(re.search(r'job=~"([^"]+)"', rule["expr"])[1].split("|"))  # type: ignore[index]
    assert watched <= jobs, f"TradebusServiceDown watches jobs no one scrapes: {watched - jobs}"


def test_prometheus_sends_alerts_to_alertmanager() -> None:
    config = read_yaml(host_path("prometheus", "/etc/prometheus/prometheus.yml"))
    managers = config["alerting"]["alertmanagers"]
    targets = [t for m in managers for sc in m["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"], targets
    am = services()["alertmanager"]
    command = am["command"]
    flag = "--config.file="
    (config_file,) = [c.removeprefix(flag) for c in command if c.startswith(flag)]
    am_config = read_yaml(host_path("alertmanager", config_file))
    assert am_config["receivers"], "alertmanager.yml: no receivers"
    listen = [c for c in command if c.startswith("--web.listen-address=")]
    assert not listen or listen[0].endswith(":9093"), "alertmanager listens on 9093"
    storage = [c.split("=", 1)[1] for c in command if c.startswith("--storage.path=")]
    assert storage and any(t == storage[0] for _, t in mounts("alertmanager")), (
        "alertmanager: keep silences on a volume (--storage.path)"
    )
    ports = am.get("ports") or []
    assert ports and all(str(p).startswith("127.0.0.1:") for p in ports), "127.0.0.1 only"
    assert str(ports[0]).endswith(":9093")


@functools.cache
def declared_metrics() -> set[str]:
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")]
    return {m for p in sources for m in re.findall(r"[\"'](tradebus_\w+)[\"']", p.read_text())}


def test_grafana_provisioning_and_dashboards() -> None:
    provisioning = host_path("grafana", "/etc/grafana/provisioning")
    sources = read_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    uids = {ds["uid"] for ds in sources}
    prom = next(ds for ds in sources if ds["name"] == "Prometheus")
    assert prom["uid"] == "prometheus" and prom.get("isDefault"), "Prometheus: uid, default"
    assert urlsplit(prom["url"]).hostname in services(), f"datasource url {prom['url']}"
    providers = read_yaml(provisioning / "dashboards" / "tradebus.yml")["providers"]
    exprs = []
    for provider in providers:
        folder = host_path("grafana", provider["options"]["path"])
        files = sorted(folder.glob("*.json"))
        assert files, f"dashboard provider {provider['name']}: no JSON in {folder}"
        for path in files:
            dashboard = json.loads(path.read_text())
            assert dashboard.get("panels"), f"{path.name}: no panels"
            for panel in dashboard["panels"]:
                for target in [panel, *panel.get("targets", [])]:
                    uid = (target.get("datasource") or {}).get("uid")
                    assert uid in (None, *uids), f"{path.name}: unknown datasource {uid}"
                exprs += [t["expr"] for t in panel.get("targets", []) if "expr" in t]
    assert any("tradebus_" in e for e in exprs), "no dashboard panel queries a tradebus_ metric"
    suffix = re.compile(r"_(total|bucket|sum|count|created)$")
    for name in {m for e in exprs for m in re.findall(r"\btradebus_\w+", e)}:
        assert {name, suffix.sub("", name)} & declared_metrics(), f"no service exports {name}"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = set((ROOT / ".dockerignore").read_text().split())
    for entry in (".venv", ".git", ".tools", "var", "tests", "bench"):
        assert entry in lines, f".dockerignore should exclude {entry}"


def test_the_gateway_image_serves_the_page_built_in_a_node_stage() -> None:
    """The page is built from web/'s lock file in a Node stage (never from a host's
    node_modules or dist) and copied where the gateway's TRADEBUS_WEB_DIR points."""
    stages = re.split(r"^FROM\s", dockerfile(), flags=re.M)[1:]
    node = [s for s in stages if re.match(r"node:\S+\s+AS\s+(\S+)", s)]
    assert len(node) == 1, "Dockerfile: one Node stage (FROM node:<version> AS <name>) builds web/"
    name = re.match(r"node:\S+\s+AS\s+(\S+)", node[0])[1]  # type: ignore[index]
    assert re.search(r"^RUN\b.*\bnpm ci\b", node[0], re.M), "the Node stage: npm ci (the lock)"
    assert re.search(r"^RUN\b.*\bnpm run build\b", node[0], re.M), "the Node stage: npm run build"
    for path in ("web/package.json", "web/package-lock.json"):
        assert (ROOT / path).is_file(), f"{path} is missing"
    copied = re.findall(rf"^COPY\s+--from={name}\s+(\S+)\s+(\S+)\s*$", stages[-1], re.M)
    assert copied, f"the image's stage must COPY --from={name} the built page"
    assert any(src.rstrip("/").endswith("/dist") for src, _ in copied), "copy web's dist/"
    web_dir = tradebus_env("gateway").get(f"{PREFIX}WEB_DIR")
    assert web_dir in {dst.rstrip("/") for _, dst in copied}, (
        f"gateway: {PREFIX}WEB_DIR must name the folder the Dockerfile copies the page to"
    )
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for entry in ("web/node_modules", "web/dist"):
        assert entry in ignored, f".dockerignore should exclude {entry} (the stage builds them)"


def nats_auth_mounts(name: str) -> list[dict[str, Any]]:
    """The mounts of the volume ``nats-auth`` (nats-init's identities) in service ``name``."""
    volumes = services()[name].get("volumes") or []
    long = [v for v in volumes if isinstance(v, dict) and v.get("source") == NATS_AUTH]
    short = [v for v in volumes if isinstance(v, str) and v.split(":")[0] == NATS_AUTH]
    if name != "nats-init":
        assert not short, f"{name}: mount one file of {NATS_AUTH} (long syntax, subpath)"
    return long


def test_nats_init_makes_the_identities_before_nats_starts() -> None:
    init = services()["nats-init"]
    assert init["command"] == ["tradebus-nats-init"]
    env = tradebus_env("nats-init")
    settings = load_settings(NatsInitSettings, env)
    assert (NATS_AUTH, settings.nats_dir) in mounts("nats-init"), "nats-init: mount nats-auth"
    accounts = host_path("nats-init", settings.accounts_file)
    assert accounts == ROOT / "deploy" / "config" / "accounts.yaml"
    # the services run as the Dockerfile's user: they must be able to read their .creds
    user = re.search(r"useradd\b.*--uid\s+(\d+)\s+--gid\s+\S+", dockerfile())
    assert user, "Dockerfile: useradd --uid"
    assert settings.file_owner.split(":")[0] == user[1], "nats-init: TRADEBUS_FILE_OWNER"
    # the resolver keeps people added at run time: on nats-server's own volume
    data = [t for s, t in mounts("nats") if s == "nats-data"]
    assert data and settings.resolver_dir.startswith(data[0].rstrip("/") + "/"), (
        f"nats-init: TRADEBUS_RESOLVER_DIR must be under nats' data volume {data}"
    )
    assert services()["nats"]["depends_on"]["nats-init"] == {
        "condition": "service_completed_successfully"
    }


def test_nats_runs_the_config_of_nats_init_and_nothing_else_of_it() -> None:
    command = services()["nats"]["command"]
    assert "-c" in command, "nats: run nats-server with -c <nats-init's nats.conf>"
    target = command[command.index("-c") + 1]
    (conf,) = nats_auth_mounts("nats")
    assert conf["target"] == target and conf.get("read_only"), "nats: mount nats.conf read-only"
    assert conf["volume"]["subpath"] == CONF, "nats: the config of nats-init, not its keys"
    assert not services()["nats"].get("environment"), "nats: no secret in its environment"


def test_the_cluster_profile_adds_two_nodes_of_the_same_server_and_config() -> None:
    """Profile ``cluster``: nats-2 and nats-3 run nats' image with nats-init's config, each
    with its own name and store, routing to the two others; nats joins them only when
    .env sets its cluster listener and routes (empty by default: it runs alone)."""
    main = services()["nats"]
    assert "--cluster=${NATS_CLUSTER_LISTEN:-}" in main["command"]
    assert "--routes=${NATS_ROUTES:-}" in main["command"]
    assert main["command"][main["command"].index("-n") + 1] == "nats"
    stores = {"nats-data"}
    for name in NATS_NODES[1:]:
        node = services()[name]
        assert node["profiles"] == ["cluster"], f"{name}: profile cluster only"
        assert node["image"] == main["image"], f"{name}: the image nats runs"
        command = node["command"]
        assert command[: command.index("-n")] == main["command"][: command.index("-n")]
        assert command[command.index("-n") + 1] == name, f"{name}: server_name {name}"
        assert nats_auth_mounts(name) == nats_auth_mounts("nats"), f"{name}: nats-init's config"
        routes = next(a for a in command if a.startswith("--routes=")).removeprefix("--routes=")
        peers = {urlsplit(u).hostname for u in routes.split(",")}
        assert peers == set(NATS_NODES) - {name}, f"{name}: routes to the other nodes"
        (store,) = [s for s, t in mounts(name) if t == "/data"]
        assert store not in stores, f"{name}: a store of its own"
        stores.add(store)
    assert "nats://nats-2:6222,nats://nats-3:6222" in (ROOT / ".env.example").read_text()


def test_nats_init_config_is_valid_for_nats_server(tmp_path: Path) -> None:
    """The config nats-init writes (operator, accounts preloaded, full resolver), checked
    by the nats-server compose runs (same version, ``-t``)."""
    done = run_nats_init(
        NatsInitSettings(
            nats_dir=str(tmp_path / "auth"),
            accounts_file=str(ROOT / "deploy" / "config" / "accounts.yaml"),
            resolver_dir=str(tmp_path / "jwt"),
        )
    )
    assert done.people == ["alice", "bob", "carol", "dave"]
    text = done.conf.read_text()
    keys = vars(done.identities).values()
    assert not [k for k in keys if k.seed.decode() in text], "nats.conf holds no seed"
    preloaded = (done.identities.sys_account, done.identities.tradebus)
    assert all(f"{k.public_key}: " in text for k in preloaded), "SYS and TRADEBUS preloaded"
    check = subprocess.run(
        [str(_venv_bin("nats-server")), "-c", str(done.conf), "-t"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(PREFIX)},
        timeout=30,
    )
    assert check.returncode == 0, f"nats-init's nats.conf: {check.stderr}"


@pytest.mark.parametrize("name", sorted(NATS_USER))
def test_service_connects_with_its_own_nats_credentials(name: str) -> None:
    env = tradebus_env(name)
    url = urlsplit(env.get("TRADEBUS_NATS_URL", ""))
    assert url.hostname == "nats", f"{name}: TRADEBUS_NATS_URL must point at nats"
    assert not (url.username or url.password), f"{name}: no password in the URL"
    creds = env.get("TRADEBUS_NATS_CREDS", "")
    expected = NATS_USER[name]
    held = nats_auth_mounts(name)
    mine = [m for m in held if m["target"] == creds]
    assert len(mine) == 1, f"{name}: TRADEBUS_NATS_CREDS is not a file of {NATS_AUTH}"
    mount = mine[0]
    others = {m["volume"]["subpath"] for m in held if m is not mount}
    allowed = REGISTRAR_FILES if name == "gateway" else set()
    assert others <= allowed, f"{name}: holds {sorted(others - allowed)} of {NATS_AUTH}"
    assert mount["target"] == creds, f"{name}: TRADEBUS_NATS_CREDS is not what is mounted"
    assert mount.get("read_only"), f"{name}: mount its credentials read-only"
    assert mount["volume"]["subpath"] == f"creds/{expected}.creds", (
        f"{name}: must mount the credentials of {expected}"
    )
    assert expected in SYSTEM_USERS


def test_every_nats_client_service_has_a_user() -> None:
    clients = {n for n in services() if "TRADEBUS_NATS_URL" in tradebus_env(n)}
    assert clients == set(NATS_USER), f"add {sorted(clients ^ set(NATS_USER))} to NATS_USER"
    holders = {n for n in services() if nats_auth_mounts(n)} - {"nats-init", *NATS_NODES, NATS_BOX}
    holders -= set(TOOLS)
    assert holders == set(NATS_USER), f"{sorted(holders ^ set(NATS_USER))}: nats-auth mounts"


def test_the_gateway_registers_people_and_seals_with_execution_public_key() -> None:
    env = tradebus_env("gateway")
    settings = settings_of("gateway")
    held = {m["target"]: m["volume"]["subpath"] for m in nats_auth_mounts("gateway")}
    assert held.get(settings.nats_sys_creds) == "creds/sys.creds"
    assert held.get(settings.nats_operator_signing_key_file) == "keys/operator-signing.nk"
    assert held.get(settings.nats_people_signing_key_file) == "keys/people-signing.nk"
    keys = service_keys_mounts("gateway")
    assert keys.get(settings.seal_public_key_file) == "seal/execution.pub"
    assert keys.get(env["TRADEBUS_JWT_SECRET_FILE"]) == "gateway/token.secret"
    assert keys.get(settings.notify_public_key_file) == "seal/notifier.pub"
    assert set(keys.values()) == {
        "seal/execution.pub", "gateway/token.secret", "seal/notifier.pub",
    }  # fmt: skip
    ports = services()["gateway"].get("ports") or []
    assert ports and all(str(p).startswith("127.0.0.1:") for p in ports), "gateway: 127.0.0.1"
    assert str(ports[0]).endswith(f":{settings.http_port}"), "gateway: publish its HTTP port"


def service_keys_mounts(name: str) -> dict[str, str]:
    """``target -> subpath`` of the volume ``service-keys`` in service ``name``."""
    volumes = services()[name].get("volumes") or []
    short = [v for v in volumes if isinstance(v, str) and v.split(":")[0] == SERVICE_KEYS]
    if name != "nats-init":
        assert not short, f"{name}: mount one file of {SERVICE_KEYS} (long syntax, subpath)"
    return {
        v["target"]: v["volume"]["subpath"]
        for v in volumes
        if isinstance(v, dict) and v.get("source") == SERVICE_KEYS
    }


def test_execution_alone_holds_its_sealing_key() -> None:
    init = load_settings(NatsInitSettings, tradebus_env("nats-init"))
    assert init.seal_dir and init.token_secret_file, "nats-init: make the services' keys"
    assert (SERVICE_KEYS, init.seal_dir.rsplit("/", 1)[0]) in mounts("nats-init")
    holders = {n: keys for n in services() if n != "nats-init" and (keys := service_keys_mounts(n))}
    private = {n for n, keys in holders.items() if "seal/execution.key" in keys.values()}
    assert private == {"execution"}, f"the private sealing key is mounted in {sorted(private)}"
    settings = load_settings(ExecutionSettings, tradebus_env("execution"))
    assert service_keys_mounts("execution") == {settings.seal_key_file: "seal/execution.key"}


def test_the_notifier_alone_opens_saved_channels_and_listens_for_alertmanager() -> None:
    """The notifier: its private key (no one else's), the notifications file of the
    config folder, Alertmanager's receiver on the compose network only, metrics too."""
    settings = load_settings(NotifierSettings, tradebus_env("notifier"))
    assert service_keys_mounts("notifier") == {settings.seal_private_key_file: "seal/notifier.key"}
    holders = {n for n in services() if "seal/notifier.key" in service_keys_mounts(n).values()}
    assert holders == {"notifier"}, f"the notifier's private key is mounted in {sorted(holders)}"
    folder, _, name = settings.notifications_file.rpartition("/")
    assert (host_path("notifier", folder) / name).is_file(), "notifier: no notifications file"
    assert settings.http_host == "0.0.0.0" and settings.http_port == 9095
    assert settings.metrics_host == "0.0.0.0"
    assert not services()["notifier"].get("ports"), "notifier: publish no port"
    assert services()["notifier"].get("restart") == "unless-stopped"


def test_the_cli_runs_on_demand_with_the_operators_credentials() -> None:
    cli = services()["cli"]
    assert build_args("cli") == {"PACKAGE": TOOLS["cli"], "COMMAND": "tradebus"}
    assert "tradebus" in scripts_of(TOOLS["cli"]), "the cli image installs `tradebus`"
    assert cli.get("profiles") == ["tools"], "cli: only with `docker compose run`"
    (mount,) = nats_auth_mounts("cli")
    env = cli["environment"]
    assert mount["volume"]["subpath"] == "creds/operator.creds"
    assert env["TRADEBUS_NATS_CREDS"] == mount["target"] and mount.get("read_only")
    assert urlsplit(env["NATS_URL"]).hostname == "nats"
    assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
    assert cli["entrypoint"] == ["tradebus"], "cli: `docker compose run --rm cli <verb>`"
    # each variable it is given is one the CLI reads (a misspelt one would be ignored)
    sources = (ROOT / "cli" / "src").rglob("*.py")
    read = {v for p in sources for v in re.findall(r"os\.environ\.get\(\"(\w+)\"", p.read_text())}
    assert set(env) <= read, f"cli: {sorted(set(env) - read)} are not read by the CLI"


def test_nats_box_runs_the_nats_cli_with_the_peoples_credentials() -> None:
    """``docker compose run --rm nats-box nats --creds /creds/<person>.creds ...``: the
    people's credentials nats-init issues, read-only, and the operator's; nothing else of
    the identities (no key)."""
    box = services()[NATS_BOX]
    assert box.get("profiles") == ["tools"], "nats-box: only with `docker compose run`"
    assert "build" not in box and re.fullmatch(r"natsio/nats-box:\d+\.\d+\.\d+", box["image"])
    assert urlsplit(box["environment"]["NATS_URL"]).hostname == "nats"
    assert box["depends_on"]["nats"] == {"condition": "service_healthy"}
    held = {m["volume"]["subpath"]: m for m in nats_auth_mounts(NATS_BOX)}
    assert set(held) == {PEOPLE_CREDS_DIR, "creds/operator.creds"}, sorted(held)
    assert all(m.get("read_only") for m in held.values()), "nats-box: mount read-only"
    people = held[PEOPLE_CREDS_DIR]["target"]
    init = load_settings(NatsInitSettings, tradebus_env("nats-init"))
    assert init.people_creds_hours > 0, "nats-init: TRADEBUS_PEOPLE_CREDS_HOURS issues them"
    readers = {"0:0", init.file_owner}  # the files are the owner's, mode 0600
    assert box.get("user") in readers, f"nats-box: run as one of {sorted(readers)}"
    command = f"docker compose run --rm nats-box nats --creds {people}/alice.creds"
    readme = (ROOT / "README.md").read_text()
    assert f"{command} pub intent.alice.manual" in readme, f"README: document `{command} pub`"


def test_the_exporters_read_nats_monitoring_and_the_ledger() -> None:
    """prometheus-nats-exporter polls the monitoring port nats-server opens (``-m``);
    postgres_exporter connects to the ledger's database; both pinned, neither published."""
    nats_command = services()["nats"]["command"]
    monitoring = nats_command[nats_command.index("-m") + 1]
    exporter = services()["nats-exporter"]
    assert f"http://nats:{monitoring}" in exporter["command"], "nats-exporter: poll nats' -m"
    assert "-varz" in exporter["command"], "nats-exporter: -varz (the dashboard's metrics)"
    dsn = urlsplit(services()["postgres-exporter"]["environment"]["DATA_SOURCE_NAME"])
    assert (dsn.hostname, dsn.port, dsn.username, dsn.path) == (
        "postgres",
        5432,
        services()["postgres"]["environment"]["POSTGRES_USER"],
        "/" + services()["postgres"]["environment"]["POSTGRES_DB"],
    )
    for name in EXPORTERS:
        service = services()[name]
        assert "build" not in service and not service.get("ports"), f"{name}: image, no port"
        assert re.match(r"v?\d", service["image"].rpartition(":")[2]), f"{name}: pin the image"
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"


def test_the_exporters_metrics_come_from_scraped_exporters() -> None:
    """Every exporter whose metrics the dashboards use is a compose service with a scrape
    job (``deploy/grafana/dashboards_lib/exporters.py`` is keyed by service)."""
    path = ROOT / "deploy" / "grafana" / "dashboards_lib" / "exporters.py"
    spec = importlib.util.spec_from_file_location("grafana_exporters", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.EXPORTER_METRICS) == set(EXPORTERS)
