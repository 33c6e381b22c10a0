"""Demo data: account.json and the demo envelopes agree with each other and with the schema."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

from core.demo import (
    DEMO_ACCOUNT_PATH,
    DemoAccount,
    demo_envelope_files,
    load_demo_account,
)
from core.envelope_xml import check_field_name, parse_envelope_xml
from core.errors import InvalidInput
from core.service import Service

FIELD_TYPES = {"text", "number", "date", "boolean"}


@pytest.fixture(scope="module")
def account() -> DemoAccount:
    return load_demo_account()


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def test_account_shape(account: DemoAccount) -> None:
    assert account.name == "Nordwind Trading"
    assert [m.name for m in account.mailboxes] == ["Purchasing", "Accounts Payable", "Logistics"]
    assert [t.name for t in account.templates] == ["Purchase order", "Invoice"]
    for template in account.templates:
        assert [v.version for v in template.versions] == [1, 2]
        assert template.latest.version == 2


def test_all_uuids_are_canonical_and_distinct(account: DemoAccount) -> None:
    uuids = [account.uuid]
    uuids += [m.uuid for m in account.mailboxes]
    uuids += [p.uuid for p in account.partners]
    uuids += [t.uuid for t in account.templates]
    uuids += [parse_envelope_xml(p.read_bytes()).uuid or "" for p in demo_envelope_files()]
    assert all(is_uuid(u) for u in uuids), uuids
    assert len(set(uuids)) == len(uuids)


def test_template_fields_are_well_formed(account: DemoAccount) -> None:
    for template in account.templates:
        for version in template.versions:
            for document in version.documents:
                groups = document["fieldgroups"]
                for field in [*document["fields"], *(f for g in groups for f in g["fields"])]:
                    assert check_field_name(field["name"]) is None
                    assert field["type"] in FIELD_TYPES
                    assert isinstance(field["required"], bool)


def test_version_two_adds_fields(account: DemoAccount) -> None:
    for template in account.templates:
        v1, v2 = template.versions
        doc = v1.documents[0]["id"]
        assert v1.field_names(doc) < v2.field_names(doc)


@pytest.mark.parametrize("path", demo_envelope_files(), ids=lambda p: p.name)
def test_demo_envelope_matches_its_template(account: DemoAccount, path: Path) -> None:
    env = parse_envelope_xml(path.read_bytes())
    assert env.uuid is not None
    template = account.template(env.template_uuid)
    assert template is not None, f"{path.name}: unknown template"
    version = template.version(env.template_version)
    assert version is not None, f"{path.name}: unknown version"
    mailbox_uuids = {m.uuid for m in account.mailboxes}
    partner_uuids = {p.uuid for p in account.partners}
    assert env.role_mailbox("recipient") in mailbox_uuids
    assert env.role_mailbox("sender") in partner_uuids
    for document in env.documents:
        fields = version.field_names(document.id)
        assert fields, f"{path.name}: document {document.id} not in the template"
        assert {f.name for f in document.fields} <= fields
        required = {
            f["name"]
            for d in version.documents
            if d["id"] == document.id
            for f in d["fields"]
            if f["required"]
        }
        assert required <= {f.name for f in document.fields}, f"{path.name}: required missing"
        for group in document.fieldgroups:
            group_fields = version.fieldgroup_field_names(document.id, group.name)
            assert group_fields, f"{path.name}: fieldgroup {group.name} not in the template"
            assert [fs.index for fs in group.fieldsets] == list(range(len(group.fieldsets)))
            for fieldset in group.fieldsets:
                assert {f.name for f in fieldset.fields} <= group_fields


def test_demo_envelopes_are_spread_over_all_mailboxes(account: DemoAccount) -> None:
    files = demo_envelope_files()
    assert len(files) == 10
    assert files == sorted(files)
    assert [p.name[:3] for p in files] == [f"{n:02d}-" for n in range(1, 11)]
    recipients = Counter(
        parse_envelope_xml(p.read_bytes()).role_mailbox("recipient") for p in files
    )
    assert set(recipients) == {m.uuid for m in account.mailboxes}
    templates = {parse_envelope_xml(p.read_bytes()).template_uuid for p in files}
    assert templates == {t.uuid for t in account.templates}


def test_load_from_explicit_path(tmp_path: Path) -> None:
    copy = tmp_path / "account.json"
    copy.write_text(DEMO_ACCOUNT_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_demo_account(copy) == load_demo_account()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Demo data not found"):
        load_demo_account(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps({"account": {"uuid": "u", "name": "n"}}),
        json.dumps(
            {
                "account": {"uuid": "u", "name": "n"},
                "mailboxes": [],
                "templates": [{"uuid": "t", "name": "T", "versions": [{"version": 0}]}],
            }
        ),
    ],
    ids=["not-json", "not-object", "no-mailboxes", "bad-version"],
)
def test_damaged_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "account.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match="Demo data"):
        load_demo_account(path)


def roles_of_demo_files() -> dict[str, tuple[str | None, str | None]]:
    """Envelope uuid -> (recipient, sender) as the demo files name them."""
    roles = {}
    for path in demo_envelope_files():
        env = parse_envelope_xml(path.read_bytes())
        assert env.uuid is not None
        roles[env.uuid] = (env.role_mailbox("recipient"), env.role_mailbox("sender"))
    return roles


async def test_init_delivers_each_demo_envelope_to_the_mailbox_it_names_as_recipient(
    service: Service,
) -> None:
    """receive_envelope refuses an envelope whose recipient is another mailbox (defect 6):
    the demo must still load, each envelope in its own recipient's mailbox."""
    expected = await asyncio.to_thread(roles_of_demo_files)
    stored = {e.uuid: (e.mailbox_uuid, e.sender_mailbox) for e in await service.list_envelopes()}
    assert stored == expected
    assert all(e.recipient_mailbox == e.mailbox_uuid for e in await service.list_envelopes())
