"""Conversion rules as JSON (SPEC §7, export and import): one object with the keys ``name``,
``enabled``, ``direction`` ("in"/"out"), ``template_uuid``, ``template_version`` (null: the
latest), ``match_pattern``, ``match_source`` ("name"/"content"), ``naming_pattern``,
``multiple_envelopes`` and ``conversion_map``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import FieldErrors
from core.models import Direction, MatchTarget, RuleForm

KEYS = (
    "name",
    "enabled",
    "direction",
    "template_uuid",
    "template_version",
    "match_pattern",
    "match_source",
    "naming_pattern",
    "multiple_envelopes",
    "conversion_map",
)
_REQUIRED = ("name", "direction", "template_uuid", "conversion_map")


def form_to_json(form: RuleForm) -> dict[str, Any]:
    """The rule as JSON; what its direction does not use is left empty (a form keeps the
    other direction's fields while the user switches back and forth)."""
    out = form.direction is Direction.OUT
    return {
        "name": form.name,
        "enabled": form.enabled,
        "direction": form.direction.value.lower(),
        "template_uuid": form.template_uuid,
        "template_version": form.template_version,
        "match_pattern": form.match_pattern if out else "",
        "match_source": form.match_target.value.lower() if out else "name",
        "naming_pattern": "" if out else form.naming_pattern,
        "multiple_envelopes": form.multiple_envelopes and out,
        "conversion_map": form.conversion_map,
    }


def form_from_json(data: Mapping[str, Any]) -> RuleForm:
    """The form a rule JSON object describes; FieldErrors names every bad or missing key."""
    if not isinstance(data, Mapping):
        raise FieldErrors({"rule": "A rule is one JSON object, e.g. from 'docbridge rule export'."})
    errors: dict[str, str] = {}
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        errors["rule"] = f"Unknown keys: {', '.join(unknown)} (known: {', '.join(KEYS)})."
    for key in _REQUIRED:
        if key not in data:
            errors[key] = "Missing."

    def text(key: str) -> str:
        value = data.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            errors[key] = f"Must be a string, not {value!r}."
            return ""
        return value

    def flag(key: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            errors[key] = f"Must be true or false, not {value!r}."
            return False
        return value

    direction = _choice(data, "direction", {"in": Direction.IN, "out": Direction.OUT}, errors)
    target = _choice(
        data,
        "match_source",
        {"name": MatchTarget.NAME, "content": MatchTarget.CONTENT},
        errors,
        default="name",
    )
    version = data.get("template_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        errors["template_version"] = f"Must be a version number or null, not {version!r}."
        version = None
    form = RuleForm(
        name=text("name"),
        enabled=flag("enabled"),
        direction=direction or Direction.OUT,
        template_uuid=text("template_uuid").lower(),
        template_version=version,
        match_pattern=text("match_pattern"),
        match_target=target or MatchTarget.NAME,
        naming_pattern=text("naming_pattern"),
        multiple_envelopes=flag("multiple_envelopes"),
        conversion_map=text("conversion_map"),
    )
    if errors:
        raise FieldErrors(errors)
    return form


def _choice(
    data: Mapping[str, Any],
    key: str,
    options: Mapping[str, Any],
    errors: dict[str, str],
    default: str | None = None,
) -> Any:
    value = data.get(key, default)
    if isinstance(value, str) and value.lower() in options:
        return options[value.lower()]
    if key in data or default is None:
        errors[key] = f"Must be one of {', '.join(repr(o) for o in options)}, not {value!r}."
    return None
