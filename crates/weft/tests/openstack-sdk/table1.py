"""The seed's Table 1 through openstacksdk's Python API (crates/weft/tests/openstack_sdk_table1.rs).

    python table1.py build      three networks with a subnet each, router rt1 with
                                interfaces on NW-A's and NW-B's subnets, seven ports bound
                                to com1 and com2; prints {"A": "10.1.0.2", ...} as the
                                last line once every port is ACTIVE
    python table1.py teardown   deletes it all in order (router interfaces, router,
                                ports, subnets, networks) and checks nothing is listed

The cloud is `weft` of the clouds.yaml that OS_CLIENT_CONFIG_FILE names.
"""

import ipaddress
import json
import sys
import time

import openstack

NETWORKS = [("NW-A", "10.1.0.0/24"), ("NW-B", "10.2.0.0/24"), ("NW-C", "10.3.0.0/24")]
ROUTED = ["NW-A", "NW-B"]
# (container, network, compute node), as the seed's Table 1.
PORTS = [
    ("A", "NW-A", "com1"),
    ("B", "NW-C", "com1"),
    ("C", "NW-B", "com1"),
    ("D", "NW-A", "com1"),
    ("E", "NW-C", "com2"),
    ("F", "NW-B", "com2"),
    ("G", "NW-A", "com2"),
]


def subnet_name(network):
    return "SN-" + network[3:]


def build(conn):
    nets, subnets = {}, {}
    for name, cidr in NETWORKS:
        nets[name] = conn.network.create_network(name=name)
        subnets[name] = conn.network.create_subnet(
            network_id=nets[name].id, name=subnet_name(name), ip_version=4, cidr=cidr
        )
        assert subnets[name].gateway_ip == str(ipaddress.ip_network(cidr)[1]), subnets[name]
    router = conn.network.create_router(name="rt1")
    for name in ROUTED:
        conn.network.add_interface_to_router(router, subnet_id=subnets[name].id)
    owned = list(conn.network.ports(device_id=router.id))
    assert len(owned) == 2, owned
    assert all(p.device_owner == "network:router_interface" for p in owned), owned
    made = {}
    for letter, network, host in PORTS:
        made[letter] = conn.network.create_port(
            name=letter, network_id=nets[network].id, binding_host_id=host
        )
    ips = {}
    deadline = time.monotonic() + 60
    for letter, network, host in PORTS:
        while True:
            port = conn.network.get_port(made[letter].id)
            if port.status == "ACTIVE":
                break
            assert time.monotonic() < deadline, f"port {letter} is still {port.status}"
            time.sleep(0.2)
        assert port.binding_host_id == host, port
        assert port.network_id == nets[network].id, port
        ip = port.fixed_ips[0]["ip_address"]
        assert port.fixed_ips[0]["subnet_id"] == subnets[network].id, port.fixed_ips
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(dict(NETWORKS)[network]), ip
        ips[letter] = ip
    listed = {p.name for p in conn.network.ports()}
    assert {letter for letter, _, _ in PORTS} <= listed, listed
    on_com2 = {p.name for p in conn.network.ports(binding_host_id="com2")}
    assert on_com2 == {letter for letter, _, host in PORTS if host == "com2"}, on_com2
    print(json.dumps(ips))


def teardown(conn):
    router = conn.network.find_router("rt1", ignore_missing=False)
    for name in ROUTED:
        subnet = conn.network.find_subnet(subnet_name(name), ignore_missing=False)
        conn.network.remove_interface_from_router(router, subnet_id=subnet.id)
    assert list(conn.network.ports(device_id=router.id)) == []
    conn.network.delete_router(router, ignore_missing=False)
    for letter, _, _ in PORTS:
        port = conn.network.find_port(letter, ignore_missing=False)
        conn.network.delete_port(port, ignore_missing=False)
    for name, _ in NETWORKS:
        subnet = conn.network.find_subnet(subnet_name(name), ignore_missing=False)
        conn.network.delete_subnet(subnet, ignore_missing=False)
    for name, _ in NETWORKS:
        network = conn.network.find_network(name, ignore_missing=False)
        conn.network.delete_network(network, ignore_missing=False)
    for kind in ("routers", "ports", "subnets", "networks"):
        left = list(getattr(conn.network, kind)())
        assert left == [], f"{kind} left: {left}"
    print("teardown ok")


def main():
    conn = openstack.connect(cloud="weft")
    {"build": build, "teardown": teardown}[sys.argv[1]](conn)


if __name__ == "__main__":
    main()
