"""Processed Sigma rules → Lucene query strings that select exactly the events the stream matcher matches.

pySigma's ``LuceneBackend`` writes queries for Elastic's own index templates. On ours (``civicsoc.store.
mappings``) and measured against the stream matcher (``tests/test_detection_es_differential.py``) its
output differs in ways this subclass corrects, each at the level where Sigma's meaning is known:

* Case: Sigma strings compare case-insensitively, a plain ``keyword`` field does not. A string goes to
  the field's ``.caseless`` sub-field (every event field has one) in lower case (``str.lower``, as the
  matcher folds both sides); ``|cased`` values stay on the field itself (unless the mapping asked for
  ``.caseless``, which wins as in the matcher).
* Text of non-string fields: ``destination.ip: '127.*'``, ``DestinationPort|endswith: '45'`` compare the
  value's text in the matcher; ``.caseless`` holds that text for ip, number and date fields too.
* Regular expressions: translated by ``detection.lucene_regex`` (search semantics, Python's classes,
  Lucene's operators escaped), on the field itself — the matcher applies them to the value as written.
* ``|cidr`` on a text field (Windows' ``IpAddress`` keeps ``-``): the ``.ip`` sub-field of
  ``mappings.ADDRESS_TEXT_FIELDS``; on any other text field it is not expressible.
* Keywords (values without a field): one wildcard on ``mappings.KEYWORDS_FIELD`` instead of one on each
  of the index's thousand fields (measured: 40-60 s for one SigmaHQ keyword rule on 5,000 events, or the
  request circuit breaker trips).

What cannot be expressed raises ``SigmaFeatureNotSupportedByBackendError``; ``detection.eshunt`` then
runs that rule with the stream matcher over the same events. So does a query with more than
``MAX_SUBSTRING_PATTERNS`` leading-wildcard patterns: Elasticsearch builds an automaton for each, and
SigmaHQ's hash lists (4,400 ``*MD5=…*`` values in one rule) exceed the request circuit breaker.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from sigma.backends.elasticsearch import LuceneBackend
from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR, ConditionValueExpression
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from civicsoc.store.mappings import ADDRESS_SUBFIELD, ADDRESS_TEXT_FIELDS, CASELESS, ECS_TYPES, KEYWORDS_FIELD
from detection.lucene_regex import lucene_regex
from detection.pipelines import strip_caseless

MAX_SUBSTRING_PATTERNS = 2000
"""Measured on a 1 GB-heap node: a query with 4,432 ``*…*`` patterns fails on the request circuit breaker
after a minute, the next largest in SigmaHQ (1,093) runs in about 4 s."""

SUBSTRING_PATTERNS = "civicsoc_substring_patterns"
"""Where the conversion state counts a query's leading-wildcard patterns."""

REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}
"""Sigma's ``|re`` flags as the stream matcher compiles them (``detection.matcher``)."""


def caseless_field(field: str) -> str:
    """The sub-field holding a field's text in lower case."""
    base, _ = strip_caseless(field)
    return f"{base}.{CASELESS}"


def address_field(field: str) -> str | None:
    """Where ``|cidr`` can run for a field: the field itself if it is an ``ip``, its ``.ip`` sub-field if it
    is one of Windows' textual address fields, else ``None``."""
    base, _ = strip_caseless(field)
    if ECS_TYPES.get(base) == "ip":
        return base
    if base in ADDRESS_TEXT_FIELDS:
        return f"{base}.{ADDRESS_SUBFIELD}"
    return None


