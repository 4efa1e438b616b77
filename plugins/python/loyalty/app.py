"""`loyalty`: a scorer written in Python, to show that authors who don't
write Rust are first class. It values long, steady membership: years since
enrolment, and use in most quarters of the year rather than in one burst."""

import datetime

import wit_world
from wit_world.exports import scoring
from wit_world.imports import host


def _date(d):
    return datetime.date(d.year, d.month, d.day)


class Scoring(wit_world.exports.Scoring):
    def score_batch(self, patrons):
        today = _date(host.today())
        return [self._score(p, today) for p in patrons]

    def _score(self, p, today):
        reasons = []
        years = 0.0
        if p.enrolled_on is not None:
            years = max(0.0, (today - _date(p.enrolled_on)).days / 365.25)
            reasons.append(f"a member for {years:.1f} years")
        tenure = min(years, 10.0) * 4.0  # up to 40 points

        steadiness = 0.0
        a = p.activity
        if a is not None and a.loans_365d > 0:
            # How evenly the year's loans spread: the last 90 days against a
            # quarter of the year, capped at 1.
            even = min(1.0, a.loans_90d / (a.loans_365d / 4.0))
            steadiness = 40.0 * even + min(a.loans_365d, 20)
            reasons.append(f"borrowed {a.loans_365d} items this year, {a.loans_90d} of them lately")
        value = max(0.0, min(100.0, tenure + steadiness))
        if value >= 70:
            segment = "loyal"
        elif value >= 35:
            segment = "regular"
        else:
            segment = "new-or-occasional"
        if not reasons:
            reasons.append("no membership date or use recorded")
        return scoring.Score(patron=p.id, value=value, segment=segment, reasons=reasons)
