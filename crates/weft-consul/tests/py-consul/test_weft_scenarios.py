"""weft's Consul API driven by a real Consul client (py-consul), scenario by scenario.

Each test gets a fresh `weft server --consul-listen 127.0.0.1:8500` (conftest.py).
"""
import threading
import time

import consul
import consul.check
import pytest
import requests

Check = consul.check.Check


@pytest.fixture
def c(consul_port):
    port, _version = consul_port
    return consul.Consul(port=port)


def test_ttl_service_passes_fails_and_shows_in_catalog_and_health(c):
    assert c.agent.service.register("web", service_id="web-1", port=8080, tags=["v1"], check=Check.ttl("30s"))
    # TTL checks start critical: not passing, but in the catalog.
    _, nodes = c.catalog.service("web")
    assert [(n["ServiceID"], n["ServicePort"], n["ServiceTags"]) for n in nodes] == [("web-1", 8080, ["v1"])]
    _, entries = c.health.service("web", passing=True)
    assert entries == []
    _, checks = c.health.checks("web")
    assert [(x["CheckID"], x["Status"]) for x in checks] == [("service:web-1", "critical")]

    assert c.agent.check.ttl_pass("service:web-1", notes="ready")
    _, entries = c.health.service("web", passing=True)
    assert [e["Service"]["ID"] for e in entries] == ["web-1"]
    assert {x["CheckID"] for x in entries[0]["Checks"]} == {"service:web-1", "serfHealth"}
    assert [x["Output"] for x in entries[0]["Checks"] if x["CheckID"] == "service:web-1"] == ["ready"]

    assert c.agent.check.ttl_fail("service:web-1", notes="broken")
    _, entries = c.health.service("web", passing=True)
    assert entries == []
    _, critical = c.health.state("critical")
    assert [(x["CheckID"], x["Output"]) for x in critical] == [("service:web-1", "broken")]

    # Deregistered: gone from the catalog at once.
    c.agent.service.deregister("web-1")
    _, nodes = c.catalog.service("web")
    assert nodes == []


def test_kv_put_get_recurse_cas_delete(c):
    assert c.kv.put("app/config/db", "postgres://db:5432")
    assert c.kv.put("app/config/cache", b"\x00\x01binary", flags=7)
    _, item = c.kv.get("app/config/cache")
    assert item["Value"] == b"\x00\x01binary" and item["Flags"] == 7
    _, items = c.kv.get("app/", recurse=True)
    assert [i["Key"] for i in items] == ["app/config/cache", "app/config/db"]

    _, db = c.kv.get("app/config/db")
    assert not c.kv.put("app/config/db", "stale", cas=db["ModifyIndex"] - 1)
    _, still = c.kv.get("app/config/db")
    assert still["Value"] == b"postgres://db:5432"
    assert c.kv.put("app/config/db", "postgres://db2:5432", cas=db["ModifyIndex"])

    assert c.kv.delete("app/", recurse=True)
    index, gone = c.kv.get("app/config/db")
    assert gone is None and int(index) > 0


def test_blocking_get_returns_on_change(c):
    c.kv.put("leader", "a")
    index, _ = c.kv.get("leader")

    def write_later():
        time.sleep(0.5)
        consul.Consul(port=c.http.port).kv.put("leader", "b")

    threading.Thread(target=write_later).start()
    start = time.time()
    new_index, item = c.kv.get("leader", index=index, wait="10s")
    elapsed = time.time() - start
    assert item["Value"] == b"b"
    assert int(new_index) > int(index)
    assert 0.3 < elapsed < 5, f"blocking get returned after {elapsed:.2f}s"

    # Nothing changes: the query waits for its `wait` and returns the same index.
    start = time.time()
    same_index, _ = c.kv.get("leader", index=new_index, wait="300ms")
    assert same_index == new_index
    assert time.time() - start >= 0.29


def test_a_session_lock_with_a_second_client_waiting(c):
    other = consul.Consul(port=c.http.port)
    s1 = c.session.create(name="master-1", lock_delay=0, ttl=10)
    s2 = other.session.create(name="master-2", lock_delay=0, ttl=10)
    assert c.kv.put("service/mesos/leader", "master-1", acquire=s1)
    assert not other.kv.put("service/mesos/leader", "master-2", acquire=s2)
    index, held = other.kv.get("service/mesos/leader")
    assert held["Session"] == s1 and held["Value"] == b"master-1"

    result = {}

    def wait_for_release():
        idx, item = other.kv.get("service/mesos/leader", index=index, wait="10s")
        result["session"] = item.get("Session")
        result["took"] = other.kv.put("service/mesos/leader", "master-2", acquire=s2)

    waiter = threading.Thread(target=wait_for_release)
    waiter.start()
    time.sleep(0.3)
    assert c.kv.put("service/mesos/leader", "master-1", release=s1)
    waiter.join(10)
    assert result == {"session": None, "took": True}
    _, now = c.kv.get("service/mesos/leader")
    assert now["Session"] == s2 and now["Value"] == b"master-2" and now["LockIndex"] == 2


def test_destroying_a_session_releases_its_lock_after_the_lock_delay(c):
    s1 = c.session.create(lock_delay=1)
    s2 = c.session.create(lock_delay=0)
    assert c.kv.put("lock", "x", acquire=s1)
    assert c.session.destroy(s1)
    _, item = c.kv.get("lock")
    assert "Session" not in item
    # Lock-delay: nobody may take it for 1 s after its holder was invalidated.
    assert not c.kv.put("lock", "y", acquire=s2)
    time.sleep(1.1)
    assert c.kv.put("lock", "y", acquire=s2)


def test_bad_input_changes_nothing(c):
    assert c.kv.put("k", "v")
    with pytest.raises(consul.ConsulException) as big:
        c.kv.put("k", "x" * (512 * 1024 + 1))
    assert "413" in str(big.value)
    # Clients remove plain dot segments themselves, so these go percent-encoded.
    base = f"http://127.0.0.1:{c.http.port}/v1/kv/"
    for key, why in [("a/%2E%2E/k", ".."), ("a%00b", "NUL"), ("k" * 4096, "limit")]:
        r = requests.put(base + key, data=b"v", timeout=5)
        assert r.status_code == 400 and why in r.text, (key[:20], r.status_code, r.text)
    r = requests.put(base + "k?cas=notanumber", data=b"v", timeout=5)
    assert r.status_code == 400 and "cas" in r.text
    _, item = c.kv.get("k")
    assert item["Value"] == b"v"
    with pytest.raises(consul.ConsulException) as port:
        c.agent.service.register("web", port="eighty")
    assert "400" in str(port.value) and "port" in str(port.value).lower()
    assert c.agent.services() == {}
