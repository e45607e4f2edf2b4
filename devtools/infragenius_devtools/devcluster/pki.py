"""Certificates and keys for the local control plane: one CA, a serving cert, client certs."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _name(common_name: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: CertPair
    apiserver: CertPair
    service_account_key: Path
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    kwok: CertPair


def _issue(
    directory: Path,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    name: str,
    common_name: str,
    orgs: tuple[str, ...] = (),
    serving_ips: tuple[str, ...] | None = None,
    serving_names: tuple[str, ...] = (),
) -> CertPair:
    """A leaf certificate signed by the CA: a client cert, or a serving cert when ``serving_ips`` is given."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, orgs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if serving_ips is not None:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in serving_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in serving_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return _write(directory, name, builder.sign(ca_key, hashes.SHA256()), key)


def _write(directory: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> CertPair:
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(_pem_key(key))
    pair.key.chmod(0o600)
    return pair


_APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def generate(directory: Path, apiserver_ips: tuple[str, ...] = ()) -> Pki:
    """Write a fresh PKI into ``directory`` (mode 0700) and return the paths; ``apiserver_ips`` are
    extra addresses the API server is reached at (the real node's side of its link)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    ca_key = _key()
    ca_name = _name("infragenius-devcluster-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def client(name: str, common_name: str, orgs: tuple[str, ...] = ()) -> CertPair:
        return _issue(directory, ca_cert, ca_key, name, common_name, orgs)

    ca = _write(directory, "ca", ca_cert, ca_key)
    sa_key = directory / "service-account.key"
    sa_key.write_bytes(_pem_key(_key()))
    sa_key.chmod(0o600)
    apiserver = _issue(
        directory,
        ca_cert,
        ca_key,
        "apiserver",
        "kube-apiserver",
        serving_ips=("127.0.0.1", "10.96.0.1", *apiserver_ips),
        serving_names=_APISERVER_NAMES,
    )
    return Pki(
        ca=ca,
        apiserver=apiserver,
        service_account_key=sa_key,
        admin=client("admin", "infragenius-admin", ("system:masters",)),
        controller_manager=client("controller-manager", "system:kube-controller-manager"),
        scheduler=client("scheduler", "system:kube-scheduler"),
        kwok=client("kwok", "kwok", ("system:masters",)),
    )


def issue_from_ca(
    directory: Path,
    name: str,
    common_name: str,
    orgs: tuple[str, ...] = (),
    serving_ips: tuple[str, ...] | None = None,
) -> CertPair:
    """Issue one more certificate from the CA that ``generate`` wrote into ``directory``."""
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    return _issue(directory, ca_cert, ca_key, name, common_name, orgs, serving_ips)
