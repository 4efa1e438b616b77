"""`{{id}}`: scores readers by how much they borrowed in the last year.

Build: componentize-py -d wit -w scorer componentize --stub-wasi app -o {{id}}.wasm
Test:  lectern plugin test .
"""

import wit_world
from wit_world.exports import scoring
from wit_world.imports import host


class Scoring(wit_world.exports.Scoring):
    def score_batch(self, patrons):
        # The host checked the value against the manifest's schema.
        busy_at = int(host.config("busy-at") or "20")
        return [self._score(p, busy_at) for p in patrons]

    def _score(self, p, busy_at):
        loans = p.activity.loans_365d if p.activity is not None else 0
        value = min(100.0, loans * 100.0 / (2.0 * busy_at))
        segment = "busy" if loans >= busy_at else "quiet"
        return scoring.Score(
            patron=p.id, value=value, segment=segment, reasons=[f"{loans} loans in the last year"]
        )
