"""A real SMTP server on loopback for tests: records what it receives, fails on request.

In-process (unit tests)::

    with SmtpServer() as smtp:              # 127.0.0.1, a free port
        ...send to smtp.host, smtp.port...
        [mail] = smtp.wait_for(1, timeout=5)
        mail.message["Subject"], mail.rcpt_tos

    smtp.fail_next(2, "451 4.3.0 Try again later")   # the next 2 transactions fail
    smtp.stop(); ...; smtp.start()                   # down (connection refused), back up
    smtp.hold(); smtp.wait_held(3); smtp.release()   # transactions wait at MAIL FROM

As a process (integration tests, which run the operator in another process)::

    python tests/smtp_server.py --port 2525 --mbox /tmp/mail.mbox
    python tests/smtp_server.py --port 0 --eml-dir /tmp/mail     # one .eml per message

It prints ``listening on HOST:PORT`` on stdout once it accepts connections (``--port 0``
picks a free port; read it from that line), stores each accepted message, and stops on
SIGTERM or SIGINT. ``--fail-next N --fail-reply "451 ..."`` rejects the first N
transactions. Readers of the mbox use :func:`read_mbox`, which takes the same lock as the
writer; ``.eml`` files appear atomically (written aside, then renamed).

Only aiosmtpd and the standard library are needed (``make_tls_files`` also needs
``cryptography``), so the file runs as a script without the project installed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import mailbox
import os
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class Received:
    """One accepted message: the SMTP envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    tls: bool
    """Whether the session was encrypted (STARTTLS or implicit TLS)."""
    login: str | None
    """The user name the client authenticated as, if it did."""


class _Handler:
    """aiosmtpd hooks: reject transactions on request, record the accepted ones."""

    def __init__(self, on_message: Callable[[Received], None]) -> None:
        self._on_message = on_message
        self._lock = threading.Lock()
        self._failures: list[tuple[Stage, str]] = []
        # Which transactions were chosen to fail, decided at MAIL so that a transaction
        # with several recipients fails as a whole.
        self._doomed: weakref.WeakKeyDictionary[Envelope, tuple[Stage, str]] = (
            weakref.WeakKeyDictionary()
        )

        # Held transactions wait at MAIL FROM until released (a delivery "in flight").
        self._open = threading.Event()
        self._open.set()
        self._held = threading.Condition()
        self.held = 0

    def fail_next(self, count: int, reply: str, stage: Stage) -> None:
        with self._lock:
            self._failures = [(stage, reply)] * count

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_held(self, count: int, timeout: float) -> None:
        with self._held:
            if not self._held.wait_for(lambda: self.held >= count, timeout):
                raise AssertionError(
                    f"expected {count} held transaction(s) within {timeout}s, got {self.held}"
                )

    async def _wait_if_held(self) -> None:
        if self._open.is_set():
            return
        with self._held:
            self.held += 1
            self._held.notify_all()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._open.wait)
        finally:
            with self._held:
                self.held -= 1

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        await self._wait_if_held()
        with self._lock:
            if self._failures:
                self._doomed[envelope] = self._failures.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return self._reply(envelope, "mail") or "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self._reply(envelope, "rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._reply(envelope, "data")
        if reply:
            return reply
        data = envelope.original_content or b""
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        credentials = session.auth_data if session.authenticated else None
        login = credentials.login.decode() if isinstance(credentials, LoginPassword) else None
        # session.ssl is set by STARTTLS only; an implicit-TLS transport says so itself.
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        self._on_message(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                message=parsed,
                tls=tls,
                login=login,
            )
        )
        return "250 2.0.0 OK: queued"

    def _reply(self, envelope: Envelope, stage: Stage) -> str | None:
        doomed = self._doomed.get(envelope)
        if doomed is not None and doomed[0] == stage:
            return doomed[1]
        return None


