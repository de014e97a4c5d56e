"""The Camunda element template, generated from the job contract (never edited by hand).

`build_template()` turns the `Ui` annotations of `JobVariables`, `Authentication` and `TaskHeaders` into an
element template for Camunda Modeler: every annotated field becomes a property bound as `zeebe:input`
(job variables) or `zeebe:taskHeader` (task headers). Fields limited to some operations get a `condition`
on the operation dropdown, so a modeller only sees what the chosen operation uses.

    python -m hf_connector.template [DIR]         # writes DIR/hugging-face-connector.json (default element-templates)
    python -m hf_connector.template --check       # exit 1 if the committed file is stale
    python -m hf_connector.template --markdown    # the field reference table in docs/modelling.md

Versioning policy: when fields change (added, removed, renamed, new binding, new condition or stricter
constraint), bump `TEMPLATE_VERSION`. `write_template` then keeps the previous file as
`versioned/hugging-face-connector-<old version>.json`, so diagrams built with an older version still open
in Modeler and can be upgraded from there. What only changes how Modeler shows a field needs no bump:
tooltip, label or placeholder wording, String or Text, a pattern that accepts more.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from hf_connector.config import Settings
from hf_connector.huggingface.contract import (
    GROUP_LABELS,
    BinaryResult,
    ChunkingStrategy,
    Group,
    JobVariables,
    Operation,
    TaskHeaders,
    ToolChoice,
    Ui,
    modelled_name,
    ui_of,
)

TEMPLATE_ID: Final = "io.github.hf-connector.huggingface"
TEMPLATE_VERSION: Final = 2
TEMPLATE_NAME: Final = "Hugging Face Connector"
TEMPLATE_FILENAME: Final = "hugging-face-connector.json"
VERSIONED_DIRNAME: Final = "versioned"
# The template sets the job type the worker polls for by default.
TASK_TYPE: Final[str] = Settings.model_fields["job_type"].default
SCHEMA_URL: Final = "https://unpkg.com/@camunda/zeebe-element-templates-json-schema/resources/schema.json"
# The panel header links here: the modeller's page, not the project's front page.
DOCUMENTATION_URL: Final = "https://github.com/hf-connector/camunda-hugging-face-connector/blob/main/docs/modelling.md"
DEFAULT_DIRECTORY: Final = Path("element-templates")
DEFAULT_RETRIES: Final = 3
DEFAULT_RETRY_BACKOFF: Final = "PT0S"
RETRIES_PATTERN: Final = r"^(=.*|\d+)$"

DESCRIPTION: Final = (
    "Run Hugging Face models from a process: raw inference on any task (summarization, classification, "
    "image captioning, text-to-image, ...), OpenAI-compatible chat completions and text embeddings."
)
KEYWORDS: Final = (
    "AI",
    "Hugging Face",
    "machine learning",
    "inference",
    "LLM",
    "chat",
    "embeddings",
    "summarization",
    "text generation",
    "image",
)

# Fields a modeller must fill although the worker has a fallback or checks them per operation:
# `input` is required by every operation that shows it; the API key is required in the template so that
# a process names its secret explicitly instead of silently using the worker's default token.
NOT_EMPTY: Final = frozenset({"authentication.token", "model", "input"})

# Display names of dropdown choices; a value missing here is shown capitalised.
CHOICE_NAMES: Final[dict[Enum, str]] = {
    Operation.INFERENCE: "Inference (any task)",
    Operation.CHAT: "Chat completion",
    Operation.EMBEDDINGS: "Embeddings",
    ChunkingStrategy.NONE: "No chunking",
    ChunkingStrategy.WORD: "Word chunks",
    ChunkingStrategy.SENTENCE: "Sentence chunks",
    ToolChoice.AUTO: "Auto: the model decides",
    ToolChoice.NONE: "None: no tool calls",
    ToolChoice.REQUIRED: "Required: at least one call",
    BinaryResult.DOCUMENT: "Camunda document (reference in body)",
    BinaryResult.INLINE: "Inline (base64 in body)",
}

SECRET_HINT: Final = (
    "Do not paste a token here: store it as a secret and write {{secrets.NAME}}, e.g. {{secrets.HUGGING_FACE_TOKEN}}."
)

# Task headers the template writes itself (hidden), not from a `Ui` annotation.
_TEMPLATE_HEADERS: Final = ("element_template_id", "element_template_version")
_OPERATION_PROPERTY_ID: Final = "operation"

_ICON_SVG: Final = (
    "<svg xmlns='http://www.w3.org/2000/svg' width='18' height='18' viewBox='0 0 24 24'>"
    "<circle cx='12' cy='11' r='9' fill='#FFD21E' stroke='#FF9D0B' stroke-width='1.2'/>"
    "<circle cx='8.7' cy='9' r='1.3' fill='#3A3B45'/>"
    "<circle cx='15.3' cy='9' r='1.3' fill='#3A3B45'/>"
    "<path d='M7.6 12.6c1.3 2.7 7.5 2.7 8.8 0' fill='none' stroke='#3A3B45' stroke-width='1.4' "
    "stroke-linecap='round'/>"
    "<ellipse cx='5.2' cy='17.6' rx='2.7' ry='1.9' transform='rotate(-35 5.2 17.6)' fill='#FF9D0B'/>"
    "<ellipse cx='18.8' cy='17.6' rx='2.7' ry='1.9' transform='rotate(35 18.8 17.6)' fill='#FF9D0B'/>"
    "</svg>"
)
ICON: Final = "data:image/svg+xml;utf8," + quote(_ICON_SVG, safe=" '/=:;,.-()")


class _Field:
    """One annotated contract field with the name it is bound to."""

    def __init__(self, binding_name: str, info: FieldInfo, ui: Ui, header: bool) -> None:
        self.binding_name = binding_name
        self.info = info
        self.ui = ui
        self.header = header

    @property
    def property_id(self) -> str:
        head, _, tail = self.binding_name.partition(".")
        return head + tail[:1].upper() + tail[1:] if tail else head


def _annotated_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo, Ui]]:
    """Every `Ui`-annotated field of a model, descending into nested models (`authentication.token`)."""
    for name, info in model.model_fields.items():
        binding_name = prefix + modelled_name(model, name)
        ui = ui_of(model, name)
        if ui is not None:
            yield binding_name, info, ui
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _annotated_fields(info.annotation, binding_name + ".")
        else:
            raise ValueError(f"{model.__name__}.{name} has no Ui annotation: add one so the element template shows it")


def _contract_fields() -> list[_Field]:
    fields = [_Field(name, info, ui, header=False) for name, info, ui in _annotated_fields(JobVariables)]
    for name, info in TaskHeaders.model_fields.items():
        ui = ui_of(TaskHeaders, name)
        if ui is not None:
            fields.append(_Field(modelled_name(TaskHeaders, name), info, ui, header=True))
        elif name not in _TEMPLATE_HEADERS:
            raise ValueError(f"TaskHeaders.{name} has no Ui annotation: add one so the element template shows it")
    return fields


def _enum_of(annotation: Any) -> type[Enum] | None:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _enum_of(arg)
            if found is not None:
                return found
    return None


def _default_of(info: FieldInfo) -> Any:
    if info.default is PydanticUndefined or info.default_factory is not None:
        return None
    return info.default


def _as_text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choice_name(member: Enum) -> str:
    return CHOICE_NAMES.get(member, str(member.value).replace("-", " ").capitalize())


def _condition(operations: Sequence[Operation]) -> dict[str, Any]:
    if len(operations) == 1:
        return {"property": _OPERATION_PROPERTY_ID, "equals": operations[0].value}
    return {"property": _OPERATION_PROPERTY_ID, "oneOf": [operation.value for operation in operations]}


def _tooltip(ui: Ui) -> str | None:
    parts = [ui.description] if ui.description else []
    if ui.secret and "{{secrets." not in ui.description:
        parts.append(SECRET_HINT)
    return " ".join(parts) or None


def _pattern_value(pattern: str, optional: bool) -> str:
    """Modeler tests `constraints.pattern` on an unset optional field too, and shows the message in red.
    The value it tests is then `undefined`, which JavaScript's `RegExp.test` reads as the text "undefined":
    an optional field's pattern also accepts that and the empty string. The worker validates every value
    again, so a modeller who types "undefined" still gets a clear error from the job."""
    return f"^(undefined)?$|{pattern}" if optional else pattern


def _property(field: _Field) -> dict[str, Any]:
    ui = field.ui
    not_empty = field.info.is_required() or field.binding_name in NOT_EMPTY
    optional = not not_empty and ui.kind not in ("Dropdown", "Hidden")
    default = ui.template_value if ui.template_value is not None else _default_of(field.info)

    prop: dict[str, Any] = {"id": field.property_id, "label": ui.label, "group": ui.group.value}
    tooltip = _tooltip(ui)
    if tooltip:
        prop["tooltip"] = tooltip
    prop["type"] = ui.kind
    if ui.kind == "Dropdown":
        enum = _enum_of(field.info.annotation)
        if enum is None:
            raise ValueError(f"{field.binding_name}: a Dropdown needs an Enum annotation")
        prop["choices"] = [{"name": _choice_name(member), "value": str(member.value)} for member in enum]
    if ui.feel is not None and ui.kind in ("String", "Text", "Number", "Boolean"):
        prop["feel"] = ui.feel
    elif ui.kind in ("Number", "Boolean") and not field.header:
        prop["feel"] = "static"  # written as a FEEL literal (=42, =true), so the variable keeps its type
    if default is not None:
        if ui.kind == "Boolean":
            prop["value"] = bool(default)
        elif ui.kind == "Number" and isinstance(default, int | float):
            prop["value"] = default
        else:
            prop["value"] = _as_text(default)
    if ui.example is not None and ui.kind in ("String", "Text"):
        prop["placeholder"] = ui.example
    if optional:
        prop["optional"] = True
    constraints: dict[str, Any] = {}
    if not_empty:
        constraints["notEmpty"] = True
    elif ui.pattern is not None:
        constraints["notEmpty"] = False  # the schema wants this spelled out for optional properties
    if ui.pattern is not None:
        constraints["pattern"] = {"value": _pattern_value(ui.pattern[0], optional), "message": ui.pattern[1]}
    if constraints:
        prop["constraints"] = constraints
    if ui.operations:
        prop["condition"] = _condition(ui.operations)
    if field.header:
        prop["binding"] = {"type": "zeebe:taskHeader", "key": field.binding_name}
    else:
        prop["binding"] = {"type": "zeebe:input", "name": field.binding_name}
    return prop


def _retries_property() -> dict[str, Any]:
    return {
        "id": "retries",
        "label": "Retries",
        "group": Group.RETRIES.value,
        "tooltip": "How many times the job is attempted before an incident is raised. Input and "
        "configuration errors raise an incident at once.",
        "type": "String",
        "feel": "optional",
        "value": str(DEFAULT_RETRIES),
        "constraints": {
            "notEmpty": True,
            "pattern": {"value": RETRIES_PATTERN, "message": "Must be a whole number or a FEEL expression."},
        },
        "binding": {"type": "zeebe:taskDefinition", "property": "retries"},
    }


def _properties() -> list[dict[str, Any]]:
    fields = _contract_fields()
    properties: list[dict[str, Any]] = [
        {
            "id": "taskType",
            "type": "Hidden",
            "value": TASK_TYPE,
            "binding": {"type": "zeebe:taskDefinition", "property": "type"},
        }
    ]
    for group in Group:
        if group is Group.RETRIES:
            properties.append(_retries_property())
        for field in fields:
            if field.ui.group is group:
                prop = _property(field)
                if group is Group.RETRIES and field.binding_name == "retryBackoff":
                    prop["value"] = DEFAULT_RETRY_BACKOFF
                properties.append(prop)
    properties += [
        {
            "id": "elementTemplateId",
            "type": "Hidden",
            "value": TEMPLATE_ID,
            "binding": {"type": "zeebe:taskHeader", "key": "elementTemplateId"},
        },
        {
            "id": "elementTemplateVersion",
            "type": "Hidden",
            "value": str(TEMPLATE_VERSION),
            "binding": {"type": "zeebe:taskHeader", "key": "elementTemplateVersion"},
        },
    ]
    ids = [prop["id"] for prop in properties]
    duplicates = sorted({name for name in ids if ids.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate property ids in the element template: {duplicates}")
    return properties


def build_template() -> dict[str, Any]:
    """The element template as a JSON-ready dict (key order is the order written to disk)."""
    properties = _properties()
    used = {prop["group"] for prop in properties if "group" in prop}
    groups = [{"id": group.value, "label": GROUP_LABELS[group]} for group in Group if group.value in used]
    return {
        "$schema": SCHEMA_URL,
        "name": TEMPLATE_NAME,
        "id": TEMPLATE_ID,
        "version": TEMPLATE_VERSION,
        "description": DESCRIPTION,
        "documentationRef": DOCUMENTATION_URL,
        "keywords": list(KEYWORDS),
        "category": {"id": "connectors", "name": "Connectors"},
        "appliesTo": ["bpmn:Task"],
        "elementType": {"value": "bpmn:ServiceTask"},
        "engines": {"camunda": "^8.5"},
        "groups": groups,
        "properties": properties,
        "icon": {"contents": ICON},
    }


def render_template(template: dict[str, Any] | None = None) -> str:
    """The exact text of the template file: 2-space indent, UTF-8, trailing newline."""
    return json.dumps(template if template is not None else build_template(), indent=2, ensure_ascii=False) + "\n"


def template_path(directory: Path | str = DEFAULT_DIRECTORY) -> Path:
    return Path(directory) / TEMPLATE_FILENAME


def versioned_path(directory: Path | str, version: int) -> Path:
    stem = TEMPLATE_FILENAME.removesuffix(".json")
    return Path(directory) / VERSIONED_DIRNAME / f"{stem}-{version}.json"


def write_template(directory: Path | str = DEFAULT_DIRECTORY) -> Path:
    """Write the template into `directory`; archive the previous version when TEMPLATE_VERSION moved on."""
    target = template_path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        try:
            previous = json.loads(target.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = None
        old_version = previous.get("version") if isinstance(previous, dict) else None
        if isinstance(old_version, int) and old_version > TEMPLATE_VERSION:
            raise ValueError(f"{target} has version {old_version}, newer than TEMPLATE_VERSION {TEMPLATE_VERSION}")
        if isinstance(old_version, int) and old_version < TEMPLATE_VERSION:
            archive = versioned_path(directory, old_version)
            if not archive.exists():
                archive.parent.mkdir(parents=True, exist_ok=True)
                archive.write_text(target.read_text(encoding="utf-8"), encoding="utf-8")
    target.write_text(render_template(), encoding="utf-8")
    return target


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    """A Markdown table of every field a modeller sees, grouped as in Modeler."""
    template = build_template()
    labels = {group["id"]: group["label"] for group in template["groups"]}
    lines = [
        "| Group | Field | Binding | FEEL | Default | Shown for | Description |",
        "|---|---|---|---|---|---|---|",
    ]
    for prop in template["properties"]:
        if prop["type"] == "Hidden":
            continue
        binding = prop["binding"]
        where = {
            "zeebe:input": f"input `{binding.get('name')}`",
            "zeebe:taskHeader": f"header `{binding.get('key')}`",
            "zeebe:taskDefinition": f"task definition `{binding.get('property')}`",
        }[binding["type"]]
        condition = prop.get("condition")
        shown = "all operations"
        if condition:
            shown = ", ".join(condition.get("oneOf", [condition.get("equals")]))
        feel = prop.get("feel", "no")
        default = prop.get("value")
        if prop["type"] == "Dropdown":
            default = " / ".join(f"`{choice['value']}`" for choice in prop["choices"]) + (
                f" (default `{default}`)" if default else ""
            )
        elif default is not None:
            default = f"`{default}`"
        required = " (required)" if prop.get("constraints", {}).get("notEmpty") else ""
        lines.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    labels[prop["group"]],
                    prop["label"] + required,
                    where,
                    str(feel),
                    str(default or ""),
                    shown,
                    prop.get("tooltip", ""),
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-connector template", description="Generate the Hugging Face connector element template."
    )
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIRECTORY,
        help=f"where to write {TEMPLATE_FILENAME} (default: {DEFAULT_DIRECTORY})",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file differs from the generated one")
    mode.add_argument("--markdown", action="store_true", help="print the field reference as a Markdown table")
    mode.add_argument("--stdout", action="store_true", help="print the template instead of writing it")
    args = parser.parse_args(argv)

    if args.markdown:
        sys.stdout.write(render_markdown())
        return 0
    if args.stdout:
        sys.stdout.write(render_template())
        return 0
    if args.check:
        target = template_path(args.directory)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != render_template():
            print(f"{target} is out of date: run `hf-connector template` to regenerate it", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    print(write_template(args.directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
