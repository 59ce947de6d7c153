//! Neutron routers and ports through the OpenStack listener in process: a router is a
//! contract its networks' EPGs provide and consume, a port is a weft endpoint; every
//! refusal (router in use, unknown ids, a bad MAC, a security group that is no id, address
//! pairs without port security, a port without a host, a gateway) answers Neutron's code
//! and changes nothing. Security groups: `openstack_security_groups.rs`.
#![allow(clippy::unwrap_used)] // tests fail loudly

mod common;
mod openstack_common;

use common::{admin, endpoint_request};
use openstack_common::Os;
use reqwest::Method;
use serde_json::{Value, json};

fn kind(body: &Value) -> &str {
    body["NeutronError"]["type"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_join_networks_and_ports_are_endpoints_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, os) = Os::start(dir.path()).await;
    let tenant_json = || os.tenant();

    // Two networks with a subnet each.
    let mut nets = Vec::new();
    let mut subnets = Vec::new();
    let mut net_epgs = Vec::new();
    for (name, cidr) in [("a", "10.50.0.0/24"), ("b", "10.51.0.0/24")] {
        let (status, net) = os
            .call(
                Method::POST,
                "/networks",
                Some(json!({"network": {"name": name}})),
            )
            .await;
        assert_eq!(status, 201, "{net}");
        let id = net["network"]["id"].as_str().unwrap().to_string();
        net_epgs.push(net["network"]["weft:epg"].as_str().unwrap().to_string());
        let (status, sub) = os
            .call(
                Method::POST,
                "/subnets",
                Some(json!({"subnet": {"network_id": id, "cidr": cidr, "ip_version": 4}})),
            )
            .await;
        assert_eq!(status, 201, "{sub}");
        subnets.push(sub["subnet"]["id"].as_str().unwrap().to_string());
        nets.push(id);
    }

    // A gateway is refused; nothing is made.
    let (status, body) = os
        .call(
            Method::POST,
            "/routers",
            Some(json!({"router": {"name": "rt0",
                "external_gateway_info": {"network_id": nets[0]}}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("north-south"), "{body}");
    let (_, list) = os.call(Method::GET, "/routers", None).await;
    assert_eq!(list["routers"].as_array().unwrap().len(), 0);

    let (status, body) = os
        .call(
            Method::POST,
            "/routers",
            Some(json!({"router": {"name": "rt1", "admin_state_up": true}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let router = body["router"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["router"]["name"], "rt1");
    assert_eq!(body["router"]["status"], "ACTIVE");
    let contract = body["router"]["weft:contract"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_string();
    assert!(contract.starts_with("router-"), "{contract}");

    // Interfaces: the networks' EPGs provide and consume the router's contract.
    let iface = |add: bool, key: &str, id: &str| {
        let verb = if add { "add" } else { "remove" };
        (
            format!("/routers/{router}/{verb}_router_interface"),
            json!({ key: id }),
        )
    };
    for subnet in &subnets {
        let (path, body) = iface(true, "subnet_id", subnet);
        let (status, answer) = os.call(Method::PUT, &path, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["subnet_id"], *subnet);
        assert_eq!(answer["id"], router);
    }
    let (path, body) = iface(true, "subnet_id", &subnets[0]);
    let (status, answer) = os.call(Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("already has a port on subnet"),
        "{answer}"
    );
    // Each interface shows as Neutron shows it: a port the router owns, holding the
    // subnet's gateway; it cannot be deleted through the port API.
    let (status, list) = os
        .call(Method::GET, &format!("/ports?device_id={router}"), None)
        .await;
    assert_eq!(status, 200, "{list}");
    let owned = list["ports"].as_array().unwrap();
    assert_eq!(owned.len(), 2, "{list}");
    assert!(
        owned
            .iter()
            .all(|p| p["device_owner"] == "network:router_interface"),
        "{list}"
    );
    let gateways: Vec<&str> = owned
        .iter()
        .map(|p| p["fixed_ips"][0]["ip_address"].as_str().unwrap())
        .collect();
    assert!(gateways.contains(&"10.50.0.1"), "{gateways:?}");
    let iface_port = owned[0]["id"].as_str().unwrap().to_string();
    let (status, body) = os
        .call(Method::GET, &format!("/ports/{iface_port}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = os
        .call(Method::DELETE, &format!("/ports/{iface_port}"), None)
        .await;
    assert_eq!((status, kind(&body)), (409, "L3PortInUse"), "{body}");
    let model = tenant_json().await;
    let epgs = model.to_string();
    assert!(
        epgs.matches(&format!("\"{contract}\"")).count() >= 5,
        "contract, filter and two EPGs' provides and consumes: {model}"
    );

    // In use: the router, the networks, the subnets.
    let (status, body) = os
        .call(Method::DELETE, &format!("/routers/{router}"), None)
        .await;
    assert_eq!((status, kind(&body)), (409, "RouterInUse"), "{body}");
    let (status, body) = os
        .call(Method::DELETE, &format!("/networks/{}", nets[0]), None)
        .await;
    assert_eq!((status, kind(&body)), (409, "NetworkInUse"), "{body}");
    let (status, body) = os
        .call(Method::DELETE, &format!("/subnets/{}", subnets[0]), None)
        .await;
    assert_eq!((status, kind(&body)), (409, "SubnetInUse"), "{body}");
    assert_eq!(tenant_json().await, model, "a refusal changed the model");

    // Unknown ids.
    let nobody = "00000000-0000-5000-8000-000000000000";
    let (status, body) = os
        .call(Method::GET, &format!("/routers/{nobody}"), None)
        .await;
    assert_eq!((status, kind(&body)), (404, "RouterNotFound"), "{body}");
    let (status, body) = os
        .call(Method::GET, &format!("/ports/{nobody}"), None)
        .await;
    assert_eq!((status, kind(&body)), (404, "PortNotFound"), "{body}");
    let (status, body) = os
        .call(Method::DELETE, &format!("/ports/{nobody}"), None)
        .await;
    assert_eq!((status, kind(&body)), (404, "PortNotFound"), "{body}");

    // Ports: refusals first, none leaves an endpoint or metadata behind.
    let port = |extra: Value| {
        let mut p = json!({"network_id": nets[0], "name": "pa1", "binding:host_id": "node-1"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({ "port": p })
    };
    for (extra, status, needle) in [
        (json!({"binding:host_id": null}), 400, "binding:host_id"),
        (json!({"mac_address": "fa:16:3e:zz:00:01"}), 400, "MAC"),
        (json!({"mac_address": "01:00:5e:00:00:01"}), 400, "MAC"),
        (
            json!({"security_groups": ["default"]}),
            400,
            "is not an integer or uuid",
        ),
        (
            json!({"port_security_enabled": false,
                   "allowed_address_pairs": [{"ip_address": "10.50.0.200"}]}),
            409,
            "AddressPairAndPortSecurityRequired",
        ),
        (json!({"binding:host_id": "node-9"}), 400, "not registered"),
        (
            json!({"fixed_ips": [{"ip_address": "10.51.0.9"}]}),
            400,
            "not a valid IP",
        ),
    ] {
        let (got, body) = os.call(Method::POST, "/ports", Some(port(extra))).await;
        assert_eq!(got, status, "{body}");
        assert!(body.to_string().contains(needle), "{needle}: {body}");
    }
    let (_, list) = os.call(Method::GET, "/ports?device_owner=", None).await;
    assert_eq!(list["ports"], json!([]), "a refused port left an endpoint");

    let (status, body) = os
        .call(
            Method::POST,
            "/ports",
            Some(port(json!({
                "mac_address": "fa:16:3e:00:00:01",
                "fixed_ips": [{"subnet_id": subnets[0], "ip_address": "10.50.0.10"}],
                "device_owner": "compute:nova",
                "security_groups": [],
            }))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let p = &body["port"];
    let port_id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["name"], "pa1");
    assert_eq!(p["mac_address"], "fa:16:3e:00:00:01");
    assert_eq!(p["binding:host_id"], "node-1");
    assert_eq!(p["device_owner"], "compute:nova");
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": subnets[0], "ip_address": "10.50.0.10"}])
    );
    assert!(p["weft:endpoint"].as_str().unwrap().starts_with("port-"));
    // The same address again is taken.
    let (status, body) = os
        .call(
            Method::POST,
            "/ports",
            Some(port(json!({"fixed_ips": [{"ip_address": "10.50.0.10"}]}))),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    let (status, body) = os
        .call(
            Method::PUT,
            &format!("/ports/{port_id}"),
            Some(json!({"port": {"name": "pa1b",
                "allowed_address_pairs": [{"ip_address": "10.50.0.200"}]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["port"]["name"], "pa1b");
    assert_eq!(
        body["port"]["allowed_address_pairs"][0]["ip_address"],
        "10.50.0.200"
    );
    let (status, body) = os
        .call(Method::GET, &format!("/ports/{port_id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["port"]["id"], port_id);

    // The address and MAC may be restated, not changed.
    let (status, body) = os
        .call(
            Method::PUT,
            &format!("/ports/{port_id}"),
            Some(json!({"port": {"mac_address": "fa:16:3e:00:00:01",
                "fixed_ips": [{"subnet_id": subnets[0], "ip_address": "10.50.0.10"}]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for change in [
        json!({"mac_address": "fa:16:3e:00:00:02"}),
        json!({"fixed_ips": [{"ip_address": "10.50.0.11"}]}),
        json!({"binding:host_id": "node-2"}),
        json!({"security_groups": ["default"]}),
    ] {
        let (status, body) = os
            .call(
                Method::PUT,
                &format!("/ports/{port_id}"),
                Some(json!({ "port": change })),
            )
            .await;
        assert_eq!(status, 400, "{change}: {body}");
    }
    // An endpoint made with weft's API is a port too, but weft's to change.
    let weft_made = admin(&server)
        .create_endpoint(&endpoint_request("ep-weft", &net_epgs[0], "node-1"))
        .await
        .unwrap();
    let (_, list) = os.call(Method::GET, "/ports?name=ep-weft", None).await;
    let ports = list["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{list}");
    assert_eq!(
        ports[0]["fixed_ips"][0]["ip_address"],
        weft_made.ip.to_string()
    );
    assert_eq!(ports[0]["network_id"], nets[0]);
    let weft_port = ports[0]["id"].as_str().unwrap().to_string();
    let (status, body) = os
        .call(Method::DELETE, &format!("/ports/{weft_port}"), None)
        .await;
    assert_eq!((status, kind(&body)), (409, "PortInUse"), "{body}");
    admin(&server).delete_endpoint("ep-weft").await.unwrap();

    // Clean-up in order leaves nothing.
    let (status, body) = os
        .call(Method::DELETE, &format!("/ports/{port_id}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (path, body) = iface(false, "subnet_id", &subnets[0]);
    let (status, answer) = os.call(Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let (path, body) = iface(false, "subnet_id", &subnets[0]);
    let (status, answer) = os.call(Method::PUT, &path, Some(body)).await;
    assert_eq!(
        (status, kind(&answer)),
        (404, "RouterInterfaceNotFoundForSubnet"),
        "{answer}"
    );
    // The other by the port id its addition answered.
    let (path, body) = iface(true, "subnet_id", &subnets[0]);
    let (_, added) = os.call(Method::PUT, &path, Some(body)).await;
    let (path, body) = iface(false, "port_id", added["port_id"].as_str().unwrap());
    let (status, answer) = os.call(Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let (path, body) = iface(false, "subnet_id", &subnets[1]);
    let (status, answer) = os.call(Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, body) = os
        .call(Method::DELETE, &format!("/routers/{router}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(
        !tenant_json().await.to_string().contains(&contract),
        "the router's contract and filter are gone"
    );
    for net in &nets {
        let (status, body) = os
            .call(Method::DELETE, &format!("/networks/{net}"), None)
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let (_, list) = os.call(Method::GET, "/networks", None).await;
    assert_eq!(list["networks"], json!([]));
}
