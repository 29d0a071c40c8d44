"""Message templates: Jinja2 with StrictUndefined, per-locale content with a default-locale fallback,
SMS length/encoding checks.

Rendering is per message and happens only for the messages a dispatch actually sends (bounded by
batches and caps), never for a whole audience.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property, lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from crmflow.journeys.recommendations import SAMPLE_RECOMMENDATIONS
from crmflow.journeys.schema import Template

# GSM 03.38 basic character set; the extension set costs two septets per character.
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsInfo:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def sms_info(text: str) -> SmsInfo:
    """Encoding and segment count of an SMS (single 160/70, concatenated 153/67 per segment)."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // multi)
    return SmsInfo(encoding=encoding, units=units, segments=segments)


def _finalize(value: Any) -> Any:
    # A missing profile value (NULL) prints as nothing, not "None"; unknown *names* still fail.
    return "" if value is None else value


def make_environment() -> SandboxedEnvironment:
    # Sandboxed: templates are marketer input; StrictUndefined: a typo is an error, not "".
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, finalize=_finalize, autoescape=False)


ENV = make_environment()


def sample_context(columns: dict[str, str]) -> dict[str, Any]:
    """One plausible value per profile column (by type) to render templates at validation time."""
    context: dict[str, Any] = {}
    for name, ctype in columns.items():
        upper = ctype.upper()
        if "BOOL" in upper:
            context[name] = True
        elif "TIMESTAMP" in upper:
            context[name] = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
        elif upper == "DATE":
            context[name] = date(1990, 1, 1)
        elif any(t in upper for t in ("INT", "DECIMAL", "DOUBLE", "FLOAT", "NUMERIC")):
            context[name] = 1
        else:
            context[name] = "Sample"
    context["recommendations"] = [dict(r) for r in SAMPLE_RECOMMENDATIONS]
    context.update(message_context("sample_journey", "Sample journey", "sample_step", "A", "sample-key"))
    return context


def message_context(journey_id: str, journey_name: str, step_id: str, variant: str | None,
                    message_key: str) -> dict[str, Any]:
    """Variables every template may use besides the profile columns (and `recommendations`, which
    dispatch and preview load per batch: crmflow/journeys/recommendations.py)."""
    return {
        "journey": {"id": journey_id, "name": journey_name},
        "step_id": step_id,
        "variant": variant,
        "message_key": message_key,
    }


def pick_locale(template: Template, locale: str | None) -> str:
    """Exact locale, then same language (zh-TW -> zh-CN), then the template's default."""
    if locale and locale in template.locales:
        return locale
    if locale:
        language = locale.replace("_", "-").split("-")[0].lower()
        for candidate in template.locales:
            if candidate.split("-")[0].lower() == language:
                return candidate
    return template.default_locale


@dataclass(frozen=True)
class Rendered:
    locale: str
    fields: dict[str, str]

    @cached_property  # read twice per message (message metadata and the ledger)
    def content_ref(self) -> str:
        """sha256 of the rendered content: the ledger's reference to exactly what was sent."""
        payload = json.dumps({"locale": self.locale, **self.fields}, sort_keys=True, ensure_ascii=False)
        return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def render(template: Template, locale: str | None, context: dict[str, Any]) -> Rendered:
    chosen = pick_locale(template, locale)
    content = template.locales[chosen].fields()
    return Rendered(locale=chosen, fields={k: _compiled(v).render(context) for k, v in content.items()})


@lru_cache(maxsize=4096)
def _compiled(source: str) -> jinja2.Template:
    """Compile a template source once: compiling took ~1 ms, most of a message's dispatch cost."""
    return ENV.from_string(source)


@lru_cache(maxsize=4096)
def _variables(source: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(ENV.parse(source)))


def template_variables(templates: Iterable[Template]) -> set[str]:
    """Every top-level name the templates read (profile columns, `recommendations`, ...): dispatch
    stages only these columns. A template that does not parse reads nothing (it fails at render)."""
    names: set[str] = set()
    for template in templates:
        for content in template.locales.values():
            for source in content.fields().values():
                try:
                    names |= _variables(source)
                except jinja2.TemplateSyntaxError:
                    continue
    return names


def check_template(template: Template, columns: dict[str, str], max_sms_segments: int) -> list[tuple[str, str]]:
    """Render every locale against a sample profile; return (locale.field, message) errors."""
    errors: list[tuple[str, str]] = []
    context = sample_context(columns)
    for locale, content in template.locales.items():
        for name, source in content.fields().items():
            try:
                text = ENV.from_string(source).render(context)
            except jinja2.TemplateSyntaxError as exc:
                errors.append((f"{locale}.{name}", f"template syntax error: {exc.message} (template line {exc.lineno})"))
                continue
            except jinja2.UndefinedError as exc:
                errors.append((f"{locale}.{name}", f"unknown template variable: {exc.message}"))
                continue
            except jinja2.TemplateError as exc:
                errors.append((f"{locale}.{name}", f"template error: {exc}"))
                continue
            if template.channel == "sms" and name == "text":
                info = sms_info(text)
                if info.segments > max_sms_segments:
                    errors.append((
                        f"{locale}.{name}",
                        f"SMS too long: {info.segments} segments ({info.encoding}, {info.units} units) "
                        f"with sample data; max is {max_sms_segments}",
                    ))
    return errors
