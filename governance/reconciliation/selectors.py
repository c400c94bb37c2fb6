"""Reads for the reconciliation pages: drift over time, run progress."""

from __future__ import annotations

from dataclasses import dataclass, field

from governance.reconciliation.engine import DRIFT_KINDS
from governance.reconciliation.models import DriftSnapshot, Finding, ReconciliationRun

KIND_LABELS = dict(Finding.Kind.choices)
CHART_RUNS = 12


@dataclass
class DriftColumn:
    run_id: int
    taken_at: object
    total: int
    segments: list[tuple[str, str, int, float]] = field(default_factory=list)  # kind, label, n, %


@dataclass
class DriftChart:
    columns: list[DriftColumn]
    kinds: list[tuple[str, str]]
    peak: int

    @property
    def empty(self) -> bool:
        return not self.columns


def drift_chart(application_id: int, *, runs: int = CHART_RUNS) -> DriftChart:
    """Unaccepted findings per kind after each of the application's last ``runs`` completed
    runs (two queries)."""
    run_ids = list(
        ReconciliationRun.objects.filter(
            application_id=application_id, status=ReconciliationRun.Status.COMPLETED
        )
        .order_by("-finished_at", "-pk")
        .values_list("pk", flat=True)[:runs]
    )
    rows = DriftSnapshot.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "taken_at", "kind", "open_count"
    )
    by_run: dict[int, dict] = {}
    for run_id, taken_at, kind, count in rows:
        entry = by_run.setdefault(run_id, {"taken_at": taken_at, "counts": {}})
        entry["counts"][kind] = count
    peak = max((sum(e["counts"].values()) for e in by_run.values()), default=0)
    columns = []
    for run_id in sorted(by_run, key=lambda r: (by_run[r]["taken_at"], r)):
        entry = by_run[run_id]
        total = sum(entry["counts"].values())
        column = DriftColumn(run_id=run_id, taken_at=entry["taken_at"], total=total)
        for kind in DRIFT_KINDS:
            n = entry["counts"].get(kind, 0)
            if n:
                column.segments.append((kind, KIND_LABELS[kind], n, 100.0 * n / (peak or 1)))
        columns.append(column)
    return DriftChart(columns=columns, kinds=[(k, KIND_LABELS[k]) for k in DRIFT_KINDS], peak=peak)


def progress_percent(run: ReconciliationRun) -> int | None:
    if not run.rows_total:
        return None
    return min(100, int(100 * run.rows_processed / run.rows_total))
