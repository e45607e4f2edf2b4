"""Mask cluster text before it leaves for the model; restore our placeholders in the reply.

Design (the anonymizer is the only thing between cluster data and the model):

- Bounded and linear. Input is cut to ``MAX_INPUT`` characters first, and every pattern runs on RE2
  (google-re2), which matches in linear time: no input can make masking backtrack.
- Two kinds of mask. Secrets (credentials, tokens, keys, private keys, UUID-shaped keys) become
  ``[REDACTED]`` and are never recorded, so nothing can restore them. Identifiers (object names, IPs,
  e-mail addresses, external hosts, cloud accounts) become placeholders such as ``POD_3`` that
  ``restore`` maps back. Secrets go first: a credential may contain a name or a host.
- Names are whatever the snapshot knows (``add_names``): every object, and names referenced from pod
  specs. A name is masked only as a whole token: a word, a label of a dotted name, a part of kubelet's
  ``NAME_NAMESPACE`` form, or the prefix of a generated pod name (``checkout-7d9f-x2x9z``). Never as a URL
  scheme (``postgres://``), nor as a segment of a URL or absolute path (``/api/health``) unless the segment
  follows a Kubernetes collection (``/namespaces/shop``).
- Placeholders are ours alone. Input that already looks like one (``NAMESPACE_2``) is itself masked as a
  ``LITERAL`` placeholder that restores to the same text, so ``restore`` only ever touches placeholders
  this object made.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

import re2

# google-re2 ships no type stubs; its match objects follow the re module's API.
Match = Any

MAX_INPUT = 16_384
REDACTED = "[REDACTED]"
# Every placeholder category: restore recognises only these, input look-alikes of them are escaped.
CATEGORIES = (
    "NAMESPACE",
    "NODE",
    "SERVICEACCOUNT",
    "SERVICE",
    "WORKLOAD",
    "POD",
    "CONFIGMAP",
    "SECRET",
    "OBJECT",
    "IP",
    "EMAIL",
    "HOST",
    "ACCOUNT",
    "FINDING",
    "LITERAL",
)
_PLACEHOLDER = re2.compile(r"(?:" + "|".join(CATEGORIES) + r")_\d+")

# Key words that say a value is secret. A word may go on only after a separator (DB_PASSWORD_FILE),
# so "passed: 3" or "signal: killed" are not assignments.
_KEY_WORDS = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|credential|signature|cookie|session[_-]?id|dsn"
    r"|connection[_-]?string|(?:api|access|secret|private|master|license|encryption|signing|account|storage"
    r"|client)[_-]?key|apikey)s?(?:[_.-][A-Za-z0-9]+)*"
)
# Secrets, in the order they are tried; each entry is (name, pattern, replacement).
_PRIVATE_KEY = re2.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----(?s:.*?)(?:-----END[A-Z0-9 ]*-----|$)")
_KNOWN_TOKENS = re2.compile(
    r"\b(?:eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"  # JWT
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}"  # AWS key ids
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|gl(?:pat|dt|rt|ptt|cbt|oas|soat|ffct|imt|agent|ft)-[A-Za-z0-9_-]{16,}"  # GitLab
    r"|xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{16,}"  # Stripe
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|AIza[A-Za-z0-9_-]{30,}|ya29\.[A-Za-z0-9_-]{20,}"  # Google
    r"|npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_-]{30,}|dckr_pat_[A-Za-z0-9_-]{20,}"  # package registries
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}|(?:SK|AC)[0-9a-f]{32}"  # SendGrid, Twilio
    r"|dop_v1_[a-f0-9]{40,}|hv[sbr]\.[A-Za-z0-9_-]{20,}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"  # DO, Vault, Shopify
    r"|glsa_[A-Za-z0-9_]{20,}|lin_api_[A-Za-z0-9]{20,}"  # Grafana, Linear
    r")"
    r"|hooks\.slack\.com/services/[A-Za-z0-9/_-]+"
)
_UUID = re2.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# scheme://user:pass@ or scheme://token@ (userinfo is always a credential), and a bare user:pass@host.
_URL_USERINFO = re2.compile(r"://[^\s/@\"'<>]+@")
_BARE_USERINFO = re2.compile(r"[A-Za-z0-9._%+~-]+:[^\s@/\"'<>:]+@")
_AUTH_HEADER = re2.compile(
    r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?:(?:basic|bearer|token|digest|negotiate|apikey)\s+)?"
    r"[^\s,;\"']+"
)
_AUTH_SCHEME = re2.compile(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9._~+/=-]{8,})")
# {"name":"DB_PASSWORD","value":"x"} and "name: DB_PASSWORD value: x" (YAML with its newlines gone).
_ENV_PAIR = re2.compile(
    r"(?i)(\"name\"\s*:\s*\"[^\"]*(?:" + _KEY_WORDS + r")[^\"]*\"\s*,\s*\"value\"\s*:\s*)\"[^\"]*\""
    r"|(name:\s*[A-Za-z0-9_.-]*(?:" + _KEY_WORDS + r")\s+value:\s*)[^\s,;]+"
)
_ASSIGNMENT = re2.compile(
    r"(?i)((?:" + _KEY_WORDS + r"|\bsig)[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;\"'&)}\][][^\s,;\"'&)}\]]*)"
)
# "password Hunter2x": a secret word, blanks, then a value with letters and digits.
_SPACED_SECRET = re2.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s+)([^\s,;\"'\[][^\s,;\"']{7,})")
# mysql -pPASS, redis-cli -a PASS, curl -u user:pass, --password PASS.
_FLAG_SECRET = re2.compile(
    r"(^|\s)(-p)([^\s-][^\s]*)"
    r"|(^|\s)(-a|-u|--user|--pass|--password|--passwd|--token|--auth|--secret|--api-key)(\s+|=)([^\s-][^\s]*)"
)
# Base64 and hex runs (API keys, hashes of credentials); judged by _looks_random when found.
_LONG_RUN = re2.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")

# Identifiers, restorable.
# The uid in kubelet's NAME_NAMESPACE(uid) is a UUID, already redacted when this runs.
_KUBELET_POD = re2.compile(r"([a-z0-9][a-z0-9.-]*)_([a-z0-9][a-z0-9-]*)\((\[REDACTED\]|[0-9a-f-]{36})\)")
_KLOG_POD = re2.compile(r"(pods?=\"?)([a-z0-9][a-z0-9-]*)/([a-z0-9][a-z0-9.-]*)")
_ARN = re2.compile(r"\barn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:\d{12}:[^\s\"',;]*")
_ACCOUNT_ID = re2.compile(r"(?i)\b(account(?:[ _-]?id)?\s*[:=]?\s*)(\d{12})\b")
_GCP_PROJECT = re2.compile(r"\b(projects/|gcr\.io/|pkg\.dev/)([a-z][a-z0-9-]{4,28}[a-z0-9])\b")
_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IPV4 = re2.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b")
_IPV6 = re2.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:/\d{1,3})?")
# Words and the runs of path characters they sit in.
_RUN = re2.compile(r"[^\s\"'`<>(){},;=|\\]+")
_WORD = re2.compile(r"[A-Za-z0-9._-]+")
_LABEL = re2.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_HASH = re2.compile(r"[a-z0-9]{5,10}")  # the generated part of a pod name
_PARTS = re2.compile(r"[/_+=-]+")
_WORDLIKE = re2.compile(r"[A-Z]*[a-z]*(?:[A-Z]+[a-z]+)*[0-9]{0,3}")
_GENERATED_SUFFIX = re2.compile(r"(?:[a-z0-9]{1,10})(?:-[a-z0-9]{1,10}){0,2}")

#: Every pattern, for the timing test: none may backtrack on adversarial input.
PATTERNS: dict[str, Any] = {
    name.strip("_"): value
    for name, value in dict(globals()).items()
    if name.startswith("_") and name[1:].replace("_", "").isupper() and hasattr(value, "finditer")
}

# Top-level domains that mark a dotted word as a host name (no file extensions such as .py, .sh, .md).
_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "io",
        "dev",
        "app",
        "cloud",
        "ai",
        "co",
        "biz",
        "info",
        "example",
        "internal",
        "corp",
        "lan",
        "intra",
        "intranet",
        "private",
        "home",
        "test",
        "local",
        "us",
        "uk",
        "de",
        "fr",
        "nl",
        "eu",
        "ca",
        "au",
        "jp",
        "cn",
        "in",
        "br",
        "ch",
        "se",
        "no",
        "fi",
        "es",
        "it",
        "at",
        "be",
        "dk",
        "ie",
        "nz",
        "sg",
        "kr",
        "tech",
        "online",
        "site",
        "xyz",
        "gov",
        "edu",
        "aws",
    ]
)
# Public hosts that say nothing about the cluster (label keys, public registries, docs).
_PUBLIC_HOSTS = (
    "kubernetes.io",
    "k8s.io",
    "x-k8s.io",
    "docker.io",
    "docker.com",
    "gcr.io",
    "ghcr.io",
    "quay.io",
    "mcr.microsoft.com",
    "public.ecr.aws",
    "prometheus.io",
    "grafana.com",
    "github.com",
    "gitlab.com",
    "istio.io",
    "cert-manager.io",
    "argoproj.io",
    "ollama.com",
    "example.com",
)
# A URL path segment after one of these is an object name (/api/v1/namespaces/shop/pods/web-1).
_COLLECTIONS = frozenset(
    [
        "namespaces",
        "pods",
        "services",
        "nodes",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "persistentvolumeclaims",
        "ingresses",
        "endpoints",
        "events",
    ]
)


def _looks_random(value: str) -> bool:
    """A key, not a path or an identifier: letters and digits mixed, not UPPER_SNAKE, not path words."""
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    if "_" in value and value.upper() == value and "/" not in value:
        return False  # an environment variable name
    if all(len(part) <= 6 or _WORDLIKE.fullmatch(part) or _HASH.fullmatch(part) for part in _PARTS.split(value)):
        return False  # words and pod hashes: Deployment/checkout-7d9f8b6c5d, not wJalrXUtnFEMI/K7MDENG
    # A lowercase-hyphenated object name, or kubelet's NAME_NAMESPACE, is not a key.
    return not (value == value.lower() and "-" in value)


def _is_placeholder_at(text: str, start: int, end: int) -> bool:
    """A placeholder token: not glued to letters or digits on either side ('_' may glue, kubelet does)."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())


