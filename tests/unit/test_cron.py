"""Cron schedule parsing and fire times (orchestrator.api.cron). Expected times worked out by hand
from a calendar: 2026-01-01 is a Thursday, 2028 is the next leap year."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orchestrator.api import cron
from orchestrator.errors import ValidationError


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


def nxt(expr: str, after: str) -> datetime | None:
    return cron.next_after(cron.parse(expr), t(after))


@pytest.mark.parametrize("expr,after,want", [
    ("*/15 * * * *", "2026-01-01T10:07", "2026-01-01T10:15"),
    ("*/15 * * * *", "2026-01-01T10:15", "2026-01-01T10:30"),   # strictly after
    ("*/15 * * * *", "2026-01-01T23:59", "2026-01-02T00:00"),
    ("0 0 * * 0", "2026-01-01T00:00", "2026-01-04T00:00"),     # next Sunday
    ("0 0 * * 7", "2026-01-01T00:00", "2026-01-04T00:00"),     # 7 is Sunday too
    ("0 9 * * mon-fri", "2026-01-02T09:00", "2026-01-05T09:00"),  # Fri -> Mon
    ("30 2 1 * *", "2026-01-15T00:00", "2026-02-01T02:30"),
    ("0 0 1 jan *", "2026-01-01T00:00", "2027-01-01T00:00"),
    ("0 0 29 2 *", "2026-03-01T00:00", "2028-02-29T00:00"),
    ("0 0 13 * 5", "2026-01-01T00:00", "2026-01-02T00:00"),    # day-of-month OR Friday
    ("0 0 13 * *", "2026-01-01T00:00", "2026-01-13T00:00"),
    ("5-10/5 * * * *", "2026-01-01T00:06", "2026-01-01T00:10"),
    ("7/20 * * * *", "2026-01-01T00:08", "2026-01-01T00:27"),  # 7, 27, 47
    ("0,30 8-9 * * *", "2026-01-01T08:30", "2026-01-01T09:00"),
    ("@hourly", "2026-01-01T10:07", "2026-01-01T11:00"),
    ("@daily", "2026-01-01T10:07", "2026-01-02T00:00"),
    ("@weekly", "2026-01-01T10:07", "2026-01-04T00:00"),
    ("@monthly", "2026-01-01T10:07", "2026-02-01T00:00"),
    ("@yearly", "2026-01-01T10:07", "2027-01-01T00:00"),
    ("0 0 ? * sun", "2026-01-01T00:00", "2026-01-04T00:00"),
])
def test_next_after(expr, after, want):
    assert nxt(expr, after) == t(want)


def test_never_firing_schedule_returns_none():
    assert nxt("0 0 30 2 *", "2026-01-01T00:00") is None


def test_most_recent_counts_missed_runs():
    last, count = cron.most_recent(cron.parse("*/5 * * * *"), t("2026-01-01T10:00"),
                                   t("2026-01-01T10:17"))
    assert (last, count) == (t("2026-01-01T10:15"), 3)
    assert cron.most_recent(cron.parse("0 * * * *"), t("2026-01-01T10:00"),
                            t("2026-01-01T10:59")) == (None, 0)


@pytest.mark.parametrize("expr,words", [
    ("61 * * * *", "minute 61 is out of range (0-59)"),
    ("* 24 * * *", "hour 24 is out of range"),
    ("* * 0 * *", "day of month 0 is out of range"),
    ("* * * 13 *", "month 13"),
    ("* * * * 8", "day of week 8"),
    ("* * * *", "expected exactly 5 fields"),
    ("* * * * * *", "found 6"),
    ("a * * * *", "failed to parse minute 'a'"),
    ("5-1 * * * *", "backwards"),
    ("*/0 * * * *", "bad step"),
    ("1,,2 * * * *", "empty item"),
    ("? * * * *", "only allowed in the day fields"),
    ("@often", "unrecognized descriptor"),
    ("TZ=UTC 0 * * * *", "spec.timeZone"),
    ("", "Required value"),
    (None, "Required value"),
])
def test_invalid_schedules_name_spec_schedule(expr, words):
    with pytest.raises(ValidationError) as exc:
        cron.parse(expr)
    assert exc.value.field == "spec.schedule"
    assert words in str(exc.value)


def test_names_are_case_insensitive():
    assert cron.parse("0 0 * JAN MON") == cron.parse("0 0 * 1 1")
