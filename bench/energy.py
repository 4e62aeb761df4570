"""Energy and emissions of a piece of work, with CodeCarbon's offline tracker (no network): RAPL counters
where the CPU has them, else the CPU's TDP times its load, else CodeCarbon's constant fallback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

#: CodeCarbon's CPU modes, in plain words.
METHODS = {
    "intel_rapl": "RAPL counters",
    "cpu_load": "TDP x CPU load",
    "tdp": "TDP x CPU load",
    "constant": "constant per-thread fallback",
}


@dataclass
class Energy:
    """What one tracked run cost."""

    joules: float
    kwh: float
    kg_co2eq: float
    seconds: float
    runs: int
    method: str
    cpu: str
    country: str

    def per(self, units: float) -> float:
        """Joules per unit of work (per token, per instance)."""
        return self.joules / units if units else float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def track(work: Callable[[], object], country: str, min_seconds: float = 5.0) -> Energy:
    """Runs `work` repeatedly, for at least `min_seconds`, under an offline tracker; the totals cover
    every run (divide by `runs` times the work's size for a per-unit figure)."""
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(
        country_iso_code=country, measure_power_secs=1, output_methods=[], log_level="error"
    )
    tracker.start()
    start, runs = time.perf_counter(), 0
    while runs == 0 or time.perf_counter() - start < min_seconds:
        work()
        runs += 1
    kg = tracker.stop() or 0.0
    data = tracker.final_emissions_data
    cpu = next((h for h in tracker._hardware if type(h).__name__ == "CPU"), None)
    mode = getattr(cpu, "_mode", "unknown")
    return Energy(
        joules=data.energy_consumed * 3.6e6,
        kwh=data.energy_consumed,
        kg_co2eq=kg,
        seconds=time.perf_counter() - start,
        runs=runs,
        method=METHODS.get(mode, mode),
        cpu=getattr(data, "cpu_model", "?"),
        country=data.country_name,
    )
