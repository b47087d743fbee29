"""How the clients check a wss:// server's certificate, and fail closed.

`client_tls` makes the TLS options that `SignalingClient` and `RtcPeer` use
by default: Twisted's own options for the chain (the system's certificate
authorities, or the certificates given), with a verify callback of ours that
checks the chain's verdict and the hostname (or IP address) and refuses the
connection, with one line saying why, as a `CertificateRefused`.

Ours rather than Twisted's check because Twisted's lets a certificate through
when service_identity raises `CertificateError` (a certificate with no
subjectAltName, which service_identity 24.1+ reports that way): its callback
logs a traceback and then accepts what OpenSSL accepted. And Twisted's says
only that verification failed, where a person needs the reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["CertificateRefused", "client_tls"]


class CertificateRefused(Exception):
    """The server's TLS certificate is not trusted, so the connection was
    refused before anything was sent over it. ``str()`` is one line that
    names the problem, e.g. ``certificate for localhost does not match
    127.0.0.1``; `kind` tells problems apart for a program:

    - ``"name"``: the certificate is not for the host (or address) dialled;
    - ``"no-subject-alt-name"``: it names no host at all (only a common
      name, which clients no longer read);
    - ``"expired"`` (or not yet valid): the certificate or one of its issuers;
    - ``"untrusted"``: self-signed, or from an authority not trusted here
      (``--cafile`` / ``tls=client_tls(host, trusted=...)`` trusts one);
    - ``"invalid"``: anything else the check refused.
    """

    NAME: Final = "name"
    NO_SUBJECT_ALT_NAME: Final = "no-subject-alt-name"
    EXPIRED: Final = "expired"
    UNTRUSTED: Final = "untrusted"
    INVALID: Final = "invalid"

    def __init__(self, problem: str, kind: str = INVALID) -> None:
        super().__init__(problem)
        self.problem = problem
        self.kind = kind


def client_tls(
    hostname: str,
    *,
    trusted: Sequence[ssl.Certificate] | None = None,
    insecure: bool = False,
) -> IOpenSSLClientConnectionCreator:
    """TLS options for a client of ``hostname`` (a DNS name or an IP
    address: the name the certificate must match, normally the URL's).

    The chain must lead to one of the ``trusted`` certificates, or, by
    default, to one of the system's certificate authorities (OpenSSL's
    default paths, which the ``SSL_CERT_FILE`` environment variable
    replaces). A refused certificate aborts the connection with a
    `CertificateRefused` as its reason.

    ``insecure=True`` checks nothing: any certificate, for any name, is
    accepted. Anyone on the path can then read and change the connection.
    """
    if insecure and trusted is not None:
        raise ValueError("insecure=True trusts every certificate: give no trusted= with it")
    if trusted is not None and not trusted:
        raise ValueError("trusted= needs at least one certificate")
    return _CheckingCreator(hostname, trusted, insecure)


# OpenSSL's verify error numbers (x509_vfy.h) that a person can act on; any
# other is shown by number.
_NOT_YET_VALID = 9
_EXPIRED = 10
_SELF_SIGNED = 18
_SELF_SIGNED_IN_CHAIN = 19
_UNKNOWN_ISSUER = (2, 20, 21)  # issuer not found (at all, locally, for the leaf)
_CHAIN_ERRORS = {
    4: "its signature cannot be decrypted",
    7: "its signature is wrong",
    23: "it is revoked",
    24: "an issuer in its chain is not a certificate authority",
    26: "it is not meant for TLS servers",
    27: "it is not trusted for this purpose",
    28: "it is rejected for this purpose",
}

# A certificate is the server's to write: what we repeat from it is cut short.
_MAX_SHOWN_NAMES = 4
_MAX_NAME_LENGTH = 80


@implementer(IOpenSSLClientConnectionCreator)
class _CheckingCreator:
    """Twisted's client TLS options (trust roots, SNI, protocol versions),
    with the certificate check of this module in place of Twisted's."""

    def __init__(
        self, hostname: str, trusted: Sequence[ssl.Certificate] | None, insecure: bool
    ) -> None:
        self.hostname = hostname
        self.insecure = insecure
        trust_root = ssl.trustRootFromCertificates(list(trusted)) if trusted else None
        self._options = ssl.optionsForClientTLS(hostname, trustRoot=trust_root)
        try:
            self._address: str | None = str(ipaddress.ip_address(hostname))
        except ValueError:
            self._address = None

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self.insecure:
            # Twisted's callback must go too (given none, OpenSSL keeps it).
            connection.set_verify(SSL.VERIFY_NONE, _accept_any)
        else:
            connection.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._checker(tlsProtocol)
            )
        return connection

    def _checker(
        self, tls_protocol: TLSMemoryBIOProtocol
    ) -> Callable[[SSL.Connection, crypto.X509, int, int, int], bool]:
        # The connection holds this callback; the callback must not keep the
        # protocol (which holds the connection) once it is done with it.
        holder = [tls_protocol]

        def check(
            connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int, ok: int
        ) -> bool:
            if not holder:
                return bool(ok)
            try:
                cert = certificate.to_cryptography()
                if not ok:
                    refusal: CertificateRefused | None = _chain_refusal(cert, error, depth)
                elif depth == 0:
                    refusal = self._identity_refusal(cert)
                else:
                    return True  # an issuer: the leaf's turn comes last
            except Exception as unexpected:
                # Fail closed: a check that cannot finish refuses.
                refusal = CertificateRefused(
                    f"could not check the certificate: {_printable(repr(unexpected))}"
                )
            protocol = holder.pop()
            if refusal is None:
                return True
            # The protocol's connectionLost gets this as its reason; nothing
            # is logged, and OpenSSL aborts the handshake on our False.
            protocol.failVerification(Failure(refusal))
            return False

        return check

    def _identity_refusal(self, cert: x509.Certificate) -> CertificateRefused | None:
        try:
            if self._address is not None:
                verify_certificate_ip_address(cert, self._address)
            else:
                verify_certificate_hostname(cert, self.hostname)
        except VerificationError:
            names = _names(cert)
            if not names:
                return CertificateRefused(
                    f"certificate names no host or address, so it does not match {self.hostname}",
                    CertificateRefused.NAME,
                )
            return CertificateRefused(
                f"certificate for {_shown_names(names)} does not match {self.hostname}",
                CertificateRefused.NAME,
            )
        except CertificateError as error:
            if _subject_alt_name(cert) is None:
                common_name = _common_name(cert)
                unread = f" (its common name, {common_name}, is not read)" if common_name else ""
                return CertificateRefused(
                    f"certificate has no subjectAltName{unread}, so it matches no host",
                    CertificateRefused.NO_SUBJECT_ALT_NAME,
                )
            return CertificateRefused(
                f"certificate for {_label(cert)} has an unreadable subjectAltName: "
                f"{_printable(str(error))}"
            )
        return None


