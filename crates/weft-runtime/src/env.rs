//! Configuration without a metadata proxy (open problem 3 of the paper): a task learns who
//! and where it is from `WEFT_*` environment variables set at start.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// What the caller (the node agent) knows about a task when it starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIdentity {
    pub app: String,
    pub task: String,
    pub node: String,
    /// The endpoint's address.
    pub ip: IpAddr,
    /// Full path of the endpoint group, e.g. `tenant/app/web`.
    pub epg: String,
    pub gateway: IpAddr,
    /// Where the controller's API answers; lets a task reach the master without a proxy.
    pub controller: Option<String>,
}

/// Variable names weft sets; the application's own env cannot override them.
pub const WEFT_VARIABLES: [&str; 7] = [
    "WEFT_APP",
    "WEFT_TASK",
    "WEFT_NODE",
    "WEFT_IP",
    "WEFT_EPG",
    "WEFT_GATEWAY",
    "WEFT_CONTROLLER",
];

/// The application's env plus the `WEFT_*` variables. `WEFT_*` entries win over an app
/// variable of the same name, so a task cannot be told a wrong identity by its app config.
pub fn task_env(id: &TaskIdentity, app_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = app_env
        .iter()
        .filter(|(k, _)| {
            let reserved = WEFT_VARIABLES.contains(&k.as_str());
            if reserved {
                tracing::warn!(task = %id.task, variable = %k, "app env may not set a WEFT_ variable; ignored");
            }
            !reserved
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.insert("WEFT_APP".into(), id.app.clone());
    env.insert("WEFT_TASK".into(), id.task.clone());
    env.insert("WEFT_NODE".into(), id.node.clone());
    env.insert("WEFT_IP".into(), id.ip.to_string());
    env.insert("WEFT_EPG".into(), id.epg.clone());
    env.insert("WEFT_GATEWAY".into(), id.gateway.to_string());
    if let Some(controller) = &id.controller {
        env.insert("WEFT_CONTROLLER".into(), controller.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> TaskIdentity {
        TaskIdentity {
            app: "shop".into(),
            task: "shop-web-1".into(),
            node: "n1".into(),
            ip: "10.1.0.5".parse().expect("ip"),
            epg: "acme/shop/web".into(),
            gateway: "10.1.0.1".parse().expect("ip"),
            controller: Some("http://10.0.0.1:7070".into()),
        }
    }

    #[test]
    fn weft_variables_are_set_and_win_over_app_env() {
        let app = BTreeMap::from([
            ("DB_URL".to_string(), "postgres://db".to_string()),
            ("WEFT_IP".to_string(), "6.6.6.6".to_string()),
        ]);
        let env = task_env(&identity(), &app);
        assert_eq!(env["DB_URL"], "postgres://db");
        assert_eq!(env["WEFT_IP"], "10.1.0.5");
        assert_eq!(env["WEFT_APP"], "shop");
        assert_eq!(env["WEFT_TASK"], "shop-web-1");
        assert_eq!(env["WEFT_NODE"], "n1");
        assert_eq!(env["WEFT_EPG"], "acme/shop/web");
        assert_eq!(env["WEFT_GATEWAY"], "10.1.0.1");
        assert_eq!(env["WEFT_CONTROLLER"], "http://10.0.0.1:7070");
    }

    #[test]
    fn controller_is_optional() {
        let mut id = identity();
        id.controller = None;
        assert!(!task_env(&id, &BTreeMap::new()).contains_key("WEFT_CONTROLLER"));
    }
}
