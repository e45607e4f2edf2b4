from infragenius.detectors.ingress import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import (
    NS,
    healthy_events,
    healthy_namespace,
    ingress,
    ingress_class,
    secret,
    service,
    snap,
)

WEB80 = {"name": "web", "port": {"number": 80}}


def ing_id(name: str, problem: str) -> str:
    return finding_id("ingress", ResourceRef(kind="Ingress", name=name, namespace=NS), problem)


def test_contract() -> None:
    assert DETECTOR.name == "ingress"
    assert DETECTOR.kinds == {"Ingress", "Service", "IngressClass", "Secret"}


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_missing_backend_service_is_critical_once_per_service() -> None:
    ing = ingress(
        "shop",
        [
            ("/", {"name": "frontend", "port": {"number": 80}}),
            ("/cart", {"name": "frontend", "port": {"number": 80}}),
            ("/api", WEB80),
        ],
    )
    findings = DETECTOR.detect(snap(ing, service("web", {"app": "web"}), ingress_class("nginx")))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical
    assert f.id == ing_id("shop", "BackendServiceMissing:frontend")
    assert (
        f.title
        == "Ingress shop routes shop.example.com/, shop.example.com/cart to Service frontend, which does not exist"
    )
    assert f.affected == 2
    ev = [(e.source, e.value) for e in f.evidence]
    assert ("spec.rules[0].http.paths[0].backend.service.name", "frontend") in ev
    assert ("spec.rules[0].http.paths[1].backend.service.name", "frontend") in ev
    assert ("Service", "shop/frontend not found") in ev


def test_backend_port_not_on_service_is_a_warning() -> None:
    ing = ingress(
        "shop", [("/", {"name": "web", "port": {"number": 8080}}), ("/x", {"name": "web", "port": {"name": "grpc"}})]
    )
    findings = DETECTOR.detect(snap(ing, service("web", {"app": "web"}), ingress_class("nginx")))
    assert sorted(f.id for f in findings) == sorted(
        [ing_id("shop", "BackendPortMissing:web:8080"), ing_id("shop", "BackendPortMissing:web:grpc")]
    )
    assert all(f.severity is Severity.warning for f in findings)
    by_id = {f.id: f for f in findings}
    f = by_id[ing_id("shop", "BackendPortMissing:web:8080")]
    assert f.title == "Ingress shop uses port 8080 of Service web, which the Service does not expose"
    assert ("Service/web.spec.ports", "http:80") in [(e.source, e.value) for e in f.evidence]


def test_default_backend_is_checked_too() -> None:
    ing = ingress("shop", None, default_backend={"name": "fallback", "port": {"number": 80}})
    findings = DETECTOR.detect(snap(ing, ingress_class("nginx")))
    assert [f.id for f in findings] == [ing_id("shop", "BackendServiceMissing:fallback")]
    assert findings[0].evidence[0].source == "spec.defaultBackend.service.name"
    assert "routes default backend to Service fallback" in findings[0].title


def test_resource_backends_are_ignored() -> None:
    ing = ingress("shop", None, class_name="nginx")
    ing["spec"]["defaultBackend"] = {
        "resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}
    }
    assert DETECTOR.detect(snap(ing, ingress_class("nginx"))) == []


def test_unknown_ingress_class_is_a_warning() -> None:
    ing = ingress("shop", [("/", WEB80)], class_name="traefik")
    findings = DETECTOR.detect(snap(ing, service("web", {"app": "web"}), ingress_class("nginx")))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning and f.id == ing_id("shop", "IngressClassMissing")
    assert "IngressClass traefik, which does not exist" in f.title
    assert ("IngressClass", "existing: nginx") in [(e.source, e.value) for e in f.evidence]


def test_no_class_without_default_is_info_not_warning() -> None:
    ing = ingress("shop", [("/", WEB80)], class_name=None)
    findings = DETECTOR.detect(snap(ing, service("web", {"app": "web"}), ingress_class("nginx")))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, ing_id("shop", "NoIngressClass"))]
    # A default class or the legacy annotation picks a controller: nothing to say.
    assert DETECTOR.detect(snap(ing, service("web", {"app": "web"}), ingress_class("nginx", default=True))) == []
    legacy = ingress("shop", [("/", WEB80)], class_name=None, annotations={"kubernetes.io/ingress.class": "nginx"})
    assert DETECTOR.detect(snap(legacy, service("web", {"app": "web"}), ingress_class("nginx"))) == []


def test_missing_tls_secret_is_a_warning() -> None:
    ing = ingress("shop", [("/", WEB80)], tls=[{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])
    findings = DETECTOR.detect(snap(ing, service("web", {"app": "web"}), ingress_class("nginx")))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning and f.id == ing_id("shop", "TLSSecretMissing:shop-tls")
    assert "TLS secret shop-tls does not exist" in f.title
    assert ("spec.tls[0].secretName", "shop-tls") in [(e.source, e.value) for e in f.evidence]
    assert DETECTOR.detect(snap(ing, service("web", {"app": "web"}), ingress_class("nginx"), secret("shop-tls"))) == []


def test_missing_kinds_draw_no_conclusions() -> None:
    ing = ingress(
        "shop",
        [("/", {"name": "frontend", "port": {"number": 80}})],
        class_name="traefik",
        tls=[{"secretName": "shop-tls"}],
    )
    assert DETECTOR.detect(snap(ing, without=["Service", "IngressClass", "Secret"])) == []
    no_class = ingress("shop", [("/", WEB80)], class_name=None)
    assert DETECTOR.detect(snap(no_class, service("web", {"app": "web"}), without=["IngressClass"])) == []


def test_id_stable_across_runs_and_path_counts() -> None:
    one = snap(ingress("shop", [("/", {"name": "frontend", "port": {"number": 80}})]), ingress_class("nginx"))
    two = snap(
        ingress(
            "shop",
            [("/", {"name": "frontend", "port": {"number": 80}}), ("/b", {"name": "frontend", "port": {"number": 80}})],
        ),
        ingress_class("nginx"),
    )
    a, b, c = DETECTOR.detect(one), DETECTOR.detect(one), DETECTOR.detect(two)
    assert a == b
    assert a[0].id == c[0].id and c[0].affected == 2
