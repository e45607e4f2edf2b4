"""Replace names, addresses and secret-looking strings with stable placeholders before text leaves.

Placeholders are deterministic within one request (same name, same placeholder),
so the model can still relate facts; ``restore`` maps them back in the reply.
Secret-looking values are masked and never restored.
"""

from __future__ import annotations

import re
from typing import Iterable

_IPV4 = re.compile(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?:/\d{1,2})?\b")
_IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
# key=value / key: value where the key says it is secret.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?)"
    r"(\s*[:=]\s*|\s+)(\"[^\"]*\"|'[^']*'|[^\s,;\"']+)"
)
_SECRET_VALUES = [
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),  # JWT
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),  # GitHub tokens
    re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b"),  # Slack tokens
    re.compile(r"\bsk-[A-Za-z0-9]{20,}\b"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}"),
    # Long high-entropy runs (base64/hex) of 32+ chars: API keys, hashes of credentials.
    re.compile(r"\b(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{32,}={0,2}"),
]


class Anonymizer:
    """Masks one request's text; ``restore`` undoes the name masks in the reply."""

    def __init__(self) -> None:
        self._forward: dict[str, str] = {}
        self._reverse: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._names: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        self.secrets_masked = 0

    def add_names(self, category: str, names: Iterable[str]) -> None:
        """Register names (namespaces, workloads, pods, nodes, services) under a category prefix."""
        for name in names:
            if name and len(name) >= 2 and name not in self._forward:
                self._placeholder(category, name)
                self._names.append(name)
        self._pattern = None

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

        text = _SECRET_ASSIGNMENT.sub(hide_assignment, text)
        for pattern in _SECRET_VALUES:
            text, count = pattern.subn("[REDACTED]", text)
            self.secrets_masked += count
        text = _EMAIL.sub(lambda m: self._placeholder("EMAIL", m.group(0)), text)
        text = _IPV4.sub(lambda m: self._placeholder("IP", m.group(0)), text)
        text = _IPV6.sub(lambda m: self._placeholder("IP", m.group(0)), text)
        if self._names:
            if self._pattern is None:
                # Longest first, so "web-7d9f-abc" wins over "web"; whole tokens only.
                alternatives = "|".join(re.escape(n) for n in sorted(self._names, key=len, reverse=True))
                self._pattern = re.compile(rf"(?<![A-Za-z0-9_.-])(?:{alternatives})(?![A-Za-z0-9_-])")
            text = self._pattern.sub(lambda m: self._forward[m.group(0)], text)
        return text

    def restore(self, text: str) -> str:
        if not self._reverse:
            return text
        pattern = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in sorted(self._reverse, key=len, reverse=True)) + r")\b")
        return pattern.sub(lambda m: self._reverse[m.group(0)], text)

    @property
    def placeholders(self) -> dict[str, str]:
        return dict(self._reverse)
