"""The AS2 (RFC 4130) CMS hot path on ``cryptography``: build and parse AS2 messages, fast.

Byte-compatible with pyas2lib (which stays the interop oracle, see :mod:`core.as2.messages`):
the same MIME structure, the same CMS structures (signed attributes, S/MIME capabilities,
enveloped data with RSA PKCS#1 v1.5 key transport), the same MIC (RFC 4130 §7.3.1) and the same
dispositions (RFC 4130 §7.5.3) with the same reasons. What differs on purpose:

* Every payload travels with ``Content-Transfer-Encoding: binary`` (pyas2lib does so only for
  ``application/octet-stream`` and rewrites the line ends of other types): payloads of any type
  arrive byte-identical.
* Signatures are checked over the signed part exactly as received first (RFC 1847), then over
  pyas2lib's re-serialised form; a message either accepts verifies with the same digest, so
  the MIC is the same.
* Several partner certificates (rollover) and several of our keys (old and new) are accepted.
* A large payload is held about twice (input and output), not several times: CMS structures
  are read and written by offset, digests are computed over the parts in place, and content is
  encrypted and decrypted straight into the buffer that becomes the result. (Compressed
  content is the exception: it is decompressed in memory, bounded by ``max_decompressed``.)

Every function in this package is blocking and pure (no I/O; parsed keys and certificates are
cached by their bytes): callers on an event loop run them in a thread.

The package, one job a module:

* :mod:`~core.as2.cms.build` — :func:`build_message`: layers, MIC and AS2 headers of a message.
* :mod:`~core.as2.cms.parse` — :func:`parse_message`: peels the layers, decides the disposition.
* :mod:`~core.as2.cms.mdn` — the MDN answering an inbound message, signed or not.
* :mod:`~core.as2.cms.signature` — CMS SignedData: signing and multipart/signed verification.
* :mod:`~core.as2.cms.envelope` — CMS EnvelopedData: encryption and decryption.
* :mod:`~core.as2.cms.compression` — CMS CompressedData: zlib, bounded decompression.
* :mod:`~core.as2.cms.mime` — MIME entities located by offset; MIME and AS2 header values.
* :mod:`~core.as2.cms.keys` — our keys and partners' certificates, loaded and cached.
* :mod:`~core.as2.cms.algorithms` — the digests and ciphers, by AS2 name.
* :mod:`~core.as2.cms.asn1` — hand-written DER and offset-based DER/BER reading.
* :mod:`~core.as2.cms.buffer` — the in-place result buffer large payloads go through.
* :mod:`~core.as2.cms.outcome` — an inbound message's layers, MIC and failure.
"""

from core.as2.cms.algorithms import DIGESTS, ENCRYPTIONS
from core.as2.cms.build import BuiltMessage, build_message
from core.as2.cms.keys import OwnConfigurationError
from core.as2.cms.parse import parse_message

__all__ = [
    "DIGESTS",
    "ENCRYPTIONS",
    "BuiltMessage",
    "OwnConfigurationError",
    "build_message",
    "parse_message",
]