def _accept_any(
    connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int, ok: int
) -> bool:
    return True


def _chain_refusal(cert: x509.Certificate, error: int, depth: int) -> CertificateRefused:
    """Why OpenSSL refused the chain at ``cert`` (``depth`` 0: the server's)."""
    which = (
        f"certificate for {_label(cert)}" if depth == 0 else f"issuer's certificate {_label(cert)}"
    )
    if error == _EXPIRED:
        when = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
        return CertificateRefused(f"{which} expired on {when}", CertificateRefused.EXPIRED)
    if error == _NOT_YET_VALID:
        when = cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")
        return CertificateRefused(f"{which} is not valid until {when}", CertificateRefused.EXPIRED)
    if error == _SELF_SIGNED:
        return CertificateRefused(
            f"certificate verify failed: {which} is self-signed and not trusted",
            CertificateRefused.UNTRUSTED,
        )
    if error == _SELF_SIGNED_IN_CHAIN:
        return CertificateRefused(
            f"certificate verify failed: {which} comes from a self-signed root that is not trusted",
            CertificateRefused.UNTRUSTED,
        )
    if error in _UNKNOWN_ISSUER:
        issuer = _printable(cert.issuer.rfc4514_string()) or "an unnamed issuer"
        return CertificateRefused(
            f"certificate verify failed: {which} is issued by {issuer}, which is not trusted",
            CertificateRefused.UNTRUSTED,
        )
    problem = _CHAIN_ERRORS.get(error, f"OpenSSL verify error {error}")
    return CertificateRefused(f"certificate verify failed: {which}: {problem}")


def refusal_from(reason: BaseException | None, hostname: str) -> CertificateRefused | None:
    """A connection's end as a `CertificateRefused`, if a certificate check
    ended it: ours, or that of TLS options made elsewhere (Twisted's
    ``optionsForClientTLS``), which say less."""
    if isinstance(reason, CertificateRefused):
        return reason
    if isinstance(reason, VerificationError):
        return CertificateRefused(f"certificate does not match {hostname}", CertificateRefused.NAME)
    if isinstance(reason, SSL.Error) and "certificate verify failed" in str(reason):
        return CertificateRefused("certificate verify failed", CertificateRefused.UNTRUSTED)
    return None


def _subject_alt_name(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is for."""
    alt_names = _subject_alt_name(cert)
    if alt_names is None:
        return []
    dns_names: list[str] = alt_names.get_values_for_type(x509.DNSName)
    addresses = [str(address) for address in alt_names.get_values_for_type(x509.IPAddress)]
    return dns_names + addresses


def _common_name(cert: x509.Certificate) -> str:
    for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        return _printable(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    return ""


def _label(cert: x509.Certificate) -> str:
    """Who a certificate says it is, short: its names, else its subject."""
    names = _names(cert)
    if names:
        return _shown_names(names)
    return _printable(cert.subject.rfc4514_string()) or "no name"


def _shown_names(names: list[str]) -> str:
    shown = ", ".join(_printable(name) for name in names[:_MAX_SHOWN_NAMES])
    more = len(names) - _MAX_SHOWN_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _printable(text: str) -> str:
    """``text`` safe for one line of a terminal, and bounded."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text[: _MAX_NAME_LENGTH + 1])
    return cleaned if len(cleaned) <= _MAX_NAME_LENGTH else cleaned[: _MAX_NAME_LENGTH - 3] + "..."


def creator_for(
    url_host: str,
    secure: bool,
    tls: IOpenSSLClientConnectionCreator | None,
    insecure: bool,
) -> IOpenSSLClientConnectionCreator | None:
    """The TLS options a client of a URL uses: ``tls`` if given (it wins),
    else `client_tls` for the URL's host; ``None`` for ws:// (plain TCP)."""
    if not secure:
        return None
    return tls if tls is not None else client_tls(url_host, insecure=insecure)
