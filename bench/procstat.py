"""CPU time and peak memory of processes, read from /proc (Linux); no extra dependency.

``cpu_seconds`` is user + system time of the whole process (every thread), ``peak_rss_bytes`` the
kernel's high-water mark of the resident set (``VmHWM``) since the process started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after its closing ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


def is_running(pid: int) -> bool:
    """Whether the process exists and has not exited (a child not yet reaped is a zombie, ``Z``)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size of a live process (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class MachineCpu:
    """Jiffies of the whole machine from /proc/stat: busy and total, for a busy fraction between two reads."""

    busy: int
    total: int

    @classmethod
    def read(cls) -> MachineCpu:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(v) for v in first]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already inside user/nice
        return cls(total - idle, total)

    def busy_fraction_since(self, earlier: MachineCpu) -> float:
        total = self.total - earlier.total
        return (self.busy - earlier.busy) / total if total > 0 else 0.0


def machine_description() -> dict[str, object]:
    """Cores, CPU model, memory and load, for the record of a run."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
