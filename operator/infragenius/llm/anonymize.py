"""Replace names, addresses and secret-looking strings with stable placeholders before text leaves.

Placeholders are deterministic within one request (same name, same placeholder),
so the model can still relate facts; ``restore`` maps them back in the reply.
Secret-looking values are masked and never restored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_IPV4 = re.compile(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?:/\d{1,2})?\b")
# Four or more hextets, or a "::" compression; three-part forms would swallow times such as 11:54:00.
_IPV6 = re.compile(
    r"\b(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b"
    r"|(?<![0-9a-fA-F:])(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?(?![0-9a-fA-F:])"
)
# Kubernetes names (DNS labels and subdomains): letters, digits, '-' and '.', alphanumeric at both ends.
_NAME_TOKEN = re.compile(r"(?<![A-Za-z0-9_.-])[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?![A-Za-z0-9_-])")
_DNS_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")
_PLACEHOLDER = re.compile(r"\b[A-Z]+_\d+\b")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
# key=value / key: value where the key says it is secret.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?)"
    r"(\s*[:=]\s*|\s+)(\"[^\"]*\"|'[^']*'|[^\s,;\"']+)"
)
# Well-known token shapes, each tried only when its prefix occurs in the text (a cheap substring test).
_KNOWN_TOKENS = [
    ("eyJ", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")),  # JWT
    ("AKIA", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),  # AWS access key id
    ("ASIA", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("gh", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b")),  # GitHub tokens (prefix checked as gh?_ below)
    ("xox", re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b")),  # Slack tokens
    ("sk-", re.compile(r"\bsk-[A-Za-z0-9]{20,}\b")),
    ("PRIVATE KEY", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
]
_GITHUB_PREFIX = re.compile(r"gh[pousr]_")
_IPV4_HINT = re.compile(r"\d\.\d+\.\d+\.\d")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}")
# Long runs of base64/hex (API keys, hashes of credentials); checked for letters and digits when found.
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_ASSIGNMENT_HINTS = ("pass", "pwd", "secret", "token", "key", "credential")


class Anonymizer:
    """Masks one request's text; ``restore`` undoes the name masks in the reply."""

    def __init__(self) -> None:
        self._forward: dict[str, str] = {}
        self._reverse: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._names: dict[str, str] = {}  # name -> category; placeholders are numbered on first use
        self.secrets_masked = 0

    def add_names(self, category: str, names: Iterable[str]) -> None:
        """Register names (namespaces, workloads, pods, nodes, services) under a category prefix."""
        for name in names:
            if name and len(name) >= 2 and name not in self._names:
                self._names[name] = category

    def _placeholder(self, category: str, value: str) -> str:
        existing = self._forward.get(value)
        if existing:
            return existing
        self._counters[category] = self._counters.get(category, 0) + 1
        token = f"{category}_{self._counters[category]}"
        self._forward[value] = token
        self._reverse[token] = value
        return token

    def mask(self, text: str) -> str:
        """Secrets first (they may contain names), then addresses, then registered names."""

        def hide_assignment(match: re.Match[str]) -> str:
            self.secrets_masked += 1
            return f"{match.group(1)}{match.group(2)}[REDACTED]"

        lowered = text.lower()
        if any(hint in lowered for hint in _ASSIGNMENT_HINTS):
            text = _SECRET_ASSIGNMENT.sub(hide_assignment, text)
        for prefix, pattern in _KNOWN_TOKENS:
            if prefix in text and (prefix != "gh" or _GITHUB_PREFIX.search(text)):
                text, count = pattern.subn("[REDACTED]", text)
                self.secrets_masked += count
        if "bearer" in lowered:
            text = _BEARER.sub(self._hide_always, text)
        text = _LONG_RUN.sub(self._hide_value, text)
        if "@" in text:
            text = _EMAIL.sub(lambda m: self._placeholder("EMAIL", m.group(0)), text)
        if _IPV4_HINT.search(text):
            text = _IPV4.sub(lambda m: self._placeholder("IP", m.group(0)), text)
        if "::" in text or text.count(":") >= 3:
            text = _IPV6.sub(lambda m: self._placeholder("IP", m.group(0)), text)
        if self._names:
            # One dict lookup per name-shaped token: linear in the text, whatever the number of names
            # (a regex alternation of thousands of pod names costs more to compile than the analysis).
            text = _NAME_TOKEN.sub(self._swap_name, text)
        return text

    def _hide_always(self, match: re.Match[str]) -> str:
        self.secrets_masked += 1
        return "[REDACTED]"

    def _hide_value(self, match: re.Match[str]) -> str:
        value = match.group(0)
        if value in self._names or _DNS_NAME.fullmatch(value):
            return value  # a long object name (masked as a name next), not a key
        if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
            return value
        self.secrets_masked += 1
        return "[REDACTED]"

    def _swap_name(self, match: re.Match[str]) -> str:
        token = match.group(0)
        if token in self._names:
            return self._placeholder(self._names[token], token)
        if "." in token:  # a name inside a DNS name: web.shop.svc
            return ".".join(self._placeholder(self._names[p], p) if p in self._names else p for p in token.split("."))
        return token

    def restore(self, text: str) -> str:
        if not self._reverse:
            return text
        return _PLACEHOLDER.sub(lambda m: self._reverse.get(m.group(0), m.group(0)), text)

    @property
    def placeholders(self) -> dict[str, str]:
        return dict(self._reverse)
