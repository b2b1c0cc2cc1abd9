"""Local alert endpoints for tests: an HTTP webhook receiver and an SMTP sink, each on a free loopback port.

Both run in a thread and keep what they received; neither needs anything beyond the
standard library.
"""

from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: dict


class WebhookReceiver:
    """Collects JSON POSTs; ``status`` (default 200) is what it answers."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                receiver.requests.append(Received(self.path, dict(self.headers), json.loads(raw or b"null")))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    auth: str | None
    message: email.message.EmailMessage = field(repr=False)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"]).strip()  # a folded header may keep its leading space

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()


class SmtpSink:
    """Just enough SMTP to accept mail: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                self.reply("220 sink ESMTP ready")
                sender, recipients, auth = "", [], None
                while line := self.rfile.readline():
                    command = line.decode().rstrip("\r\n")
                    verb = command.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-sink")
                        self.reply("250 AUTH PLAIN")
                    elif verb == "HELO":
                        self.reply("250 sink")
                    elif verb == "AUTH":
                        auth = command.split(" ", 2)[-1]
                        self.reply("235 2.7.0 accepted")
                    elif verb == "MAIL":
                        sender = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = []
                        while (part := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            data.append(part[1:] if part.startswith(b".") else part)  # undo dot-stuffing
                        message = email.message_from_bytes(b"".join(data), policy=email.policy.default)
                        sink.mails.append(Mail(sender, recipients, auth, message))
                        sender, recipients = "", []
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
