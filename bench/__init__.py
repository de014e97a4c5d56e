"""Benchmark of the Hugging Face connector on the development engine against a loopback Hugging Face stand-in.

``python -m bench`` (or ``make bench``): throughput, latency, CPU and memory of the worker at 100 ms and in an
LLM-like scenario (5 s, 1000 jobs in flight), next to a bare pyzeebe worker, the concurrency bound and
Camunda's own connector runtime, with the engine's own CPU beside them. See docs/benchmark.md.
"""
