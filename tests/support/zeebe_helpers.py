"""Deploying generated processes and running them to completion through a real Zeebe client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyzeebe import ZeebeClient


async def deploy_xml(zeebe: ZeebeClient, xml: str, directory: Path, name: str) -> None:
    path = directory / f"{name}.bpmn"
    path.write_text(xml, encoding="utf-8")
    await zeebe.deploy_resource(path)


async def run_to_end(
    zeebe: ZeebeClient, process_id: str, variables: dict[str, Any] | None = None, timeout_s: float = 30
) -> dict[str, Any]:
    """Starts an instance and returns the variables Zeebe reports when it completes."""
    response = await zeebe.run_process_with_result(process_id, variables=variables or {}, timeout=int(timeout_s * 1000))
    return dict(response.variables)
