"""Render a message kind from its templates into an outbox row.

Each kind has ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html`` (autoescaped) in
``service/mail/templates/``; a file of the same name in ``IDP_MAIL_TEMPLATES`` wins. Links are
built from ``IDP_PUBLIC_URL`` only: nothing here ever sees a request, so a forged ``Host``
header cannot point a link elsewhere.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from uuid import UUID

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from service.mail.message import new_message_id
from service.mail.settings import MailSettings
from service.store.mail import NewMail

__all__ = ["BUILTIN_TEMPLATES", "MailRenderer"]

BUILTIN_TEMPLATES = Path(__file__).resolve().parent / "templates"


class MailRenderer:
    def __init__(self, settings: MailSettings) -> None:
        folders = [str(settings.templates)] if settings.templates else []
        loader = ChoiceLoader([FileSystemLoader([*folders, str(BUILTIN_TEMPLATES)])])
        # Autoescaped: every .html template; the text parts and subjects are not HTML.
        self._env = Environment(
            loader=loader,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._public_url = settings.public_url
        self._issuer_name = settings.issuer_name
        self._domain = urlsplit(settings.public_url).hostname or "localhost"

    def link(self, path: str, token: str) -> str:
        """An absolute link under the public URL carrying ``token``."""
        return f"{self._public_url}{path}?{urlencode({'token': token})}"

    def render(self, kind: str, *, to: str, user_id: UUID | None, now: float, **context: Any) -> NewMail:
        values = {"issuer_name": self._issuer_name, "public_url": self._public_url, **context}
        # One line whatever the template does: a header cannot be split by a name or a newline.
        subject = " ".join(self._env.get_template(f"{kind}.subject.txt").render(values).split())
        values["subject"] = subject
        row_id = uuid.uuid4()
        return NewMail(
            id=row_id,
            message_id=new_message_id(row_id, self._domain),
            kind=kind,
            recipient=to,
            subject=subject,
            text_body=self._env.get_template(f"{kind}.txt").render(values),
            html_body=self._env.get_template(f"{kind}.html").render(values),
            user_id=user_id,
            created_at=now,
        )
