"""An incident's indicators of compromise as a STIX 2.1 bundle (stix2), for sharing with the national CSIRT.

The bundle holds: the agency as an ``identity``; one ``indicator`` per IP address, domain and file hash with a
STIX pattern; one ``attack-pattern`` per ATT&CK technique (referenced by its ATT&CK id); a ``report`` that
references them all and describes the incident; and the TLP 2.0 marking every object carries.

TLP 2.0 is not predefined in STIX 2.1 (its built-in markings are TLP 1.0: white/green/amber/red). The OASIS
CTI TC published TLP 2.0 marking definitions with fixed ids under the extension
``extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`` (oasis-open/cti-stix-common-objects,
extension-definition-specifications/tlp-2.0); they are used here verbatim so receivers recognize them.

Ids are UUIDv5 of the tenant, incident and value: exporting the same incident again gives the same ids
(with a later ``modified``), so a receiving platform updates its objects instead of duplicating them.
With redaction, internal IP addresses and domains that name the agency's own hosts are left out (they are
personal data and no use to others); the report's text is pseudonymized.
"""

from __future__ import annotations

import uuid

import stix2

from civicsoc.records import IncidentStatus
from reports.context import ExportContext
from reports.facts import IncidentCase
from reports.indicators import Ioc, incident_iocs
from reports.redaction import Redactor
from reports.tlp import Tlp

TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_IDS = {
    Tlp.clear: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.green: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.amber: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.amber_strict: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.red: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
NAMESPACE = uuid.UUID("1b2f6a38-5c1e-4e7a-9d2b-6a0c3f1e8d47")
"""civicsoc's UUIDv5 namespace for STIX ids."""
HASH_PROPERTY = {"md5": "MD5", "sha1": "'SHA-1'", "sha256": "'SHA-256'", "sha512": "'SHA-512'"}
MEDIA_TYPE = "application/stix+json;version=2.1"


def tlp_marking(tlp: Tlp) -> stix2.MarkingDefinition:
    """The OASIS TLP 2.0 marking definition of ``tlp``."""
    return stix2.MarkingDefinition(id=TLP2_IDS[tlp], created="2022-10-01T00:00:00.000Z", name=tlp.label,
                                   extensions={TLP2_EXTENSION: {"extension_type": "property-extension",
                                                                "tlp_2_0": tlp.value}})


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern(ioc: Ioc) -> str | None:
    """The STIX pattern matching ``ioc``; ``None`` for a hash of unknown algorithm."""
    if ioc.kind == "ipv4":
        return f"[ipv4-addr:value = {_literal(ioc.value)}]"
    if ioc.kind == "ipv6":
        return f"[ipv6-addr:value = {_literal(ioc.value)}]"
    if ioc.kind == "domain":
        return f"[domain-name:value = {_literal(ioc.value)}]"
    if ioc.kind == "imphash":
        return f"[file:extensions.'windows-pebinary-ext'.imphash = {_literal(ioc.value)}]"
    if ioc.kind in HASH_PROPERTY:
        return f"[file:hashes.{HASH_PROPERTY[ioc.kind]} = {_literal(ioc.value)}]"
    return None


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, chr(31).join(parts))}"


def shareable_iocs(case: IncidentCase, redactor: Redactor | None) -> tuple[list[Ioc], list[Ioc]]:
    """(indicators to share, indicators withheld): with redaction, those the redactor would change."""
    shared, withheld = [], []
    for ioc in incident_iocs(case.incident, case.events):
        (withheld if redactor is not None and _personal(ioc, redactor) else shared).append(ioc)
    return shared, withheld


def _personal(ioc: Ioc, redactor: Redactor) -> bool:
    if ioc.kind in ("ipv4", "ipv6"):
        return redactor.ip(ioc.value) != ioc.value
    if ioc.kind == "domain":
        return redactor.domain(ioc.value) != ioc.value
    return False


def incident_bundle(case: IncidentCase, context: ExportContext, redactor: Redactor | None = None) -> stix2.Bundle:
    incident, now = case.incident, context.generated_at
    marking = tlp_marking(context.tlp)
    common = {"object_marking_refs": [marking.id], "created": incident.created_at,
              "modified": max(now, incident.created_at)}
    identity = stix2.Identity(id=_id("identity", incident.tenant), name=case.tenant_name,
                              identity_class="organization", sectors=["government"], **common)
    title = redactor.text(incident.title) if redactor is not None else incident.title
    shared, withheld = shareable_iocs(case, redactor)
    indicator_types = ["unknown"] if incident.status == IncidentStatus.false_positive else ["malicious-activity"]
    indicators, unclassified = [], []
    for ioc in shared:
        stix_pattern = pattern(ioc)
        if stix_pattern is None:
            unclassified.append(ioc.value)
            continue
        indicators.append(stix2.Indicator(
            id=_id("indicator", incident.tenant, incident.id, ioc.kind, ioc.value), name=f"{ioc.kind} {ioc.value}",
            description=f"Observed in civicsoc incident {incident.id}: {title}", pattern=stix_pattern,
            pattern_type="stix", valid_from=incident.first_seen, indicator_types=indicator_types,
            created_by_ref=identity.id, **common))
    attack_patterns = [stix2.AttackPattern(
        id=_id("attack-pattern", technique), name=technique, created_by_ref=identity.id,
        external_references=[{"source_name": "mitre-attack", "external_id": technique,
                              "url": f"https://attack.mitre.org/techniques/{technique.replace('.', '/')}/"}],
        **common) for technique in incident.techniques]
    report = stix2.Report(
        id=_id("report", incident.tenant, incident.id), name=f"civicsoc incident {incident.id}: {title}",
        description=_report_text(case, title, len(withheld), unclassified), published=now,
        report_types=["threat-report"], created_by_ref=identity.id,
        object_refs=[identity.id, *(i.id for i in indicators), *(a.id for a in attack_patterns)],
        external_references=[{"source_name": "civicsoc", "external_id": incident.id}], **common)
    return stix2.Bundle(marking, identity, *indicators, *attack_patterns, report)


def _report_text(case: IncidentCase, title: str, withheld: int, unclassified: list[str]) -> str:
    incident = case.incident
    text = (f"{incident.severity.value.capitalize()} severity incident \"{title}\" at {case.tenant_name}, "
            f"status {incident.status.value}. First event {incident.first_seen:%Y-%m-%d %H:%M} UTC, last "
            f"{incident.last_seen:%Y-%m-%d %H:%M} UTC, detected {incident.created_at:%Y-%m-%d %H:%M} UTC. "
            f"{len(incident.hosts)} hosts and {len(incident.users)} user accounts affected. ATT&CK tactics: "
            f"{', '.join(incident.tactics) or 'none'}.")
    if withheld:
        text += f" {withheld} internal indicators (private IP addresses, internal host names) withheld."
    if unclassified:
        text += f" Hashes of unknown algorithm: {', '.join(unclassified)}."
    return text


def bundle_json(bundle: stix2.Bundle) -> bytes:
    return bundle.serialize(pretty=True).encode("utf-8")