class CivicsocLuceneBackend(LuceneBackend):
    """``LuceneBackend`` for ``Rule.sigma`` (already processed: its own pipeline stays empty) on the
    civicsoc event index template."""

    name: ClassVar[str] = "civicsoc Elasticsearch Lucene"

    def convert_value_str(self, s: SigmaString, state: ConversionState) -> str:
        if s.startswith(SpecialChars.WILDCARD_MULTI):
            counts = state.processing_state
            assert isinstance(counts, dict)
            counts[SUBSTRING_PATTERNS] = counts.get(SUBSTRING_PATTERNS, 0) + 1
        return super().convert_value_str(s, state)

    def finish_query(self, rule: SigmaRule, query: Any, state: ConversionState) -> Any:
        patterns = state.processing_state.get(SUBSTRING_PATTERNS, 0)
        if patterns > MAX_SUBSTRING_PATTERNS:
            raise SigmaFeatureNotSupportedByBackendError(
                f"{patterns} leading-wildcard patterns in one query: over {MAX_SUBSTRING_PATTERNS}, Elasticsearch's "
                "request circuit breaker refuses the automata")
        return super().finish_query(rule, query, state)

    # --- plain strings: the .caseless sub-field, lower-cased -------------------------------------------

    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> Any:
        return super().convert_condition_field_eq_val_str(self._caseless(cond), state)

    def convert_condition_field_eq_val_str_case_sensitive(self, cond: ConditionFieldEqualsValueExpression,
                                                          state: ConversionState) -> Any:
        if strip_caseless(cond.field)[1]:  # the mapping's .caseless wins over |cased, as in the matcher
            return self.convert_condition_field_eq_val_str(cond, state)
        value = cond.value
        assert isinstance(value, SigmaString)
        plain = SigmaString()  # the same characters and wildcards, without the cased marker
        plain.s = list(value.s)
        return super().convert_condition_field_eq_val_str(_with(cond, cond.field, plain), state)

    def _caseless(self, cond: ConditionFieldEqualsValueExpression) -> ConditionFieldEqualsValueExpression:
        value = cond.value
        assert isinstance(value, SigmaString)
        return _with(cond, caseless_field(cond.field), value.lower())

    def decide_convert_condition_as_in_expression(self, cond: ConditionOR | ConditionAND,
                                                  state: ConversionState) -> bool:
        """``field:(a OR b)`` only for values that all go to the same (sub-)field the same way."""
        if not super().decide_convert_condition_as_in_expression(cond, state):
            return False
        values = [arg.value for arg in cond.args]  # type: ignore[union-attr]
        strings = all(isinstance(value, SigmaString) and not isinstance(value, SigmaCasedString)
                      for value in values)
        return strings or all(isinstance(value, SigmaNumber) for value in values)

    def convert_condition_as_in_expression(self, cond: ConditionOR | ConditionAND, state: ConversionState) -> Any:
        args = [arg for arg in cond.args if isinstance(arg, ConditionFieldEqualsValueExpression)]
        if args and isinstance(args[0].value, SigmaString):
            cond = type(cond)([self._caseless(arg) for arg in args], cond.source)
        else:
            cond = type(cond)([_with(arg, strip_caseless(arg.field)[0], arg.value) for arg in args], cond.source)
        return super().convert_condition_as_in_expression(cond, state)

    def convert_condition_field_eq_expansion(self, cond: ConditionFieldEqualsValueExpression,
                                             state: ConversionState) -> Any:
        """As ``LuceneBackend``'s, which converts the original condition instead of the OR it built when no
        value list applies."""
        expanded = ConditionOR([ConditionFieldEqualsValueExpression(cond.field, value)
                                for value in cond.value.values], cond.source)
        if self.decide_convert_condition_as_in_expression(expanded, state):
            return self.convert_condition_as_in_expression(expanded, state)
        return self.convert_condition_or(expanded, state)

    # --- values that are not strings: on the field itself ---------------------------------------------

    def convert_condition_field_eq_val_num(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> Any:
        assert isinstance(cond.value, SigmaNumber)
        if cond.value.number < 0:  # quoted: a leading - reads as "must not" in a query string
            return f'{self.escape_and_quote_field(strip_caseless(cond.field)[0])}:"{cond.value.number}"'
        return super().convert_condition_field_eq_val_num(_on_base(cond), state)

    def convert_condition_field_eq_val_bool(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> Any:
        return super().convert_condition_field_eq_val_bool(_on_base(cond), state)

    def convert_condition_field_eq_val_null(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> Any:
        return super().convert_condition_field_eq_val_null(_on_base(cond), state)

    def convert_condition_field_eq_val_exists(self, cond: ConditionFieldEqualsValueExpression,
                                              state: ConversionState) -> Any:
        return super().convert_condition_field_eq_val_exists(_on_base(cond), state)

    def convert_condition_field_compare_op_val(self, cond: ConditionFieldEqualsValueExpression,
                                               state: ConversionState) -> Any:
        return super().convert_condition_field_compare_op_val(_on_base(cond), state)

    def convert_condition_field_eq_val_timestamp_part(self, cond: ConditionFieldEqualsValueExpression,
                                                      state: ConversionState) -> Any:
        raise SigmaFeatureNotSupportedByBackendError("Lucene queries cannot read a part of a timestamp")

    def convert_condition_field_eq_val_re(self, cond: ConditionFieldEqualsValueExpression,
                                          state: ConversionState) -> Any:
        value = cond.value
        assert isinstance(value, SigmaRegularExpression)
        flags = 0
        for flag in value.flags:
            flags |= REGEX_FLAGS[flag]
        field = strip_caseless(cond.field)[0]
        return f"{self.escape_and_quote_field(field)}:/{lucene_regex(str(value.regexp), flags)}/"

    def convert_condition_field_eq_val_cidr(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> Any:
        target = address_field(cond.field)
        if target is None:
            raise SigmaFeatureNotSupportedByBackendError(
                f"|cidr on {cond.field}: the field is not an address field of the index template")
        assert isinstance(cond.value, SigmaCIDRExpression)
        return super().convert_condition_field_eq_val_cidr(_with(cond, target, cond.value), state)

    # --- keywords: the field every value is copied to -------------------------------------------------

    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        value = cond.value
        if isinstance(value, SigmaCasedString):
            raise SigmaFeatureNotSupportedByBackendError("a |cased keyword: the keyword field is lower-cased")
        assert isinstance(value, SigmaString)
        # TextQueryBackend's conversion, as LuceneBackend's own keywords: a phrase cannot take wildcards
        converted = TextQueryBackend.convert_value_str(self, value.lower(), state)
        counts = state.processing_state
        assert isinstance(counts, dict)
        counts[SUBSTRING_PATTERNS] = counts.get(SUBSTRING_PATTERNS, 0) + 1
        return f"{self.escape_and_quote_field(KEYWORDS_FIELD)}:*{converted}*"

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        return self.convert_condition_val_str(ConditionValueExpression(SigmaString(str(cond.value.number))), state)

    def convert_condition_val_re(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        raise SigmaFeatureNotSupportedByBackendError(
            "a regular expression without a field: the keyword field is lower-cased")


def _with(cond: ConditionFieldEqualsValueExpression, field: str, value: Any) -> ConditionFieldEqualsValueExpression:
    """A copy of a leaf with another field or value (pySigma's conversion reads only these two)."""
    copy = ConditionFieldEqualsValueExpression(field, value)
    copy.parent = cond.parent
    return copy


def _on_base(cond: ConditionFieldEqualsValueExpression) -> ConditionFieldEqualsValueExpression:
    return _with(cond, strip_caseless(cond.field)[0], cond.value)


def civicsoc_backend() -> CivicsocLuceneBackend:
    """A backend for ``Rule.sigma`` (already processed by ``civicsoc_pipeline``: its own pipeline is empty
    so nothing is mapped twice). ``backend.convert_rule(rule.sigma)`` gives the query strings."""
    return CivicsocLuceneBackend(processing_pipeline=ProcessingPipeline())
