"""The element template: generated from the contract, valid for Camunda's tooling, and usable by a modeller."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from hf_connector import template as template_module
from hf_connector.huggingface.contract import (
    GROUP_LABELS,
    Authentication,
    ChunkingStrategy,
    Group,
    JobVariables,
    Operation,
    TaskHeaders,
    fetched_variable_names,
    modelled_name,
    ui_of,
)
from hf_connector.template import (
    TASK_TYPE,
    TEMPLATE_FILENAME,
    TEMPLATE_ID,
    TEMPLATE_VERSION,
    build_template,
    render_markdown,
    render_template,
    write_template,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "element-templates"
COMMITTED = TEMPLATES / TEMPLATE_FILENAME
VERSIONED = TEMPLATES / "versioned"
TOOLING = REPO / "tooling"
NODE_MODULES = TOOLING / "node_modules"
SCHEMA = NODE_MODULES / "@camunda" / "zeebe-element-templates-json-schema" / "resources" / "schema.json"
MODELERS_DOC = REPO / "docs" / "modelling.md"
REGENERATE = "run `hf-connector template` (or `python -m hf_connector.template`) to regenerate it"

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"


def require_tooling(*paths: Path) -> None:
    """Node tooling is part of the test suite: missing tooling is a failure, never a skip."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: install Node 20+ and run `make test` (it runs `npm ci --prefix tooling`)")
    for path in (NODE_MODULES, *paths):
        if not path.exists():
            pytest.fail(f"{path.relative_to(REPO)} is missing: run `make test` (it runs `npm ci --prefix tooling`)")


def versioned_files() -> list[Path]:
    return sorted(VERSIONED.glob("*.json")) if VERSIONED.is_dir() else []


def all_template_files() -> list[Path]:
    return [COMMITTED, *versioned_files()]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return build_template()


