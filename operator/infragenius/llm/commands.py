"""Allowlist for the commands the model proposes: read-only kubectl, and a few fixes to named objects.

The model reads cluster text an attacker may write (event messages), so every command it returns is
checked before it reaches status, where a human may copy it. Anything not plainly on the list is
dropped: the step keeps its text, the command goes.
"""

from __future__ import annotations

from collections.abc import Collection

import re2

READ_ONLY_VERBS = frozenset({"get", "describe", "logs", "top", "events", "explain"})
ROLLOUT_ACTIONS = frozenset({"undo", "restart", "status", "history"})
# What the model may name, by type; the fixes touch workloads only.
RESOURCE_TYPES = frozenset(
    [
        "pod",
        "pods",
        "po",
        "deployment",
        "deployments",
        "deploy",
        "statefulset",
        "statefulsets",
        "sts",
        "daemonset",
        "daemonsets",
        "ds",
        "replicaset",
        "replicasets",
        "rs",
        "job",
        "jobs",
        "cronjob",
        "cronjobs",
        "cj",
        "service",
        "services",
        "svc",
        "node",
        "nodes",
        "no",
        "namespace",
        "namespaces",
        "ns",
        "event",
        "events",
        "ev",
        "configmap",
        "configmaps",
        "cm",
        "persistentvolumeclaim",
        "persistentvolumeclaims",
        "pvc",
        "ingress",
        "ingresses",
        "ing",
        "endpoints",
        "ep",
        "horizontalpodautoscaler",
        "horizontalpodautoscalers",
        "hpa",
        "poddisruptionbudget",
        "poddisruptionbudgets",
        "pdb",
        "serviceaccount",
        "serviceaccounts",
        "sa",
        "networkpolicy",
        "networkpolicies",
        "netpol",
        "resourcequota",
        "resourcequotas",
        "quota",
        "limitrange",
        "limitranges",
        "limits",
    ]
)
_SCALABLE = frozenset(
    ["deployment", "deployments", "deploy", "statefulset", "statefulsets", "sts", "replicaset", "replicasets", "rs"]
)
_ROLLABLE = frozenset(
    ["deployment", "deployments", "deploy", "statefulset", "statefulsets", "sts", "daemonset", "daemonsets", "ds"]
)
_SETTABLE = _SCALABLE | _ROLLABLE
# Shell and anything that fetches or hides: any of these characters rejects the whole command.
_FORBIDDEN = frozenset("|;&<>`$(){}[]\\'\"!*?#~@%^\n\r\t")
_NAME = re2.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")
_CONTAINER = re2.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_QUANTITIES = re2.compile(
    r"(?:cpu|memory|ephemeral-storage)=[0-9]+(?:\.[0-9]+)?[A-Za-z]{0,2}"
    r"(?:,(?:cpu|memory|ephemeral-storage)=[0-9]+(?:\.[0-9]+)?[A-Za-z]{0,2})?"
)
_SELECTOR = re2.compile(r"[a-z0-9./-]{1,63}=[a-z0-9.-]{1,63}")
_FIELD_PATH = re2.compile(r"[a-z]+(?:\.[A-Za-z]+){0,8}")
# Flags: name -> value check (None: a switch). Only these, spelled these ways.
_VALUE_FLAGS = {
    "-n": "namespace",
    "--namespace": "namespace",
    "-c": "container",
    "--container": "container",
    "--tail": "number",
    "--replicas": "number",
    "--to-revision": "number",
    "--since": "duration",
    "-o": "output",
    "--output": "output",
    "-l": "selector",
    "--selector": "selector",
    "--limits": "quantities",
    "--requests": "quantities",
    "--for": "object",
}
_SWITCHES = frozenset({"-p", "--previous", "--all-containers", "--timestamps", "--recursive", "--containers"})
_READ_ONLY_SWITCHES = frozenset({"-A", "--all-namespaces", "--show-labels"})
_OUTPUTS = frozenset({"wide", "yaml", "json", "name"})


