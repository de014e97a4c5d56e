"""Building small BPMN processes around one `hugging-face` service task, as the template would write them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from xml.sax.saxutils import quoteattr

_NAMESPACES = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
    'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
    'xmlns:di="http://www.omg.org/spec/DD/20100524/DI"'
)


def unique_process_id(prefix: str = "hf-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def feel_string(text: str) -> str:
    """A FEEL string literal expression, e.g. for a model id given as an input mapping."""
    return '="' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connector_process(
    process_id: str,
    job_type: str,
    *,
    inputs: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
    retries: int = 3,
    catch_error_code: str | None = None,
) -> str:
    """A process start -> hugging-face task -> end; with `catch_error_code`, an error boundary event
    on the task leads to a second end event `caught`, so a test can see which path was taken."""
    input_xml = "".join(
        f"<zeebe:input source={quoteattr(source)} target={quoteattr(target)} />" for target, source in inputs.items()
    )
    header_xml = "".join(
        f"<zeebe:header key={quoteattr(key)} value={quoteattr(value)} />" for key, value in (headers or {}).items()
    )
    boundary = ""
    if catch_error_code is not None:
        boundary = (
            '<bpmn:boundaryEvent id="error" attachedToRef="task"><bpmn:outgoing>f3</bpmn:outgoing>'
            '<bpmn:errorEventDefinition errorRef="err" /></bpmn:boundaryEvent>'
            '<bpmn:endEvent id="caught"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>'
            '<bpmn:sequenceFlow id="f3" sourceRef="error" targetRef="caught" />'
        )
    error_def = (
        f'<bpmn:error id="err" name="err" errorCode={quoteattr(catch_error_code)} />' if catch_error_code else ""
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<bpmn:definitions {_NAMESPACES} id="defs-{process_id}" targetNamespace="http://bpmn.io/schema/bpmn">'
        f"{error_def}"
        f'<bpmn:process id="{process_id}" isExecutable="true">'
        f'<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>'
        f'<bpmn:serviceTask id="task" name="Hugging Face">'
        f"<bpmn:extensionElements>"
        f'<zeebe:taskDefinition type={quoteattr(job_type)} retries="{retries}" />'
        f"<zeebe:ioMapping>{input_xml}</zeebe:ioMapping>"
        f"<zeebe:taskHeaders>{header_xml}</zeebe:taskHeaders>"
        f"</bpmn:extensionElements>"
        f"<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:serviceTask>"
        f'<bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>'
        f'<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task" />'
        f'<bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end" />'
        f"{boundary}"
        f"</bpmn:process></bpmn:definitions>"
    )
