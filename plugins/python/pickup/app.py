"""`pickup`: a messenger written in Python. It tells a reader that a hold is
waiting, or that a loan falls due, by email when they take email and the
host passed their address, and on paper otherwise.

A messenger implements both `compose` (one event) and `compose_batch` (the
host's call: one patron's events at a time); a request that fails raises
`Err(PluginError_...)` in `compose` and becomes an `Err` entry in the batch,
without failing the others."""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import host, types


def _library():
    return host.config("library-name") or "the library"


def _channel(patron):
    """Email if the reader takes it and the host passed the address; print
    otherwise (a notice about their own loans always reaches them)."""
    takes = patron.channels is None or types.Channel.EMAIL in patron.channels
    if patron.email is not None and takes:
        return types.Channel.EMAIL
    return types.Channel.PRINT


def _text(kind, name, library, chinese):
    if isinstance(kind, types.EventKind_HoldReady):
        hold = kind.value
        if chinese:
            return (f"预约到馆：{hold.title}", f"{name}，您预约的《{hold.title}》已在{hold.pickup_branch}等您取书。\n\n{library}")
        return (
            f"Ready for pickup: {hold.title}",
            f"Dear {name},\n\n{hold.title} is waiting for you at {hold.pickup_branch}.\n\n{library}",
        )
    if isinstance(kind, types.EventKind_DueSoon):
        loan = kind.value
        due = f"{loan.due_on.year:04}-{loan.due_on.month:02}-{loan.due_on.day:02}"
        if chinese:
            return (f"即将到期：{loan.title}", f"{name}，您借阅的《{loan.title}》将于{due}到期。\n\n{library}")
        return (
            f"Due soon: {loan.title}",
            f"Dear {name},\n\n{loan.title} is due back on {due}.\n\n{library}",
        )
    return None


class Messaging(exports.Messaging):
    def compose(self, event, recipient):
        chinese = (recipient.locale or "").startswith("zh")
        name = recipient.name or ("读者" if chinese else "reader")
        text = _text(event.kind, name, _library(), chinese)
        if text is None:
            raise Err(types.PluginError_InvalidInput(f"pickup does not compose {type(event.kind).__name__}"))
        subject, body = text
        return [
            types.Message(
                channel=_channel(recipient),
                locale="zh" if chinese else "en",
                subject=subject,
                body=body,
                dedupe_key="pickup",
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
