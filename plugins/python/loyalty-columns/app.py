"""`loyalty-columns`: the `loyalty` model, exporting both scoring forms
(world `columnar-scorer`). The host calls the columnar one, which hands the
batch over as one list per field instead of one record per patron; the
record one stays for hosts and tools that call it. Both must give the same
scores, and a test holds them to it."""

import datetime

import wit_world
from wit_world.exports import columnar_scoring, scoring
from wit_world.imports import host

SEGMENTS = ["loyal", "regular", "new-or-occasional"]
REASONS = ["no membership date or use recorded"]
ABSENT_DATE = -2147483648
EPOCH = datetime.date(1970, 1, 1)


def _today():
    d = host.today()
    return datetime.date(d.year, d.month, d.day)


def _model(years, loans_90d, loans_365d):
    """Value, segment index, and the reasons that vary; `years` is None
    without a membership date, the loans None without an activity summary."""
    reasons = []
    tenure = 0.0
    if years is not None:
        reasons.append(f"a member for {years:.1f} years")
        tenure = min(years, 10.0) * 4.0  # up to 40 points
    steadiness = 0.0
    if loans_365d:
        # How evenly the year's loans spread: the last 90 days against a
        # quarter of the year, capped at 1.
        even = min(1.0, loans_90d / (loans_365d / 4.0))
        steadiness = 40.0 * even + min(loans_365d, 20)
        reasons.append(f"borrowed {loans_365d} items this year, {loans_90d} of them lately")
    value = max(0.0, min(100.0, tenure + steadiness))
    segment = 0 if value >= 70 else 1 if value >= 35 else 2
    return value, segment, reasons


class Scoring(wit_world.exports.Scoring):
    def score_batch(self, patrons):
        today = _today()
        out = []
        for p in patrons:
            years = None
            if p.enrolled_on is not None:
                e = datetime.date(p.enrolled_on.year, p.enrolled_on.month, p.enrolled_on.day)
                years = max(0.0, (today - e).days / 365.25)
            a = p.activity
            value, segment, reasons = _model(
                years, a.loans_90d if a else None, a.loans_365d if a else None
            )
            out.append(
                scoring.Score(
                    patron=p.id,
                    value=value,
                    segment=SEGMENTS[segment],
                    reasons=reasons or [REASONS[0]],
                )
            )
        return out


class ColumnarScoring(wit_world.exports.ColumnarScoring):
    def describe(self):
        return columnar_scoring.Codes(segments=SEGMENTS, reasons=REASONS)

    def score_columns(self, batch):
        today = (_today() - EPOCH).days
        enrolled = batch.enrolled_on
        act = batch.activity
        absent = set(act.absent_rows) if act is not None else None
        values, segments, starts, reasons, strings = [], [], [0], [], []
        fixed = len(REASONS)
        for r in range(batch.rows):
            years = None
            if enrolled is not None and enrolled[r] != ABSENT_DATE:
                years = max(0.0, (today - enrolled[r]) / 365.25)
            l90 = l365 = None
            if act is not None and r not in absent:
                l90, l365 = act.loans_90d[r], act.loans_365d[r]
            value, segment, texts = _model(years, l90, l365)
            values.append(value)
            segments.append(segment)
            if texts:
                for t in texts:
                    reasons.append(fixed + len(strings))
                    strings.append(t)
            else:
                reasons.append(0)
            starts.append(len(reasons))
        return columnar_scoring.Scores(
            values=values,
            segments=segments,
            reason_starts=starts,
            reasons=reasons,
            strings=strings,
        )
