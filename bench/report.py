"""The table on stdout and the JSON file under bench/results/."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RSS_TARGET_MB = 200.0
ADDED_P99_TARGET_MS = 50.0

_LABELS = {
    "ours-info": "ours (log INFO)",
    "ours-warning": "ours (log WARNING)",
    "ours-debug": "ours (log DEBUG)",
    "ours-error": "ours (log ERROR)",
    "ours": "ours",
    "bare": "bare pyzeebe worker",
    "camunda": "Camunda runtime 8.6",
}


def _fmt(stat: dict[str, float], digits: int = 1) -> str:
    return f"{stat['mean']:.{digits}f} ±{stat['sd']:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}"


def _mean(entry: dict[str, Any] | None, key: str) -> float | None:
    if not entry or "summary" not in entry:
        return None
    value = entry["summary"][key]["mean"]
    return float(value) if value else None


def _quotient(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _judge(value: float | None, threshold: float, at_least: bool) -> dict[str, Any]:
    met = None if value is None else (value >= threshold if at_least else value <= threshold)
    return {"value": value, "threshold": threshold, "met": met}


def ours_at_100ms(subjects: dict[str, Any]) -> dict[str, Any] | None:
    """Our worker at log INFO, else the first of ours."""
    return subjects.get("ours-info") or next((v for k, v in subjects.items() if k.startswith("ours")), None)


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Issue 16's targets, each with the number it was judged on (a ratio where the target is one);
    ``met`` is None when a run did not measure what it needs."""
    subjects = report["subjects"]
    ours, bare, camunda = ours_at_100ms(subjects), subjects.get("bare"), subjects.get("camunda")
    ours_tp = _mean(ours, "throughput")
    out = {
        "100 ms: jobs/s >= 0.9 x bare": _judge(_quotient(ours_tp, _mean(bare, "throughput")), 0.9, True),
        "100 ms: jobs/s >= 1.5 x Camunda": _judge(_quotient(ours_tp, _mean(camunda, "throughput")), 1.5, True),
        "100 ms: CPU/job <= 1.5 x bare": _judge(
            _quotient(_mean(ours, "cpu_s_per_1000"), _mean(bare, "cpu_s_per_1000")), 1.5, False
        ),
    }
    llm = (report.get("llm") or {}).get("subjects", {}).get("ours")
    added = (llm or {}).get("added") or {}
    out["5 s: jobs/s >= 0.9 x bound"] = _judge(
        _quotient(_mean(llm, "throughput"), report.get("llm", {}).get("bound_jobs_per_s")), 0.9, True
    )
    rss = llm.get("peak_rss_mb") if llm else None
    out[f"5 s: peak RSS <= {RSS_TARGET_MB:.0f} MB"] = _judge(rss, RSS_TARGET_MB, False)
    out[f"5 s: p99 added <= {ADDED_P99_TARGET_MS:.0f} ms"] = _judge(added.get("p99_ms"), ADDED_P99_TARGET_MS, False)
    ours_entries = [v for k, v in subjects.items() if k.startswith("ours")]
    ours_entries += list(report.get("scale_out", {}).values()) + ([llm] if llm else [])
    errors = sum(entry["summary"]["errors"] for entry in ours_entries if "summary" in entry)
    out["zero errors, every scenario"] = _judge(errors, 0, False)
    return out


def _subject_table(subjects: dict[str, Any], bound: float | None) -> list[str]:
    header = (
        f"{'subject':<22}{'jobs/s':>16}{'/ bound':>9}{'p50 ms':>16}{'p99 ms':>16}{'CPU s/1000 jobs':>18}"
        f"{'engine ms/inst':>16}{'added p50/p99 ms':>18}{'peak RSS MB':>13}{'errors':>8}{'busy':>6}"
    )
    lines = [header, "-" * len(header)]
    for name, entry in subjects.items():
        if "summary" not in entry:
            continue
        s = entry["summary"]
        engine = s.get("other_cpu_s_per_1000", {}).get("engine")
        added = entry.get("added")
        added_cell = f"{added['p50_ms']:.1f} / {added['p99_ms']:.1f}" if added else "-"
        lines.append(
            f"{_LABELS.get(name, name):<22}{_fmt(s['throughput']):>16}{_ratio(s['throughput']['mean'], bound):>9}"
            f"{_fmt(s['p50_ms']):>16}{_fmt(s['p99_ms']):>16}{_fmt(s['cpu_s_per_1000'], 3):>18}"
            f"{f'{engine:.3f}' if engine is not None else '-':>16}"
            f"{added_cell:>18}"
            f"{entry['peak_rss_mb']:>13.1f}{s['errors']:>8}{s['machine_busy']['mean'] * 100:>5.0f}%"
        )
    if bound:
        lines.append(f"{'bound (max jobs/latency)':<22}{bound:>16.1f}")
    return lines


def _added_beyond_bare(subjects: dict[str, Any]) -> list[str]:
    """Ours against the bare worker that holds its jobs as long: what of the tail is the engine's."""
    ours, bare = (subjects.get(name, {}).get("added") for name in ("ours", "bare"))
    if not ours or not bare:
        return []
    return [
        f"p99 added: ours {ours['p99_ms']:.1f} ms, bare {bare['p99_ms']:.1f} ms (the engine and gRPC at this load), "
        f"ours beyond bare {ours['p99_ms'] - bare['p99_ms']:.1f} ms"
    ]


