"""A local SMTP server for the delivery tests, on aiosmtpd.

Accepts mail on 127.0.0.1:PORT and appends one JSON line per message to
OUT: recipients, decoded subject and body, Content-Language, Message-ID,
and the List-Unsubscribe headers (RFC 2369, RFC 8058).
Refuses (550) any recipient at invalid.example, as a real server refuses an
unknown mailbox. Prints "ready" once it listens.

    python3 smtp_sink.py PORT OUT
"""

import asyncio
import email
import email.policy
import json
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@invalid.example"):
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(msg["Subject"] or ""),
            "language": str(msg["Content-Language"] or ""),
            "message_id": str(msg["Message-ID"] or ""),
            "list_unsubscribe": str(msg["List-Unsubscribe"] or ""),
            "list_unsubscribe_post": str(msg["List-Unsubscribe-Post"] or ""),
            "body": msg.get_content(),
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return "250 Message accepted"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin or kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
