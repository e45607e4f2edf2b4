"""The compact form of LIST pages: equal to what was decoded (minus the unread fields), values shared."""

from __future__ import annotations

import copy
import gc
import threading

from infragenius.gather import compact


def _pod(name: str, ip: str) -> dict:
    return {
        "metadata": {"name": name, "labels": {"app": "web"}, "ownerReferences": [{"kind": "ReplicaSet", "name": "rs"}]},
        "spec": {
            "containers": [{"name": "app", "resources": {"limits": {"cpu": "500m"}}, "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 300}],
            "priority": 0,
            "enableServiceLinks": True,
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIPs": [{"ip": "10.0.0.1"}],
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": 1, "containerID": f"c://{name}"}],
        },
    }


def test_compact_objects_equal_the_decoded_ones_without_the_unread_fields() -> None:
    pods = [_pod("a", "10.1.0.1"), _pod("b", "10.1.0.2")]
    expected = copy.deepcopy(pods)
    for pod in expected:
        del pod["status"]["podIPs"], pod["status"]["hostIPs"], pod["status"]["containerStatuses"][0]["containerID"]

    assert compact.Compactor().objects(pods, "Pod") == expected


def test_equal_values_are_shared_between_objects_and_pages() -> None:
    compactor = compact.Compactor()
    (a,) = compactor.objects([_pod("a", "10.1.0.1")], "Pod")
    (b,) = compactor.objects([_pod("b", "10.1.0.2")], "Pod")  # a later page of the same LIST

    assert a["spec"]["tolerations"] is b["spec"]["tolerations"]
    assert a["spec"]["containers"] is b["spec"]["containers"]
    assert a["metadata"]["labels"] is b["metadata"]["labels"]
    assert a["status"]["phase"] is b["status"]["phase"]
    assert a["metadata"] is not b["metadata"]  # unique objects stay apart


def test_values_equal_in_python_but_of_other_types_are_not_shared() -> None:
    compactor = compact.Compactor()
    items = [{"spec": {"x": {"v": True}, "y": {"v": 1}, "z": {"v": 1.0}, "w": [{"v": "1"}], "u": {"v": ["1"]}}}]
    (out,) = compactor.objects(copy.deepcopy(items), "Thing")

    assert out == items[0]
    assert out["spec"]["x"]["v"] is True and type(out["spec"]["y"]["v"]) is int and type(out["spec"]["z"]["v"]) is float
    assert out["spec"]["x"] is not out["spec"]["y"]


def test_other_kinds_keep_every_field() -> None:
    node = {"metadata": {"name": "n"}, "status": {"podIPs": [{"ip": "1"}], "images": [{"names": ["a"]}]}}

    assert compact.Compactor().objects([copy.deepcopy(node)], "Node") == [node]


def test_gc_is_paused_inside_and_restored_after_the_last_thread_leaves() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with compact.gc_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(10)
    with compact.gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread is still inside
    leave.set()
    thread.join(10)
    assert gc.isenabled()


def test_gc_stays_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with compact.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_continue_token_is_read_from_the_list_metadata_only() -> None:
    from infragenius.gather.kube import _continue_token

    assert _continue_token(
        b'{"kind":"PodList","metadata":{"resourceVersion":"9","continue":"eyJ2Ij=="},"items":[]}'
    ) == ("eyJ2Ij==")
    # A field called "continue" inside an object is not the List's token.
    assert _continue_token(b'{"metadata":{"resourceVersion":"9"},"items":[{"metadata":{"continue":"x"}}]}') is None
    # A token the regular expression cannot read verbatim (an escape) is not guessed: the decoded one is used.
    assert _continue_token(b'{"metadata":{"continue":"a\\u003db"},"items":[]}') is None


async def test_a_paged_list_reads_each_page_once_in_order() -> None:
    import json

    import kmock
    from kubernetes import client

    from infragenius.gather.kube import KubeGatherer

    pages = {
        "": ("p2", ["a", "b"]),
        "p2": ("p3", ["c"]),
        "p3": ("", ["d", "e"]),
    }
    seen: list[str] = []

    def answer(request: kmock.Request) -> bytes:
        token = request.params.get("continue") or ""
        seen.append(token)
        following, names = pages[token]
        meta = {"resourceVersion": "7", **({"continue": following} if following else {})}
        items = [{"metadata": {"name": n, "namespace": "ns"}, "status": {"phase": "Running"}} for n in names]
        return json.dumps({"kind": "PodList", "metadata": meta, "items": items}).encode()

    async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
        handler["get /api/v1/namespaces/ns/pods"] << answer
        with client.ApiClient(client.Configuration(host=str(server.url).rstrip("/"))) as api:
            pods, report = await KubeGatherer(api).list_kind("Pod", "ns")

    assert report.status.value == "ok"
    assert [p["metadata"]["name"] for p in pods] == ["a", "b", "c", "d", "e"]
    assert seen == ["", "p2", "p3"]
