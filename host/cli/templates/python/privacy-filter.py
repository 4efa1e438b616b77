"""`{{id}}`: scoring sees use, the circulation desk sees who, nobody else
sees anything. A field without a rule is dropped.

Build: componentize-py -d wit -w privacy-filter componentize --stub-wasi app -o {{id}}.wasm
Test:  lectern plugin test .
"""

from wit_world import exports
from wit_world.imports import types

F = types.PatronField
A = types.FieldAction


class Privacy(exports.Privacy):
    def policy_for(self, context):
        if context.purpose == types.Purpose.SCORING:
            rules = [(F.CATEGORY, A.KEEP), (F.ACTIVITY, A.KEEP)]
        elif (
            context.purpose == types.Purpose.STAFF_VIEW
            and isinstance(context.actor, types.Actor_Staff)
            and context.actor.value == "circulation-desk"
        ):
            rules = [(F.CARD_NUMBER, A.KEEP), (F.NAME, A.KEEP), (F.EMAIL, A.MASK)]
        else:
            rules = []
        return types.Policy(
            rules=[types.FieldRule(field=f, action=a) for f, a in rules],
            refine_per_record=False,
        )

    def refine(self, context, patron):
        return []
