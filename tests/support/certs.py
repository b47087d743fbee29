"""Throwaway certificates for wss:// tests, made by the test: a self-signed
one for localhost (the usual case), and the ones a client must refuse (no
subjectAltName, another name, expired, issued by an authority it does not
trust)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# What a certificate names by default: how the tests dial the server.
LOCALHOST_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class CertificateFiles:
    cert: Path
    key: Path
    cert_pem: bytes


@dataclass(frozen=True)
class CertificateAuthority:
    """A private CA: it signs the certificates `make_certificate` is given it for."""

    files: CertificateFiles
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def make_localhost_certificate(directory: Path) -> CertificateFiles:
    """Self-signed, for localhost and 127.0.0.1, valid now: ``--cafile`` trusts it."""
    return make_certificate(directory)


def make_certificate(
    directory: Path,
    *,
    common_name: str = "localhost",
    names: Sequence[str] | None = LOCALHOST_NAMES,
    valid_days: tuple[float, float] = (-1 / 288, 1),
    issuer: CertificateAuthority | None = None,
) -> CertificateFiles:
    """A certificate and its key, written to ``directory/cert.pem`` and
    ``directory/key.pem``.

    ``names`` go in the subjectAltName (IP addresses as such, the rest as DNS
    names); ``None`` leaves the extension out, as old ``openssl req`` recipes
    do. ``valid_days`` is the validity period, in days from now (the default:
    from five minutes ago to a day ahead; ``(-10, -1)`` expired yesterday).
    Signed by ``issuer``, or by itself when there is none (then it is its own
    CA, so that trusting it is enough).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    start, end = valid_days
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start))
        .not_valid_after(now + datetime.timedelta(days=end))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if names is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False
        )
    cert = builder.sign(issuer.private_key if issuer else key, hashes.SHA256())
    return _write(directory, cert, key)


def make_certificate_authority(
    directory: Path,
    common_name: str = "webrtc-signal test CA",
    valid_days: tuple[float, float] = (-1 / 288, 1),
) -> CertificateAuthority:
    """A CA certificate (``directory/cert.pem``) to sign others with; valid
    now by default (``valid_days`` as for `make_certificate`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    start, end = valid_days
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start))
        .not_valid_after(now + datetime.timedelta(days=end))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(_write(directory, cert, key), cert, key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write(
    directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertificateFiles:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return CertificateFiles(cert_path, key_path, cert_pem)
