"""`python3 -m bench.report results.json`: the results of a run as Markdown tables (for BENCHMARKS.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Command: `{report.get('command', 'python3 -m bench')}`",
        "",
        f"PostgreSQL: {report['postgresql']}",
        "",
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in report["machine"].items() if k != "packages")
        + "; packages: "
        + ", ".join(f"{k} {v}" for k, v in report["machine"]["packages"].items()),
        "",
        *(
            [
                f"Server: {report['server']['http']}, {report['server']['workers']} workers; "
                f"client: {report.get('client', 'httpx')}",
                "",
            ]
            if "server" in report
            else []
        ),
        f"Load before: `{report['uptime_before']}`  ",
        f"Load after: `{report['uptime_after']}`",
        "",
        f"### Stageflow over HTTP, {report['n']:,} elements",
        "",
        "| scenario | count | errors | throughput /s | p50 ms | p95 ms | p99 ms "
        "| client CPU ms/op | server CPU ms/op | PG CPU ms/op |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["scenarios"] + report["floor"]:
        if (row.get("note") or "").startswith("skipped"):
            lines.append(f"| {row['name']} | — | — | — | — | — | — ({row['note']}) | — | — | — |")
            continue
        lines.append(
            f"| {row['name']} | {row['count']} | {row['errors']} | {row['throughput_per_s']:.1f} | "
            f"{row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{_ms(row.get('client_cpu_ms_per_op'))} | {_ms(row.get('server_cpu_ms_per_op'))} | "
            f"{_ms(row.get('pg_cpu_ms_per_op'))} |"
        )
    lines += [
        "",
        "p50 over the plain-table floor: " + ", ".join(f"{k} **{v}×**" for k, v in report["floor_ratio_p50"].items()),
    ]
    if report.get("floor_ratio_pg_cpu"):
        ratios = report["floor_ratio_pg_cpu"].items()
        lines[-1] += "; PostgreSQL CPU over the floor's: " + ", ".join(f"{k} **{v}×**" for k, v in ratios)
    if report.get("cpu_note"):
        lines += ["", report["cpu_note"]]
    if report.get("growth"):
        lines += [
            "",
            "| elements | filtered list p50 ms | board p50 ms | filtered list server CPU ms/op | PG CPU ms/op |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {g['n']:,} | {g['filtered_p50_ms']:.2f} | {g['board_p50_ms']:.2f} | "
            f"{_ms(g.get('filtered_server_cpu_ms_per_op'))} | {_ms(g.get('filtered_pg_cpu_ms_per_op'))} |"
            for g in report["growth"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    print(markdown(json.loads(Path(sys.argv[1]).read_text())), end="")


if __name__ == "__main__":
    main()
