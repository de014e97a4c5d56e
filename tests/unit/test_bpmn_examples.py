"""The example processes in bpmn-examples/: well-formed, drawn, templated, consistent with the contract, and
clean for bpmnlint with Camunda 8.6 rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from hf_connector.huggingface.contract import MODEL_ID, Operation
from hf_connector.template import TASK_TYPE, TEMPLATE_FILENAME, TEMPLATE_ID

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "bpmn-examples"
TEMPLATES = REPO / "element-templates"
TOOLING = REPO / "tooling"
BPMNLINT = TOOLING / "node_modules" / ".bin" / "bpmnlint"

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "zeebe": "http://camunda.org/schema/zeebe/1.0",
}
ZEEBE = "{" + NS["zeebe"] + "}"
SCENARIOS = (
    "summarization",
    "embeddings",
    "image-captioning",
    "text-to-image",
    "chat",
    "error-handling",
    "structured-extraction",
    "tool-loop",
)
# FEEL functions both engines the examples run on know (Zeebe and the development engine).
FEEL_FUNCTIONS = frozenset({"count", "append", "string", "number", "is defined", "not"})
FLOW_NODES = (
    "startEvent",
    "endEvent",
    "serviceTask",
    "boundaryEvent",
    "task",
    "exclusiveGateway",
    "parallelGateway",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "userTask",
    "scriptTask",
)
SECRET = re.compile(r"^\{\{secrets\.[A-Z0-9_]+\}\}$")


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.bpmn"))


@cache
def templates_by_version() -> dict[int, dict[str, Any]]:
    """The current template and every versioned one, by version."""
    result: dict[int, dict[str, Any]] = {}
    for path in [TEMPLATES / TEMPLATE_FILENAME, *sorted((TEMPLATES / "versioned").glob("*.json"))]:
        data = json.loads(path.read_text(encoding="utf-8"))
        result[data["version"]] = data
    return result


def parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def hugging_face_tasks(root: ET.Element) -> list[ET.Element]:
    return [
        task
        for task in root.iterfind(".//bpmn:serviceTask", NS)
        if (definition := task.find(".//zeebe:taskDefinition", NS)) is not None and definition.get("type") == TASK_TYPE
    ]


def io_of(task: ET.Element) -> tuple[dict[str, str], dict[str, str]]:
    inputs = {item.get("target", ""): item.get("source", "") for item in task.iterfind(".//zeebe:input", NS)}
    headers = {item.get("key", ""): item.get("value", "") for item in task.iterfind(".//zeebe:header", NS)}
    return inputs, headers


def shown(prop: dict[str, Any], operation: str) -> bool:
    condition = prop.get("condition")
    if condition is None:
        return True
    assert condition["property"] == "operation"
    return operation in condition.get("oneOf", [condition.get("equals")])


def test_every_scenario_has_an_example() -> None:
    assert {path.stem for path in example_files()} == set(SCENARIOS)


@pytest.mark.parametrize("path", example_files(), ids=lambda path: path.stem)
class TestExample:
    def test_is_an_executable_process_with_the_expected_id(self, path: Path) -> None:
        root = parse(path)
        processes = root.findall("bpmn:process", NS)
        assert len(processes) == 1
        process = processes[0]
        assert process.get("id") == f"hf-example-{path.stem}"
        assert process.get("isExecutable") == "true"
        assert process.get("name"), "a process name shows up in Operate and Tasklist"
        documentation = process.find("bpmn:documentation", NS)
        assert documentation is not None and documentation.text, "say which start variables the process expects"

    def test_has_diagram_information_for_every_element(self, path: Path) -> None:
        root = parse(path)
        process = root.find("bpmn:process", NS)
        assert process is not None
        plane = root.find("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", NS)
        assert plane is not None, "no BPMNDI: Modeler would open an empty canvas"
        assert plane.get("bpmnElement") == process.get("id")
        shapes = {shape.get("bpmnElement"): shape for shape in plane.iterfind("bpmndi:BPMNShape", NS)}
        edges = {edge.get("bpmnElement"): edge for edge in plane.iterfind("bpmndi:BPMNEdge", NS)}
        for kind in FLOW_NODES:
            for node in process.iterfind(f"bpmn:{kind}", NS):
                shape = shapes.get(node.get("id"))
                assert shape is not None, f"{node.get('id')} has no shape"
                assert shape.find("dc:Bounds", NS) is not None
        for flow in process.iterfind("bpmn:sequenceFlow", NS):
            edge = edges.get(flow.get("id"))
            assert edge is not None, f"{flow.get('id')} has no edge"
            assert len(edge.findall("di:waypoint", NS)) >= 2

    def test_applies_the_template(self, path: Path) -> None:
        tasks = hugging_face_tasks(parse(path))
        assert tasks, f"no service task of type {TASK_TYPE}"
        versions = templates_by_version()
        for task in tasks:
            assert task.get(f"{ZEEBE}modelerTemplate") == TEMPLATE_ID
            version = task.get(f"{ZEEBE}modelerTemplateVersion")
            assert version is not None and version.isdigit()
            assert int(version) in versions, f"template version {version} does not exist (have {sorted(versions)})"
            _, headers = io_of(task)
            assert headers.get("elementTemplateId") == TEMPLATE_ID
            assert headers.get("elementTemplateVersion") == version
            definition = task.find(".//zeebe:taskDefinition", NS)
            assert definition is not None
            retries = definition.get("retries")
            assert retries is not None and retries.isdigit() and int(retries) >= 1

    def test_writes_only_what_its_template_version_defines(self, path: Path) -> None:
        for task in hugging_face_tasks(parse(path)):
            template = templates_by_version()[int(task.get(f"{ZEEBE}modelerTemplateVersion", "0"))]
            props = template["properties"]
            inputs, headers = io_of(task)
            operation = inputs.get("operation", "")
            assert operation in {op.value for op in Operation}, f"operation {operation!r}"
            input_props = {p["binding"]["name"]: p for p in props if p["binding"]["type"] == "zeebe:input"}
            header_props = {p["binding"]["key"]: p for p in props if p["binding"]["type"] == "zeebe:taskHeader"}
            assert inputs.keys() <= input_props.keys(), f"unknown inputs {inputs.keys() - input_props.keys()}"
            assert headers.keys() <= header_props.keys(), f"unknown headers {headers.keys() - header_props.keys()}"
            for target in inputs:
                assert shown(input_props[target], operation), f"{target} is not shown for operation {operation}"
            for name, prop in input_props.items():
                if prop.get("constraints", {}).get("notEmpty") and shown(prop, operation):
                    assert inputs.get(name), f"required input {name} is empty"
            for name, prop in {**input_props, **header_props}.items():
                value = inputs.get(name, headers.get(name))
                pattern = prop.get("constraints", {}).get("pattern")
                if value and pattern:
                    assert re.match(pattern["value"], value), f"{name}={value!r}: {pattern['message']}"
            for name, source in inputs.items():
                if input_props[name].get("feel") == "required":
                    assert source.startswith("="), f"{name} is a FEEL expression and must start with ="

    def test_model_and_token_are_realistic(self, path: Path) -> None:
        for task in hugging_face_tasks(parse(path)):
            inputs, _ = io_of(task)
            model = inputs["model"]
            assert model.startswith("=") or MODEL_ID.match(model), f"{model!r} is not a model id"
            assert SECRET.match(inputs["authentication.token"]), "the API key comes from a secret"
            assert "hf_" not in path.read_text(encoding="utf-8"), "never commit a token"

    def test_passes_bpmnlint(self, path: Path) -> None:
        if shutil.which("node") is None:
            pytest.fail("node is not installed: install Node 20+ and run `make test`")
        if not BPMNLINT.exists():
            pytest.fail("tooling/node_modules is missing: run `make test` (it runs `npm ci --prefix tooling`)")
        # bpmnlint resolves the plugin and zeebe-bpmn-moddle from the working directory: run it in tooling/.
        result = subprocess.run(
            [str(BPMNLINT), "--config", ".bpmnlintrc", "--max-warnings=0", str(path)],
            cwd=TOOLING,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"bpmnlint (camunda-cloud-8-6) found problems:\n{result.stdout}{result.stderr}"


def scenario(name: str) -> tuple[ET.Element, ET.Element, dict[str, str], dict[str, str]]:
    root = parse(EXAMPLES / f"{name}.bpmn")
    tasks = hugging_face_tasks(root)
    assert len(tasks) == 1
    inputs, headers = io_of(tasks[0])
    return root, tasks[0], inputs, headers


def test_summarization_is_camundas_documented_scenario() -> None:
    _, _, inputs, headers = scenario("summarization")
    assert inputs["operation"] == "inference"
    assert inputs["model"] == "facebook/bart-large-cnn"
    assert inputs["authentication.token"] == "{{secrets.HUGGING_FACE_TOKEN}}"
    assert inputs["input"] == "={inputs: text, parameters: {max_length: 75}}", (
        "the paragraph comes in as the variable text: typed into the Input field it makes the field 900 px tall"
    )
    assert headers["resultVariable"] == "myHuggingFaceResponse"
    assert "summary_text" in headers["resultExpression"]


def test_embeddings_chunks_words() -> None:
    _, _, inputs, _ = scenario("embeddings")
    assert inputs["operation"] == "embeddings"
    assert inputs["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert inputs["chunkingStrategy"] == "word"
    assert inputs["input"] == "=text", "the text comes in as a process variable"


def test_image_captioning_takes_a_binary_image_variable() -> None:
    _, _, inputs, _ = scenario("image-captioning")
    assert inputs["model"] == "Salesforce/blip-image-captioning-base"
    assert inputs["input"] == "=image"


def test_text_to_image_asks_for_an_image() -> None:
    _, _, inputs, headers = scenario("text-to-image")
    assert inputs["model"] == "stabilityai/stable-diffusion-2"
    assert inputs["task"] == "text-to-image"
    assert headers["resultVariable"]
    assert headers["binaryResult"] == "document", "the image is stored as a Camunda document, not base64 in Zeebe"


def test_chat_sets_sampling_parameters() -> None:
    _, _, inputs, headers = scenario("chat")
    assert inputs["operation"] == "chat"
    assert MODEL_ID.match(inputs["model"]) and ":" in inputs["model"]
    assert inputs["prompt"].startswith("="), "the prompt comes in as a process variable"
    assert {"temperature", "topP", "maxTokens"} <= inputs.keys()
    assert "input" not in inputs
    assert "choices" in headers["resultExpression"]


def test_error_handling_routes_the_bpmn_error_to_its_own_end() -> None:
    root, task, _, headers = scenario("error-handling")
    definition = task.find(".//zeebe:taskDefinition", NS)
    assert definition is not None and definition.get("retries") == "3"
    assert headers["retryBackoff"] == "PT1S"
    thrown = re.search(r'bpmnError\("([A-Z_]+)"', headers["errorExpression"])
    assert thrown, "the error expression throws a BPMN error"

    process = root.find("bpmn:process", NS)
    assert process is not None
    boundaries = [b for b in process.iterfind("bpmn:boundaryEvent", NS) if b.get("attachedToRef") == task.get("id")]
    assert len(boundaries) == 1
    error_ref = boundaries[0].find("bpmn:errorEventDefinition", NS)
    assert error_ref is not None
    error = root.find(f"bpmn:error[@id='{error_ref.get('errorRef')}']", NS)
    assert error is not None and error.get("errorCode") == thrown.group(1)

    def end_after(source: str) -> str:
        flows = {f.get("sourceRef"): f.get("targetRef") for f in process.iterfind("bpmn:sequenceFlow", NS)}
        target = flows[source]
        assert process.find(f"bpmn:endEvent[@id='{target}']", NS) is not None
        return target

    assert end_after(boundaries[0].get("id", "")) != end_after(task.get("id", ""))


def feel_expressions(root: ET.Element) -> list[str]:
    """Every FEEL expression of a process: mappings and sequence flow conditions."""
    mappings = [
        m.get("source", "") for m in [*root.iterfind(".//zeebe:input", NS), *root.iterfind(".//zeebe:output", NS)]
    ]
    conditions = [c.text or "" for c in root.iterfind(".//bpmn:conditionExpression", NS)]
    return [e for e in [*mappings, *conditions] if e.startswith("=")]


@pytest.mark.parametrize("path", example_files(), ids=lambda path: path.stem)
def test_feel_stays_within_what_both_engines_know(path: Path) -> None:
    for expression in feel_expressions(parse(path)):
        without_strings = re.sub(r'"[^"]*"', '""', expression)
        called = set(re.findall(r"\b(is defined|[A-Za-z_]\w*)\s*\(", without_strings))
        assert called <= FEEL_FUNCTIONS, f"{expression}: {called - FEEL_FUNCTIONS} is outside the FEEL subset"


def test_structured_extraction_asks_for_a_json_schema_and_maps_the_fields() -> None:
    _, _, inputs, headers = scenario("structured-extraction")
    assert inputs["operation"] == "chat"
    response_format = inputs["responseFormat"]
    assert response_format.startswith('={type: "json_schema"')
    for field in ("name", "email", "amount"):
        assert f"{field}: {{type:" in response_format
        assert f'"{field}": json.{field}' in headers["resultExpression"]
    assert "=text" not in inputs["messages"] and "content: text}" in inputs["messages"]


def test_tool_loop_routes_tool_calls_to_a_summarization_task_at_most_three_times() -> None:
    root = parse(EXAMPLES / "tool-loop.bpmn")
    tasks = {io_of(task)[0]["operation"]: task for task in hugging_face_tasks(root)}
    assert tasks.keys() == {"chat", "inference"}
    chat_inputs, chat_headers = io_of(tasks["chat"])
    assert '"function": {name: "summarize"' in chat_inputs["tools"]
    assert "toolCalls" in chat_headers["resultExpression"] and "message" in chat_headers["resultExpression"]
    tool_inputs, _ = io_of(tasks["inference"])
    assert tool_inputs["model"] == "facebook/bart-large-cnn"
    assert "toolCalls[1].arguments.text" in tool_inputs["input"]

    outputs = {o.get("target"): o.get("source", "") for o in tasks["inference"].iterfind(".//zeebe:output", NS)}
    assert 'role: "tool", tool_call_id: toolCalls[1].id' in outputs["conversation"]
    assert outputs["toolRounds"] == "=toolRounds + 1"

    process = root.find("bpmn:process", NS)
    assert process is not None
    gateway = next(g for g in process.iterfind("bpmn:exclusiveGateway", NS) if g.get("default"))
    flows = [f for f in process.iterfind("bpmn:sequenceFlow", NS) if f.get("sourceRef") == gateway.get("id")]
    to_tool = next(f for f in flows if f.get("targetRef") == tasks["inference"].get("id"))
    condition = to_tool.find("bpmn:conditionExpression", NS)
    assert condition is not None and condition.text == "=count(toolCalls) > 0 and toolRounds < 3"
