"""The HTTP path benchmark's tables: per round the floor and the load; the figures (median and range
over the rounds) with their ratios to in-engine; the targets met or not; where W1's hop goes."""

from __future__ import annotations

from typing import Any, TextIO

from bench.http_targets import STYLES, WORKLOAD_FIGURES, Spread, floor_multiples, headline, ratios
from bench.workload_targets import lookup


def _figure(spread: Spread | None, decimals: int) -> str:
    if spread is None:
        return "n/a"
    if spread.count == 1:
        return f"{spread.median:,.{decimals}f}"
    return f"{spread.median:,.{decimals}f} ({spread.low:,.{decimals}f}-{spread.high:,.{decimals}f})"


def _decimals(workload: str) -> int:
    return 2 if workload == "W1" else 0


def print_tables(
    rounds: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    styles: list[str],
    workloads: list[str],
    out: TextIO,
) -> None:
    def say(text: str = "") -> None:
        print(text, file=out)

    say()
    say(
        "rounds (floor = median of one unpipelined XADD + XREADGROUP + XACK cycle"
        " on that stack's redis-server):"
    )
    for number, figures in enumerate(rounds, 1):
        floors = ", ".join(f"{side} {ms:.3f} ms" for side, ms in figures["floor_ms"].items())
        others = ", ".join(f"{side} {cores}" for side, cores in figures["others_cores"].items())
        say(
            f"  {number}: {' then '.join(figures['order'])}; floor {floors}; "
            f"load {figures['load_start']} -> {figures['load_end']}; other work (cores) {others}"
        )
    say()
    say("figure: median (range) over the rounds; ratio: HTTP speed / in-engine speed in the same round")
    header = f"{'workload':8} {'unit':24} {'in-engine':>24}" + "".join(f" {style:>38}" for style in styles)
    say(header)
    for workload in workloads:
        unit = WORKLOAD_FIGURES[workload][0]
        decimals = _decimals(workload)
        engine = Spread.of([headline(workload, r["engine"].get(workload)) for r in rounds])
        line = f"{workload:8} {unit:24} {_figure(engine, decimals):>24}"
        for style in styles:
            figure = Spread.of([headline(workload, r["http"].get(style, {}).get(workload)) for r in rounds])
            ratio = Spread.of(ratios(rounds, style, workload))
            line += f" {_figure(figure, decimals) + ' ' + _figure(ratio, 2) + 'x':>38}"
        say(line)
    say("styles: " + "; ".join(f"{style} = {STYLES[style]}" for style in styles))
    _cpu_table(rounds, styles, workloads, say)
    if "W1" in workloads:
        say()
        say("W1 hop end to end in floor cycles (same stack's floor, same round):")
        say(f"  in-engine {_figure(Spread.of(floor_multiples(rounds, 'engine')), 2)}x")
        for style in styles:
            say(f"  {style:9} {_figure(Spread.of(floor_multiples(rounds, 'http', style)), 2)}x")
        _hop_breakdown(rounds, say)
    say()
    say("targets (judged on the median of the per-round ratios):")
    for row in verdicts:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[row["met"]]
        say(f"  {row['target']:42} {_figure(row['spread'], 2):>20}{row.get('unit', 'x')}  {verdict}")


def _hop_breakdown(rounds: list[dict[str, Any]], say: Any) -> None:
    """Where an in-engine W1 hop goes, from the node-state timestamps: parent finished -> child
    started (dispatch: result event, orchestrator, commit, task stream, worker) and started ->
    finished (the worker's attempt: handler, result write); Redis requests per node against the
    floor's 3 round trips per cycle."""
    keys = {
        "dispatch hop median, ms": "hop_dispatch_ms.median",
        "complete hop median, ms": "hop_complete_ms.median",
        "Redis requests read per node": "redis_reads_per_node",
        "Redis commands per node": "redis_commands_per_node",
        "engine CPU per node, ms": "engine_cpu_ms_per_node",
        "Redis CPU per node, ms": "redis_cpu_ms_per_node",
    }
    say("  in-engine W1, from the node states and Redis's counters:")
    for label, key in keys.items():
        values = [lookup(r["engine"].get("W1") or {}, key) for r in rounds]
        say(f"    {label:32} {_figure(Spread.of(values), 3)}")
    per_trip = Spread.of([r["floor_ms"].get("engine", 0) / 3 or None for r in rounds])
    say(f"    {'floor per round trip, ms':32} {_figure(per_trip, 3)}")


def _cpu_table(rounds: list[dict[str, Any]], styles: list[str], workloads: list[str], say: Any) -> None:
    """CPU seconds per process over each workload, median over the rounds: which process the time
    went to (web-child is web's orchestrator; bench/client is this process; others = the machine's
    busy time no process of the stack used)."""
    say()
    say("CPU seconds per process during each workload (median over the rounds):")
    for workload in workloads:
        sides = [("in-engine", [r["engine"].get(workload) for r in rounds])]
        sides += [(style, [r["http"].get(style, {}).get(workload) for r in rounds]) for style in styles]
        for label, rows in sides:
            present = [row["cpu_seconds"] for row in rows if row and "cpu_seconds" in row]
            if not present:
                continue
            roles = list(dict.fromkeys(role for cpu in present for role in cpu))
            parts = []
            for role in roles:
                spread = Spread.of([cpu.get(role) for cpu in present])
                if spread is not None:
                    parts.append(f"{role} {spread.median:.2f}")
            say(f"  {workload} {label:9} " + ", ".join(parts))
