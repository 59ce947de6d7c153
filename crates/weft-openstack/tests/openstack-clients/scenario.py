"""Real OpenStack clients against weft: python-openstackclient (the `openstack` CLI) and
openstacksdk, through Keystone v3 (and raw v2.0), on Neutron networks and subnets,
security groups and their rules, and ports' security groups and port security.

Usage: scenario.py API_URL ADMIN_TOKEN OPENSTACK_URL OPENSTACK_BIN
Every check is an assert; the last line printed is "openstack scenario: N checks passed".
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid

import openstack
import requests

API, ADMIN, OS_URL, OPENSTACK = sys.argv[1:5]
CHECKS = 0


def check(cond, what):
    global CHECKS
    assert cond, what
    CHECKS += 1


def api(method, path, body=None, token=ADMIN, ok=(200, 201)):
    r = requests.request(method, API + path, json=body,
                         headers={"Authorization": "Bearer " + token})
    if ok:
        assert r.status_code in ok, f"{method} {path}: {r.status_code} {r.text}"
    return r


def cli(*args, fail=False):
    """Runs `openstack --os-cloud weft ARGS`; JSON output parsed when -f json."""
    p = subprocess.run([OPENSTACK, "--os-cloud", "weft", *args],
                       capture_output=True, text=True, timeout=120)
    if fail:
        check(p.returncode != 0, f"openstack {' '.join(args)} should fail: {p.stdout}")
        return p.stderr
    assert p.returncode == 0, f"openstack {' '.join(args)}: {p.stderr}"
    return json.loads(p.stdout) if "json" in args else p.stdout


def neutron(method, path, token, body=None):
    return requests.request(method, OS_URL + "/network/v2.0" + path, json=body,
                            headers={"X-Auth-Token": token})


def neutron_error(r, status, kind):
    check(r.status_code == status, f"{r.request.method} {r.url}: {r.status_code} {r.text}")
    err = r.json().get("NeutronError", {})
    check(err.get("type") == kind and err.get("message") and "detail" in err,
          f"NeutronError body: {r.text}")
    return err["message"]


def state(token):
    """What a refusal must leave unchanged: Neutron's view and weft's tenant."""
    nets = neutron("GET", "/networks", token).json()
    subs = neutron("GET", "/subnets", token).json()
    tenant = api("GET", "/v1/tenants/demo").json()
    return (json.dumps(nets, sort_keys=True), json.dumps(subs, sort_keys=True),
            json.dumps(tenant, sort_keys=True))


# ---- identity -------------------------------------------------------------------------
user = api("POST", "/v1/openstack/users",
           {"name": "demo", "password": "s3cret", "project": "demo"}).json()
check(user["project"] == "demo" and len(user["project_id"]) == 32, f"user: {user}")

home = tempfile.mkdtemp()
with open(os.path.join(home, "clouds.yaml"), "w") as f:
    f.write(f"""clouds:
  weft:
    auth:
      auth_url: {OS_URL}/v3
      username: demo
      password: s3cret
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
""")
os.environ["OS_CLIENT_CONFIG_FILE"] = os.path.join(home, "clouds.yaml")

token = cli("token", "issue", "-f", "json")
check(token["project_id"] == user["project_id"] and token["user_id"] == user["id"],
      f"token issue: {token}")
tok = token["id"]

# Validation, and the same token on weft's own API (a tenant token of demo).
r = requests.get(OS_URL + "/v3/auth/tokens",
                 headers={"X-Auth-Token": tok, "X-Subject-Token": tok})
check(r.status_code == 200 and r.json()["token"]["project"]["name"] == "demo"
      and r.headers["X-Subject-Token"] == tok, f"validate: {r.status_code} {r.text}")
check(api("GET", "/v1/tenants", token=tok).status_code == 200, "token on weft's API")
check(api("GET", "/v1/nodes", token=tok, ok=None).status_code == 403,
      "a Keystone token is a tenant token, not an admin one")
bad = requests.post(OS_URL + "/v3/auth/tokens", json={"auth": {"identity": {
    "methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"name": "Default"}, "password": "wrong"}}}}})
check(bad.status_code == 401 and bad.json()["error"]["code"] == 401, f"bad password: {bad.text}")

catalog = cli("catalog", "list", "-f", "json")
types = {c["Type"] for c in catalog}
check({"identity", "network", "compute", "image"} <= types, f"catalog: {catalog}")

# v2.0, as gophercloud (Terraform) sends it.
r = requests.post(OS_URL + "/v2.0/tokens", json={"auth": {
    "passwordCredentials": {"username": "demo", "password": "s3cret"}, "tenantName": "demo"}})
check(r.status_code == 200, f"v2.0 tokens: {r.status_code} {r.text}")
access = r.json()["access"]
check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", access["token"]["expires"])
      and access["token"]["tenant"]["name"] == "demo", f"v2.0 token: {access['token']}")
net_ep = [s for s in access["serviceCatalog"] if s["type"] == "network"][0]["endpoints"][0]
check(net_ep["publicURL"] and net_ep["internalURL"] and net_ep["region"] == "RegionOne",
      f"v2.0 catalog: {net_ep}")
# Revocation: the v2.0 token dies on Keystone and on weft's API.
v2tok = access["token"]["id"]
check(api("GET", "/v1/tenants", token=v2tok).status_code == 200, "v2.0 token on weft")
r = requests.delete(OS_URL + "/v3/auth/tokens",
                    headers={"X-Auth-Token": tok, "X-Subject-Token": v2tok})
check(r.status_code == 204, f"revoke: {r.status_code} {r.text}")
check(api("GET", "/v1/tenants", token=v2tok, ok=None).status_code == 401, "revoked token")

# ---- networks and subnets with the CLI -------------------------------------------------
net = cli("network", "create", "net1", "-f", "json")
check(net["name"] == "net1" and net["status"] == "ACTIVE" and net["subnets"] == [],
      f"network create: {net}")
check(any(n["Name"] == "net1" for n in cli("network", "list", "-f", "json")), "network list")
sub = cli("subnet", "create", "--network", "net1", "--subnet-range", "10.9.0.0/24",
          "sub1", "-f", "json")
check(sub["cidr"] == "10.9.0.0/24" and sub["gateway_ip"] == "10.9.0.1"
      and sub["network_id"] == net["id"] and sub["ip_version"] == 4, f"subnet: {sub}")
shown = cli("network", "show", "net1", "-f", "json")
check(shown["subnets"] == [sub["id"]] and shown["id"] == net["id"], f"network show: {shown}")

# In weft's model: an EPG with its bridge domain, the subnet with the anycast gateway.
tenant = api("GET", "/v1/tenants/demo").json()
epg_name = net["weft:epg"].split("/")[-1]
bd = tenant["bridge_domain"][epg_name]
check(bd["vrf"] == "openstack" and "10.9.0.0/24" in bd["subnet"]
      and bd["subnet"]["10.9.0.0/24"]["gateway"] == "10.9.0.1", f"weft tenant: {tenant}")
check(tenant["application_profile"]["openstack"]["epg"][epg_name]["bridge_domain"] == epg_name,
      "EPG on its bridge domain")

# ---- bad input: Neutron's codes and bodies, and nothing changed --------------------------
before = state(tok)
err = cli("subnet", "create", "--network", "net1", "--subnet-range", "10.9.0.128/25",
          "sub2", fail=True)
check("overlaps" in err, f"overlap via CLI: {err}")
r = neutron("POST", "/subnets", tok, {"subnet": {
    "network_id": net["id"], "cidr": "10.9.0.128/25", "ip_version": 4}})
neutron_error(r, 400, "InvalidInput")
r = neutron("POST", "/subnets", tok, {"subnet": {
    "network_id": net["id"], "cidr": "10.9.0.0/33", "ip_version": 4}})
check("not a valid IP subnet" in neutron_error(r, 400, "InvalidInput"), "invalid CIDR")
err = cli("subnet", "create", "--network", "net1", "--subnet-range", "10.300.0.0/24",
          "sub3", fail=True)
check("400" in err or "invalid" in err.lower(), f"invalid CIDR via CLI: {err}")
unknown = str(uuid.uuid4())
neutron_error(neutron("GET", "/networks/" + unknown, tok), 404, "NetworkNotFound")
neutron_error(neutron("DELETE", "/subnets/" + unknown, tok), 404, "SubnetNotFound")
cli("network", "show", unknown, fail=True)
neutron_error(neutron("GET", "/extensions/dns-integration", tok), 404, "ExtensionNotFound")
aliases = {e["alias"] for e in neutron("GET", "/extensions", tok).json()["extensions"]}
check(aliases == {"project-id", "standard-attr-description", "pagination", "router", "binding",
                  "allowed-address-pairs", "security-group", "port-security"}, f"{aliases}")
# Floating IPs are not served: Neutron's 404 for a resource whose extension is not loaded.
# The CLI reads that 404 as no floating IPs on a list, and prints it on anything else.
neutron_error(neutron("GET", "/floatingips", tok), 404, "HTTPNotFound")
neutron_error(neutron("POST", "/floatingips", tok, {"floatingip": {}}), 404, "HTTPNotFound")
check(cli("floating", "ip", "list", "-f", "json") == [], "floating ip list")
err = cli("floating", "ip", "show", unknown, fail=True)
check("NotFoundException: 404" in err and "Floating IPs are not supported by weft" in err,
      f"floating ip show: {err}")
r = neutron("POST", "/networks", tok, {"network": {"name": "x", "bogus": 1}})
neutron_error(r, 400, "HTTPBadRequest")
check(state(tok) == before, "refusals changed nothing")

# A port in use (a weft endpoint in the network's EPG, on a registered node).
api("POST", "/v1/nodes", {"name": "com1", "underlay_ip": "192.0.2.10",
                          "netns_prefix": "weftos", "resources":
                          {"cpus": 2.0, "mem_mb": 1024, "disk_mb": 1024}})
ep = api("POST", "/v1/endpoints", {"name": "vm-1", "epg": net["weft:epg"],
                                   "node": "com1"}).json()
check(ep["ip"].startswith("10.9.0.") and ep["gateway"] == "10.9.0.1", f"endpoint: {ep}")
before = state(tok)
neutron_error(neutron("DELETE", "/networks/" + net["id"], tok), 409, "NetworkInUse")
neutron_error(neutron("DELETE", "/subnets/" + sub["id"], tok), 409, "SubnetInUse")
err = cli("network", "delete", "net1", fail=True)
check("in use" in err, f"network delete in use via CLI: {err}")
check(state(tok) == before, "in-use refusals changed nothing")
api("DELETE", "/v1/endpoints/vm-1")

# ---- security groups and port security with the CLI -------------------------------------
groups = cli("security", "group", "list", "-f", "json")
check([g["Name"] for g in groups] == ["default"], f"the default group: {groups}")
default = cli("security", "group", "show", "default", "-f", "json")
check(len(default["rules"]) == 4, f"default rules: {default}")
web = cli("security", "group", "create", "web", "--description", "front", "-f", "json")
check(web["name"] == "web" and web["description"] == "front" and len(web["rules"]) == 2,
      f"security group create: {web}")
ssh = cli("security", "group", "rule", "create", "--ingress", "--protocol", "tcp",
          "--dst-port", "22", "--remote-ip", "10.8.0.0/16", "web", "-f", "json")
check(ssh["port_range_min"] == 22 and ssh["port_range_max"] == 22
      and ssh["remote_ip_prefix"] == "10.8.0.0/16" and ssh["protocol"] == "tcp",
      f"rule create: {ssh}")
ping = cli("security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
           "--remote-group", "default", "web", "-f", "json")
check(ping["remote_group_id"] == default["id"] and ping["protocol"] == "icmp", f"{ping}")
rules = cli("security", "group", "rule", "list", "web", "-f", "json")
check(len(rules) == 4 and {r["ID"] for r in rules} >= {ssh["id"], ping["id"]},
      f"rule list: {rules}")
tenant = api("GET", "/v1/tenants/demo").json()
web_name = [g for g in tenant["security_group"] if g.startswith("sg-")]
check(len(web_name) == 1 and len(tenant["security_group"][web_name[0]]["rule"]) == 4,
      f"weft's tenant holds the group and its rules: {tenant.get('security_group')}")
web_name = web_name[0]
before = state(tok)
err = cli("security", "group", "rule", "create", "--ingress", "--protocol", "tcp",
          "--dst-port", "22", "--remote-ip", "10.8.0.0/16", "web", fail=True)
check("already exists" in err, f"duplicate rule via CLI: {err}")
err = cli("security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
          "--icmp-type", "8", "web", fail=True)
check("ICMP type/code matching is not supported" in err, f"icmp type via CLI: {err}")
err = cli("security", "group", "delete", "default", fail=True)
check("default security group" in err, f"default group delete via CLI: {err}")
check(state(tok) == before, "security group refusals changed nothing")
cli("security", "group", "rule", "delete", ping["id"])
check(len(cli("security", "group", "rule", "list", "web", "-f", "json")) == 3, "rule deleted")

# Ports: the default group unless told, groups only with port security.
p0 = cli("port", "create", "--network", "net1", "--host", "com1", "p0", "-f", "json")
check(p0["security_group_ids"] == [default["id"]] and p0["port_security_enabled"] is True,
      f"port with the default group: {p0}")
p1 = cli("port", "create", "--network", "net1", "--host", "com1", "--security-group", "web",
         "p1", "-f", "json")
check(p1["security_group_ids"] == [web["id"]], f"port create --security-group: {p1}")
p1_endpoint = "/v1/endpoints/" + neutron("GET", "/ports/" + p1["id"], tok).json()["port"][
    "weft:endpoint"]
ep = api("GET", p1_endpoint).json()
check(ep["security_groups"] == [web_name] and ep.get("port_security", True), f"endpoint: {ep}")
err = cli("security", "group", "delete", "web", fail=True)
check("in use" in err, f"group on a port via CLI: {err}")
before = state(tok)
err = cli("port", "set", "--disable-port-security", "p1", fail=True)
check("security group associated" in err, f"disable port security with groups: {err}")
check(state(tok) == before and api("GET", p1_endpoint).json() == ep,
      "refused port set changed nothing")
cli("port", "set", "--no-security-group", "--disable-port-security", "p1")
p1 = cli("port", "show", "p1", "-f", "json")
check(p1["security_group_ids"] == [] and p1["port_security_enabled"] is False,
      f"port set --no-security-group --disable-port-security: {p1}")
ep = api("GET", p1_endpoint).json()
check(ep["port_security"] is False and "security_groups" not in ep, f"endpoint: {ep}")
cli("port", "delete", "p0", "p1")
cli("security", "group", "delete", "web")
check([g["Name"] for g in cli("security", "group", "list", "-f", "json")] == ["default"],
      "security group deleted")
check(web_name not in api("GET", "/v1/tenants/demo").json()["security_group"],
      "and gone from weft's tenant")

# A network made with weft's own API shows up in Neutron, with a stable id.
tenant = api("GET", "/v1/tenants/demo").json()
tenant["bridge_domain"]["legacy-bd"] = {"vrf": "openstack",
                                        "subnet": {"10.20.0.0/24": {"gateway": "10.20.0.1"}}}
tenant["application_profile"]["store"] = {"epg": {"legacy": {"bridge_domain": "legacy-bd"}}}
api("PUT", "/v1/tenants/demo", tenant)
nets = cli("network", "list", "-f", "json")
legacy = [n for n in nets if n["Name"] == "legacy"]
check(len(legacy) == 1 and len(legacy[0]["Subnets"]) == 1, f"weft-made network: {nets}")
again = cli("network", "list", "-f", "json")
check([n["ID"] for n in again] == [n["ID"] for n in nets], "ids are stable")

# ---- the same with openstacksdk ---------------------------------------------------------
conn = openstack.connect(cloud="weft")
snet = conn.network.create_network(name="sdknet")
check(snet.name == "sdknet" and snet.status == "ACTIVE", f"sdk network: {snet}")
ssub = conn.network.create_subnet(network_id=snet.id, ip_version=4, cidr="10.30.0.0/24",
                                  name="sdksub", dns_nameservers=["10.0.0.53"])
check(str(ssub.gateway_ip) == "10.30.0.1" and ssub.dns_nameservers == ["10.0.0.53"],
      f"sdk subnet: {ssub}")
check(conn.network.find_network("sdknet").id == snet.id, "sdk find by name")
check([n.id for n in conn.network.networks(name="sdknet")] == [snet.id], "sdk filter")
paged = [n.id for n in conn.network.networks(limit=1)]
check(len(paged) == 3 and len(set(paged)) == 3, f"sdk pagination: {paged}")
updated = conn.network.update_network(snet, name="sdknet2")
check(updated.name == "sdknet2", "sdk update")
try:
    conn.network.create_subnet(network_id=snet.id, ip_version=4, cidr="10.30.0.0/25")
    check(False, "overlap accepted by sdk")
except openstack.exceptions.BadRequestException as e:
    check("overlaps" in str(e), f"sdk overlap: {e}")
conn.network.delete_subnet(ssub)
conn.network.delete_network(snet)
try:
    conn.network.get_network(snet.id)
    check(False, "deleted network still there")
except openstack.exceptions.NotFoundException:
    check(True, "sdk 404")

# ---- delete with the CLI: the EPG and bridge domain leave weft's model -------------------
cli("subnet", "delete", "sub1")
cli("network", "delete", "net1")
check(not any(n["Name"] == "net1" for n in cli("network", "list", "-f", "json")), "deleted")
tenant = api("GET", "/v1/tenants/demo").json()
check(epg_name not in tenant["bridge_domain"]
      and epg_name not in tenant["application_profile"]["openstack"]["epg"],
      f"weft tenant after delete: {tenant}")

print(f"openstack scenario: {CHECKS} checks passed")
