"""The project's development engine: a small workflow engine that speaks Zeebe's gateway gRPC protocol for
the part of BPMN this project's processes use (see docs/engine.md)."""