class Anonymizer:
    """Masks one request's text; ``restore`` puts back the identifier placeholders this object made.

    With ``keep_identifiers`` (``spec.llm.anonymize: false``) names and addresses go out as they are;
    secrets are still redacted and placeholder look-alikes still escaped.
    """

    def __init__(self, *, keep_identifiers: bool = False) -> None:
        self.keep_identifiers = keep_identifiers
        self._forward: dict[str, str] = {}
        self._reverse: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._names: dict[str, str] = {}  # name -> category; placeholders are numbered on first use
        self._names_set: frozenset[str] | None = None  # ``names``, kept until a name is added
        self.secrets_masked = 0

    def add_names(self, category: str, names: Iterable[str]) -> None:
        """Register names (namespaces, workloads, pods, nodes, services, ...) under a category prefix."""
        for name in names:
            if isinstance(name, str) and len(name) >= 2 and name not in self._names:
                self._names[name] = category
                self._names_set = None

    @property
    def names(self) -> frozenset[str]:
        """Every registered real name: what commands in the reply may refer to."""
        if self._names_set is None:  # built once, not per reply checked: a namespace has thousands
            self._names_set = frozenset(self._names)
        return self._names_set

    def bind(self, placeholder: str, value: str) -> None:
        """Restore ``placeholder`` (one of CATEGORIES, e.g. FINDING_1) as ``value``: ids made by the caller."""
        if not _PLACEHOLDER.fullmatch(placeholder):
            raise ValueError(f"not a placeholder: {placeholder}")
        self._reverse[placeholder] = value

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
        """Bound, escape look-alikes, redact secrets, then mask identifiers and names."""
        text = text[:MAX_INPUT]
        text = _replace(_PLACEHOLDER, text, self._escape_lookalike)
        text = self._mask_secrets(text)
        if self.keep_identifiers:
            return text
        text = _replace(_ARN, text, lambda m: self._placeholder("ACCOUNT", m.group(0)))
        text = _replace(_ACCOUNT_ID, text, lambda m: m.group(1) + self._placeholder("ACCOUNT", m.group(2)))
        text = _replace(_GCP_PROJECT, text, lambda m: m.group(1) + self._placeholder("ACCOUNT", m.group(2)))
        if "@" in text:
            text = _replace(_EMAIL, text, lambda m: self._placeholder("EMAIL", m.group(0)))
        text = _replace(_IPV4, text, self._ip)
        if ":" in text:
            text = _replace(_IPV6, text, self._ip)
        return _replace(_RUN, text, self._mask_run)

    def _escape_lookalike(self, match: Match) -> str:
        token = match.group(0)
        if not _is_placeholder_at(match.string, match.start(), match.end()):
            return token
        return self._placeholder("LITERAL", token)

    def _mask_secrets(self, text: str) -> str:
        def redact(match: Match) -> str:
            self.secrets_masked += 1
            return REDACTED

        def keep_group_1(match: Match) -> str:
            self.secrets_masked += 1
            value = match.group(0)[len(match.group(1)) :]
            return match.group(1) + ('"[REDACTED]"' if value.startswith('"') else REDACTED)

        def env_pair(match: Match) -> str:
            self.secrets_masked += 1
            if match.group(1) is not None:
                return match.group(1) + '"[REDACTED]"'
            return match.group(2) + REDACTED

        def auth_scheme(match: Match) -> str:
            value = match.group(2)
            if match.group(1).lower() == "basic" and not (any(c.isdigit() for c in value) or value.endswith("=")):
                return match.group(0)  # "basic information", not a credential
            self.secrets_masked += 1
            return f"{match.group(1)} {REDACTED}"

        def spaced(match: Match) -> str:
            value = match.group(3)
            if not _looks_random(value) and all(c.isalnum() or c in "-_." for c in value):
                return match.group(0)  # "token expired", "secret my-config": words, not a value
            self.secrets_masked += 1
            return match.group(1) + match.group(2) + REDACTED

        def flag(match: Match) -> str:
            self.secrets_masked += 1
            if match.group(2) is not None:
                return match.group(1) + match.group(2) + REDACTED
            return match.group(4) + match.group(5) + match.group(6) + REDACTED

        def long_run(match: Match) -> str:
            value = match.group(0)
            if value in self._names or not _looks_random(value):
                return value
            self.secrets_masked += 1
            return REDACTED

        text = _replace(_PRIVATE_KEY, text, redact)
        text = _replace(_KNOWN_TOKENS, text, redact)
        text = _replace(_UUID, text, redact)
        if not self.keep_identifiers:  # before long runs: a pod_namespace pair is long and has digits
            text = _replace(_KUBELET_POD, text, self._kubelet_pod)
            text = _replace(_KLOG_POD, text, self._klog_pod)
        if "@" in text:
            text = _replace(_URL_USERINFO, text, lambda m: f"://{redact(m)}@")
            text = _replace(_BARE_USERINFO, text, lambda m: f"{redact(m)}@")
        text = _replace(_AUTH_HEADER, text, lambda m: m.group(1) + redact(m))
        text = _replace(_AUTH_SCHEME, text, auth_scheme)
        text = _replace(_ENV_PAIR, text, env_pair)
        text = _replace(_ASSIGNMENT, text, keep_group_1)
        text = _replace(_SPACED_SECRET, text, spaced)
        text = _replace(_FLAG_SECRET, text, flag)
        return _replace(_LONG_RUN, text, long_run)

    def _kubelet_pod(self, match: Match) -> str:
        pod, namespace = match.group(1), match.group(2)
        return f"{self._name(pod, 'POD')}_{self._name(namespace, 'NAMESPACE')}({match.group(3)})"

    def _klog_pod(self, match: Match) -> str:
        namespace, pod = match.group(2), match.group(3)
        return f"{match.group(1)}{self._name(namespace, 'NAMESPACE')}/{self._name(pod, 'POD')}"

    def _name(self, value: str, default: str) -> str:
        """A placeholder for a name in a form that names it for sure, known or not."""
        return self._placeholder(self._names.get(value, default), value)

    def _ip(self, match: Match) -> str:
        value = match.group(0)
        if not any(c.isalnum() for c in value) or not _is_placeholder_at(match.string, match.start(), match.end()):
            return value  # '::' alone, or glued to a word (std::vector)
        try:
            ipaddress.ip_network(value, strict=False) if "/" in value else ipaddress.ip_address(value)
        except ValueError:
            return value  # a time such as 11:54:00, a version such as 1.2.3.400
        return self._placeholder("IP", value)

    def _mask_run(self, match: Match) -> str:
        """One run of path characters: mask the words in it that are names or external hosts."""
        run = match.group(0)
        scheme = run.find("://")
        if scheme >= 0:
            host_end = run.find("/", scheme + 3)
            path_start = len(run) if host_end < 0 else host_end
        else:
            path_start = 0 if run.startswith("/") else len(run)
        out: list[str] = []
        last = 0
        previous_segment = ""
        for word_match in _WORD.finditer(run):
            start, end = word_match.start(), word_match.end()
            word = word_match.group(0)
            out.append(run[last:start])
            last = end
            if run.startswith("://", end):
                out.append(word)  # a URL scheme: postgres://
            elif start >= path_start and previous_segment not in _COLLECTIONS:
                # A URL or file path segment (/api/health) stays, unless it is a name we know: the
                # kubelet's /containerLogs/<namespace>/<pod>/ URL in an API error carries both.
                out.append(self._mask_known(word))
            else:
                out.append(self._mask_word(word))
            if start > 0 and run[start - 1] == "/" or start >= path_start:
                previous_segment = word
        out.append(run[last:])
        return "".join(out)

    def _mask_known(self, word: str) -> str:
        """In a path: known names that cannot be an ordinary path word (they have a dash or a digit, like
        flamingo-canary-98441), and pods generated from known names; /api or /var/lib/checkout stay."""
        core = word.strip("._-")
        if not core or ("-" not in core and not any(c.isdigit() for c in core)):
            return word
        lead = word[: word.index(core)]
        tail = word[len(lead) + len(core) :]
        if core in self._names:
            return lead + self._placeholder(self._names[core], core) + tail
        return lead + self._mask_generated(core) + tail

    def _mask_word(self, word: str) -> str:
        core = word.strip("._-")
        if not core:
            return word
        lead = word[: word.index(core)]
        tail = word[len(lead) + len(core) :]
        return lead + self._mask_core(core) + tail

    def _mask_core(self, word: str) -> str:
        if word in self._names:
            return self._placeholder(self._names[word], word)
        if "." in word:
            if self._is_external_host(word):
                return self._placeholder("HOST", word)
            labels = word.split(".")
            if "svc" in labels[2:]:  # [pod.]service.namespace.svc[.cluster.local]: names by position, known or not
                at = labels.index("svc", 2)
                roles = ["POD"] * (at - 2) + ["SERVICE", "NAMESPACE"]
                names = [
                    self._name(x, role) if _LABEL.fullmatch(x) else x for x, role in zip(labels, roles, strict=False)
                ]
                return ".".join(names + labels[at:])
            return ".".join(self._mask_core(label) if label else label for label in labels)
        if "_" in word:  # kubelet's NAME_NAMESPACE; Kubernetes names never contain '_'
            return "_".join(self._mask_core(part) if part else part for part in word.split("_"))
        if "-" in word:
            return self._mask_generated(word)
        return word

    def _mask_generated(self, word: str) -> str:
        """checkout-7d9f8b6c5d-x2x9z: the longest known name it starts with, when the rest is generated."""
        cut = min(len(word), 254)  # names are at most 253 characters: no longer prefix can be one
        while (cut := word.rfind("-", 0, cut)) > 0:
            prefix, suffix = word[:cut], word[cut + 1 :]
            generated = any(c.isdigit() for c in suffix) or len(suffix.split("-")[-1]) == 5
            if prefix in self._names and _GENERATED_SUFFIX.fullmatch(suffix) and generated:
                return self._placeholder(self._names[prefix], prefix) + word[cut:]
        return word

    @staticmethod
    def _is_external_host(word: str) -> bool:
        lowered = word.lower()
        labels = lowered.split(".")
        if len(labels) < 2 or labels[-1] not in _TLDS or any(not label for label in labels):
            return False
        if lowered.endswith((".cluster.local", ".svc")) or lowered == "cluster.local":
            return False  # in-cluster DNS: its labels are names, masked one by one
        return not any(lowered == host or lowered.endswith("." + host) for host in _PUBLIC_HOSTS)

    def restore(self, text: str) -> str:
        """Put back identifier placeholders this object made; anything else stays as written."""
        if not self._reverse:
            return text

        def back(match: Match) -> str:
            token = match.group(0)
            if not _is_placeholder_at(match.string, match.start(), match.end()):
                return token
            return self._reverse.get(token, token)

        return _replace(_PLACEHOLDER, text, back)

    @property
    def placeholders(self) -> dict[str, str]:
        return dict(self._reverse)


def _replace(pattern: Any, text: str, repl: Callable[[Match], str]) -> str:
    """``pattern.sub`` with a callable, in one linear pass."""
    out: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(text[last : match.start()])
        out.append(repl(match))
        last = match.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)
