"""The status page's verdicts: each file state judged once, slow judgements finish in the
background and show as `checking` meanwhile."""

from __future__ import annotations

import threading
import time

from fleetgap.ops.verdicts import CHECKING, Verdicts


def test_judged_once_per_token():
    calls = []
    verdicts = Verdicts()
    judge = lambda: calls.append(1) or ("complete", "ok")  # noqa: E731
    later = time.monotonic() + 10
    assert verdicts.get(("a", 1), judge, later) == ("complete", "ok")
    assert verdicts.get(("a", 1), judge, later) == ("complete", "ok")
    assert verdicts.get(("a", 2), judge, later) == ("complete", "ok")  # the file changed
    assert len(calls) == 2


def test_a_slow_judgement_shows_checking_then_its_result():
    release = threading.Event()

    def slow():
        release.wait(10)
        return "unverified", "bad signature"

    verdicts = Verdicts()
    state, detail = verdicts.get("big", slow, time.monotonic())  # the deadline has passed
    assert state == CHECKING and "reload" in detail
    release.set()
    assert verdicts.get("big", slow, time.monotonic() + 10) == ("unverified", "bad signature")
