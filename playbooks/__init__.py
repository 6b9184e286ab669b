"""Response playbooks: versioned YAML in ``playbooks/library`` (and an agency's own folders), matched to
incidents by ATT&CK technique, tactic, rule and tag, with regulatory clocks (NIS2 Art. 23, GDPR Art. 33).

Modules: ``model`` (the values), ``loader`` (files → a validated ``PlaybookLibrary``), ``matching`` and
``clocks`` (pure), ``service`` (runs in the store, audited).
"""
