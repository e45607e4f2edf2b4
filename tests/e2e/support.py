"""Small helpers shared by e2e tests."""

from __future__ import annotations

from typing import Any

from infragenius_devtools.support import SETUP_TIMEOUT, wait_for

__all__ = ["SETUP_TIMEOUT", "service_account_kubeconfig", "wait_for"]


def service_account_kubeconfig(
    api: Any, admin_kubeconfig: str, namespace: str, name: str, cluster_rules: list[dict] | None = None
) -> str:
    """A kubeconfig for a new service account, bound to a ClusterRole with ``cluster_rules`` if given."""
    from pathlib import Path

    import yaml
    from kubernetes import client

    core = client.CoreV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    if cluster_rules is not None:
        role_name = f"{namespace}-{name}"
        rbac.create_cluster_role(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role_name},
                "rules": cluster_rules,
            }
        )
        rbac.create_cluster_role_binding(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role_name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            }
        )
    token = core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=7200)),
    ).status.token
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    config = {
        **admin,
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": admin["clusters"][0]["name"], "user": name}}],
        "current-context": name,
    }
    path = Path(admin_kubeconfig).with_name(f"sa-{namespace}-{name}.kubeconfig")
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)
