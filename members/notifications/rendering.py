"""Messages from templates, in the member's language.

A message's template is the operator's active NotificationTemplate for (kind, channel,
language), else the files under templates/notifications/<kind>/:

    email_subject.<language>.txt, email.<language>.txt, email.<language>.html, sms.<language>.txt

Both are Django templates rendered with the message's context (a plain dict, stored on the log
row); the HTML part is auto-escaped, the subject and text parts are not. Rendering runs with the
member's language active, so filters and `{% translate %}` speak it too.
"""

from dataclasses import dataclass

from django.template import Context, Template
from django.template.loader import get_template
from django.utils import translation

from members.notifications.models import Channel, NotificationTemplate

TEMPLATE_DIR = "notifications"


@dataclass(frozen=True)
class Sources:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _file_source(name: str) -> str:
    return get_template(f"{TEMPLATE_DIR}/{name}").template.source


def default_sources(*, kind: str, channel: str, language: str) -> Sources:
    """The file templates of (kind, channel, language)."""
    base = f"{kind}/{channel}"
    if channel == Channel.EMAIL:
        return Sources(
            subject=_file_source(f"{kind}/email_subject.{language}.txt").strip(),
            text=_file_source(f"{base}.{language}.txt"), html=_file_source(f"{base}.{language}.html"),
        )
    return Sources(subject="", text=_file_source(f"{base}.{language}.txt"), html="")


def template_sources(*, kind: str, channel: str, language: str) -> Sources:
    """The operator's active template of (kind, channel, language), else the files."""
    edited = NotificationTemplate.objects.filter(kind=kind, channel=channel, language=language, is_active=True).first()
    if edited is not None:
        return Sources(subject=edited.subject, text=edited.body_text, html=edited.body_html)
    return default_sources(kind=kind, channel=channel, language=language)


def render_sources(sources: Sources, *, context: dict, language: str) -> Rendered:
    """Render the three parts; raises django.template.TemplateSyntaxError for a broken template."""
    with translation.override(language):
        plain = Context(context, autoescape=False)
        subject = " ".join(Template(sources.subject).render(plain).split()) if sources.subject else ""
        text = Template(sources.text).render(plain).strip() + "\n"
        html = Template(sources.html).render(Context(context)) if sources.html else ""
    return Rendered(subject=subject[:200], text=text, html=html)


def message_render(*, kind: str, channel: str, language: str, context: dict) -> Rendered:
    return render_sources(template_sources(kind=kind, channel=channel, language=language), context=context, language=language)
