"""Great Expectations Data Docs that show the data's values as text, never as markup.

GE writes an expectation's unexpected values and observed value into the validation page as raw
HTML: a ``lang`` value ``<img src=x onerror=...>`` in a quarantined file would run in the
browser of the operator reading its Data Docs. ``TextValuesValidationRenderer`` (configured for
the validation pages of xlir's Data Docs site in ``xlir.validation.suite.GxSession``) escapes
those values, in a copy of the results, before GE renders them. GE escapes the parameters it
renders itself (value sets, thresholds), so nothing is escaped twice.

Imported by Great Expectations when it builds Data Docs (and so only then).
"""

from __future__ import annotations

import copy
import html

from great_expectations.render.renderer import ValidationResultsPageRenderer

VALUE_FIELDS = (
    "partial_unexpected_list", "partial_unexpected_counts", "unexpected_list", "partial_unexpected_index_list",
    "unexpected_index_list", "observed_value", "details",
)
"""Fields of an expectation result that carry values from the data."""


def escape_values(value):
    """Every string in ``value`` (nested lists, dicts, tuples) HTML-escaped, dict keys too."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, dict):
        return {escape_values(k): escape_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(escape_values(v) for v in value)
    return value


class TextValuesValidationRenderer(ValidationResultsPageRenderer):
    """GE's validation page renderer, with the data's values HTML-escaped first."""

    def render(self, validation_results, *args, **kwargs):
        safe = copy.deepcopy(validation_results)
        for result in safe.results:
            if result.result:
                for name in VALUE_FIELDS:
                    if name in result.result:
                        result.result[name] = escape_values(result.result[name])
        return super().render(safe, *args, **kwargs)


__all__ = ["TextValuesValidationRenderer", "VALUE_FIELDS", "escape_values"]
