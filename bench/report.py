"""The table on stdout and the JSON file under bench/results/."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RSS_TARGET_MB = 150.0

_LABELS = {
    "ours-info": "ours (log INFO)",
    "ours-warning": "ours (log WARNING)",
    "ours-debug": "ours (log DEBUG)",
    "ours-error": "ours (log ERROR)",
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


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets, each with the numbers it was judged on; ``None`` when it cannot be judged."""
    subjects = report["subjects"]
    ours = subjects.get("ours-info") or next((v for k, v in subjects.items() if k.startswith("ours")), None)
    bare, camunda = subjects.get("bare"), subjects.get("camunda")
    bound = report.get("bound_jobs_per_s")
    ours_tp, bare_tp, camunda_tp = _mean(ours, "throughput"), _mean(bare, "throughput"), _mean(camunda, "throughput")
    out: dict[str, dict[str, Any]] = {}
    floor = min(x for x in (bare_tp, bound) if x) if (bare_tp or bound) else None
    out["throughput >= 0.9 x min(bare, bound)"] = {
        "value": ours_tp,
        "threshold": round(0.9 * floor, 1) if floor else None,
        "met": (ours_tp >= 0.9 * floor) if (ours_tp and floor) else None,
    }
    out["throughput >= Camunda runtime"] = {
        "value": ours_tp,
        "threshold": camunda_tp,
        "met": (ours_tp >= camunda_tp) if (ours_tp and camunda_tp) else None,
    }
    ours_cpu, bare_cpu = _mean(ours, "cpu_s_per_1000"), _mean(bare, "cpu_s_per_1000")
    out["CPU per job <= 1.5 x bare"] = {
        "value": ours_cpu,
        "threshold": round(1.5 * bare_cpu, 3) if bare_cpu else None,
        "met": (ours_cpu <= 1.5 * bare_cpu) if (ours_cpu and bare_cpu) else None,
    }
    rss = ours.get("peak_rss_mb") if ours else None
    out["peak RSS <= 150 MB"] = {"value": rss, "threshold": RSS_TARGET_MB, "met": rss <= RSS_TARGET_MB if rss else None}
    errors = sum(v["summary"]["errors"] for k, v in subjects.items() if k.startswith("ours") and "summary" in v)
    errors += sum(v["summary"]["errors"] for v in report.get("scale_out", {}).values() if "summary" in v)
    out["zero errors"] = {"value": errors, "threshold": 0, "met": errors == 0}
    return out


