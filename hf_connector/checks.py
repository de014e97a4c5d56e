"""What `hf-connector check` and `hf-connector call` do: answers for an operator at a terminal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from hf_connector.app import build_parts
from hf_connector.config import Settings
from hf_connector.jobs import Complete, JobContext
from hf_connector.secrets import Masker
from hf_connector.zeebe import TopologyProbe, create_channel, describe_zeebe_error

_RESULT = "response"


@dataclass
class CheckReport:
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    def report_lines(self) -> list[str]:
        return [f"ok      {line}" for line in self.passed] + [f"FAILED  {line}" for line in self.problems]


async def run_checks(settings: Settings, timeout: float) -> CheckReport:
    report = CheckReport(passed=["configuration is valid", *_describe_settings(settings)])
    await _check_zeebe(settings, timeout, report)
    await _check_hugging_face(settings, timeout, report)
    # The lines name variables and addresses, never a credential's value; masked all the same in case
    # an error message echoes one back.
    masker = Masker(settings.credential_values())
    report.passed = [masker.mask(line) for line in report.passed]
    report.problems = [masker.mask(line) for line in report.problems]
    return report


def _describe_settings(settings: Settings) -> list[str]:
    lines = [
        f"job type '{settings.job_type}' (worker name '{settings.worker_name}', "
        f"up to {settings.max_jobs} jobs at once, job timeout {settings.job_timeout_seconds:g}s)",
        f"Zeebe connection: {settings.zeebe_connection.describe()}",
    ]
    if settings.hf_token is None:
        lines.append("HF_TOKEN is not set: every task must give authentication.token")
    else:
        lines.append("HF_TOKEN is set: the default API key for tasks that give no authentication.token")
    return lines


async def _check_zeebe(settings: Settings, timeout: float, report: CheckReport) -> None:
    address = settings.zeebe_connection.address
    try:
        channel = create_channel(settings)
    except OSError as exc:
        report.problems.append(f"ZEEBE_CA_CERTIFICATE_PATH cannot be read: {exc}")
        return
    try:
        async with asyncio.timeout(timeout):
            topology = await TopologyProbe(channel).topology()
        report.passed.append(f"Zeebe at {address}: {topology.brokers} broker(s), version {topology.gateway_version}")
    except Exception as exc:
        report.problems.append(f"Zeebe at {address} is not reachable: {describe_zeebe_error(exc)}")
    finally:
        await channel.close()


async def _check_hugging_face(settings: Settings, timeout: float, report: CheckReport) -> None:
    url = settings.router_url
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
        report.passed.append(f"Hugging Face endpoint {url} answers (HTTP {response.status_code})")
    except httpx.HTTPError as exc:
        report.problems.append(f"Hugging Face endpoint {url} is not reachable: {type(exc).__name__} {exc}".strip())


async def call_once(settings: Settings, variables: dict[str, Any]) -> tuple[bool, Any]:
    parts = build_parts(settings)
    job = JobContext(key=0, retries=1, variables=variables, headers={"resultVariable": _RESULT})
    try:
        outcome = (await parts.handler.handle(job)).outcome
    finally:
        await parts.aclose()
    if isinstance(outcome, Complete):
        return True, outcome.variables[_RESULT]
    return False, {"error": {"code": outcome.code, "message": outcome.message}}
