"""Cron schedules as a Kubernetes CronJob reads them: parse, validate, find fire times.

Pure. The grammar is the standard 5-field one Kubernetes accepts (robfig/cron's
ParseStandard): minute hour day-of-month month day-of-week, each `*`, `?` (day fields), a
number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (a to the field's maximum), comma
lists, month and weekday names (jan..dec, sun..sat), 7 meaning Sunday; and the macros
@yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly. As in cron, when both
day-of-month and day-of-week are restricted a day matching EITHER fires.
Times are timezone-aware datetimes; fields are matched in the zone of the time given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.errors import ValidationError

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {n: i + 1 for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (name, min, max, names)
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
# A schedule that never fires (Feb 30) must not loop forever looking for its next time.
_SEARCH_YEARS = 5


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]   # 0 = Sunday
    dom_star: bool             # day-of-month was * or ?
    dow_star: bool

    def day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def matches(self, t: datetime) -> bool:
        return (t.minute in self.minutes and t.hour in self.hours and t.month in self.months
                and self.day_matches(t))


def _bad(expr: str, message: str) -> ValidationError:
    return ValidationError(f"Invalid value: {expr!r}: {message}", field="spec.schedule")


def _number(text: str, lo: int, hi: int, names: dict, what: str, expr: str) -> int:
    low = text.lower()
    if low in names:
        return names[low]
    if not text.isdigit():
        raise _bad(expr, f"failed to parse {what} {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise _bad(expr, f"{what} {value} is out of range ({lo}-{hi})")
    return value


def _field(text: str, index: int, expr: str) -> tuple[frozenset[int], bool]:
    what, lo, hi, names = _FIELDS[index]
    out: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise _bad(expr, f"empty item in {what} field {text!r}")
        rng, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _bad(expr, f"bad step {step_text!r} in {what} field")
            step = int(step_text)
        if rng in ("*", "?"):
            if rng == "?" and index not in (2, 4):
                raise _bad(expr, f"'?' is only allowed in the day fields, not {what}")
            start, end = lo, hi
            star = star or not slash
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start = _number(a, lo, hi, names, what, expr)
            end = _number(b, lo, hi, names, what, expr)
            if start > end:
                raise _bad(expr, f"{what} range {rng!r} is backwards")
        else:
            start = _number(rng, lo, hi, names, what, expr)
            end = hi if slash else start
        out.update(range(start, end + 1, step))
    if index == 4 and 7 in out:  # 7 is Sunday too
        out.discard(7)
        out.add(0)
    return frozenset(out), star


def parse(expr) -> Schedule:
    """Schedule for a cron expression; ValidationError on spec.schedule when invalid."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValidationError(f"Required value: a cron schedule string, got {expr!r}",
                              field="spec.schedule")
    text = expr.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise _bad(expr, "TZ/CRON_TZ in the schedule is not allowed; use spec.timeZone")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise _bad(expr, f"unrecognized descriptor {text!r} (known: {', '.join(MACROS)})")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise _bad(expr, f"expected exactly 5 fields (minute hour day-of-month month "
                         f"day-of-week), found {len(parts)}")
    fields = [_field(p, i, expr) for i, p in enumerate(parts)]
    return Schedule(fields[0][0], fields[1][0], fields[2][0], fields[3][0], fields[4][0],
                    dom_star=fields[2][1], dow_star=fields[4][1])


def next_after(sched: Schedule, t: datetime) -> datetime | None:
    """First fire time strictly after ``t`` (None if there is none within 5 years).

    Steps whole months/days/hours when they cannot match, as robfig/cron does, so even a
    yearly schedule takes a few dozen steps."""
    t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
    limit = t.year + _SEARCH_YEARS
    while t.year <= limit:
        if t.month not in sched.months:
            year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
            t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
            continue
        if not sched.day_matches(t):
            t = (t + timedelta(days=1)).replace(hour=0, minute=0)
            continue
        if t.hour not in sched.hours:
            t = (t + timedelta(hours=1)).replace(minute=0)
            continue
        if t.minute not in sched.minutes:
            t = t + timedelta(minutes=1)
            continue
        return t
    return None


def most_recent(sched: Schedule, since: datetime, now: datetime,
                cap: int = 100_000) -> tuple[datetime | None, int]:
    """(latest fire time in (since, now], number of fire times in that window).

    A CronJob only starts the most recent missed run, as Kubernetes does; the count is for
    its "too many missed start times" warning."""
    last, count = None, 0
    t = next_after(sched, since)
    while t is not None and t <= now and count < cap:
        last, count = t, count + 1
        t = next_after(sched, t)
    return last, count
