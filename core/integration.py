"""The integration form's rules: what each field accepts, checked all at once.

Shared by Save in the TUI and ``docbridge integration set`` so both report the same message for
the same mistake, one per field.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace

from core.clock import utc_now
from core.errors import InvalidInput
from core.models import (
    ENCRYPTION_ALGORITHMS,
    SIGNING_ALGORITHMS,
    As2Settings,
    DefaultRule,
    IntegrationForm,
    MdnMode,
    TransferProtocol,
)
from core.validation import check_as2_id, check_email, check_reject_reason, check_url

# Field names as the form, the CLI and error messages know them.
PROTOCOL = "protocol"
NOTIFY_EMAIL = "notify_email"
DEFAULT_RULE = "default_rule"
REJECT_REASON = "reject_reason"
AS2_FIELDS = (
    "self_id",
    "partner_url",
    "partner_certificate",
    "partner_id",
    "partner_email",
    "encryption",
    "signing",
    "mdn_mode",
    "mdn_signed",
    "compression",
    "partner_tls_certificate",
)


AS2_TEXT_FIELDS = (*AS2_FIELDS[:7], "partner_tls_certificate")


def validate_integration_form(form: IntegrationForm) -> dict[str, str]:
    """Every problem of the form, keyed by field; empty when it can be saved."""
    errors: dict[str, str] = {}
    if form.notify_email or form.default_rule is DefaultRule.NOTIFY:
        message = check_email(form.notify_email)
        if message and not form.notify_email:
            message = "Enter the email address that default rule 2 sends notifications to."
        if message:
            errors[NOTIFY_EMAIL] = message
    if form.default_rule is DefaultRule.REJECT:
        message = check_reject_reason(form.reject_reason)
        if message:
            errors[REJECT_REASON] = message
    if form.protocol is TransferProtocol.AS2:
        errors.update(validate_as2_settings(form.as2))
    return errors


def validate_as2_settings(as2: As2Settings) -> dict[str, str]:
    errors: dict[str, str] = {}
    checks = {
        "as2.self_id": check_as2_id(as2.self_id, "Self ID"),
        "as2.partner_url": check_url(as2.partner_url, "Recipient URL"),
        "as2.partner_id": check_as2_id(as2.partner_id, "Recipient ID"),
        "as2.partner_email": check_email(as2.partner_email) if as2.partner_email else None,
    }
    errors.update({field: message for field, message in checks.items() if message})
    if not as2.partner_certificate.strip():
        errors["as2.partner_certificate"] = (
            "Paste the recipient's certificate (PEM) or give the path of its PEM file."
        )
    else:
        problem = certificate_problem(as2.partner_certificate, utc_now()[:10])
        if problem:
            errors["as2.partner_certificate"] = problem
    if as2.partner_tls_certificate.strip():
        if not as2.partner_url.lower().startswith("https://"):
            errors["as2.partner_tls_certificate"] = (
                "A TLS certificate applies to an https:// Recipient URL only: change the URL "
                "or remove the certificate."
            )
        else:
            problem = certificate_problem(as2.partner_tls_certificate, utc_now()[:10])
            if problem:
                errors["as2.partner_tls_certificate"] = problem
    if as2.encryption not in ENCRYPTION_ALGORITHMS:
        errors["as2.encryption"] = f"Choose one of: {', '.join(ENCRYPTION_ALGORITHMS)}."
    if as2.signing not in SIGNING_ALGORITHMS:
        errors["as2.signing"] = f"Choose one of: {', '.join(SIGNING_ALGORITHMS)}."
    return errors


def apply_changes(
    base: IntegrationForm, changes: Mapping[str, str | bool]
) -> tuple[IntegrationForm, dict[str, str]]:
    """Apply text values (as typed on a command line) to a form.

    Returns the new form and the errors of values that could not even be read (an unknown
    protocol, say); the caller still validates the resulting form for the rest.
    """
    errors: dict[str, str] = {}
    form = base
    as2 = base.as2
    for key, value in changes.items():
        if key == PROTOCOL:
            try:
                form = replace(form, protocol=TransferProtocol(str(value).lower()))
            except ValueError:
                errors[PROTOCOL] = f"Unknown protocol '{value}': use sftp or as2."
        elif key == DEFAULT_RULE:
            try:
                form = replace(form, default_rule=DefaultRule(str(value).lower()))
            except ValueError:
                errors[DEFAULT_RULE] = (
                    f"Unknown default rule '{value}': use copy, notify or reject."
                )
        elif key == NOTIFY_EMAIL:
            form = replace(form, notify_email=str(value).strip())
        elif key == REJECT_REASON:
            form = replace(form, reject_reason=str(value))
        elif key == "as2.mdn_mode":
            try:
                as2 = replace(as2, mdn_mode=MdnMode(str(value).lower()))
            except ValueError:
                errors[key] = f"Unknown MDN mode '{value}': use sync, async or none."
        elif key == "as2.mdn_signed":
            as2 = replace(as2, mdn_signed=bool(value))
        elif key == "as2.compression":
            as2 = replace(as2, compression=bool(value))
        elif key.startswith("as2.") and key[4:] in AS2_TEXT_FIELDS:
            as2 = replace(as2, **{key[4:]: str(value).strip()})  # type: ignore[arg-type]
        else:
            errors[key] = f"Unknown setting '{key}'."
    return replace(form, as2=as2), errors


def changed_fields(old: IntegrationForm, new: IntegrationForm) -> list[str]:
    """Names (never values) of the fields Save changes, for the audit log."""
    names = [
        name
        for name in (PROTOCOL, NOTIFY_EMAIL, DEFAULT_RULE, REJECT_REASON)
        if getattr(old, name) != getattr(new, name)
    ]
    names += [f"as2.{n}" for n in AS2_FIELDS if getattr(old.as2, n) != getattr(new.as2, n)]
    return names


@functools.lru_cache(maxsize=16)
def certificate_problem(pem: str, day: str) -> str | None:
    """Why the certificate cannot be used (None: it can). The form is checked on every key
    typed, so a certificate is parsed once, not per key; ``day`` makes expiry count again daily."""
    from core.as2.certificates import inspect_certificates  # cryptography: on demand

    try:
        # Two while the partner rolls its certificate over: each must be usable.
        inspect_certificates(pem)
    except InvalidInput as exc:
        return str(exc)
    return None
