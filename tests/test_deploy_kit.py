"""The deployment kit (issue 16 item 6) as far as a machine without a Docker engine can test it: the
Dockerfile, deploy/compose.yaml, deploy/workspace.yaml, deploy/dagster.yaml and .env.example agree with
each other and with the repository, and the commands the containers run, run here: the code server and
the webserver, the webserver's GraphQL API serving the crmflow code location. No image is built."""

import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path, PurePosixPath

import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEPLOY = REPO / "deploy"
CRMFLOW_SERVICES = ("codelocation", "webserver", "daemon")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


def copy_sources() -> list[str]:
    return [source for args in instructions("COPY") for source in shlex.split(args)[:-1]]


def workdir() -> PurePosixPath:
    [path] = instructions("WORKDIR")
    return PurePosixPath(path)


def image_env() -> dict[str, str]:
    return dict(pair.split("=", 1) for args in instructions("ENV") for pair in shlex.split(args))


def cmd() -> list[str]:
    [args] = instructions("CMD")
    return json.loads(args)


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def workspace_server() -> dict:
    [entry] = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    return entry["grpc_server"]


def option(command: list[str], *names: str) -> str:
    [value] = [command[i + 1] for i, word in enumerate(command) if word in names]
    return value


def env_example() -> set[str]:
    return {line.split("=", 1)[0].strip() for line in (REPO / ".env.example").read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def copied() -> dict[PurePosixPath, Path]:
    """Where each COPY source lands in the image (a relative destination is under WORKDIR)."""
    landed: dict[PurePosixPath, Path] = {}
    for args in instructions("COPY"):
        *sources, dest = shlex.split(args)
        into = workdir() / dest
        for source in sources:
            landed[into / source if dest.endswith("/") or len(sources) > 1 else into] = REPO / source
    return landed


def in_repo(image_path: str) -> Path:
    """The repository file a path in the image comes from."""
    path = PurePosixPath(image_path)
    [(into, source)] = [(into, source) for into, source in copied().items() if path.is_relative_to(into)]
    return source / path.relative_to(into)


def test_every_copy_source_exists_and_they_hold_what_the_code_location_needs():
    sources = copy_sources()
    assert sources and [s for s in sources if not (REPO / s).exists()] == []
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {name.rstrip("*") for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    # the build (pyproject.toml, its readme, setup.py's copy of the project), the packages, the dbt project,
    # the marketer defaults and the instance/workspace files
    needed = {"pyproject.toml", pyproject["project"]["readme"], "setup.py", "MANIFEST.in", *packages,
              "dbt_project.yml", "profiles.yml", "dbt_project", "marketing", "deploy"}
    assert needed - set(sources) == set()
    dbt = yaml.safe_load((REPO / "dbt_project.yml").read_text())
    for key in ("model-paths", "seed-paths", "macro-paths", "test-paths"):
        assert all(PurePosixPath(p).parts[0] in sources for p in dbt[key]), key


def _ignored(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match from the context root, `**` any number of folders)."""
    regex = "".join("(.*/)?" if part == "**/" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
                    for part in re.split(r"(\*\*/|\*|\?)", pattern))
    return re.compile(regex + "(/.*)?")


def test_dockerignore_keeps_secrets_and_build_output_out_and_lets_every_copied_file_in():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    excluded = [_ignored(p) for p in patterns]
    for path in (".env", ".venv/bin/python", "var/warehouse.duckdb", "dbt_project/target/manifest.json",
                 "orchestration/__pycache__/cli.cpython-311.pyc", "logs/dbt.log"):
        assert any(e.fullmatch(path) for e in excluded), path
    tracked = subprocess.run(["git", "ls-files", "--", *copy_sources()], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked and [f for f in tracked if any(e.fullmatch(f) for e in excluded)] == []


def test_compose_has_the_services_and_they_run_the_image_of_this_dockerfile():
    services = compose()["services"]
    assert set(services) == {*CRMFLOW_SERVICES, "dagster-postgres"}
    for name in CRMFLOW_SERVICES:
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == REPO and (REPO / build["dockerfile"]).is_file(), name
        assert services[name]["environment"]["DAGSTER_HOME"] == image_env()["DAGSTER_HOME"], name
        assert services[name]["depends_on"] == {"dagster-postgres": {"condition": "service_healthy"}}, name
        assert (DEPLOY / services[name]["env_file"]).resolve() == REPO / ".env", name
    # the image puts the kit's instance file into DAGSTER_HOME
    [run] = instructions("RUN")
    assert 'cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"' in run


def test_the_compose_commands_are_the_dockerfile_cmd_and_the_workspace_points_at_the_code_server():
    services = compose()["services"]
    assert services["codelocation"]["command"] == cmd()
    server = workspace_server()
    assert server["host"] == "codelocation"
    assert str(server["port"]) == option(cmd(), "-p", "--port") == instructions("EXPOSE")[0]
    assert option(cmd(), "-h", "--host") == "0.0.0.0"  # reachable from the other containers
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert server["location_name"] == option(cmd(), "--location-name") == pyproject["tool"]["dagster"][
        "code_location_name"]
    assert option(cmd(), "-m", "--module-name") == pyproject["tool"]["dagster"]["module_name"]
    for name in ("webserver", "daemon"):
        workspace = option(services[name]["command"], "-w", "--workspace")
        assert in_repo(workspace) == DEPLOY / "workspace.yaml", name
    webserver = services["webserver"]
    assert webserver["ports"] == [f"{option(webserver['command'], '-p', '--port')}:3000"]
    assert option(webserver["command"], "-h", "--host") == "0.0.0.0"


def test_the_commands_exist_in_the_environment_and_the_module_is_importable():
    services = compose()["services"]
    for command in [cmd(), *(services[name]["command"] for name in CRMFLOW_SERVICES)]:
        assert (BIN / command[0]).is_file() and os.access(BIN / command[0], os.X_OK), command[0]
    assert importlib.util.find_spec(option(cmd(), "-m", "--module-name")) is not None
    # `crmflow prepare` (the image's RUN) is a command of the installed CLI
    [run] = instructions("RUN")
    assert "crmflow prepare" in run and (BIN / "crmflow").is_file()
    assert subprocess.run([str(BIN / "crmflow"), "prepare", "--help"], capture_output=True, timeout=120).returncode == 0


def _env_names(node: object) -> set[str]:
    if isinstance(node, dict):
        names = {node["env"]} if set(node) == {"env"} else set()
        return names.union(*(_env_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node))
    return set(re.findall(r"\$\{(\w+)", node)) if isinstance(node, str) else set()


def test_every_variable_the_instance_reads_is_set_by_compose_or_listed_in_env_example():
    read = _env_names(yaml.safe_load((DEPLOY / "dagster.yaml").read_text()))
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"} <= read
    for name in CRMFLOW_SERVICES:
        set_by_compose = set(compose()["services"][name]["environment"])
        assert read - set_by_compose - env_example() == set(), name
    # compose's own ${VAR}s: each has a default (:-), fails with a message (:?), or is in .env.example
    text = (DEPLOY / "compose.yaml").read_text()
    text = text.replace("$$", "")  # $$ is a literal $ (the container's own shell variable)
    bare = set(re.findall(r"\$\{(\w+)\}", text))
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert bare - env_example() == set() and required <= env_example()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """The process and its children (the code server's proxy starts one): its own process group."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


LOCATION_QUERY = """{ workspaceOrError { __typename ... on PythonError { message }
  ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename
    ... on PythonError { message }
    ... on RepositoryLocation { name repositories { name jobs { name } schedules { name } sensors { name } } } } } } } }"""


def test_the_containers_commands_serve_the_code_location_to_the_webserver(tmp_path, dbt_manifest):
    """The Dockerfile's CMD (host and port changed) and compose's webserver command with a copy of
    deploy/workspace.yaml pointing at it; the instance is sqlite in a temporary DAGSTER_HOME."""
    code_port, web_port = _free_port(), _free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=code_port)
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    code_server = [*cmd()]
    code_server[code_server.index(option(cmd(), "-h", "--host"))] = "127.0.0.1"
    code_server[code_server.index(option(cmd(), "-p", "--port"))] = str(code_port)
    webserver = [*compose()["services"]["webserver"]["command"]]
    webserver[webserver.index(option(webserver, "-h", "--host"))] = "127.0.0.1"
    webserver[webserver.index(option(webserver, "-p", "--port"))] = str(web_port)
    webserver[webserver.index(option(webserver, "-w", "--workspace"))] = str(tmp_path / "workspace.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    logs = {name: tmp_path / f"{name}.log" for name in ("code_server", "webserver")}
    processes: dict[str, subprocess.Popen] = {}

    def output() -> str:
        return "\n".join(f"--- {name} (exit {processes[name].poll()}):\n{logs[name].read_text()[-2500:]}"
                         for name in processes)

    try:
        for name, command in (("code_server", code_server), ("webserver", webserver)):
            with open(logs[name], "w") as log:
                processes[name] = subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=REPO, env=env,
                                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline, location = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            exited = [name for name, p in processes.items() if p.poll() is not None]
            assert not exited, f"{exited} exited before the location was served\n{output()}"
            try:
                answer = requests.post(f"http://127.0.0.1:{web_port}/graphql", json={"query": LOCATION_QUERY},
                                       timeout=10).json()
            except requests.ConnectionError:
                answer = None  # the webserver is not listening yet
            if answer is not None:
                [entry] = answer["data"]["workspaceOrError"]["locationEntries"]
                if entry["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                    location = entry
                    break
            time.sleep(1)
        assert location is not None, f"no loaded code location within 120 s\n{output()}"
    finally:
        for process in processes.values():
            _stop(process)

    assert location["name"] == "crmflow" and location["loadStatus"] == "LOADED"
    assert location["locationOrLoadError"]["name"] == "crmflow"
    [repository] = location["locationOrLoadError"]["repositories"]
    snapshot = json.loads((REPO / "tests" / "fixtures" / "definitions_snapshot.json").read_text())
    assert "crmflow_full" in {job["name"] for job in repository["jobs"]}
    assert {s["name"] for s in repository["schedules"]} == set(snapshot["schedules"]) == {
        "daily_schedule", "journey_tick_schedule"}
    assert {s["name"] for s in repository["sensors"]} == set(snapshot["sensors"])
