//! Neutron through the OpenStack listener of an in-process server, for the
//! `openstack_*` tests: the project `shop` (static token `t-shop`) on node `node-1`,
//! weft's own API as the admin, and refusals checked to change nothing; and [`Cloud`],
//! Nova, Glance and Neutron as a static token's project, for the Nova tests.
#![allow(dead_code)] // each test file uses its share

use crate::common::{agent, registration};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use weft_server::{ServerConfig, ServerHandle, serve};

/// Neutron and weft's own API, as the project `shop` (static token) and the admin.
pub struct Os {
    http: reqwest::Client,
    neutron: String,
    weft: String,
    admin: String,
}

impl Os {
    pub async fn start(dir: &std::path::Path) -> (ServerHandle, Os) {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir);
        config.openstack.listen = Some("127.0.0.1:0".parse().unwrap());
        config.openstack.static_tokens = vec![("t-shop".into(), "shop".into())];
        let server = serve(config).await.unwrap();
        agent(&server)
            .register_node(&registration("node-1"))
            .await
            .unwrap();
        let os = Os {
            http: reqwest::Client::new(),
            neutron: format!("http://{}/network/v2.0", server.openstack_addr().unwrap()),
            weft: server.base_url().to_string(),
            admin: server.admin_token().to_string(),
        };
        (server, os)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.neutron))
            .header("x-auth-token", "t-shop");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, 201, "POST {path} {body}: {answer}");
        answer
    }

    /// weft's own API, as the admin.
    pub async fn weft(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.weft))
            .bearer_auth(&self.admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
        response.json().await.unwrap()
    }

    pub async fn tenant(&self) -> Value {
        self.weft(Method::GET, "/v1/tenants/shop", None).await
    }

    pub async fn endpoint(&self, name: &str) -> Value {
        self.weft(Method::GET, &format!("/v1/endpoints/{name}"), None)
            .await
    }

    /// What a refusal must leave as it was: weft's tenant and endpoints, and every
    /// Neutron list.
    pub async fn snapshot(&self) -> Vec<Value> {
        let mut all = vec![
            self.tenant().await,
            self.weft(Method::GET, "/v1/endpoints", None).await,
        ];
        for list in [
            "/networks",
            "/subnets",
            "/ports",
            "/routers",
            "/security-groups",
            "/security-group-rules",
        ] {
            all.push(self.get(list).await);
        }
        all
    }

    /// A refusal: Neutron's status, exception type and body, and nothing changed.
    pub async fn refused(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: (u16, &str),
    ) {
        let before = self.snapshot().await;
        let (status, answer) = self.call(method.clone(), path, body.clone()).await;
        let error = &answer["NeutronError"];
        assert_eq!(
            (status, error["type"].as_str().unwrap_or("")),
            want,
            "{method} {path} {body:?}: {answer}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()) && error["detail"].is_string(),
            "NeutronError body: {answer}"
        );
        assert_eq!(
            self.snapshot().await,
            before,
            "{method} {path} {body:?} changed something"
        );
    }
}

pub fn id(body: &Value, key: &str) -> String {
    body[key]["id"].as_str().unwrap().to_string()
}

/// A network with one subnet; its id and the subnet's.
pub async fn network(os: &Os, name: &str, cidr: &str) -> (String, String) {
    let net = os
        .post("/networks", json!({"network": {"name": name}}))
        .await;
    let net = id(&net, "network");
    let sub = os
        .post(
            "/subnets",
            json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4}}),
        )
        .await;
    (net, id(&sub, "subnet"))
}

pub fn port(net: &str, extra: Value) -> Value {
    let mut p = json!({"network_id": net, "binding:host_id": "node-1"});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    json!({ "port": p })
}

/// The static token of the project `shop`.
pub const SHOP: &[(&str, &str)] = &[("t-shop", "shop")];
/// The static tokens of the projects `shop` and `other`.
pub const SHOP_AND_OTHER: &[(&str, &str)] = &[("t-shop", "shop"), ("t-other", "other")];

