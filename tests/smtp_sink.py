"""A real SMTP server for the tests (aiosmtpd from Debian's python3-aiosmtpd).

It demands STARTTLS with the given certificate and a login, refuses recipients at
`refused.example.org` for good (550) and, while the file `<out>/busy` exists, answers every
RCPT with 451 (try again later). Each message received is written to `<out>/<n>.json` with its
envelope. Prints `ready` once it listens; stops when standard input closes.

    /usr/bin/python3 tests/smtp_sink.py OUT_DIR CERT KEY USER PASSWORD PORT
"""

import json
import os
import logging
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if os.path.exists(os.path.join(self.out, "busy")):
            return "451 4.3.2 busy, try again later"
        if address.endswith("@refused.example.org"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "login": session.authenticated,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        path = os.path.join(self.out, f"{self.n}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def main():
    # aiosmtpd 1.4 logs a warning about its own use of a deprecated attribute on every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    out, cert, key, user, password, port = sys.argv[1:7]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == user and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    c = Controller(
        Sink(out),
        hostname="127.0.0.1",
        port=int(port),
        server_hostname="localhost",
        tls_context=ctx,
        require_starttls=True,
        auth_required=True,
        authenticator=check,
    )
    c.start()
    print("ready", flush=True)
    sys.stdin.read()
    c.stop()


if __name__ == "__main__":
    main()
