"""No secret value leaves the worker, whatever sink it could reach; outbound calls obey the rules.

Masking: the stand-in echoes the token (and every other secret used) back, in success bodies, in error
bodies (401/400/500), in response headers; error and result expressions copy those messages. Then every
sink is scanned for every secret value (as it is, and JSON-escaped): the variables Zeebe returns, every
Zeebe record of these instances (incidents, job failures, thrown errors, variables), the worker's log
and /metrics. The stand-in's own recording proves that each secret was really resolved and sent.

Outbound rules: the allow-list, the cloud metadata address (also as an IPv4-mapped IPv6 literal, a
decimal number, a metadata host name) and redirects. Those tests never let a packet leave loopback: the
worker under test routes any non-loopback URL through the stand-in as its HTTP proxy (ALL_PROXY), so a
call that slipped past the rules would show up in the stand-in's recording instead of on the network.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyzeebe import ZeebeClient

from devkit.hf_standin import HfStandin, Reply
from hf_connector.config import ConfigurationError, Settings, load_settings
from tests.conftest import SUITE_SECRETS
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.records import Record, ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

EXTRA_SECRETS = {
    "QUOTED_TOKEN": 'hf_q"uo\\te/9d2f',  # changes shape when JSON-escaped
    "BILLING_ORG": "acme-billing-secret-77aa",
    "PRIVATE_MODEL": "acme-private/secret-model-x1c4",  # a model id kept secret ends up in URL paths
}
WORKER_HF_TOKEN = "hf_workerDefaultToken_5e6f0a"  # the worker's own HF_TOKEN, used when a task gives none
METADATA = "169.254.169.254"


def secret_values(endpoint_secret: str) -> dict[str, str]:
    return {**SUITE_SECRETS, **EXTRA_SECRETS, "ENDPOINT_URL": endpoint_secret, "HF_TOKEN (worker)": WORKER_HF_TOKEN}


def forms(value: str) -> set[str]:
    """The value and its JSON-escaped form, as it appears inside a JSON document."""
    return {value, json.dumps(value)[1:-1]}


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(name for name, value in secrets.items() if any(form in text for form in forms(value)))


async def until(probe: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.1)
    return found


def belongs(record: Record, piks: set[int]) -> bool:
    value = record.get("value", {})
    if value.get("processInstanceKey") in piks:
        return True
    return any(job.get("processInstanceKey") in piks for job in value.get("jobs", []) if isinstance(job, dict))


async def deploy(
    zeebe: ZeebeClient,
    bpmn_dir: Path,
    job_type: str,
    inputs: dict[str, str],
    headers: dict[str, str] | None = None,
    *,
    retries: int = 3,
    catch_error_code: str | None = None,
) -> str:
    process_id = unique_process_id("masking")
    xml = connector_process(
        process_id, job_type, inputs=inputs, headers=headers, retries=retries, catch_error_code=catch_error_code
    )
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    return process_id


def guarded_env(hf: HfStandin, endpoint_secret: str) -> dict[str, str]:
    return {
        **{f"SECRET_{name}": value for name, value in {**SUITE_SECRETS, **EXTRA_SECRETS}.items()},
        "SECRET_ENDPOINT_URL": endpoint_secret,
        "HF_TOKEN": WORKER_HF_TOKEN,
        "HF_CONNECTOR_FOLLOW_REDIRECTS": "true",
        "HF_CONNECTOR_OVERLOAD_BACKOFF_SECONDS": "0",
        # The safety net: whatever is not loopback goes to the stand-in as a proxy, never to the network.
        "ALL_PROXY": hf.url,
        "NO_PROXY": "127.0.0.1,localhost,::1",
    }


@pytest.fixture(scope="module")
def endpoint_secret(hf: HfStandin) -> str:
    return f"{hf.url}/secret-endpoint-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def guarded(
    zeebe_address: str,
    hf: HfStandin,
    tmp_path_factory: pytest.TempPathFactory,
    worker_id_suffix: str,
    endpoint_secret: str,
) -> Iterator[Connector]:
    """A worker with extra secrets, its own HF_TOKEN, redirects followed, and the proxy safety net."""
    worker = Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type=f"hf-masking-{worker_id_suffix}-{uuid.uuid4().hex[:6]}",
        log_path=tmp_path_factory.mktemp("guarded") / "worker.log",
        env=guarded_env(hf, endpoint_secret),
    ).start()
    yield worker
    worker.stop()


# --------------------------------------------------------------------------------------------------
# Masking across every sink
# --------------------------------------------------------------------------------------------------


async def test_no_secret_reaches_variables_records_logs_or_metrics(
    zeebe: ZeebeClient,
    guarded: Connector,
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
    endpoint_secret: str,
) -> None:
    secrets = secret_values(endpoint_secret)
    suffix = uuid.uuid4().hex[:8]
    echo_all = {
        "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
        "billTo": "{{secrets.BILLING_ORG}}",
        "input": '={inputs: "say {{secrets.OTHER_TOKEN}} and <<secrets.QUOTED_TOKEN>>"}',
    }
    copy_everything = (
        '{"auth": response.body.echo.headers.authorization, "shout": response.body.echo.body|upper, '
        '"whole": response, "literal": "{{secrets.OTHER_TOKEN}}"}'
    )
    models = {name: f"masking/{name}-{suffix}" for name in ("ok", "e401", "e400", "e500", "retry", "default", "hdr")}
    hf.script(models["ok"], Reply.echo())
    hf.script(models["e401"], Reply.echo(401))
    hf.script(models["e400"], Reply.echo(400))
    hf.script(models["e500"], Reply.echo(500))
    hf.script(models["retry"], Reply.echo(503), Reply.echo())
    hf.script(models["default"], Reply.echo())
    hf.script(models["hdr"], Reply(json={"ok": True}, headers={"x-debug-auth": f"Bearer {WORKER_HF_TOKEN}"}))
    hf.script(f"/hf-inference/models/{EXTRA_SECRETS['PRIVATE_MODEL']}", Reply.echo())
    endpoint_path = endpoint_secret.removeprefix(hf.url)
    hf.script(endpoint_path, Reply.echo())

    def task(model: str, **extra: str) -> dict[str, str]:
        return {**echo_all, "model": feel_string(model), **extra}

    job_type = guarded.job_type
    completing = {
        "echo into the result": await deploy(
            zeebe,
            bpmn_dir,
            job_type,
            task(models["ok"]),
            {"resultVariable": "r", "resultExpression": copy_everything},
        ),
        "400 echo, error expression copies it into a caught BPMN error": await deploy(
            zeebe,
            bpmn_dir,
            job_type,
            task(models["e400"]),
            {
                "errorExpression": 'bpmnError("BAD_REQUEST", error.message, {"copied": error.message, '
                '"resp": response, "auth": response.body.echo.headers.authorization})'
            },
            catch_error_code="BAD_REQUEST",
        ),
        "503 echo, retried, then echo": await deploy(
            zeebe, bpmn_dir, job_type, task(models["retry"]), {"resultVariable": "r", "retryBackoff": "PT0S"}
        ),
        "the worker's HF_TOKEN echoed": await deploy(
            zeebe,
            bpmn_dir,
            job_type,
            {"model": feel_string(models["default"]), "input": '={inputs: "x"}'},
            {"resultVariable": "r"},
        ),
        "a token in a response header": await deploy(
            zeebe, bpmn_dir, job_type, task(models["hdr"]), {"resultVariable": "r"}
        ),
        "a secret model id": await deploy(
            zeebe, bpmn_dir, job_type, task("{{secrets.PRIVATE_MODEL}}"), {"resultVariable": "r"}
        ),
        "a secret endpoint URL as the model": await deploy(
            zeebe, bpmn_dir, job_type, task("{{secrets.ENDPOINT_URL}}"), {"resultVariable": "r"}
        ),
    }
    failing = {
        "401 echo, default policy": await deploy(zeebe, bpmn_dir, job_type, task(models["e401"])),
        "500 echo, jobError copies message and response": await deploy(
            zeebe,
            bpmn_dir,
            job_type,
            task(models["e500"]),
            {
                "errorExpression": 'jobError("copied: " ~ error.message ~ " / " '
                '~ response.body.echo.headers.authorization, {"seen": response.body.echo.headers}, 0)'
            },
        ),
    }

    async def complete(process_id: str) -> tuple[int, dict[str, Any]]:
        result = await zeebe.run_process_with_result(process_id, timeout=30_000)
        return result.process_instance_key, dict(result.variables)

    finished = await asyncio.gather(*(complete(process_id) for process_id in completing.values()))
    failed_piks = [(await zeebe.run_process(process_id)).process_instance_key for process_id in failing.values()]
    incidents = [
        await until(lambda pik=pik: records.matching("INCIDENT", "CREATED", processInstanceKey=pik), "incident")
        for pik in failed_piks
    ]

    # The secrets were really used: resolved and sent, so an echo had something to leak.
    sent = "\n".join(f"http://{req.headers.get('host')}{req.path} {req.headers} {req.text}" for req in hf.requests)
    assert leaks(sent, secrets) == sorted(secrets), "some secrets were never sent: the scan would prove nothing"

    problems: list[str] = []
    for name, (_, variables) in zip(completing, finished, strict=True):
        if found := leaks(json.dumps(variables), secrets):
            problems.append(f"variables of '{name}' show {found}")
    assert finished[0][1]["auth"] == "Bearer ***" and finished[0][1]["literal"] == "***"
    assert "caught" in json.dumps(
        records.matching("PROCESS_INSTANCE", "ELEMENT_COMPLETED", processInstanceKey=finished[1][0])
    )
    for name, incident in zip(failing, incidents, strict=True):
        message = incident[0]["value"]["errorMessage"]
        if found := leaks(message, secrets):
            problems.append(f"incident of '{name}' shows {found}")
        elif "***" not in message:
            problems.append(f"incident of '{name}' echoes no masked secret: {message[:300]!r}")

    piks = {pik for pik, _ in finished} | set(failed_piks)
    ours = [record for record in records.all() if belongs(record, piks)]
    assert {r["valueType"] for r in ours} >= {"JOB", "INCIDENT", "VARIABLE", "PROCESS_INSTANCE"}
    assert any(r["valueType"] == "JOB" and r["intent"] == "ERROR_THROWN" for r in ours)
    assert any(r["valueType"] == "JOB" and r["intent"] == "FAILED" and r["value"]["retries"] > 0 for r in ours)
    for record in ours:
        if found := leaks(json.dumps(record), secrets):
            problems.append(f"Zeebe record {record['valueType']} {record['intent']} shows {found}")
    if found := leaks(guarded.log_text(), secrets):
        problems.append(f"the worker's log shows {found}")
    _, metrics_text = guarded.get("/metrics")
    if found := leaks(metrics_text, secrets):
        problems.append(f"/metrics shows {found}")
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_settings_never_show_the_workers_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    hf_token, client_secret = "hf_settingsToken_91ab", "camunda-client-secret-c0ffee"
    monkeypatch.setenv("HF_TOKEN", hf_token)
    monkeypatch.setenv("CAMUNDA_CLIENT_ID", "connector")
    monkeypatch.setenv("CAMUNDA_CLIENT_SECRET", client_secret)
    monkeypatch.setenv("CAMUNDA_OAUTH_URL", "http://127.0.0.1:1/token")
    settings = Settings()
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())]
    for text in shown:
        assert hf_token not in text and client_secret not in text
    assert sorted(settings.credential_values()) == sorted([hf_token, client_secret])

    monkeypatch.setenv("HF_CONNECTOR_MAX_JOBS", "lots")  # an invalid setting next to the credentials
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "HF_CONNECTOR_MAX_JOBS" in str(caught.value)
    assert hf_token not in str(caught.value) and client_secret not in str(caught.value)


# --------------------------------------------------------------------------------------------------
# Outbound rules
# --------------------------------------------------------------------------------------------------


async def _incident_message(zeebe: ZeebeClient, records: ZeebeRecords, process_id: str) -> str:
    pik = (await zeebe.run_process(process_id)).process_instance_key
    found = await until(lambda: records.matching("INCIDENT", "CREATED", processInstanceKey=pik), "incident")
    retries = [r["value"]["retries"] for r in records.matching("JOB", "FAILED", processInstanceKey=pik)]
    assert retries == [0], f"a refused destination must not be retried: {retries}"
    return str(found[0]["value"]["errorMessage"])


def _requests_to(hf: HfStandin, paths: Iterable[str]) -> list[str]:
    wanted = set(paths)
    return [f"{req.method} {req.path} host={req.headers.get('host')}" for req in hf.requests if req.path in wanted]


async def test_a_host_outside_the_allow_list_is_refused_naming_the_rule(
    zeebe_address: str, zeebe: ZeebeClient, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords, tmp_path: Path
) -> None:
    worker = Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type=f"hf-allow-list-{uuid.uuid4().hex[:8]}",
        log_path=tmp_path / "allow-list-worker.log",
        env={
            "SECRET_HUGGING_FACE_TOKEN": SUITE_SECRETS["HUGGING_FACE_TOKEN"],
            "HF_CONNECTOR_ALLOWED_HOSTS": '["*.huggingface.co", "*.endpoints.huggingface.cloud"]',
        },
    ).start()
    try:
        model = f"allow-list/refused-{uuid.uuid4().hex[:8]}"
        inputs = {
            "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
            "model": feel_string(model),
            "input": '={inputs: "x"}',
        }
        message = await _incident_message(zeebe, records, await deploy(zeebe, bpmn_dir, worker.job_type, inputs))
        assert "host '127.0.0.1' is not in HF_CONNECTOR_ALLOWED_HOSTS" in message
        assert "*.huggingface.co" in message and "The call was not made" in message
        assert hf.requests_for(model) == []
        assert worker.health()[0] == 200
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"http://{METADATA}/latest/meta-data/iam/security-credentials/", (f"resolves to {METADATA}", "metadata")),
        (f"http://[::ffff:{METADATA}]/latest/meta-data/iam/", (f"resolves to {METADATA}", "metadata")),
        ("http://2852039166/latest/meta-data/iam/decimal", (f"resolves to {METADATA}", "metadata")),
        ("http://metadata.google.internal/computeMetadata/v1/", ("cloud metadata host 'metadata.google.internal'",)),
    ],
    ids=["ipv4", "ipv4-mapped-ipv6", "decimal", "gcp-name"],
)
async def test_a_model_url_at_the_cloud_metadata_service_is_refused_without_a_connection(
    url: str,
    words: tuple[str, ...],
    zeebe: ZeebeClient,
    guarded: Connector,
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    inputs = {
        "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
        "model": feel_string(url),
        "input": '={inputs: "x"}',
    }
    message = await _incident_message(zeebe, records, await deploy(zeebe, bpmn_dir, guarded.job_type, inputs))
    assert "The call was not made" in message
    for word in words:
        assert word in message, message
    path = "/" + url.split("/", 3)[3]
    assert _requests_to(hf, [path]) == [], "the call went out (here: to the proxy safety net)"


async def test_redirects_are_not_followed_by_default(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = f"redirects/not-followed-{uuid.uuid4().hex[:8]}"
    target = f"/redirect-target-{uuid.uuid4().hex[:8]}"
    hf.script(model, Reply(status=307, headers={"location": f"{hf.url}{target}"}))
    inputs = {
        "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
        "model": feel_string(model),
        "input": '={inputs: "x"}',
    }
    process_id = await deploy(zeebe, bpmn_dir, connector.job_type, inputs, {"resultVariable": "r"})

    variables = await run_to_end(zeebe, process_id)

    assert variables["r"]["status"] == 307
    assert variables["r"]["headers"]["location"] == f"{hf.url}{target}"
    assert _requests_to(hf, [target]) == []


async def test_followed_redirects_pass_the_rules_at_every_hop(
    zeebe: ZeebeClient, guarded: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    suffix = uuid.uuid4().hex[:8]
    to_metadata, to_loopback = f"redirects/to-metadata-{suffix}", f"redirects/to-loopback-{suffix}"
    metadata_path = f"/latest/meta-data/redirected-{suffix}"
    same_origin, other_origin = f"/redirect-same-{suffix}", f"/redirect-other-{suffix}"
    other_origin_url = hf.url.replace("127.0.0.1", "localhost") + other_origin
    hf.script(to_metadata, Reply(status=307, headers={"location": f"http://{METADATA}{metadata_path}"}))
    hf.script(to_loopback, Reply(status=307, headers={"location": same_origin}))
    hf.script(same_origin, Reply(status=302, headers={"location": other_origin_url}))
    hf.script(other_origin, Reply(json=[{"generated_text": "arrived"}]))

    def inputs(model: str) -> dict[str, str]:
        return {
            "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
            "model": feel_string(model),
            "input": '={inputs: "x"}',
        }

    blocked = await deploy(zeebe, bpmn_dir, guarded.job_type, inputs(to_metadata))
    allowed = await deploy(zeebe, bpmn_dir, guarded.job_type, inputs(to_loopback), {"resultVariable": "r"})

    message = await _incident_message(zeebe, records, blocked)
    variables = await run_to_end(zeebe, allowed)

    assert f"resolves to {METADATA}" in message and "blocked" in message
    assert _requests_to(hf, [metadata_path]) == [], "the redirect to the metadata address was followed"
    assert variables["r"]["status"] == 200 and variables["r"]["body"] == [{"generated_text": "arrived"}]
    (hop_same,) = [req for req in hf.requests if req.path == same_origin]
    (hop_other,) = [req for req in hf.requests if req.path == other_origin]
    assert hop_same.headers["authorization"] == f"Bearer {SUITE_SECRETS['HUGGING_FACE_TOKEN']}"
    assert "authorization" not in hop_other.headers, "the token followed a redirect to another origin"
