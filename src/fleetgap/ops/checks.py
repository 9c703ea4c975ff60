"""One doctor check's outcome, and running many checks side by side in a bounded pool."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

OK = "ok"
FAIL = "fail"
SKIP = "skip"  # not measured: the URL it needs was not given


@dataclass(frozen=True)
class CheckResult:
    id: str  # "package fleet_server", "artifact elastic-agent linux-x86_64", …
    group: str  # registry | packages | artifacts | key | fleet-server | tls
    status: str  # ok | fail | skip
    detail: str
    fix: str | None = None  # the fleetgap command or the setting that mends a failure

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


Check = Callable[[], CheckResult]


def run_checks(checks: Sequence[tuple[str, str, Check]], workers: int = 8) -> list[CheckResult]:
    """Run `(id, group, check)` triples concurrently; results in the given order. A check
    that raises becomes a failure carrying the message (never a traceback)."""

    def one(entry: tuple[str, str, Check]) -> CheckResult:
        check_id, group, check = entry
        try:
            return check()
        except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
            text = str(exc).strip().splitlines()
            return CheckResult(check_id, group, FAIL, text[0] if text else type(exc).__name__)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, checks))