/// Nova, Glance and Neutron through the OpenStack listener as a project's static
/// token, and weft's own API as the admin, for the in-process Nova tests.
pub struct Cloud {
    pub http: reqwest::Client,
    pub os: String,
    pub weft: String,
    pub admin: String,
}

impl Cloud {
    /// A server with the OpenStack listener, the static `tokens` (token, project) and
    /// a 200 ms schedule interval.
    pub async fn start(dir: &std::path::Path, tokens: &[(&str, &str)]) -> (ServerHandle, Cloud) {
        let mut config = ServerConfig::new(
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
            dir,
        );
        config.openstack.listen = Some("127.0.0.1:0".parse().unwrap());
        config.openstack.static_tokens = tokens
            .iter()
            .map(|(token, project)| ((*token).into(), (*project).into()))
            .collect();
        config.schedule_interval = Duration::from_millis(200);
        let server = serve(config).await.unwrap();
        let cloud = Cloud {
            http: reqwest::Client::new(),
            os: format!("http://{}", server.openstack_addr().unwrap()),
            weft: server.base_url().to_string(),
            admin: server.admin_token().to_string(),
        };
        (server, cloud)
    }

    /// A request to the OpenStack listener: status, headers and JSON body.
    pub async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.os))
            .header("x-auth-token", token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// A request to the OpenStack listener as `token`: status and JSON body.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, body) = self.call_with(token, method, path, body, &[]).await;
        (status, body)
    }

    /// A request as the project `shop` (`t-shop`).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as("t-shop", method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// A GET of weft's own API as the admin.
    pub async fn weft(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.weft))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
        response.json().await.unwrap()
    }

    /// A weft API call as `token` (the agent's join token or the admin's): the status.
    pub async fn weft_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> u16 {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.weft))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status().as_u16()
    }

    /// A network with a subnet of `cidr`, made as `shop`: its id and Neutron's answer.
    pub async fn network(&self, name: &str, cidr: &str) -> (String, Value) {
        let (status, net) = self
            .call(
                Method::POST,
                "/network/v2.0/networks",
                Some(json!({"network": {"name": name}})),
            )
            .await;
        assert_eq!(status, 201, "{net}");
        let net_id = net["network"]["id"].as_str().unwrap().to_string();
        let (status, sub) = self
            .call(
                Method::POST,
                "/network/v2.0/subnets",
                Some(json!({"subnet": {"network_id": net_id, "cidr": cidr, "ip_version": 4}})),
            )
            .await;
        assert_eq!(status, 201, "{sub}");
        (net_id, net)
    }

    /// An image registered in Glance as `shop` (201): Glance's answer.
    pub async fn register_image(&self, image: Value) -> Value {
        let (status, answer) = self
            .call(Method::POST, "/image/v2/images", Some(image))
            .await;
        assert_eq!(status, 201, "{answer}");
        answer
    }

    /// A server created as `shop` (202): its id and Nova's answer.
    pub async fn create_server(&self, server: Value) -> (String, Value) {
        let (status, created) = self
            .call(
                Method::POST,
                "/compute/v2.1/servers",
                Some(json!({ "server": server })),
            )
            .await;
        assert_eq!(status, 202, "{created}");
        (
            created["server"]["id"].as_str().unwrap().to_string(),
            created,
        )
    }

    /// A server deleted as `shop` (204).
    pub async fn delete_server(&self, id: &str) {
        let (status, body) = self
            .call(Method::DELETE, &format!("/compute/v2.1/servers/{id}"), None)
            .await;
        assert_eq!(status, 204, "{body}");
    }

    pub async fn server(&self, id: &str) -> Value {
        self.get(&format!("/compute/v2.1/servers/{id}")).await["server"].clone()
    }

    /// The server once its status is `status` (within 20 s).
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let start = Instant::now();
        loop {
            let server = self.server(id).await;
            if server["status"] == status {
                return server;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "server {id} never {status}: {server}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A server action as `shop`.
    pub async fn action(&self, id: &str, body: Value) -> (u16, Value) {
        self.call(
            Method::POST,
            &format!("/compute/v2.1/servers/{id}/action"),
            Some(body),
        )
        .await
    }
}
