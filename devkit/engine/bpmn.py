"""Reading a BPMN file into the small model the engine executes, and refusing whatever it cannot execute.

The engine runs none start and end events, service tasks, exclusive gateways, error boundary events and
error end events. Anything else is refused at deployment with the element's id and type, so a modeller
learns at once that this engine is the wrong place for that process rather than seeing it hang later.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
_B = "{" + BPMN_NS + "}"
_Z = "{" + ZEEBE_NS + "}"

# Zeebe's bpmnElementType names, as the records carry them.
START_EVENT = "START_EVENT"
END_EVENT = "END_EVENT"
SERVICE_TASK = "SERVICE_TASK"
EXCLUSIVE_GATEWAY = "EXCLUSIVE_GATEWAY"
BOUNDARY_EVENT = "BOUNDARY_EVENT"
PROCESS = "PROCESS"

_ELEMENT_TYPES = {
    "startEvent": START_EVENT,
    "endEvent": END_EVENT,
    "serviceTask": SERVICE_TASK,
    "exclusiveGateway": EXCLUSIVE_GATEWAY,
    "boundaryEvent": BOUNDARY_EVENT,
}
# Children of a process that carry no behaviour.
_IGNORED_IN_PROCESS = {"documentation", "extensionElements", "laneSet", "textAnnotation", "association", "group"}
_IGNORED_IN_DEFINITIONS = {"documentation", "extensionElements", "error"}
_IGNORED_IN_ELEMENT = {"documentation", "extensionElements", "incoming", "outgoing"}


class DeploymentError(Exception):
    """The resource cannot be deployed; the message names the element and what is wrong with it."""


class EvaluationError(Exception):
    """An expression failed at run time; the message is FEEL's, for the incident."""


class Expression:
    """A parsed FEEL expression (or static string) with the source it came from, for messages."""

    def __init__(self, source: str, where: str) -> None:
        # Imported on first use: building the FEEL grammar is most of the engine's start-up time, and an
        # engine without deployed processes does not need it before it is ready.
        from devkit.engine.feel import FeelError, parse_expression

        self.source = source
        try:
            self._parsed = parse_expression(source)
        except FeelError as error:
            raise DeploymentError(f"{where}: the expression '{source}' is invalid: {error}") from error

    def evaluate(self, variables: dict[str, Any]) -> Any:
        from devkit.engine.feel import FeelError

        try:
            return self._parsed.evaluate(variables)
        except FeelError as error:
            raise EvaluationError(str(error)) from error


@dataclass(frozen=True)
class Mapping:
    source: Expression
    target: str


@dataclass
class Flow:
    id: str
    source: str
    target: str
    condition: Expression | None = None


@dataclass
class Element:
    id: str
    element_type: str
    outgoing: list[Flow] = field(default_factory=list)
    inputs: list[Mapping] = field(default_factory=list)
    outputs: list[Mapping] = field(default_factory=list)
    # service task
    job_type: Expression | None = None
    retries: Expression | None = None
    headers: dict[str, str] = field(default_factory=dict)
    boundaries: list[Element] = field(default_factory=list)
    # exclusive gateway
    default_flow: str | None = None
    # error end and boundary events: None on a boundary event catches every error
    error_code: str | None = None
    is_error_event: bool = False
    attached_to: str | None = None

    def catches(self, code: str) -> bool:
        return self.error_code is None or self.error_code == code


@dataclass
class ProcessModel:
    process_id: str
    elements: dict[str, Element]
    start: Element

    def boundary_for(self, task: Element, code: str) -> Element | None:
        """The task's error boundary event for this code: a matching code first, then a catch-all."""
        exact = [b for b in task.boundaries if b.error_code == code]
        if exact:
            return exact[0]
        catch_all = [b for b in task.boundaries if b.error_code is None]
        return catch_all[0] if catch_all else None


def parse_bpmn(content: bytes, resource_name: str) -> list[ProcessModel]:
    try:
        root = ET.fromstring(content)
    except ET.ParseError as error:
        raise DeploymentError(f"'{resource_name}' is not well-formed XML: {error}") from error
    if root.tag != _B + "definitions":
        raise DeploymentError(f"'{resource_name}' is not a BPMN file: its root element is {_local(root.tag)}")
    errors = _error_codes(root)
    processes: list[ProcessModel] = []
    for child in root:
        name = _local(child.tag)
        if child.tag == _B + "process":
            processes.append(_parse_process(child, errors))
        elif child.tag.startswith(_B) and name not in _IGNORED_IN_DEFINITIONS:
            raise _unsupported(child)
    if not processes:
        raise DeploymentError(f"'{resource_name}' contains no process")
    return processes


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _unsupported(node: ET.Element) -> DeploymentError:
    element_id = node.get("id", "?")
    return DeploymentError(
        f"Element '{element_id}' of type '{_local(node.tag)}' is not supported by the development engine "
        "(it runs none start/end events, service tasks, exclusive gateways, error boundary and error end events)"
    )


def _error_codes(root: ET.Element) -> dict[str, str | None]:
    return {error.get("id", ""): error.get("errorCode") for error in root.findall(_B + "error")}


