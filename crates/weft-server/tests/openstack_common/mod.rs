//! Neutron through the OpenStack listener of an in-process server, for the
//! `openstack_*` tests: the project `shop` (static token `t-shop`) on node `node-1`,
//! weft's own API as the admin, and refusals checked to change nothing.
#![allow(dead_code)] // each test file uses its share

use crate::common::{agent, registration};
use reqwest::Method;
use serde_json::{Value, json};
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
