"""A mailbox only ever speaks as itself (issue 8, defect 6): the role checks every way in
shares (core/envelope_checks.py)."""

from __future__ import annotations

import pytest

from core.envelope_checks import check_recipient_is, check_sender_is
from core.envelope_xml import parse_envelope_xml
from core.errors import InvalidInput
from tests.engine.test_customer_files import ACME, PURCHASING, outgoing_xml

# outgoing_xml(PURCHASING): sender Purchasing, recipient Acme.
ORDER = parse_envelope_xml(outgoing_xml(PURCHASING))


def test_the_sender_role_must_name_the_sending_mailbox() -> None:
    check_sender_is(ORDER, PURCHASING)
    check_sender_is(ORDER, PURCHASING.upper())  # a uuid in either case
    with pytest.raises(InvalidInput, match=f"not sent by mailbox {ACME}.*sender={PURCHASING}"):
        check_sender_is(ORDER, ACME)  # Acme is in the envelope, as recipient only


def test_the_recipient_role_must_name_the_receiving_mailbox() -> None:
    check_recipient_is(ORDER, ACME)
    with pytest.raises(InvalidInput, match=f"not addressed to mailbox {PURCHASING}"):
        check_recipient_is(ORDER, PURCHASING)  # Purchasing is the sender


def test_an_envelope_without_the_role_is_refused_and_the_hint_shows_the_role() -> None:
    no_roles = parse_envelope_xml(
        outgoing_xml(PURCHASING).replace(b'role id="sender"', b'role id="author"')
    )
    with pytest.raises(InvalidInput) as refused:
        check_sender_is(no_roles, PURCHASING)
    assert f'<role id="sender" mailboxUuid="{PURCHASING}"/>' in str(refused.value)
    assert f"author={PURCHASING}" in str(refused.value)