@pytest.fixture(scope="module")
def by_binding(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Properties keyed by what they write: `input:model`, `header:resultVariable`, `task:retries`."""
    kinds = {
        "zeebe:input": ("input", "name"),
        "zeebe:taskHeader": ("header", "key"),
        "zeebe:taskDefinition": ("task", "property"),
    }
    result: dict[str, dict[str, Any]] = {}
    for prop in template["properties"]:
        prefix, attribute = kinds[prop["binding"]["type"]]
        result[f"{prefix}:{prop['binding'][attribute]}"] = prop
    return result


# --- (a) the committed file is the generated one -------------------------------------------------------


def test_committed_template_is_the_generated_one() -> None:
    assert COMMITTED.exists(), f"{COMMITTED.relative_to(REPO)} is missing: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == render_template(), (
        f"{COMMITTED.relative_to(REPO)} differs from the template generated from the contract: {REGENERATE}"
    )


def test_generation_is_deterministic_and_formatted() -> None:
    first, second = render_template(), render_template()
    assert first == second
    assert first.endswith("}\n") and not first.endswith("\n\n")
    assert '\n  "properties": [\n    {\n      "id"' in first, "2-space indentation"
    assert json.loads(first) == build_template()


def test_versioned_templates_keep_the_id_and_have_distinct_lower_versions() -> None:
    versions: dict[int, Path] = {}
    for path in versioned_files():
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["id"] == TEMPLATE_ID, f"{path.name}: id {data['id']!r}, expected {TEMPLATE_ID!r}"
        version = data["version"]
        assert isinstance(version, int) and version < TEMPLATE_VERSION, (
            f"{path.name}: version {version} must be lower than TEMPLATE_VERSION {TEMPLATE_VERSION}"
        )
        assert version not in versions, f"{path.name} and {versions[version].name} both have version {version}"
        assert path.name == f"hugging-face-connector-{version}.json", f"{path.name} should be named by its version"
        versions[version] = path


def test_write_template_writes_the_rendered_text(tmp_path: Path) -> None:
    written = write_template(tmp_path)
    assert written == tmp_path / TEMPLATE_FILENAME
    assert written.read_text(encoding="utf-8") == render_template()
    assert not (tmp_path / "versioned").exists(), "nothing to archive on a first write"


def test_bumping_the_version_archives_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = write_template(tmp_path).read_text(encoding="utf-8")
    monkeypatch.setattr(template_module, "TEMPLATE_VERSION", TEMPLATE_VERSION + 1)
    current = json.loads(write_template(tmp_path).read_text(encoding="utf-8"))
    assert current["version"] == TEMPLATE_VERSION + 1
    headers = {p["binding"].get("key"): p.get("value") for p in current["properties"]}
    assert headers["elementTemplateVersion"] == str(TEMPLATE_VERSION + 1)
    archived = tmp_path / "versioned" / f"hugging-face-connector-{TEMPLATE_VERSION}.json"
    assert archived.read_text(encoding="utf-8") == previous


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert template_module.main(["--check", str(TEMPLATES)]) == 0
    (tmp_path / TEMPLATE_FILENAME).write_text("{}\n", encoding="utf-8")
    assert template_module.main(["--check", str(tmp_path)]) == 1
    assert "hf-connector template" in capsys.readouterr().err


# --- (b) valid against the official JSON schema (Python jsonschema) ------------------------------------


@pytest.fixture(scope="module")
def schema_validator() -> Any:
    require_tooling(SCHEMA)
    import jsonschema

    # The schema has one JavaScript named group `(?<name>...)`; Python's re spells it `(?P<name>...)`.
    schema = json.loads(SCHEMA.read_text(encoding="utf-8").replace("(?<", "(?P<"))
    # Validate against the single-template definition: its errors point at the offending property.
    root = {"$schema": schema["$schema"], "definitions": schema["definitions"], "$ref": "#/definitions/template"}
    return jsonschema.Draft7Validator(root)


@pytest.mark.parametrize("path", all_template_files(), ids=lambda path: path.name)
def test_template_matches_the_official_json_schema(path: Path, schema_validator: Any) -> None:
    assert path.exists(), f"{path.relative_to(REPO)} is missing: {REGENERATE}"
    data = json.loads(path.read_text(encoding="utf-8"))
    errors = sorted(schema_validator.iter_errors(data), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors[:20])


def test_schema_check_catches_a_broken_template(schema_validator: Any) -> None:
    broken = build_template()
    model = next(p for p in broken["properties"] if p["binding"].get("name") == "model")
    model["optional"] = True  # optional and notEmpty contradict each other
    assert list(schema_validator.iter_errors(broken))


# --- (c) valid for Camunda Modeler's own validator (Node) ----------------------------------------------


def test_template_passes_the_modeler_validator() -> None:
    script = TOOLING / "validate-templates.mjs"
    require_tooling(NODE_MODULES / "@bpmn-io" / "element-templates-validator")
    files = [str(path) for path in all_template_files()]
    result = subprocess.run(
        ["node", str(script), *files], cwd=TOOLING, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"element-templates-validator rejected a template:\n{result.stdout}{result.stderr}"
    report = json.loads(result.stdout)
    assert {entry["file"] for entry in report} == set(files)
    assert all(entry["valid"] for entry in report)


def test_applying_the_template_writes_what_the_worker_needs(tmp_path: Path) -> None:
    """What Modeler writes when a modeller applies the template to a plain task (element-templates-cli)."""
    cli = NODE_MODULES / "element-templates-cli" / "bin" / "cli.js"
    require_tooling(cli)
    diagram = tmp_path / "blank.bpmn"
    diagram.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
        'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" id="Definitions_1" '
        'targetNamespace="http://bpmn.io/schema/bpmn">\n'
        '  <bpmn:process id="blank" isExecutable="true"><bpmn:task id="Task_1" name="Ask" /></bpmn:process>\n'
        '  <bpmndi:BPMNDiagram id="D"><bpmndi:BPMNPlane id="P" bpmnElement="blank">'
        '<bpmndi:BPMNShape id="Task_1_di" bpmnElement="Task_1"><dc:Bounds x="100" y="100" width="100" height="80" />'
        "</bpmndi:BPMNShape></bpmndi:BPMNPlane></bpmndi:BPMNDiagram>\n"
        "</bpmn:definitions>\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        ["node", str(cli), "--diagram", str(diagram), "--template", str(COMMITTED), "--element", "Task_1"],
        cwd=TOOLING,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    task = ET.fromstring(result.stdout).find(f".//{{{BPMN_NS}}}serviceTask")
    assert task is not None, "the template turns the task into a service task"
    assert task.get(f"{{{ZEEBE_NS}}}modelerTemplate") == TEMPLATE_ID
    assert task.get(f"{{{ZEEBE_NS}}}modelerTemplateVersion") == str(TEMPLATE_VERSION)
    definition = task.find(f".//{{{ZEEBE_NS}}}taskDefinition")
    assert definition is not None
    assert (definition.get("type"), definition.get("retries")) == (TASK_TYPE, "3")
    inputs = {item.get("target"): item.get("source") for item in task.iter(f"{{{ZEEBE_NS}}}input")}
    headers = {item.get("key"): item.get("value") for item in task.iter(f"{{{ZEEBE_NS}}}header")}
    assert inputs["operation"] == "inference"
    assert inputs["connectionTimeoutInSeconds"] == "30"
    assert {"authentication.token", "model", "input"} <= inputs.keys()
    assert not {"prompt", "messages", "temperature", "chunkingStrategy"} & inputs.keys(), (
        "chat and embedding fields only appear for their operation"
    )
    assert headers == {
        "binaryResult": "document",  # an image or audio answer becomes a Camunda document by default
        "retryBackoff": "PT0S",
        "elementTemplateId": TEMPLATE_ID,
        "elementTemplateVersion": str(TEMPLATE_VERSION),
    }


# --- (d) what a modeller notices ----------------------------------------------------------------------


def test_template_metadata(template: dict[str, Any]) -> None:
    assert template["$schema"] == "https://unpkg.com/@camunda/zeebe-element-templates-json-schema/resources/schema.json"
    assert template["name"] == "Hugging Face Connector"
    assert (template["id"], template["version"]) == (TEMPLATE_ID, TEMPLATE_VERSION)
    assert isinstance(TEMPLATE_VERSION, int) and TEMPLATE_VERSION >= 1
    assert template["description"]
    assert template["documentationRef"].endswith("/docs/modelling.md"), "the panel links to the modeller's page"
    assert (REPO / "docs" / "modelling.md").exists()
    assert template["category"] == {"id": "connectors", "name": "Connectors"}
    assert template["appliesTo"] == ["bpmn:Task"]
    assert template["elementType"] == {"value": "bpmn:ServiceTask"}
    assert template["engines"] == {"camunda": "^8.5"}


def test_icon_is_an_inline_svg(template: dict[str, Any]) -> None:
    contents = template["icon"]["contents"]
    prefix = "data:image/svg+xml;utf8,"
    assert contents.startswith(prefix)
    assert "#" not in contents and '"' not in contents, "data URL characters must be escaped"
    svg = ET.fromstring(unquote(contents.removeprefix(prefix)))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"


def test_groups_follow_the_contract_order_and_are_all_used(template: dict[str, Any]) -> None:
    assert template["groups"] == [{"id": group.value, "label": GROUP_LABELS[group]} for group in Group]
    assert [group["label"] for group in template["groups"]] == [
        "Authentication",
        "Operation",
        "Model and input",
        "Chat parameters",
        "Embedding parameters",
        "Endpoint and timeouts",
        "Output mapping",
        "Error handling",
        "Retries",
    ]
    declared = {group["id"] for group in template["groups"]}
    referenced = {prop["group"] for prop in template["properties"] if "group" in prop}
    assert referenced <= declared, f"properties reference undeclared groups: {referenced - declared}"
    assert declared <= referenced, f"empty groups: {declared - referenced}"
    visible = [prop for prop in template["properties"] if prop["type"] != "Hidden"]
    assert all("group" in prop for prop in visible), "every visible field sits in a group"


def test_property_ids_are_unique(template: dict[str, Any]) -> None:
    ids = [prop["id"] for prop in template["properties"]]
    assert len(ids) == len(set(ids))


def test_task_type_is_hidden(by_binding: dict[str, dict[str, Any]]) -> None:
    prop = by_binding["task:type"]
    assert prop["type"] == "Hidden"
    assert prop["value"] == TASK_TYPE == "hugging-face"


def test_every_contract_field_is_in_the_template(by_binding: dict[str, dict[str, Any]]) -> None:
    for name in JobVariables.model_fields:
        if name == "authentication":
            continue
        assert f"input:{modelled_name(JobVariables, name)}" in by_binding, (
            f"JobVariables.{name} missing from the template"
        )
    for name in Authentication.model_fields:
        assert f"input:authentication.{name}" in by_binding, f"Authentication.{name} missing from the template"
    for name in TaskHeaders.model_fields:
        assert f"header:{modelled_name(TaskHeaders, name)}" in by_binding, (
            f"TaskHeaders.{name} missing from the template"
        )
    # and nothing the worker would not read
    inputs = {key.removeprefix("input:").split(".")[0] for key in by_binding if key.startswith("input:")}
    assert inputs == set(fetched_variable_names())
    headers = {key.removeprefix("header:") for key in by_binding if key.startswith("header:")}
    assert headers == {modelled_name(TaskHeaders, name) for name in TaskHeaders.model_fields}


def test_fields_follow_their_ui_annotation(by_binding: dict[str, dict[str, Any]]) -> None:
    annotated = [
        (f"input:{modelled_name(JobVariables, name)}", JobVariables, name)
        for name in JobVariables.model_fields
        if name != "authentication"
    ]
    annotated += [(f"input:authentication.{name}", Authentication, name) for name in Authentication.model_fields]
    annotated += [
        (f"header:{modelled_name(TaskHeaders, name)}", TaskHeaders, name) for name in TaskHeaders.model_fields
    ]
    for key, model, name in annotated:
        ui = ui_of(model, name)
        if ui is None:
            continue
        prop = by_binding[key]
        assert prop["label"] == ui.label, key
        assert prop["group"] == ui.group.value, key
        assert prop["type"] == ui.kind, key
        assert prop.get("feel") == ui.feel, key
        assert ui.description in prop.get("tooltip", ""), f"{key}: the description is the tooltip"
        if ui.example is not None and ui.kind in ("String", "Text"):
            assert prop.get("placeholder") == ui.example, f"{key}: the example is the placeholder"
        if ui.pattern is not None:
            pattern = prop["constraints"]["pattern"]
            assert pattern["message"] == ui.pattern[1], key
            assert pattern["value"].endswith(ui.pattern[0]), f"{key}: the pattern is the contract's"
        if ui.secret:
            assert "{{secrets." in prop["tooltip"], f"{key}: a secret field tells how to reference a secret"


def test_required_fields_are_not_empty_and_the_rest_optional(template: dict[str, Any]) -> None:
    required = {"authentication.token", "model", "input"}
    for prop in template["properties"]:
        binding = prop["binding"]
        name = binding.get("name") or binding.get("key")
        not_empty = prop.get("constraints", {}).get("notEmpty", False)
        if binding["type"] == "zeebe:input" and name in required:
            assert not_empty and not prop.get("optional"), f"{name} must be filled in"
        elif prop["type"] in ("Hidden", "Dropdown") or binding["type"] == "zeebe:taskDefinition":
            assert not prop.get("optional"), f"{prop['id']} always has a value"
        else:
            assert prop.get("optional") is True, f"{name}: an empty optional field must not be written"
            assert not not_empty


def test_operation_dropdown(by_binding: dict[str, dict[str, Any]]) -> None:
    prop = by_binding["input:operation"]
    assert prop["id"] == "operation", "conditions refer to the operation by this id"
    assert prop["type"] == "Dropdown"
    assert [choice["value"] for choice in prop["choices"]] == [operation.value for operation in Operation]
    assert all(choice["name"] for choice in prop["choices"])
    assert prop["value"] == Operation.INFERENCE.value
    assert "condition" not in prop


def test_chunking_dropdown(by_binding: dict[str, dict[str, Any]]) -> None:
    prop = by_binding["input:chunkingStrategy"]
    assert [choice["value"] for choice in prop["choices"]] == [strategy.value for strategy in ChunkingStrategy]
    assert prop["value"] == "none"


def _shown_for(prop: dict[str, Any]) -> set[str]:
    condition = prop.get("condition")
    if condition is None:
        return {operation.value for operation in Operation}
    assert condition["property"] == "operation"
    return set(condition["oneOf"]) if "oneOf" in condition else {condition["equals"]}


def test_fields_appear_only_for_their_operation(
    template: dict[str, Any], by_binding: dict[str, dict[str, Any]]
) -> None:
    chat_fields = [p for p in template["properties"] if p.get("group") == Group.CHAT.value]
    assert {p["binding"]["name"] for p in chat_fields} >= {"messages", "prompt", "maxTokens", "temperature", "topP"}
    for prop in chat_fields:
        assert _shown_for(prop) == {"chat"}, prop["id"]
    for prop in (p for p in template["properties"] if p.get("group") == Group.EMBEDDINGS.value):
        assert _shown_for(prop) == {"embeddings"}, prop["id"]
    assert _shown_for(by_binding["input:input"]) == {"inference", "embeddings"}
    assert _shown_for(by_binding["input:task"]) == {"inference"}
    for always in (
        "input:model",
        "input:authentication.token",
        "input:endpoint",
        "header:resultExpression",
        "header:errorExpression",
        "task:retries",
        "header:retryBackoff",
    ):
        assert "condition" not in by_binding[always], always
    choices = {choice["value"] for choice in by_binding["input:operation"]["choices"]}
    for prop in template["properties"]:
        assert _shown_for(prop) <= choices, f"{prop['id']} refers to an unknown operation"


def test_retries(by_binding: dict[str, dict[str, Any]]) -> None:
    retries = by_binding["task:retries"]
    assert retries["value"] == "3"
    assert retries["group"] == Group.RETRIES.value
    pattern = re.compile(retries["constraints"]["pattern"]["value"])
    assert all(pattern.match(text) for text in ("0", "3", "10", "=retries"))
    assert not any(pattern.match(text) for text in ("three", "-1", "3.5"))

    backoff = by_binding["header:retryBackoff"]
    assert backoff["value"] == "PT0S"
    assert backoff["group"] == Group.RETRIES.value
    pattern = re.compile(backoff["constraints"]["pattern"]["value"])
    assert all(pattern.match(text) for text in ("PT0S", "PT30S", "PT1M30S", "PT1.5S", "P1D", "=backoff"))
    assert not any(pattern.match(text) for text in ("30s", "30", "P", "PT", "1 minute"))


def test_an_unset_optional_field_passes_its_pattern(template: dict[str, Any]) -> None:
    """Modeler tests the pattern of an unset optional field with `RegExp.test(undefined)`, i.e. against the
    text "undefined": a red message on an empty field would send the modeller looking for a mistake."""
    checked = []
    for prop in template["properties"]:
        pattern = prop.get("constraints", {}).get("pattern")
        if pattern and prop.get("optional"):
            for unset in ("", "undefined"):
                assert re.search(pattern["value"], unset), f"{prop['id']}: an unset value fails {pattern['value']}"
            checked.append(prop["id"])
    assert {"readTimeoutInSeconds", "retryBackoff"} <= set(checked)


def test_expressions_say_they_are_jinja2_and_show_an_example(by_binding: dict[str, dict[str, Any]]) -> None:
    """Result and error expressions sit where Camunda's connectors take FEEL: the label says otherwise."""
    for key in ("header:resultExpression", "header:errorExpression"):
        prop = by_binding[key]
        assert prop["label"].endswith("(Jinja2)"), key
        assert prop["placeholder"] and not prop["placeholder"].startswith("="), f"{key}: a Jinja2 example"


def test_long_values_wrap_in_the_panel(by_binding: dict[str, dict[str, Any]]) -> None:
    """A secret reference and long model ids are wider than a 280 px panel: text areas wrap them."""
    assert by_binding["input:authentication.token"]["type"] == "Text"
    assert by_binding["input:model"]["type"] == "Text"


def test_timeouts_accept_numbers_feel_and_secrets(by_binding: dict[str, dict[str, Any]]) -> None:
    for key in ("input:connectionTimeoutInSeconds", "input:readTimeoutInSeconds"):
        prop = by_binding[key]
        pattern = re.compile(prop["constraints"]["pattern"]["value"])
        for text in ("30", "2.5", "=timeout", "={{secrets.X}}", "{{secrets.HF_TIMEOUT}}"):
            assert pattern.match(text), f"{key} should accept {text!r}"
        for text in ("30s", "thirty", "-1"):
            assert not pattern.match(text), f"{key} should reject {text!r}"
    assert by_binding["input:connectionTimeoutInSeconds"]["value"] == "30"


def test_template_headers_are_hidden(by_binding: dict[str, dict[str, Any]]) -> None:
    assert by_binding["header:elementTemplateId"]["type"] == "Hidden"
    assert by_binding["header:elementTemplateId"]["value"] == TEMPLATE_ID
    assert by_binding["header:elementTemplateVersion"]["type"] == "Hidden"
    assert by_binding["header:elementTemplateVersion"]["value"] == str(TEMPLATE_VERSION)


def test_output_and_error_headers_are_plain_text(by_binding: dict[str, dict[str, Any]]) -> None:
    """Result and error expressions are Jinja2 evaluated by the worker, not FEEL evaluated by Zeebe."""
    for key in ("header:resultVariable", "header:resultExpression", "header:errorExpression"):
        assert "feel" not in by_binding[key], key
    assert by_binding["header:resultVariable"]["group"] == Group.OUTPUT.value
    assert by_binding["header:errorExpression"]["group"] == Group.ERRORS.value
    assert "bpmnError" in by_binding["header:errorExpression"]["placeholder"]


def test_api_key_is_a_secret_reference(by_binding: dict[str, dict[str, Any]]) -> None:
    prop = by_binding["input:authentication.token"]
    assert prop["label"] == "Hugging Face API key"
    assert prop["group"] == Group.AUTHENTICATION.value
    assert prop["placeholder"] == "{{secrets.HUGGING_FACE_TOKEN}}"
    assert "feel" not in prop, "a plain field keeps {{secrets.NAME}} out of FEEL string literals"


def test_python_patterns_compile(template: dict[str, Any]) -> None:
    for prop in template["properties"]:
        pattern = prop.get("constraints", {}).get("pattern")
        if pattern:
            re.compile(pattern["value"])


def test_markdown_reference_lists_every_visible_field(template: dict[str, Any]) -> None:
    table = render_markdown()
    for prop in template["properties"]:
        if prop["type"] != "Hidden":
            assert prop["label"] in table


def test_modelers_doc_has_the_current_field_table() -> None:
    assert MODELERS_DOC.exists(), "docs/modelling.md is missing"
    assert render_markdown() in MODELERS_DOC.read_text(encoding="utf-8"), (
        "docs/modelling.md has a stale field table: paste the output of `python -m hf_connector.template --markdown`"
    )


def test_modelers_doc_links_resolve() -> None:
    """Every relative link and image in docs/modelling.md points at a file or folder of the repository."""
    text = MODELERS_DOC.read_text(encoding="utf-8")
    targets = [target for target in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in target]
    assert "images/properties-panel.png" in targets, "the doc shows the properties panel"
    missing = [t for t in targets if t.split("#")[0] and not (MODELERS_DOC.parent / t.split("#")[0]).exists()]
    assert not missing, f"docs/modelling.md links to what does not exist: {missing}"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "](docs/modelling.md)" in readme, "the README points modellers to docs/modelling.md"


def test_chat_tools_and_response_format_are_feel_and_tool_choice_a_dropdown(
    by_binding: dict[str, dict[str, Any]],
) -> None:
    for name in ("tools", "responseFormat"):
        prop = by_binding[f"input:{name}"]
        assert (prop["type"], prop["feel"], prop["group"]) == ("Text", "required", "chat"), name
        assert _shown_for(prop) == {"chat"}
        assert "e.g. =" in prop["tooltip"], "the tooltip shows an example"
    choice = by_binding["input:toolChoice"]
    assert choice["type"] == "Dropdown" and _shown_for(choice) == {"chat"}
    assert [c["value"] for c in choice["choices"]] == ["auto", "none", "required"]
    assert choice["value"] == "auto"
