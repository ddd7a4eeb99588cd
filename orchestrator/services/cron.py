"""Standard 5-field cron expressions: validation with field-named errors, and next fire times.

APScheduler's ``CronTrigger`` does the calendar arithmetic in the schedule's
time zone (``zoneinfo``). Three differences from classic cron are handled here:

* day-of-week numbers follow cron (0 and 7 = Sunday), not APScheduler 3's
  (0 = Monday): the field is rewritten to weekday names;
* when both day-of-month and day-of-week are restricted a time matches
  either (cron's OR), so two triggers run side by side;
* DST, as cron does it: a wall-clock time that occurs twice when clocks go
  back fires once (its first occurrence) unless the hour field is ``*``, so
  a daily 01:30 job does not run twice while an hourly job still runs every
  real hour; a time skipped when clocks go forward fires at the end of the
  gap (02:30 on a spring-forward night runs at 03:00).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

FIELD_NAMES = ("minute", "hour", "day_of_month", "month", "day_of_week")
TRIGGER_ARGS = {"minute": "minute", "hour": "hour", "day_of_month": "day", "month": "month",
                "day_of_week": "day_of_week"}
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
               "dec")
_DOW_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")
#: Give up looking for a next fire time after this many candidates (never reached in practice).
MAX_CANDIDATES = 1000
#: More than any zone's DST shift: how far wall-clock times can go back.
DST_MARGIN = timedelta(hours=3)


class CronError(ValueError):
    """An invalid expression; ``field`` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CronSchedule:
    """A parsed expression in a time zone: ``next_after(t)`` gives the next fire time.

    The triggers match wall-clock times (they run in UTC, which has no DST);
    ``_instants`` maps a wall-clock time to real instants in the zone. This
    sidesteps APScheduler 3's own DST arithmetic, which skips some fire times
    right after a change.
    """

    expression: str
    timezone: ZoneInfo
    triggers: tuple[CronTrigger, ...]
    hour_is_wildcard: bool

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (aware), in UTC."""
        after = after.astimezone(UTC)
        offset = after.astimezone(self.timezone).utcoffset() or timedelta(0)
        # Start a little back in wall-clock time: when clocks go back, the wall clock repeats.
        wall = (after + offset).replace(microsecond=0) - DST_MARGIN
        best: datetime | None = None
        for _ in range(MAX_CANDIDATES):
            candidate = min(self._next_wall(trigger, wall) for trigger in self.triggers)
            for instant in self._instants(candidate.replace(tzinfo=None)):
                if instant > after and (best is None or instant < best):
                    best = instant
            if best is not None and candidate - offset - DST_MARGIN > best:
                return best
            wall = candidate
        if best is not None:
            return best
        raise CronError("cron_expression", "the expression never fires")

    @staticmethod
    def _next_wall(trigger: CronTrigger, wall: datetime) -> datetime:
        found = trigger.get_next_fire_time(None, wall + timedelta(seconds=1))
        if found is None:
            raise CronError("cron_expression", "the expression never fires")
        return found

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants a naive wall-clock time denotes: one, two (clocks went back) or,
        for a time that does not exist (clocks went forward), the end of the gap."""
        first = wall.replace(tzinfo=self.timezone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        if self._wall(first) != wall:
            return [self._gap_end(min(first, second), max(first, second), wall)]
        if first == second or not self.hour_is_wildcard:
            return [first]
        return [first, second]

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.timezone).replace(tzinfo=None)

    def _gap_end(self, low: datetime, high: datetime, wall: datetime) -> datetime:
        """The first instant whose wall-clock time is past ``wall`` (binary search)."""
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if self._wall(middle) < wall:
                low = middle
            else:
                high = middle
        return high.replace(microsecond=0)


def parse_timezone(name: str) -> ZoneInfo:
    """A ``zoneinfo`` zone by IANA name; ``CronError`` on field ``timezone`` otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError("timezone", f"unknown time zone {name!r} (use an IANA name such as "
                                    "'UTC' or 'America/New_York')") from None


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Validate ``expression`` (5 fields) in ``timezone``; ``CronError`` names the bad field."""
    zone = parse_timezone(timezone)
    parts = (expression or "").split()
    if len(parts) != 5:
        raise CronError("cron_expression", f"expected 5 fields (minute hour day-of-month month "
                                           f"day-of-week), got {len(parts)}")
    fields = dict(zip(FIELD_NAMES, parts, strict=True))
    for name in ("minute", "hour", "day_of_month", "month"):
        _check_field(name, fields[name])
    fields["day_of_week"] = cron_weekdays(fields["day_of_week"])
    _check_field("day_of_week", fields["day_of_week"])
    base = {TRIGGER_ARGS[n]: fields[n] for n in ("minute", "hour", "month")}
    dom, dow = fields["day_of_month"], fields["day_of_week"]
    if dom != "*" and dow != "*":  # cron: either day field may match
        triggers = (CronTrigger(**base, day=dom, timezone=UTC),
                    CronTrigger(**base, day_of_week=dow, timezone=UTC))
    else:
        triggers = (CronTrigger(**base, day=dom, day_of_week=dow, timezone=UTC),)
    return CronSchedule(expression, zone, triggers, hour_is_wildcard=fields["hour"] == "*")


def _check_field(name: str, value: str) -> None:
    try:
        CronTrigger(**{TRIGGER_ARGS[name]: value}, timezone=UTC)
    except ValueError as exc:
        raise CronError(f"cron_expression.{name}", _clean(str(exc), value)) from None


def _clean(message: str, value: str) -> str:
    """APScheduler's message, without its internal field names."""
    message = re.sub(r"Error validating expression '[^']*': ", "", message)
    return f"invalid value {value!r}: {message}"


def cron_weekdays(field: str) -> str:
    """Rewrite a cron day-of-week field (0/7 = Sunday, names, ranges, steps) as day names."""
    field = field.lower()
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        match = _DOW_ITEM.match(item)
        if not match:
            raise CronError("cron_expression.day_of_week", f"invalid value {item!r}")
        span, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise CronError("cron_expression.day_of_week", "step must be at least 1")
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _weekday(low)
            last = _weekday(high) if high else (6 if match.group(2) else first)
            if last == 0 and high and high not in ("0", "sun"):
                last = 7  # "7" as a range end means Sunday after Saturday
            if last < first:
                raise CronError("cron_expression.day_of_week",
                                f"range {span!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(WEEKDAY_NAMES[d] for d in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit():
        number = int(token)
        if number > 7:
            raise CronError("cron_expression.day_of_week",
                            f"invalid value {token!r}: days are 0-7 (0 and 7 = Sunday)")
        return number
    if token[:3] in WEEKDAY_NAMES and len(token) == 3:
        return WEEKDAY_NAMES.index(token)
    raise CronError("cron_expression.day_of_week", f"invalid value {token!r}")
