"""Compliance exports: the incident register, statistics, the period report (PDF), NIS2/GDPR notification
drafts and STIX 2.1 bundles of an incident's indicators.

The layout keeps pure code at the centre and I/O at the edges:

- ``sources``: the only module that reads the store (incidents, playbook runs, comments, events);
- ``facts``, ``indicators``, ``register``, ``statistics``, ``notifications``, ``stix``: pure, from records to
  tables, models and bundles (``context`` is what every export says about itself);
- ``charts``, ``pdf``: rendering (matplotlib, fpdf2) of what the pure modules computed;
- ``redaction``, ``tlp``: what makes an export fit to leave the SOC;
- ``service``: one function per export that the API and the CLI both call, and that writes the audit record.
"""
