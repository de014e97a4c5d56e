"""Benchmark of the Hugging Face connector against a real Zeebe broker and a loopback Hugging Face stand-in.

``python -m bench`` (or ``make bench``): throughput, latency, CPU and memory of the worker, next to a bare
pyzeebe worker, the concurrency bound and Camunda's own connector runtime. See docs/benchmark.md.
"""
