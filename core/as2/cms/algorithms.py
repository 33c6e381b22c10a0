"""The digests and content ciphers AS2 messages may use, by the names AS2 and pyas2lib use.

One table each maps a name to what ``cryptography`` needs (a hash class; a cipher's OID, key
size and block size), so that building, signing, verifying and decrypting agree on which
algorithms exist.
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import CipherAlgorithm, algorithms

from core.as2.cms.asn1 import der_oid

DIGESTS = ("sha1", "sha224", "sha256", "sha384", "sha512")


ENCRYPTIONS = ("tripledes_192_cbc", "aes_128_cbc", "aes_192_cbc", "aes_256_cbc")


HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


# name -> (OID, key bytes, block size)
CIPHERS = {
    "tripledes_192_cbc": (der_oid("1.2.840.113549.3.7"), 24, 8),
    "aes_128_cbc": (der_oid("2.16.840.1.101.3.4.1.2"), 16, 16),
    "aes_192_cbc": (der_oid("2.16.840.1.101.3.4.1.22"), 24, 16),
    "aes_256_cbc": (der_oid("2.16.840.1.101.3.4.1.42"), 32, 16),
}


def cipher(name: str, key: bytes) -> CipherAlgorithm:
    return TripleDES(key) if name.startswith("tripledes") else algorithms.AES(key)


def normalize_digest_name(name: str) -> str:
    return name.strip().lower().replace("-", "")
