"""One mailbox's AS2 partnership as the sender and the receiver need it: our identity (id, key,
certificate), the partner's (id, certificate), and how messages go (the form's fields).

Read from the store in the caller's transaction (:func:`read_partnership`), then the key is
read in a thread (:func:`with_keys`): from its 0600 file on one host; on a shared store the
store holds it sealed, opened with the master key from the node's environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.as2.messages import OurIdentity, PartnerIdentity
from core.as2.outbound import SendOptions
from core.as2.sealed_keys import read_key, sealed_name
from core.models import As2Settings, TransferProtocol
from core.storage import accounts
from core.storage.connection import Tx
from core.storage.integrations import (
    get_as2_identity,
    get_integration,
    retired_as2_identities,
)
from core.storage.secrets import StoredSecret, get_secret
from core.validation import as2_id_from_name


@dataclass(frozen=True)
class Partnership:
    mailbox_uuid: str
    mailbox_name: str
    enabled: bool
    is_as2: bool
    settings: As2Settings
    key_path: str  # "" until the first Save with AS2 generated our identity
    certificate_pem: str
    private_key: bytes = b""  # filled by with_keys()
    # Renewed-away identities whose keys still decrypt, (key path, certificate) newest first;
    # their keys are filled by with_keys().
    retired: tuple[tuple[str, str], ...] = ()
    retired_keys: tuple[tuple[bytes, str], ...] = ()
    # On a shared store, the sealed keys these key paths name (core.as2.sealed_keys), by name.
    sealed: dict[str, StoredSecret] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Configured enough to exchange messages (the on/off switch aside)."""
        return self.is_as2 and bool(self.key_path and self.settings.partner_certificate)

    @property
    def us(self) -> OurIdentity:
        return OurIdentity(
            self.settings.self_id, self.private_key, certificate_pem=self.certificate_pem.encode()
        )

    @property
    def all_of_us(self) -> list[OurIdentity]:
        """Our current identity (it signs MDNs) and the retired ones (they still decrypt)."""
        retired = [
            OurIdentity(self.settings.self_id, key, certificate_pem=pem.encode())
            for key, pem in self.retired_keys
        ]
        return [self.us, *retired]

    @property
    def partner(self) -> PartnerIdentity:
        """Verifies with any of the partner's certificates (two while it rolls over)."""
        return PartnerIdentity(self.settings.partner_id, self.settings.partner_certificate.encode())

    @property
    def partner_to_encrypt_to(self) -> PartnerIdentity:
        """Messages are encrypted to the partner's newest valid certificate."""
        from core.as2.certificates import newest_valid

        pem = newest_valid(self.settings.partner_certificate)
        return PartnerIdentity(self.settings.partner_id, pem)

    def send_options(self, mdn_url: str) -> SendOptions:
        mode = self.settings.mdn_mode.value
        return SendOptions(
            encryption=self.settings.encryption,
            signing=self.settings.signing,
            compress=self.settings.compression,
            mdn_mode=mode,
            mdn_signed=self.settings.mdn_signed,
            mdn_url=mdn_url if mode == "async" else "",
        )


def read_partnership(conn: Tx, mailbox_uuid: str) -> Partnership | None:
    """The mailbox's partnership, or None when there is no such mailbox."""
    mailbox = accounts.get_mailbox(conn, mailbox_uuid)
    if mailbox is None:
        return None
    integration = get_integration(conn, mailbox_uuid)
    identity = get_as2_identity(conn, mailbox_uuid)
    settings = integration.form.as2
    if not settings.self_id:
        settings = replace(settings, self_id=as2_id_from_name(mailbox.name))
    retired = tuple(
        (old.key_path, old.certificate_pem) for old in retired_as2_identities(conn, mailbox_uuid)
    )
    key_path = identity.key_path if identity else ""
    sealed = {}
    for path in (key_path, *(old for old, _ in retired)):
        name = sealed_name(path)
        stored = get_secret(conn, name) if name else None
        if stored is not None:
            sealed[stored.name] = stored
    return Partnership(
        mailbox_uuid=mailbox_uuid,
        mailbox_name=mailbox.name,
        enabled=integration.enabled,
        is_as2=integration.saved and integration.form.protocol is TransferProtocol.AS2,
        settings=settings,
        key_path=key_path,
        certificate_pem=identity.certificate_pem if identity else "",
        retired=retired,
        sealed=sealed,
    )


def with_keys(partnership: Partnership) -> Partnership:
    """The partnership with our private keys read from their files (a retired key whose file
    is gone is left out). Blocking: run in a thread."""
    retired: list[tuple[bytes, str]] = []
    for key_path, pem in partnership.retired:
        try:
            retired.append((read_key(key_path, partnership.sealed), pem))
        except OSError:
            continue
    return replace(
        partnership,
        private_key=read_key(partnership.key_path, partnership.sealed),
        retired_keys=tuple(retired),
    )
