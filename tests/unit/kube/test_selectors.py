"""Label selectors: matching and kubectl -l text."""

from __future__ import annotations

from infragenius.kube.selectors import map_selector_matches, selector_matches, selector_text

LABELS = {"app": "web", "tier": "fe", "env": "prod"}


def test_label_selector_matching() -> None:
    assert selector_matches({}, LABELS)  # empty selects everything
    assert not selector_matches(None, LABELS)  # missing selects nothing
    assert selector_matches({"matchLabels": {"app": "web"}}, LABELS)
    assert not selector_matches({"matchLabels": {"app": "db"}}, LABELS)
    expr = {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}]}
    assert selector_matches(expr, LABELS)
    assert not selector_matches({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, LABELS)
    assert selector_matches({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, LABELS)
    assert not selector_matches({"matchExpressions": [{"key": "canary", "operator": "Exists"}]}, LABELS)
    assert selector_matches({"matchExpressions": [{"key": "canary", "operator": "NotIn", "values": ["x"]}]}, {})


def test_map_selector_matching() -> None:
    assert map_selector_matches({"app": "web"}, LABELS)
    assert not map_selector_matches({"app": "web", "x": "y"}, LABELS)
    assert not map_selector_matches({}, LABELS)  # a Service with an empty selector selects nothing
    assert not map_selector_matches(None, LABELS)


def test_selector_text() -> None:
    assert selector_text({"app": "web", "tier": "fe"}) == "app=web,tier=fe"  # map selectors too
    assert selector_text({"matchLabels": {"tier": "fe", "app": "web"}}) == "app=web,tier=fe"
    sel = {
        "matchExpressions": [
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "gpu", "operator": "Exists"},
        ]
    }
    assert selector_text(sel) == "env notin (dev),gpu"
    assert selector_text(None) == "<none>"
    assert selector_text({"matchLabels": {}}) == "<everything>"


def test_selector_text_with_api_operators() -> None:
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "stage"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selector_text(sel, api_operators=True) == "app=web,env In (prod,stage),canary DoesNotExist"
    assert selector_text(sel) == "app=web,env in (prod,stage),!canary"