def _unavailable(section: dict[str, Any]) -> list[str]:
    reason = section.get("camunda_unavailable")
    return [f"{'Camunda runtime 8.6':<22}  unavailable: {reason.splitlines()[0][:150]}"] if reason else []


def render(report: dict[str, Any]) -> str:
    config, machine = report["config"], report["machine"]
    load = machine.get("load_average_at_start")
    lines = [
        "",
        f"Hugging Face connector benchmark — machine: {machine['cores']} cores ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, load average at start {load}; engine: {report['versions']['engine']}, "
        f"Python {report['versions']['python']}, pyzeebe {report['versions']['pyzeebe']}",
        "values are mean ±sd over the rounds; 'engine ms/inst' is the engine's CPU per instance; 'added' is "
        "activation to completion in the engine's records, less the model's latency",
        "",
        f"100 ms: {config['n']} instances x {config['repeat']} rounds per subject, max jobs {config['max_jobs']}, "
        f"our worker {'streaming' if config['stream_enabled'] else 'polling'}, the bare worker streaming",
    ]
    lines += _subject_table(report["subjects"], report.get("bound_jobs_per_s"))
    lines += _unavailable(report)

    subjects = report["subjects"]
    cores = machine.get("cores") or 1
    lines += ["", "100 ms, CPU seconds per 1000 instances, end to end (mean over the rounds):"]
    lines.append(
        f"{'subject':<22}{'worker':>9}{'engine':>9}{'load gen':>10}{'stand-in':>10}{'total':>9}"
        f"   {cores} cores at 100% allow about"
    )
    for name, entry in subjects.items():
        if "summary" not in entry:
            continue
        worker = entry["summary"]["cpu_s_per_1000"]["mean"] or 0.0
        other = entry["summary"].get("other_cpu_s_per_1000", {})
        parts = [other.get("engine"), other.get("load generator"), other.get("stand-in")]
        total = worker + sum(p or 0.0 for p in parts)
        cells = "".join(f"{p:>10.3f}" if p is not None else f"{'-':>10}" for p in parts[1:])
        engine_cell = f"{parts[0]:>9.3f}" if parts[0] is not None else f"{'-':>9}"
        allow = f"{cores * 1000 / total:.0f} jobs/s" if total else "-"
        lines.append(f"{_LABELS.get(name, name):<22}{worker:>9.3f}{engine_cell}{cells}{total:>9.3f}   {allow}")

    probes = {name: entry["unloaded"] for name, entry in subjects.items() if entry.get("unloaded")}
    if probes:
        some = next(iter(probes.values()))
        lines += [
            "",
            f"100 ms, latency when not saturated ({some['concurrency']} instances in flight, {some['instances']} "
            f"instances; the stand-in's own {config['latency'] * 1000:.0f} ms included):",
        ]
        lines.append(f"{'subject':<22}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
        for name, probe in probes.items():
            label = _LABELS.get(name, name)
            lines.append(f"{label:<22}{probe['p50_ms']:>10.1f}{probe['p99_ms']:>10.1f}{probe['mean_ms']:>10.1f}")

    llm = report.get("llm")
    if llm:
        llm_config = config["llm"]
        lines += [
            "",
            f"LLM: stand-in latency {llm['latency']:.1f} s, {llm['max_jobs']} jobs in flight in one process, "
            f"a steady load of as many instances, {llm_config['repeat']} rounds of {llm_config['round_s']:.0f} s "
            f"per subject after {llm_config['settle_s']:.0f} s of settling",
        ]
        lines += _subject_table(llm["subjects"], llm.get("bound_jobs_per_s"))
        lines += _unavailable(llm)
        lines += _added_beyond_bare(llm["subjects"])

    scale = report.get("scale_out") or {}
    if scale:
        bound = report.get("bound_jobs_per_s")
        lines += ["", "100 ms, scale-out (our worker, one engine):"]
        lines.append(
            f"{'processes':<12}{'jobs/s':>16}{'bound':>9}{'/ bound':>9}{'vs 1 process':>14}{'p50 ms':>16}"
            f"{'p99 ms':>16}{'CPU s/1000':>16}{'RSS MB/proc':>13}{'busy':>7}{'errors':>8}"
        )
        single = _mean(scale.get("1"), "throughput")
        for count, entry in scale.items():
            if "summary" not in entry:
                continue
            s = entry["summary"]
            scaled_bound = bound * int(count) if bound else None
            lines.append(
                f"{count:<12}{_fmt(s['throughput']):>16}{scaled_bound or 0:>9.0f}"
                f"{_ratio(s['throughput']['mean'], scaled_bound):>9}{_ratio(s['throughput']['mean'], single):>14}"
                f"{_fmt(s['p50_ms']):>16}{_fmt(s['p99_ms']):>16}{_fmt(s['cpu_s_per_1000'], 3):>16}"
                f"{entry['peak_rss_mb']:>13.1f}{s['machine_busy']['mean'] * 100:>6.0f}%{s['errors']:>8}"
            )

    lines += ["", "targets (ratios measured in this run; ours at 100 ms = log INFO):"]
    for name, judged in report.get("targets", {}).items():
        verdict = {True: "met", False: "NOT met", None: "not judged"}[judged["met"]]
        lines.append(f"  {name:<36} {verdict:<11} value {judged['value']}  threshold {judged['threshold']}")
    lines.append(f"\nstand-in at 100 ms: {report.get('standin')}")
    if llm:
        lines.append(f"stand-in at {llm['latency']:.1f} s: {llm.get('standin')}")
    lines.append(f"took {report.get('duration_s')} s")
    return "\n".join(lines)


def save(report: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return path
