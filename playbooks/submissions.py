"""Regulatory submissions: the record that a report went to an authority, and what exactly was sent.

NIS2 Art. 23 and GDPR Art. 33 are met by *sending* a report in time; an auditor later asks when it was
sent, by whom, to whom and what it said. A submission keeps the time, the author, the recipient, the
authority's reference and the SHA-256 of the bytes sent (computed here when the file itself is given,
so the hash is not just the author's word). The content is not stored: reports may hold personal data,
and the agency's records system keeps the document; the hash proves which document it was.

The first submission per clock stops that clock (``playbooks.clocks.submissions_from_records``); later
ones (a corrected notification) are kept and shown but do not move the deadline's outcome.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from civicsoc import audit
from civicsoc.event import format_timestamp
from civicsoc.records import Incident, Submission, utcnow
from civicsoc.store import Scope, Store
from civicsoc.triage import of_incident
from playbooks.clocks import regulatory_deadlines
from playbooks.model import Clock, PlaybookError
from playbooks.service import regulatory_flags

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a reported send time may lie (clocks of the author's machine drift)."""


class SubmissionError(PlaybookError):
    """A submission that does not fit the incident: a clock that has not started, a hash that does not
    match the content, a send time in the future."""


def running_clocks(store: Store, incident: Incident, now: datetime) -> list[Clock]:
    """The regulatory clocks that have started for ``incident`` under its tenant's regime."""
    flags = regulatory_flags(store, incident, runs=(), playbooks=(), submissions=())
    return [Clock(deadline.key) for deadline in regulatory_deadlines(incident, flags, now)]


def content_digest(content: bytes | None, sha256: str | None) -> tuple[str, int | None]:
    """The SHA-256 to record (and the size when the content is known); a given hash must match the content."""
    if content is None and not sha256:
        raise SubmissionError("a submission needs the content that was sent or its sha256")
    computed = hashlib.sha256(content).hexdigest() if content is not None else None
    given = sha256.strip().lower() if sha256 else None
    if computed and given and computed != given:
        raise SubmissionError(f"sha256 {given} does not match the content sent (its sha256 is {computed})")
    if computed is not None:
        return computed, len(content or b"")
    return str(given), None


def record_submission(store: Store, scope: Scope, incident_id: str, clock: Clock | str, *, actor: str,
                      content: bytes | None = None, sha256: str | None = None,
                      submitted_at: datetime | None = None, filename: str = "", recipient: str = "",
                      reference: str = "", note: str = "", now: datetime | None = None) -> Submission:
    """Record that the report for ``clock`` was sent; audited. ``NotFound`` outside ``scope``."""
    now = now or utcnow()
    incident = store.incidents.get(scope, incident_id).record
    try:
        clock = Clock(clock)
    except ValueError:
        raise SubmissionError(f"clock {clock!r}: expected one of {', '.join(c.value for c in Clock)}") from None
    running = running_clocks(store, incident, now)
    if clock not in running:
        started = ", ".join(c.value for c in running) or "none (confirm the incident significant and set its " \
                                                          "NIS2/GDPR flags first)"
        raise SubmissionError(f"incident {incident_id}: the {clock.value} clock has not started; running: {started}")
    sent = submitted_at or now
    if sent.tzinfo is None:
        raise SubmissionError(f"submitted_at {sent.isoformat()}: give a time zone (stored in UTC)")
    if sent > now + CLOCK_SKEW:
        raise SubmissionError(f"submitted_at {format_timestamp(sent)} is in the future")
    digest, size = content_digest(content, sha256)
    submission = Submission(
        id=f"sub-{uuid.uuid4().hex}", tenant=incident.tenant, incident_id=incident.id, clock=clock.value,
        submitted_at=sent, author=actor, sha256=digest, size=size, filename=filename, recipient=recipient,
        reference=reference, note=note, recorded_at=now)
    store.records(Submission).create(scope, submission)
    audit.append(store, tenant=incident.tenant, actor=actor, action="incident.submission",
                 target=f"incidents/{incident.id}",
                 after={"submission": submission.id, "clock": clock.value, "submitted_at": format_timestamp(sent),
                        "sha256": digest, "size": size, "recipient": recipient, "reference": reference})
    return submission


def list_submissions(store: Store, scope: Scope, incident_id: str) -> list[Submission]:
    """An incident's submissions, oldest send time first."""
    read = of_incident(Submission, incident_id)
    return [item.record for item in store.records(Submission).list(scope, read.query).items]
