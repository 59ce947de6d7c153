//! The OpenAPI 3 document served at `/v1/openapi.json`, written by hand from one table of
//! routes (kept next to [`crate::routes::router`]; a test checks both list the same paths).

use serde_json::{Map, Value, json};

/// (path, method, summary, request body type, response body type, blocking query)
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    bool,
);

pub const OPERATIONS: &[Operation] = &[
    (
        "/v1/health",
        "get",
        "Liveness and counts (no token)",
        None,
        "Health",
        false,
    ),
    (
        "/v1/openapi.json",
        "get",
        "This document (no token)",
        None,
        "OpenApi",
        false,
    ),
    (
        "/v1/apply",
        "post",
        "Create or replace whole tenants, validated as one model",
        Some("ApplyRequest"),
        "ApplyResponse",
        false,
    ),
    (
        "/v1/tenants",
        "get",
        "Tenants the token may see",
        None,
        "TenantSummaryList",
        true,
    ),
    (
        "/v1/tenants/{name}",
        "get",
        "One tenant",
        None,
        "Tenant",
        true,
    ),
    (
        "/v1/tenants/{name}",
        "put",
        "Create or replace one tenant",
        Some("Tenant"),
        "ApplyResponse",
        false,
    ),
    (
        "/v1/tenants/{name}",
        "delete",
        "Delete one tenant (its EPGs must have no endpoints)",
        None,
        "ApplyResponse",
        false,
    ),
    (
        "/v1/epgs",
        "get",
        "EPGs with class, VRF and bridge domain",
        None,
        "EpgInfoList",
        true,
    ),
    (
        "/v1/contracts",
        "get",
        "Contracts with their providers and consumers",
        None,
        "ContractInfoList",
        true,
    ),
    (
        "/v1/policy",
        "get",
        "The compiled policy (a tenant token sees its own part)",
        None,
        "CompiledPolicy",
        true,
    ),
    (
        "/v1/tokens",
        "post",
        "Mint a tenant token (admin)",
        Some("TokenRequest"),
        "TokenResponse",
        false,
    ),
    (
        "/v1/privilege",
        "get",
        "Tenants allowed privileged tasks (a tenant token sees its own)",
        None,
        "TenantPrivilegeList",
        true,
    ),
    (
        "/v1/privilege/{tenant}",
        "get",
        "Whether a tenant may run privileged tasks, and its privileged apps",
        None,
        "TenantPrivilege",
        true,
    ),
    (
        "/v1/privilege/{tenant}",
        "put",
        "Allow a tenant privileged tasks (admin; idempotent)",
        None,
        "TenantPrivilege",
        false,
    ),
    (
        "/v1/privilege/{tenant}",
        "delete",
        "Deny a tenant new privileged tasks (admin; its running ones are named and keep running)",
        None,
        "TenantPrivilege",
        false,
    ),
    (
        "/v1/nodes",
        "get",
        "Nodes with readiness and last report (admin, agent)",
        None,
        "NodeList",
        true,
    ),
    (
        "/v1/nodes",
        "post",
        "Register a node (join token)",
        Some("NodeRegistration"),
        "Node",
        false,
    ),
    ("/v1/nodes/{name}", "get", "One node", None, "Node", true),
    (
        "/v1/nodes/{name}",
        "delete",
        "Forget a node without endpoints (admin)",
        None,
        "Deleted",
        false,
    ),
    (
        "/v1/nodes/{name}/heartbeat",
        "put",
        "The node is alive (empty body)",
        None,
        "Empty",
        false,
    ),
    (
        "/v1/nodes/{name}/desired",
        "get",
        "Everything the node's agent programs; a blocking query",
        None,
        "NodeDesired",
        true,
    ),
    (
        "/v1/nodes/{name}/report",
        "put",
        "What the agent installed",
        Some("NodeReport"),
        "Empty",
        false,
    ),
    (
        "/v1/nodes/{name}/images",
        "put",
        "The Docker images the node's engine holds (sent when they change)",
        Some("NodeImages"),
        "Empty",
        false,
    ),
    (
        "/v1/endpoints",
        "get",
        "Endpoints the token may see",
        None,
        "EndpointList",
        true,
    ),
    (
        "/v1/endpoints",
        "post",
        "Create an endpoint; IP and MAC are allocated unless given",
        Some("EndpointRequest"),
        "Endpoint",
        false,
    ),
    (
        "/v1/endpoints/{name}",
        "get",
        "One endpoint",
        None,
        "Endpoint",
        true,
    ),
    (
        "/v1/endpoints/{name}",
        "delete",
        "Delete an endpoint, freeing its IP and MAC",
        None,
        "Deleted",
        false,
    ),
    (
        "/v1/events",
        "get",
        "Server-sent events: one ChangeEvent per committed change",
        None,
        "ChangeEvent",
        false,
    ),
    (
        "/v1/explain",
        "get",
        "Intent versus installed verdict for a flow between endpoints",
        None,
        "LiveExplanation",
        false,
    ),
    (
        "/v1/apps",
        "get",
        "Apps whose EPG the token may see, with tasks counts, deployment and pending reasons",
        None,
        "AppList",
        true,
    ),
    (
        "/v1/apps",
        "post",
        "Create or replace apps (JSON twin of app HCL), validated with every stored app; a changed spec starts a deployment",
        Some("AppsRequest"),
        "AppsResponse",
        false,
    ),
    ("/v1/apps/{id}", "get", "One app", None, "App", true),
    (
        "/v1/apps/{id}",
        "delete",
        "Delete an app and stop its tasks (refused while other apps refer to it)",
        None,
        "Deleted",
        false,
    ),
    (
        "/v1/apps/{id}/scale",
        "put",
        "Set the instance count (not a new version)",
        Some("ScaleRequest"),
        "App",
        false,
    ),
    (
        "/v1/apps/{id}/restart",
        "post",
        "Replace every task: a deployment of the same spec",
        None,
        "App",
        false,
    ),
    (
        "/v1/apps/{id}/deployment",
        "delete",
        "Cancel the running deployment, leaving tasks as they are (idempotent)",
        None,
        "Deployment",
        false,
    ),
    (
        "/v1/tasks",
        "get",
        "Tasks the token may see; ?app=ID filters",
        None,
        "TaskList",
        true,
    ),
    ("/v1/tasks/{id}", "get", "One task", None, "Task", true),
    (
        "/v1/tasks/{id}/output",
        "get",
        "The end of what the task printed (?lines=N, default 100, at most 10000; ?max_bytes=M, default 65536, at most 1 MiB), read from the agent that runs it; 409 when that agent cannot answer",
        None,
        "TaskOutput",
        false,
    ),
];

