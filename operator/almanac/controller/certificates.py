"""The webhook's own certificate, when no cert-manager issues one: pure PKI.

The API server calls the webhook over HTTPS and trusts the CA in the
ValidatingWebhookConfiguration's ``caBundle``. Without cert-manager the operator makes
that pair itself (the way the plain manifests and the chart work out of the box): a
private CA and a serving certificate for the webhook Service's DNS names, kept in a
Secret so that every replica serves the same one, and renewed by whichever replica
starts when less than :data:`RENEW_BEFORE` of it is left. Nothing here talks to the API
(see :mod:`almanac.controller.webhook` for that).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How long a generated CA and certificate are valid. Long, because nothing but a
#: restart of the operator renews them (a renewal is checked at every start).
VALIDITY = timedelta(days=3650)
#: A certificate with less than this left is renewed at start.
RENEW_BEFORE = timedelta(days=365)
#: Clocks of the API server and the operator may differ: valid from a little before now.
BACKDATE = timedelta(hours=1)


@dataclass(frozen=True)
class WebhookPki:
    """PEM bytes: the CA certificate (the caBundle), the serving certificate and its key."""

    ca: bytes
    cert: bytes
    key: bytes

    def secret_data(self) -> dict[str, str]:
        """The Secret's ``data`` (type kubernetes.io/tls, plus ca.crt as cert-manager does)."""
        return {
            "ca.crt": base64.b64encode(self.ca).decode(),
            "tls.crt": base64.b64encode(self.cert).decode(),
            "tls.key": base64.b64encode(self.key).decode(),
        }

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str] | None) -> WebhookPki | None:
        """The PKI a Secret holds, or None when it holds none (or something unreadable)."""
        try:
            parts = [base64.b64decode((data or {})[k]) for k in ("ca.crt", "tls.crt", "tls.key")]
        except (KeyError, binascii.Error):
            return None
        return cls(*parts)


def generate(dns_names: Sequence[str], now: datetime) -> WebhookPki:
    """A new CA and a serving certificate for ``dns_names`` signed by it (ECDSA P-256)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "almanac-webhook-ca")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
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
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    # Clients check the DNS names; the common name (at most 64 characters) only labels it.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "almanac-webhook")])
    cert = (
        _builder(subject, ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return WebhookPki(
        ca=ca.public_bytes(serialization.Encoding.PEM),
        cert=cert.public_bytes(serialization.Encoding.PEM),
        key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def usable(pki: WebhookPki, dns_names: Sequence[str], now: datetime) -> bool:
    """Whether ``pki`` may be served for ``dns_names`` without renewing: the certificate
    is issued by the CA, names every one of them, and has more than RENEW_BEFORE left."""
    try:
        ca = x509.load_pem_x509_certificate(pki.ca)
        cert = x509.load_pem_x509_certificate(pki.cert)
        cert.verify_directly_issued_by(ca)
        serialization.load_pem_private_key(pki.key, password=None)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    ends = min(ca.not_valid_after_utc, cert.not_valid_after_utc)
    return set(dns_names) <= set(names.get_values_for_type(x509.DNSName)) and (
        ends - now > RENEW_BEFORE
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
    )