class _Controller(Controller):
    """aiosmtpd's threaded controller, able to listen on port 0 (a free port).

    The stock controller connects to ``self.port`` to check the server is up, which fails
    for port 0; learn the bound port first.
    """

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpServer:
    """A loopback SMTP server in a thread of this process; see the module docstring.

    ``tls_context`` offers STARTTLS (``starttls=True``) or makes it an implicit-TLS server
    (``starttls=False``). ``users`` ({name: password}) turns on AUTH PLAIN/LOGIN, which
    the server offers only after STARTTLS, as real servers do.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_context: Any = None,
        starttls: bool = True,
        users: dict[str, str] | None = None,
        on_message: Callable[[Received], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._tls_context = tls_context
        self._starttls = starttls
        self._users = users
        self._on_message = on_message
        self._received: list[Received] = []
        self._cond = threading.Condition()
        self._handler = _Handler(self._record)
        self._controller: _Controller | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SmtpServer:
        """Start listening; after a stop(), on the same port as before."""
        if self._controller is not None:
            raise RuntimeError("the SMTP server is already running")
        kwargs: dict[str, Any] = {}
        if self._tls_context is not None and self._starttls:
            kwargs["tls_context"] = self._tls_context
        elif self._tls_context is not None:
            kwargs["ssl_context"] = self._tls_context
        if self._users is not None:
            kwargs["authenticator"] = self._authenticate
        controller = _Controller(
            self._handler,
            hostname=self.host,
            port=self.port,
            server_hostname="smtp.test",
            ready_timeout=10,
            **kwargs,
        )
        controller.start()
        self.port = controller.port
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start() is called again."""
        self._handler.release()  # a held transaction would keep the server's loop busy
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ----------------------------------------------------------------------

    def fail_next(self, count: int, reply: str, *, stage: Stage = "data") -> None:
        """Answer ``reply`` (e.g. ``"451 4.3.0 Try again later"``, ``"550 5.1.1 No such
        user"``) at ``stage`` of the next ``count`` transactions, then accept again."""
        self._handler.fail_next(count, reply, stage)

    def hold(self) -> None:
        """Make every transaction wait at MAIL FROM, unanswered, until :meth:`release`:
        deliveries in flight, for a client to die in the middle of."""
        self._handler.hold()

    def release(self) -> None:
        self._handler.release()

    def wait_held(self, count: int, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` transactions are waiting at MAIL FROM."""
        self._handler.wait_held(count, timeout)

    # -- what was received --------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` messages arrived (at most ``timeout`` seconds)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout):
                raise AssertionError(
                    f"expected {count} message(s) within {timeout}s, got {len(self._received)}"
                )
            return list(self._received)

    def _record(self, received: Received) -> None:
        with self._cond:
            self._received.append(received)
            self._cond.notify_all()
        if self._on_message is not None:
            self._on_message(received)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self._users is not None
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if self._users.get(login) == password:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)


# -- TLS material for tests -------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    """The CA that signed the server certificate: what a client should trust."""
    cert: Path
    key: Path

    def server_context(self) -> Any:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_tls_files(directory: Path, hostname: str = "localhost") -> TlsFiles:
    """A throwaway CA and a server certificate for ``hostname`` and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    validity = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("almanac test CA"))
        .issuer_name(name("almanac test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(hostname))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


# -- storage for the process mode -------------------------------------------------------


def append_to_mbox(path: Path, received: Received) -> None:
    # The raw bytes, not a parsed message: re-serialising would refold headers.
    from_line = f"From {received.mail_from or 'MAILER-DAEMON'} {time.asctime(time.gmtime())}"
    box = mailbox.mbox(path)
    box.lock()
    try:
        box.add(from_line.encode() + b"\n" + received.data)
        box.flush()
    finally:
        box.unlock()
        box.close()


def read_mbox(path: Path) -> list[EmailMessage]:
    """The messages stored so far in ``path`` (none if it does not exist yet)."""
    if not path.exists():
        return []
    box = mailbox.mbox(path)
    box.lock()
    try:
        return [_parse(box.get_bytes(key)) for key in box.iterkeys()]
    finally:
        box.unlock()
        box.close()


def write_eml(directory: Path, received: Received) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(received.data)
    final = directory / f"{stamp}-{Path(tmp).stem.lstrip('.')}.eml"
    os.replace(tmp, final)
    return final


def read_eml_dir(directory: Path) -> list[EmailMessage]:
    """The messages stored so far in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return [_parse(p.read_bytes()) for p in sorted(directory.glob("*.eml"))]


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


# -- command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    store = parser.add_mutually_exclusive_group(required=True)
    store.add_argument("--mbox", type=Path, help="append received messages to this mbox")
    store.add_argument("--eml-dir", type=Path, help="write one .eml per message here")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N")
    parser.add_argument("--fail-reply", default="451 4.3.0 Try again later")
    parser.add_argument("--fail-stage", choices=["mail", "rcpt", "data"], default="data")
    args = parser.parse_args(argv)

    def store_message(received: Received) -> None:
        if args.mbox is not None:
            append_to_mbox(args.mbox, received)
        else:
            write_eml(args.eml_dir, received)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = SmtpServer(args.host, args.port, on_message=store_message)
    server.fail_next(args.fail_next, args.fail_reply, stage=args.fail_stage)
    with server:
        print(f"listening on {server.host}:{server.port}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