/// Short descriptions of the body types (their fields are weft-api's `types` module).
const SCHEMAS: &[(&str, &str)] = &[
    (
        "ApiError",
        "{error, field?, details[]}: the body of every error response",
    ),
    ("Health", "{status, revision, tenants, nodes, endpoints}"),
    ("OpenApi", "this document"),
    ("ApplyRequest", "{model: {tenant: {NAME: Tenant}}}"),
    ("ApplyResponse", "{revision, tenants[], warnings[]}"),
    (
        "Tenant",
        "{vrf, bridge_domain, filter, contract, taboo, application_profile}: weft_model::Tenant as JSON",
    ),
    (
        "TenantSummaryList",
        "[{name, revision, vrfs, bridge_domains, epgs, contracts}]",
    ),
    (
        "EpgInfoList",
        "[{path, class, vrf, bridge_domain, provides[], consumes[], endpoints}]",
    ),
    (
        "ContractInfoList",
        "[{path, scope, subjects, providers[], consumers[]}]",
    ),
    (
        "CompiledPolicy",
        "{vrfs, epgs, allocation}: weft_compiler::CompiledPolicy",
    ),
    ("TokenRequest", "{tenant}"),
    ("TokenResponse", "{token}"),
    (
        "TenantPrivilege",
        "{tenant, allowed, since_ms?, privileged_apps[]}",
    ),
    ("TenantPrivilegeList", "[TenantPrivilege]"),
    (
        "NodeRegistration",
        "{name, underlay_ip, netns?, netns_prefix, resources: {cpus, mem_mb, disk_mb}, labels}",
    ),
    (
        "Node",
        "{registration, revision, ready, last_heartbeat_ms, report?}",
    ),
    ("NodeList", "[Node]"),
    (
        "NodeReport",
        "{applied_revision, installed: [{vrf, rules[]}], endpoints: {NAME: {state, message?}}, tasks: {ID: TaskStatus}, error?}",
    ),
    (
        "NodeImages",
        "{digest, images: [{tags[], id, size, created_ms}]}",
    ),
    (
        "NodeDesired",
        "{revision, policy, nodes[], endpoints[], tasks: [{task, spec, log_dir}]}",
    ),
    (
        "EndpointRequest",
        "{name, epg, node, ip?, mac?, allowed_address_pairs[]}",
    ),
    (
        "Endpoint",
        "{name, epg, node, netns, ip, prefix_len, gateway, mac, allowed_address_pairs[], revision, status}",
    ),
    ("EndpointList", "[Endpoint]"),
    (
        "ChangeEvent",
        "{revision, kind: put|delete, key}, sent as `event: change`",
    ),
    (
        "LiveExplanation",
        "{from, to, intent: {allowed, text}, installed?, node, differs, note?}",
    ),
    (
        "AppsRequest",
        "{apps: {app: {NAME: AppSpec}}}: the JSON twin of app HCL",
    ),
    ("AppsResponse", "{revision, apps[], deployments[]}"),
    ("ScaleRequest", "{instances}"),
    (
        "App",
        "{id, spec, version, instances, running, healthy, deployment?, pending[]}",
    ),
    ("AppList", "[App]"),
    (
        "Deployment",
        "{id, app, from_version, to_version, state: running|succeeded|failed|cancelled, started_ms, deadline_ms, message?}",
    ),
    (
        "Task",
        "{id, app, version, node, ip, mac, created_ms, env?, status: {state, health, restarts, consecutive_failures, started_ms?, exit_code?, message?, endpoint}}",
    ),
    (
        "TaskOutput",
        "{task, node, output}: output as text (bytes that are not UTF-8 replaced)",
    ),
    ("TaskList", "[Task]"),
    ("Deleted", "{deleted: NAME}"),
    ("Empty", "{}"),
];

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for (path, method, summary, request, response, blocking) in OPERATIONS {
        let mut parameters = Vec::new();
        for param in ["name", "id", "tenant"] {
            if path.contains(&format!("{{{param}}}")) {
                parameters.push(json!({"name": param, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        if *path == "/v1/tasks" {
            parameters.push(json!({"name": "app", "in": "query", "schema": {"type": "string"}, "description": "Only this app's tasks"}));
        }
        if *blocking {
            parameters.push(
                json!({"name": "index", "in": "query", "schema": {"type": "integer"},
                "description": "Blocking query: wait until the state is newer than this revision"}),
            );
            parameters.push(
                json!({"name": "wait", "in": "query", "schema": {"type": "string"},
                "description": "How long to wait, e.g. 30s"}),
            );
        }
        if *path == "/v1/explain" {
            for (name, ty) in [
                ("from", "string"),
                ("to", "string"),
                ("proto", "string"),
                ("port", "integer"),
            ] {
                parameters.push(json!({"name": name, "in": "query", "required": name != "port", "schema": {"type": ty}}));
            }
        }
        let content_type = if *path == "/v1/events" {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut operation = json!({
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": "OK; carries X-Weft-Index",
                    "headers": {"X-Weft-Index": {"schema": {"type": "integer"}}},
                    "content": {content_type: {"schema": schema_ref(response)}}
                },
                "4XX": {"description": "Refused", "content": {"application/json": {"schema": schema_ref("ApiError")}}},
                "5XX": {"description": "Failed", "content": {"application/json": {"schema": schema_ref("ApiError")}}}
            }
        });
        if let Some(request) = request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema_ref(request)}}
            });
        }
        if !matches!(*path, "/v1/health" | "/v1/openapi.json") {
            operation["security"] = json!([{"bearer": []}]);
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = operation;
    }
    let schemas: Map<String, Value> = SCHEMAS
        .iter()
        .map(|(name, description)| {
            (name.to_string(), json!({"type": if name.ends_with("List") { "array" } else { "object" }, "description": description}))
        })
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "weft controller API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Bearer tokens (admin, join/agent, tenant). Reads carry X-Weft-Index; ?index=N&wait=30s blocks until the state is newer than N."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::paths;

    #[test]
    fn every_route_of_the_contract_is_documented() {
        let name = "{name}";
        let expected = [
            (paths::HEALTH.to_string(), "get"),
            (paths::OPENAPI.to_string(), "get"),
            (paths::APPLY.to_string(), "post"),
            (paths::TENANTS.to_string(), "get"),
            (paths::tenant(name), "get"),
            (paths::tenant(name), "put"),
            (paths::tenant(name), "delete"),
            (paths::EPGS.to_string(), "get"),
            (paths::CONTRACTS.to_string(), "get"),
            (paths::POLICY.to_string(), "get"),
            (paths::TOKENS.to_string(), "post"),
            (paths::PRIVILEGE.to_string(), "get"),
            (paths::privilege("{tenant}"), "get"),
            (paths::privilege("{tenant}"), "put"),
            (paths::privilege("{tenant}"), "delete"),
            (paths::NODES.to_string(), "get"),
            (paths::NODES.to_string(), "post"),
            (paths::node(name), "get"),
            (paths::node_heartbeat(name), "put"),
            (paths::node_desired(name), "get"),
            (paths::node_report(name), "put"),
            (paths::node_images(name), "put"),
            (paths::ENDPOINTS.to_string(), "get"),
            (paths::ENDPOINTS.to_string(), "post"),
            (paths::endpoint(name), "get"),
            (paths::endpoint(name), "delete"),
            (paths::EVENTS.to_string(), "get"),
            (paths::EXPLAIN.to_string(), "get"),
            (paths::APPS.to_string(), "get"),
            (paths::APPS.to_string(), "post"),
            (paths::app("{id}"), "get"),
            (paths::app("{id}"), "delete"),
            (paths::app_scale("{id}"), "put"),
            (paths::app_restart("{id}"), "post"),
            (paths::app_deployment("{id}"), "delete"),
            (paths::TASKS.to_string(), "get"),
            (paths::task("{id}"), "get"),
        ];
        let doc = document();
        for (path, method) in expected {
            assert!(
                doc["paths"][&path][method].is_object(),
                "{method} {path} is missing"
            );
        }
        for (_, _, _, request, response, _) in OPERATIONS {
            for schema in request.iter().chain(Some(response)) {
                assert!(
                    doc["components"]["schemas"][*schema].is_object(),
                    "schema {schema} is missing"
                );
            }
        }
    }
}
