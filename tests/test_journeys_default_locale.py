"""A template's default_locale is never a silent en-US that contradicts the docs (docs/journeys.md,
Templates): unset, it is the only locale, or en-US when there are several, and then en-US must exist."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crmflow.journeys.schema import Template
from crmflow.journeys.templates import pick_locale

HI = {"subject": "Hi", "body": "Hello"}


def template(locales: list[str], **extra) -> Template:
    return Template.model_validate({"channel": "email", "locales": {loc: HI for loc in locales}, **extra})


def test_unset_default_is_the_only_locale():
    only_german = template(["de-DE"])
    assert only_german.default_locale == "de-DE"
    assert pick_locale(only_german, "ja-JP") == "de-DE"  # the bug: it looked for en-US and failed to load


def test_unset_default_with_several_locales_is_en_us():
    assert template(["zh-CN", "en-US"]).default_locale == "en-US"
    assert template(["zh-CN", "en-US"], default_locale="zh-CN").default_locale == "zh-CN"


@pytest.mark.parametrize(("locales", "extra", "message"), [
    (["de-DE", "fr-FR"], {}, "default_locale is not set, so it is en-US, which has no content in locales "
                             "(de-DE, fr-FR): set default_locale to one of them"),
    (["de-DE"], {"default_locale": "en-GB"}, "default_locale 'en-GB' has no content in locales (de-DE)"),
])
def test_a_default_without_content_is_one_clear_error(locales, extra, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        template(locales, **extra)
