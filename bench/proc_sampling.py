"""Figures of running processes and of the machine, read from ``/proc`` (Linux): peak and current
resident size, CPU seconds, load average, the machine's busy time.

Every reader returns None where the figure is unavailable (the process is gone, another OS), so a
benchmark reports "n/a" instead of failing.
"""

from __future__ import annotations

import os
import resource

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def vm_hwm_mib(pid: int) -> float | None:
    """Peak resident set size of ``pid`` (``VmHWM``), in MiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak(pid: int) -> bool:
    """Restart the peak RSS of ``pid`` from its current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def own_peak_mib() -> float:
    """Peak RSS of this process, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent not idle since boot (``/proc/stat``), None where unavailable."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (``/proc/<pid>/task/<pid>/children``, Linux >= 3.5); [] where
    unavailable."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(word) for word in children.read().split()]
    except OSError:
        return []