def check_command(command: str, names: Collection[str]) -> str | None:
    """None when ``command`` may be shown; otherwise why it must be dropped. An empty command is fine."""
    command = command.strip()
    if not command:
        return None
    if any(c in _FORBIDDEN for c in command) or "://" in command or not command.isascii():
        return "shell syntax, a URL or non-ASCII text"
    tokens = command.split(" ")
    if "" in tokens:
        tokens = [t for t in tokens if t]
    if tokens[0] != "kubectl":
        return "not kubectl"
    positionals: list[str] = []
    flags: list[tuple[str, str | None]] = []
    i = 1
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("-"):
            positionals.append(token)
            i += 1
            continue
        flag, _, inline = token.partition("=")
        if flag in _VALUE_FLAGS:
            if inline:
                value = inline
            elif i + 1 < len(tokens) and "=" not in token:
                i += 1
                value = tokens[i]
            else:
                return f"flag {flag} without a value"
            flags.append((flag, value))
        elif token in _SWITCHES or token in _READ_ONLY_SWITCHES:
            flags.append((token, None))
        else:
            return f"flag {flag} is not allowed"
        i += 1
    if not positionals:
        return "no verb"
    verb, args = positionals[0], positionals[1:]
    mutating = verb in ("rollout", "set", "scale")
    problem: str | None
    if verb in READ_ONLY_VERBS:
        problem = _check_read_only(verb, args, names)
    elif verb == "rollout":
        problem = _check_fix(args[1:], names, _ROLLABLE) if args and args[0] in ROLLOUT_ACTIONS else "rollout what"
    elif verb == "set":
        problem = _check_fix(args[1:], names, _SETTABLE) if args[:1] == ["resources"] else "only set resources"
    elif verb == "scale":
        problem = _check_fix(args, names, _SCALABLE)
    else:
        return f"verb {verb} is not allowed"
    if problem:
        return problem
    for flag, flag_value in flags:
        problem = _check_flag(flag, flag_value, names, mutating)
        if problem:
            return problem
    if verb == "scale" and not any(flag == "--replicas" for flag, _ in flags):
        return "scale without --replicas"
    return None


def _check_read_only(verb: str, args: list[str], names: Collection[str]) -> str | None:
    if verb == "explain":
        if len(args) != 1 or not _FIELD_PATH.fullmatch(args[0]) or args[0].split(".")[0] not in RESOURCE_TYPES:
            return "explain takes one field path"
        return None
    if verb == "logs":  # a pod name alone, or type/name
        if len(args) != 1:
            return "logs takes one object"
        return _check_object(args[0], names, RESOURCE_TYPES, bare_name=True)
    if verb == "events" and args:
        return "events takes flags only"
    if not args:
        return None if verb in ("events", "top") else f"{verb} of what"
    types = args[0].split(",")
    if all(t in RESOURCE_TYPES for t in types):
        return next((f"{n} is not in the analysis" for n in args[1:] if n not in names or not _NAME.fullmatch(n)), None)
    for arg in args:
        problem = _check_object(arg, names, RESOURCE_TYPES)
        if problem:
            return problem
    return None


def _check_fix(args: list[str], names: Collection[str], types: frozenset[str]) -> str | None:
    """A fix names its objects exactly: type/name, or a type and names, all in the analysis."""
    if not args:
        return "a fix must name its object"
    if "/" not in args[0]:
        if args[0] not in types or len(args) < 2:
            return "a fix must name its object"
        return next((f"{n} is not in the analysis" for n in args[1:] if n not in names or not _NAME.fullmatch(n)), None)
    for arg in args:
        problem = _check_object(arg, names, types)
        if problem:
            return problem
    return None


def _check_object(arg: str, names: Collection[str], types: Collection[str], *, bare_name: bool = False) -> str | None:
    kind, slash, name = arg.partition("/")
    if not slash:
        if bare_name and arg in names and _NAME.fullmatch(arg):
            return None
        return f"{arg} is not a type/name of the analysis"
    if kind not in types:
        return f"type {kind} is not allowed here"
    if name not in names or not _NAME.fullmatch(name):
        return f"{name} is not in the analysis"
    return None


def _check_flag(flag: str, value: str | None, names: Collection[str], mutating: bool) -> str | None:
    if value is None:
        if mutating and flag in _READ_ONLY_SWITCHES:
            return f"{flag} on a fix"
        return None
    check = _VALUE_FLAGS[flag]
    ok = {
        "namespace": lambda: value in names,
        "container": lambda: bool(_CONTAINER.fullmatch(value)),
        "number": lambda: value.isdigit() and len(value) <= 6,
        "duration": lambda: value[:-1].isdigit() and value[-1:] in ("s", "m", "h") and len(value) <= 6,
        "output": lambda: value in _OUTPUTS,
        "selector": lambda: not mutating and bool(_SELECTOR.fullmatch(value)),
        "quantities": lambda: bool(_QUANTITIES.fullmatch(value)),
        "object": lambda: _check_object(value, names, RESOURCE_TYPES) is None,
    }[check]()
    return None if ok else f"{flag} {value} is not allowed"
