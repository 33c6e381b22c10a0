"""Conversion rule forms: what each field accepts, and the name a clone gets."""

from __future__ import annotations

import re

from core.models import Direction, RuleForm, Template
from core.naming import NamingPatternError, parse_naming_pattern

NAME_MAX = 200


def validate_rule_form(form: RuleForm, template: Template | None) -> dict[str, str]:
    """Every problem of a rule form, keyed by field; ``template`` is the one it names, if any."""
    errors: dict[str, str] = {}
    name = form.name.strip()
    if not name:
        errors["name"] = "Give the rule a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"A rule name has at most {NAME_MAX} characters (it has {len(name)})."
    if template is None:
        errors["template_uuid"] = "Choose a template of this account."
    elif form.template_version is not None and form.template_version not in template.versions:
        versions = ", ".join(str(v) for v in template.versions)
        errors["template_version"] = (
            f"Template '{template.name}' has no version {form.template_version} "
            f"(versions: {versions})."
        )
    if form.direction is Direction.OUT:
        if not form.match_pattern:
            errors["match_pattern"] = "Enter a regular expression that matches the files."
        else:
            try:
                re.compile(form.match_pattern)
            except re.error as exc:
                errors["match_pattern"] = f"Not a valid regular expression: {exc}."
    else:
        try:
            parse_naming_pattern(form.naming_pattern)
        except NamingPatternError as exc:
            errors["naming_pattern"] = str(exc)
    if not form.conversion_map.strip():
        errors["conversion_map"] = "Write the conversion map (XSLT) that converts the files."
    else:
        message = check_stylesheet(form.conversion_map)
        if message:
            errors["conversion_map"] = message
    return errors


def check_stylesheet(text: str) -> str | None:
    """Well-formed XSLT, parsed as untrusted XML (no entities, no network)."""
    from lxml import etree  # only when a map is checked: opening the page does not need it

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(text.encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        return f"The conversion map is not well-formed XML: {exc}."
    doctype: str = root.getroottree().docinfo.doctype  # type: ignore[union-attr]
    if doctype:
        return "The conversion map must not contain a DOCTYPE."
    namespace = etree.QName(root).namespace
    if namespace != "http://www.w3.org/1999/XSL/Transform":
        return "The conversion map must be an XSLT stylesheet (xsl:stylesheet or xsl:transform)."
    return None


def clone_name(name: str, taken: set[str]) -> str:
    """'<name> (copy)', then '<name> (copy 2)', ... whichever is free."""
    candidate = f"{name} (copy)"
    counter = 2
    while candidate in taken:
        candidate = f"{name} (copy {counter})"
        counter += 1
    return candidate
