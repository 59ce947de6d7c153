//! Route paths. The server mounts exactly these; the client calls exactly these.

pub const HEALTH: &str = "/v1/health";
/// `GET` [`crate::ControllersStatus`]: who leads the loops, since when, and every
/// controller serving this store.
pub const LEADER: &str = "/v1/status/leader";
pub const OPENAPI: &str = "/v1/openapi.json";
/// `POST` a [`crate::ApplyRequest`]: upsert whole tenants, validated as one model.
pub const APPLY: &str = "/v1/apply";
/// `GET` the tenants the token may see.
pub const TENANTS: &str = "/v1/tenants";
/// `GET`, `PUT` (a `weft_model::Tenant` as JSON), `DELETE`.
pub fn tenant(name: &str) -> String {
    format!("/v1/tenants/{name}")
}
/// `GET` [`crate::EpgInfo`] rows.
pub const EPGS: &str = "/v1/epgs";
/// `GET` [`crate::ContractInfo`] rows.
pub const CONTRACTS: &str = "/v1/contracts";
/// `GET` the compiled policy ([`weft_compiler::CompiledPolicy`]).
pub const POLICY: &str = "/v1/policy";
/// `POST` a [`crate::TokenRequest`] (admin only): a token for one tenant.
pub const TOKENS: &str = "/v1/tokens";
/// `GET` every tenant allowed to run privileged tasks ([`crate::TenantPrivilege`]; a
/// tenant token sees its own).
pub const PRIVILEGE: &str = "/v1/privilege";
/// `GET` one tenant's [`crate::TenantPrivilege`]; `PUT` (admin, empty body) allows it,
/// `DELETE` (admin) denies it.
pub fn privilege(tenant: &str) -> String {
    format!("/v1/privilege/{tenant}")
}
/// `GET` the nodes; `POST` a [`crate::NodeRegistration`] with the join token.
pub const NODES: &str = "/v1/nodes";
pub fn node(name: &str) -> String {
    format!("/v1/nodes/{name}")
}
/// `PUT` (empty body): the node is alive.
pub fn node_heartbeat(name: &str) -> String {
    format!("/v1/nodes/{name}/heartbeat")
}
/// `GET` [`crate::NodeDesired`], a blocking query.
pub fn node_desired(name: &str) -> String {
    format!("/v1/nodes/{name}/desired")
}
/// `GET` [`crate::DiscoveryView`], a blocking query on its digest.
pub fn node_discovery(name: &str) -> String {
    format!("/v1/nodes/{name}/discovery")
}
/// `PUT` a list of [`crate::ProbeReport`]s: results of the checks the node's agent runs
/// ([`crate::DiscoveryView::probes`]); answers [`crate::ProbeReportResponse`].
pub fn node_probes(name: &str) -> String {
    format!("/v1/nodes/{name}/probes")
}
/// `GET ?name=NAME&type=A&from=ENDPOINT`: [`crate::DnsQueryResponse`].
pub const DNS: &str = "/v1/dns";
/// `PUT` [`crate::NodeReport`]: what the agent installed.
pub fn node_report(name: &str) -> String {
    format!("/v1/nodes/{name}/report")
}
/// `PUT` [`crate::NodeImages`]: the Docker images the node's engine holds.
pub fn node_images(name: &str) -> String {
    format!("/v1/nodes/{name}/images")
}
/// `GET` the endpoints; `POST` an [`crate::EndpointRequest`].
pub const ENDPOINTS: &str = "/v1/endpoints";
/// `GET`, `DELETE`.
pub fn endpoint(name: &str) -> String {
    format!("/v1/endpoints/{name}")
}
/// `GET`: server-sent events, one per committed change ([`crate::ChangeEvent`]).
pub const EVENTS: &str = "/v1/events";
/// `GET ?from=ENDPOINT&to=ENDPOINT&proto=tcp&port=N`: [`crate::LiveExplanation`].
pub const EXPLAIN: &str = "/v1/explain";
/// `GET` the apps ([`crate::App`]); `POST` an [`crate::AppsRequest`].
pub const APPS: &str = "/v1/apps";
/// `GET`, `DELETE` (stops every task).
pub fn app(id: &str) -> String {
    format!("/v1/apps/{id}")
}
/// `PUT` a [`crate::ScaleRequest`].
pub fn app_scale(id: &str) -> String {
    format!("/v1/apps/{id}/scale")
}
/// `POST`: replace every task (a deployment of the same spec).
pub fn app_restart(id: &str) -> String {
    format!("/v1/apps/{id}/restart")
}
/// `DELETE`: cancel the app's running deployment (idempotent).
pub fn app_deployment(id: &str) -> String {
    format!("/v1/apps/{id}/deployment")
}
/// `GET` the tasks ([`crate::Task`]), `?app=ID` to filter.
pub const TASKS: &str = "/v1/tasks";
pub fn task(id: &str) -> String {
    format!("/v1/tasks/{id}")
}
/// `GET` the end of a task's output (`?lines=N&max_bytes=M`), read from its node's agent.
pub fn task_output(id: &str) -> String {
    format!("/v1/tasks/{id}/output")
}
