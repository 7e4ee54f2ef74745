"""The e-mail backend of an installation with no SMTP server configured: every send fails with
the remedy (set MC_EMAIL_URL), so nothing is silently dropped."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend


class NotConfigured(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[Any]) -> int:
        raise smtplib.SMTPException("E-mail is not set up on this server: set MC_EMAIL_URL.")
