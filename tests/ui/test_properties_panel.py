"""The modeller's view: every example process, opened with the element templates in Camunda Modeler's own
properties panel (camunda-bpmn-js 5.35, what Desktop Modeler 5.x runs) in headless Chromium, 280 px wide.

A modeller opening an example sees the template applied, no import or template warning, no validation
message in red, no field whose content runs past its edge and no field taller than the panel's width.
The test saves a screenshot of the summarization example's panel for docs/modelling.md.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hf_connector.template import TEMPLATE_FILENAME, TEMPLATE_ID, TEMPLATE_NAME, TEMPLATE_VERSION

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]
TOOLING = REPO / "tooling"
RENDER = TOOLING / "render-properties-panel.mjs"
BUNDLE = TOOLING / "node_modules" / "camunda-bpmn-js" / "dist" / "camunda-cloud-modeler.development.js"
TEMPLATE_DIR = REPO / "element-templates"
TEMPLATES = [TEMPLATE_DIR / TEMPLATE_FILENAME, *sorted(TEMPLATE_DIR.glob("versioned/*.json"))]
EXAMPLES = sorted((REPO / "bpmn-examples").glob("*.bpmn"))
SCREENSHOT_OF = REPO / "bpmn-examples" / "summarization.bpmn"
SCREENSHOT = REPO / "docs" / "images" / "properties-panel.png"
SCREENSHOT_MAX_BYTES = 200 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Taller than this and a field pushes the rest of the panel out of sight (the panel is 280 px wide).
MAX_FIELD_HEIGHT = 280


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not test output."""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: run `make test` (as root it runs `apt-get install -y chromium`)")
    return path


def _require_tooling() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: install Node 20+ and run `make test`")
    if not BUNDLE.exists():
        pytest.fail(f"{BUNDLE.relative_to(REPO)} is missing: run `make test` (it runs `npm ci --prefix tooling`)")


@pytest.fixture(scope="module")
def panel_url() -> Iterator[str]:
    """tooling/ over loopback HTTP: the panel page and the camunda-bpmn-js bundle it loads."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(TOOLING)))
    thread = threading.Thread(target=server.serve_forever, name="properties-panel-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def render(panel_url: str, diagrams: list[Path], screenshot: Path | None = None) -> dict[str, dict[str, Any]]:
    """What the panel shows for each service task of each diagram, by diagram file stem."""
    _require_tooling()
    command = ["node", str(RENDER), "--base", panel_url, "--chromium", _chromium()]
    for template in TEMPLATES:
        command += ["--template", str(template)]
    if screenshot is not None:
        command += ["--screenshot", str(screenshot), "--of", str(SCREENSHOT_OF)]
    command += [str(diagram) for diagram in diagrams]
    result = subprocess.run(command, cwd=TOOLING, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"rendering the properties panel failed:\n{result.stderr}"
    return {Path(entry["diagram"]).stem: entry for entry in json.loads(result.stdout)}


@pytest.fixture(scope="module")
def examples(panel_url: str) -> dict[str, dict[str, Any]]:
    """All examples in one browser: the summarization example's panel is saved as the screenshot."""
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    return render(panel_url, EXAMPLES, screenshot=SCREENSHOT)


def _describe(items: list[dict[str, Any]]) -> str:
    return "; ".join(f"{item['group']} / {item['label']}: {item.get('message', item)}" for item in items)


@pytest.mark.parametrize("name", [path.stem for path in EXAMPLES])
def test_example_opens_cleanly_in_the_properties_panel(name: str, examples: dict[str, dict[str, Any]]) -> None:
    entry = examples[name]
    assert entry["problems"] == [], f"Modeler reports problems opening {name}.bpmn: {entry['problems']}"
    assert entry["tasks"], f"{name}.bpmn has no service task"
    for task in entry["tasks"]:
        where = f"{name}.bpmn, {task['id']}"
        assert task["template"] == {"id": TEMPLATE_ID, "version": TEMPLATE_VERSION, "name": TEMPLATE_NAME}, (
            f"{where}: the template is not applied ({task['template']})"
        )
        panel = task["panel"]
        assert panel["header"]["type"] == TEMPLATE_NAME, f"{where}: the panel's header shows {panel['header']}"
        assert not panel["errors"], f"{where}: validation messages in the panel: {_describe(panel['errors'])}"
        assert not panel["overflows"], f"{where}: content wider than its field: {_describe(panel['overflows'])}"
        tallest = panel["tallest"]
        assert tallest["height"] <= MAX_FIELD_HEIGHT, (
            f"{where}: {tallest['label']} is {tallest['height']} px tall: read long values from a variable"
        )


def test_the_panel_shows_modelers_message_for_a_bad_value(panel_url: str, tmp_path: Path) -> None:
    """The checks above can fail: a read timeout of "30 s" gets the template's message, on that field only."""
    text = SCREENSHOT_OF.read_text(encoding="utf-8")
    mapping = '<zeebe:input source="30" target="connectionTimeoutInSeconds" />'
    assert mapping in text
    diagram = tmp_path / "bad-timeout.bpmn"
    diagram.write_text(
        text.replace(mapping, mapping + '<zeebe:input source="30 s" target="readTimeoutInSeconds" />'),
        encoding="utf-8",
    )
    (task,) = render(panel_url, [diagram])["bad-timeout"]["tasks"]
    errors = task["panel"]["errors"]
    assert [error["label"] for error in errors] == ["Read timeout (s)"]
    assert "Must be a number of seconds, a FEEL expression or a secret." in errors[0]["message"]


def test_screenshot_for_the_docs_is_saved_and_small(examples: dict[str, dict[str, Any]]) -> None:
    assert SCREENSHOT_OF.stem in examples
    data = SCREENSHOT.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) < SCREENSHOT_MAX_BYTES, f"{SCREENSHOT.name} is {len(data)} bytes: keep it under 200 KiB"
    assert SCREENSHOT.name in (REPO / "docs" / "modelling.md").read_text(encoding="utf-8")
