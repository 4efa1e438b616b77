"""`{{id}}`: tells readers that a hold is ready for pickup.

Build: componentize-py -d wit -w messenger componentize --stub-wasi app -o {{id}}.wasm
Test:  lectern plugin test .

A messenger implements both `compose` (one event) and `compose_batch` (the
host's call); a request that fails raises `Err(...)` in `compose` and becomes
an `Err` entry in the batch, without failing the others.
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import host, types


class Messaging(exports.Messaging):
    def compose(self, event, recipient):
        if not isinstance(event.kind, types.EventKind_HoldReady):
            # Not ours: another messenger composes it.
            return []
        hold = event.kind.value
        library = host.config("library-name") or "the library"
        name = recipient.name if recipient.name is not None else "reader"
        takes_email = recipient.channels is None or types.Channel.EMAIL in recipient.channels
        channel = types.Channel.EMAIL if recipient.email is not None and takes_email else types.Channel.PRINT
        return [
            types.Message(
                channel=channel,
                locale="en",
                subject=f"Ready for pickup: {hold.title}",
                body=f"Dear {name},\n\n{hold.title} is waiting for you at {hold.pickup_branch}.\n\n{library}",
                dedupe_key="ready",
                send_after=None,
            )
        ]

    def compose_batch(self, requests):
        out = []
        for r in requests:
            try:
                out.append(Ok(self.compose(r.event, r.recipient)))
            except Err as e:
                out.append(e)
        return out