def _parse_process(node: ET.Element, errors: dict[str, str | None]) -> ProcessModel:
    process_id = node.get("id", "")
    elements: dict[str, Element] = {}
    flows: list[Flow] = []
    for child in node:
        if not child.tag.startswith(_B):
            continue
        name = _local(child.tag)
        if name in _IGNORED_IN_PROCESS:
            continue
        if name == "sequenceFlow":
            flows.append(_parse_flow(child))
        elif name in _ELEMENT_TYPES:
            element = _parse_element(child, _ELEMENT_TYPES[name], errors)
            elements[element.id] = element
        else:
            raise _unsupported(child)
    _connect(elements, flows)
    starts = [e for e in elements.values() if e.element_type == START_EVENT]
    if len(starts) != 1:
        raise DeploymentError(f"Process '{process_id}' must have exactly one none start event, found {len(starts)}")
    return ProcessModel(process_id, elements, starts[0])


def _parse_flow(node: ET.Element) -> Flow:
    flow_id = node.get("id", "")
    condition_node = node.find(_B + "conditionExpression")
    condition = None
    if condition_node is not None and (condition_node.text or "").strip():
        condition = Expression((condition_node.text or "").strip(), f"Sequence flow '{flow_id}'")
    return Flow(flow_id, node.get("sourceRef", ""), node.get("targetRef", ""), condition)


def _parse_element(node: ET.Element, element_type: str, errors: dict[str, str | None]) -> Element:
    element = Element(node.get("id", ""), element_type)
    where = f"Element '{element.id}'"
    definitions = [c for c in node if c.tag.startswith(_B) and _local(c.tag).endswith("EventDefinition")]
    for child in node:
        name = _local(child.tag)
        if child.tag.startswith(_B) and name not in _IGNORED_IN_ELEMENT and not name.endswith("EventDefinition"):
            raise _unsupported(child) if child.get("id") else DeploymentError(f"{where}: '{name}' is not supported")
    for definition in definitions:
        if _local(definition.tag) != "errorEventDefinition" or element_type not in (END_EVENT, BOUNDARY_EVENT):
            raise DeploymentError(
                f"Element '{element.id}' of type '{_local(node.tag)}' with a {_local(definition.tag)} is not "
                "supported by the development engine (only error end and error boundary events are)"
            )
        element.is_error_event = True
        error_ref = definition.get("errorRef")
        if error_ref is not None:
            if error_ref not in errors:
                raise DeploymentError(f"{where}: the error '{error_ref}' it refers to is not defined")
            element.error_code = errors[error_ref]
    if element_type == END_EVENT and element.is_error_event and not element.error_code:
        raise DeploymentError(f"{where}: an error end event needs an error with an errorCode")
    if element_type == BOUNDARY_EVENT:
        if not element.is_error_event:
            raise DeploymentError(
                f"Element '{element.id}' of type 'boundaryEvent' without an errorEventDefinition is not supported "
                "by the development engine (only error boundary events are)"
            )
        if node.get("cancelActivity", "true") == "false":
            raise DeploymentError(f"{where}: an error boundary event is always interrupting")
        element.attached_to = node.get("attachedToRef")
    if element_type == EXCLUSIVE_GATEWAY:
        element.default_flow = node.get("default")
    _parse_extensions(node, element, where)
    return element


def _parse_extensions(node: ET.Element, element: Element, where: str) -> None:
    extensions = node.find(_B + "extensionElements")
    if extensions is None:
        extensions = ET.Element("none")
    definition = extensions.find(_Z + "taskDefinition")
    if element.element_type == SERVICE_TASK:
        if definition is None or not definition.get("type"):
            raise DeploymentError(f"{where}: a service task needs a zeebe:taskDefinition with a type")
        element.job_type = Expression(definition.get("type", ""), f"{where} (job type)")
        element.retries = Expression(definition.get("retries", "3"), f"{where} (retries)")
        headers = extensions.find(_Z + "taskHeaders")
        if headers is not None:
            element.headers = {h.get("key", ""): h.get("value", "") for h in headers.findall(_Z + "header")}
    io_mapping = extensions.find(_Z + "ioMapping")
    if io_mapping is not None:
        element.inputs = _mappings(io_mapping, "input", where)
        element.outputs = _mappings(io_mapping, "output", where)
        if element.inputs and element.element_type != SERVICE_TASK:
            raise DeploymentError(f"{where}: input mappings are only supported on service tasks")


def _mappings(io_mapping: ET.Element, kind: str, where: str) -> list[Mapping]:
    mappings = []
    for node in io_mapping.findall(_Z + kind):
        target = node.get("target", "")
        if not target:
            raise DeploymentError(f"{where}: an {kind} mapping needs a target")
        source = node.get("source", "")
        mappings.append(Mapping(Expression(source or "=null", f"{where} ({kind} '{target}')"), target))
    return mappings


def _connect(elements: dict[str, Element], flows: list[Flow]) -> None:
    for flow in flows:
        for ref in (flow.source, flow.target):
            if ref not in elements:
                raise DeploymentError(f"Sequence flow '{flow.id}' refers to the unknown element '{ref}'")
        source = elements[flow.source]
        if flow.condition is not None and source.element_type != EXCLUSIVE_GATEWAY:
            raise DeploymentError(
                f"Sequence flow '{flow.id}': conditions are only supported on flows leaving an exclusive gateway"
            )
        source.outgoing.append(flow)
    for element in elements.values():
        if element.element_type == BOUNDARY_EVENT:
            task = elements.get(element.attached_to or "")
            if task is None or task.element_type != SERVICE_TASK:
                raise DeploymentError(f"Element '{element.id}': a boundary event must be attached to a service task")
            task.boundaries.append(element)
        if element.default_flow is not None and element.default_flow not in {f.id for f in element.outgoing}:
            raise DeploymentError(f"Element '{element.id}': the default flow '{element.default_flow}' is not outgoing")