def render(report: dict[str, Any]) -> str:
    config, machine = report["config"], report["machine"]
    lines = [
        "",
        f"Hugging Face connector benchmark — {config['n']} instances x {config['repeat']} rounds per subject, "
        f"stand-in latency {config['latency'] * 1000:.0f} ms, max jobs {config['max_jobs']}, "
        f"our worker {'streaming' if config['stream_enabled'] else 'polling'}, the bare worker streaming",
        f"machine: {machine['cores']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB; "
        f"Engine: {report['versions']['engine']}, Python {report['versions']['python']}, "
        f"pyzeebe {report['versions']['pyzeebe']}; values are mean ±sd over the rounds",
    ]
    warmup = report.get("broker", {}).get("warmup")
    if warmup:
        lines.append(
            f"broker warmed up with {warmup['instances']} instances first "
            f"(jobs/s by chunk of {config['broker_warmup_chunk']}: {warmup['jobs_per_s_by_chunk']})"
        )
    lines.append("")
    header = (
        f"{'subject':<22}{'jobs/s':>16}{'p50 ms':>16}{'p99 ms':>16}{'CPU s/1000 jobs':>18}"
        f"{'peak RSS MB':>13}{'errors':>8}{'machine busy':>14}"
    )
    lines += [header, "-" * len(header)]
    for name, entry in report["subjects"].items():
        if "summary" not in entry:
            continue
        s = entry["summary"]
        lines.append(
            f"{_LABELS.get(name, name):<22}{_fmt(s['throughput']):>16}{_fmt(s['p50_ms']):>16}{_fmt(s['p99_ms']):>16}"
            f"{_fmt(s['cpu_s_per_1000'], 3):>18}{entry['peak_rss_mb']:>13.1f}{s['errors']:>8}"
            f"{s['machine_busy']['mean'] * 100:>13.0f}%"
        )
    bound = report.get("bound_jobs_per_s")
    if bound:
        lines.append(f"{'bound (max jobs/latency)':<22}{bound:>16.1f}")
    if "camunda_unavailable" in report:
        lines.append(f"{'Camunda runtime 8.6':<22}  unavailable: {report['camunda_unavailable'].splitlines()[0][:150]}")

    subjects = report["subjects"]
    cores = machine.get("cores") or 1
    lines += ["", "CPU seconds per 1000 instances, end to end (mean over the rounds):"]
    lines.append(
        f"{'subject':<22}{'worker':>9}{'broker':>9}{'load gen':>10}{'stand-in':>10}{'total':>9}"
        f"   {cores} cores at 100% allow about"
    )
    for name, entry in subjects.items():
        if "summary" not in entry:
            continue
        worker = entry["summary"]["cpu_s_per_1000"]["mean"] or 0.0
        other = entry["summary"].get("other_cpu_s_per_1000", {})
        parts = [other.get("broker"), other.get("load generator"), other.get("stand-in")]
        total = worker + sum(p or 0.0 for p in parts)
        cells = "".join(f"{p:>10.3f}" if p is not None else f"{'-':>10}" for p in parts[1:])
        broker_cell = f"{parts[0]:>9.3f}" if parts[0] is not None else f"{'-':>9}"
        allow = f"{cores * 1000 / total:.0f} jobs/s" if total else "-"
        lines.append(f"{_LABELS.get(name, name):<22}{worker:>9.3f}{broker_cell}{cells}{total:>9.3f}   {allow}")

    probes = {name: entry["unloaded"] for name, entry in subjects.items() if entry.get("unloaded")}
    if probes:
        some = next(iter(probes.values()))
        lines += [
            "",
            f"latency when not saturated ({some['concurrency']} instances in flight, {some['instances']} instances; "
            f"the stand-in's own {config['latency'] * 1000:.0f} ms included):",
        ]
        lines.append(f"{'subject':<22}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
        for name, probe in probes.items():
            label = _LABELS.get(name, name)
            lines.append(f"{label:<22}{probe['p50_ms']:>10.1f}{probe['p99_ms']:>10.1f}{probe['mean_ms']:>10.1f}")

    bare, camunda = subjects.get("bare"), subjects.get("camunda")
    lines += ["", "ratios ours / baseline:"]
    lines.append(
        f"{'':<22}{'/ bare':>10}{'/ bound':>10}{'/ Camunda':>11}{'CPU/job / bare':>16}{'CPU/job / Camunda':>19}"
    )
    for name, entry in subjects.items():
        if not name.startswith("ours") or "summary" not in entry:
            continue
        tp, cpu = _mean(entry, "throughput"), _mean(entry, "cpu_s_per_1000")
        lines.append(
            f"{_LABELS.get(name, name):<22}{_ratio(tp, _mean(bare, 'throughput')):>10}{_ratio(tp, bound):>10}"
            f"{_ratio(tp, _mean(camunda, 'throughput')):>11}{_ratio(cpu, _mean(bare, 'cpu_s_per_1000')):>16}"
            f"{_ratio(cpu, _mean(camunda, 'cpu_s_per_1000')):>19}"
        )

    scale = report.get("scale_out") or {}
    if scale:
        lines += ["", "scale-out (our worker, log INFO, one broker):"]
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

    lines += ["", "targets (ours = log INFO):"]
    for name, judged in report.get("targets", {}).items():
        verdict = {True: "met", False: "NOT met", None: "not judged"}[judged["met"]]
        lines.append(f"  {name:<40} {verdict:<11} value {judged['value']}  threshold {judged['threshold']}")
    lines.append(f"\nstand-in: {report.get('standin')}; took {report.get('duration_s')} s")
    return "\n".join(lines)


def save(report: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return path
