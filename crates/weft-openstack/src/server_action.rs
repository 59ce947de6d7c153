//! Nova's server actions (`POST /servers/{id}/action`) on weft's model, and `user_data`.
//!
//! A server is an app with one task, so its power state is the app's desired instance
//! count, never a second state kept beside it:
//!
//! * `os-stop` sets the app's `instances` to 0 (`weft app scale`'s path): the scheduler
//!   removes the task with its endpoint and the node's agent stops the container. The
//!   server is `SHUTOFF` (vm_state `stopped`, power state 4) once the task is gone. The
//!   count is stored, so neither supervision nor a controller restart brings it back.
//! * `os-start` sets it back to 1: the scheduler places a new task (its address comes
//!   from weft's IPAM again, its node from the scheduler), `BUILD` then `ACTIVE`.
//! * `reboot` (SOFT or HARD) restarts the task in place: its `WEFT_BOOT` (the boot
//!   count, in the task's environment) goes up, its agent sees the assignment changed
//!   and stops and starts the container: same task, node and address, a new container
//!   start. `REBOOT` (or `HARD_REBOOT`) until it runs again. A HARD reboot of a stopped
//!   server starts it, as Nova's does.
//! * `os-getConsoleOutput` is the container's output (stdout and stderr, as its Docker
//!   engine keeps them), the last `length` lines, at most [`MAX_CONSOLE_LINES`] lines
//!   and [`MAX_CONSOLE_BYTES`] bytes (the end kept).
//!
//! A transition the server's state does not allow is Nova's 409 ("Cannot 'stop' instance
//! X while it is in vm_state stopped").
//!
//! `user_data` (base64, at most 65,535 characters as Nova bounds it) is kept with the
//! server's record and handed to the container decoded, as the environment variable
//! [`USER_DATA_ENV`]: a container has no metadata service or config drive, and its
//! environment is what weft gives every task. So it must decode to UTF-8 text without
//! NUL (400 otherwise).

use crate::compute::{caller, servers, state};
use crate::error::NovaError;
use crate::resource::put_meta;
use crate::{Controller, OpenStack};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use weft_store::KvStore;

/// The environment variable a server's decoded `user_data` is in.
pub const USER_DATA_ENV: &str = "WEFT_USER_DATA";
/// Nova's bound on `user_data` (its base64 text).
pub const MAX_USER_DATA: usize = 65535;
/// At most this many lines of console output are answered.
pub const MAX_CONSOLE_LINES: usize = 1000;
/// At most this many bytes of console output are answered (the end is kept).
pub const MAX_CONSOLE_BYTES: usize = 100 * 1024;

type Answer = Result<Response, NovaError>;

fn bad(message: impl Into<String>) -> NovaError {
    NovaError::bad_request(message)
}

/// `user_data`: `None` when absent, else (the base64 text as given, its decoded text).
pub(crate) fn user_data(
    object: &Map<String, Value>,
) -> Result<Option<(String, String)>, NovaError> {
    let text = match object.get("user_data") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text,
        Some(_) => {
            return Err(bad(
                "Invalid input for field/attribute user_data. Value: not a string",
            ));
        }
    };
    if text.len() > MAX_USER_DATA {
        return Err(bad(format!(
            "Invalid input for field/attribute user_data. Value: {} characters is longer than {MAX_USER_DATA}",
            text.len()
        )));
    }
    let bytes = decode_base64(text).ok_or_else(|| bad("User data needs to be valid base 64."))?;
    let decoded = String::from_utf8(bytes).map_err(|_| {
        bad(format!(
            "user_data: weft hands it to the container as the environment variable {USER_DATA_ENV}, so it must decode to UTF-8 text"
        ))
    })?;
    if decoded.contains('\0') {
        return Err(bad(format!(
            "user_data: weft hands it to the container as the environment variable {USER_DATA_ENV}, which cannot hold NUL"
        )));
    }
    Ok(Some((text.clone(), decoded)))
}

/// Standard base64 with padding, whitespace ignored (as Nova checks it); `None` when it
/// is not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.len() / 4;
    for (i, quad) in clean.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits a padded quad does not carry must be zero (canonical base64).
        if pad == 2 && n & 0xffff != 0 || pad == 1 && n & 0xff != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// One action, parsed and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Stop,
    Start,
    Reboot { hard: bool },
    Console { lines: usize },
}

impl Action {
    /// Nova's name of the action in its 409 ("Cannot 'stop' instance ...").
    fn verb(&self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Reboot { .. } => "reboot",
            Self::Console { .. } => "get_console_output",
        }
    }
}

/// Actions Nova has that weft does not serve (each refused with a 400 that says so).
const NOT_SERVED: &[&str] = &[
    "pause",
    "unpause",
    "suspend",
    "resume",
    "lock",
    "unlock",
    "rescue",
    "unrescue",
    "shelve",
    "shelveOffload",
    "unshelve",
    "resize",
    "confirmResize",
    "revertResize",
    "rebuild",
    "createImage",
    "changePassword",
    "migrate",
    "os-migrateLive",
    "evacuate",
    "addFixedIp",
    "removeFixedIp",
    "addSecurityGroup",
    "removeSecurityGroup",
    "addFloatingIp",
    "removeFloatingIp",
    "os-resetState",
    "os-getVNCConsole",
    "os-getSPICEConsole",
    "os-getSerialConsole",
    "os-getRDPConsole",
    "createBackup",
    "trigger_crash_dump",
    "forceDelete",
    "restore",
    "injectNetworkInfo",
    "resetNetwork",
];

fn parse(body: &[u8]) -> Result<Action, NovaError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("Malformed request body: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(bad("Malformed request body: an object naming one action"));
    };
    let [(name, argument)] = object.iter().collect::<Vec<_>>()[..] else {
        return Err(bad(format!(
            "Malformed request body: exactly one action ({} given)",
            object.len()
        )));
    };
    match name.as_str() {
        "os-stop" => Ok(Action::Stop),
        "os-start" => Ok(Action::Start),
        "reboot" => {
            let kind = argument.get("type").ok_or_else(|| {
                bad("Invalid input for field/attribute reboot. Value: 'type' is a required property")
            })?;
            match kind.as_str().map(str::to_ascii_uppercase).as_deref() {
                Some("SOFT") => Ok(Action::Reboot { hard: false }),
                Some("HARD") => Ok(Action::Reboot { hard: true }),
                _ => Err(bad(
                    "Invalid input for field/attribute type. Value: must be SOFT or HARD",
                )),
            }
        }
        "os-getConsoleOutput" => {
            let length = match argument.get("length") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(bad_length)?),
                Some(Value::String(s)) => Some(s.trim().parse::<i64>().map_err(|_| bad_length())?),
                Some(_) => return Err(bad_length()),
            };
            let lines = match length {
                None | Some(-1) => MAX_CONSOLE_LINES,
                Some(n) if n >= 0 => {
                    usize::try_from(n).map_or(MAX_CONSOLE_LINES, |n| n.min(MAX_CONSOLE_LINES))
                }
                Some(_) => return Err(bad_length()),
            };
            Ok(Action::Console { lines })
        }
        other if NOT_SERVED.contains(&other) => Err(bad(format!(
            "weft does not serve the action {other}: a server is a container (os-stop, os-start, reboot and os-getConsoleOutput are served)"
        ))),
        other => Err(bad(format!("There is no such action: {other:.64}"))),
    }
}

fn bad_length() -> NovaError {
    bad("Invalid input for field/attribute length. Value: an integer of at least -1")
}

/// `POST /servers/{id}/action`.
pub(crate) async fn action<S: KvStore + Clone, C: Controller>(
    State(a): State<Arc<OpenStack<S, C>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let who = caller(&a, &headers)?;
    let action = parse(&body)?;
    let _serialised = match action {
        Action::Console { .. } => None,
        _ => Some(a.writes.lock().await),
    };
    let all = servers(&a, &who).await?;
    let (record, app) = all.find(&id)?;
    let (status, vm_state, mut task_state, _, _) = state(app.as_ref());
    if task_state == "reboot_started" && record.reboot.as_deref() == Some("HARD") {
        task_state = json!("reboot_started_hard");
    }
    let refuse = |why: String| {
        NovaError::conflict(format!(
            "Cannot '{}' instance {} while it is in {why}",
            action.verb(),
            record.id
        ))
    };
    let in_vm_state = || refuse(format!("vm_state {vm_state}"));
    let task = app.as_ref().and_then(|x| x.tasks.first());
    if let Some(busy) = task_state.as_str()
        && !matches!(action, Action::Console { .. })
    {
        return Err(refuse(format!("task_state {busy}")));
    }
    match action {
        Action::Stop => {
            if !matches!(vm_state, "active" | "error") {
                return Err(in_vm_state());
            }
            a.controller
                .scale_app(&who, &record.tenant, &record.app, 0)
                .await?;
            tracing::info!(server = %record.id, app = %record.app, "server stopped (instances 0)");
        }
        Action::Start => {
            if vm_state != "stopped" {
                return Err(in_vm_state());
            }
            a.controller
                .scale_app(&who, &record.tenant, &record.app, 1)
                .await?;
            tracing::info!(server = %record.id, app = %record.app, "server started (instances 1)");
        }
        Action::Reboot { hard } => {
            let kind = if hard { "HARD" } else { "SOFT" };
            let mut next = record.clone();
            next.reboot = Some(kind.to_string());
            match (vm_state, task) {
                ("stopped", _) if hard => {
                    put_meta(&a, "server", &record.id, &next).await?;
                    a.controller
                        .scale_app(&who, &record.tenant, &record.app, 1)
                        .await?;
                }
                ("active", Some(task)) if status == "ACTIVE" => {
                    put_meta(&a, "server", &record.id, &next).await?;
                    a.controller.reboot_task(&record.tenant, &task.id).await?;
                }
                ("error", Some(task)) if hard => {
                    put_meta(&a, "server", &record.id, &next).await?;
                    a.controller.reboot_task(&record.tenant, &task.id).await?;
                }
                _ => return Err(in_vm_state()),
            }
            tracing::info!(server = %record.id, app = %record.app, kind, "server rebooted");
        }
        Action::Console { lines } => {
            // No container yet while building (a failed one in ERROR has its output).
            let Some(task) = task.filter(|_| vm_state != "building") else {
                return Err(in_vm_state());
            };
            let output = a
                .controller
                .console_output(&record.tenant, &task.id, lines, MAX_CONSOLE_BYTES)
                .await?;
            return Ok(Json(json!({ "output": output })).into_response());
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn base64_is_checked_as_nova_checks_it() {
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("aGVs\nbG8h").as_deref(), Some(&b"hello!"[..]));
        assert_eq!(decode_base64("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_base64("aA==").as_deref(), Some(&b"h"[..]));
        assert_eq!(decode_base64("/+8=").as_deref(), Some(&[0xff, 0xef][..]));
        for bad in [
            "aGVsbG8", "aGVsbG8*", "a===", "aA==aA==", "aB==", "====", "aGk",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn user_data_is_bounded_text() {
        let ok = user_data(&obj(json!({"user_data": "ZWNobyBoaQo="}))).unwrap();
        assert_eq!(ok, Some(("ZWNobyBoaQo=".into(), "echo hi\n".into())));
        assert_eq!(user_data(&obj(json!({}))).unwrap(), None);
        assert_eq!(user_data(&obj(json!({"user_data": null}))).unwrap(), None);
        let long = "A".repeat(MAX_USER_DATA + 1);
        for bad in [
            json!({"user_data": 1}),
            json!({"user_data": "not base64!"}),
            json!({ "user_data": long }),
            json!({"user_data": "/w=="}), // 0xff: not UTF-8
            json!({"user_data": "AA=="}), // NUL
        ] {
            let err = user_data(&obj(bad.clone())).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        // The largest Nova takes: 65,532 characters of base64 (49,149 bytes).
        let text = "QUJD".repeat(MAX_USER_DATA / 4);
        assert_eq!(
            user_data(&obj(json!({ "user_data": text })))
                .unwrap()
                .unwrap()
                .1
                .len(),
            MAX_USER_DATA / 4 * 3
        );
    }

    #[test]
    fn actions_parse_and_refuse_as_nova() {
        let p = |v: Value| parse(v.to_string().as_bytes());
        assert_eq!(p(json!({"os-stop": null})).unwrap(), Action::Stop);
        assert_eq!(p(json!({"os-start": null})).unwrap(), Action::Start);
        assert_eq!(
            p(json!({"reboot": {"type": "HARD"}})).unwrap(),
            Action::Reboot { hard: true }
        );
        assert_eq!(
            p(json!({"reboot": {"type": "soft"}})).unwrap(),
            Action::Reboot { hard: false }
        );
        assert_eq!(
            p(json!({"os-getConsoleOutput": {}})).unwrap(),
            Action::Console {
                lines: MAX_CONSOLE_LINES
            }
        );
        assert_eq!(
            p(json!({"os-getConsoleOutput": {"length": 5}})).unwrap(),
            Action::Console { lines: 5 }
        );
        assert_eq!(
            p(json!({"os-getConsoleOutput": {"length": "7"}})).unwrap(),
            Action::Console { lines: 7 }
        );
        assert_eq!(
            p(json!({"os-getConsoleOutput": {"length": -1}})).unwrap(),
            Action::Console {
                lines: MAX_CONSOLE_LINES
            }
        );
        assert_eq!(
            p(json!({"os-getConsoleOutput": {"length": 1_000_000_000u64}})).unwrap(),
            Action::Console {
                lines: MAX_CONSOLE_LINES
            }
        );
        for bad in [
            json!({"reboot": {}}),
            json!({"reboot": {"type": "WARM"}}),
            json!({"os-getConsoleOutput": {"length": -2}}),
            json!({"os-getConsoleOutput": {"length": "x"}}),
            json!({"os-getConsoleOutput": {"length": 1.5}}),
            json!({"pause": null}),
            json!({"frobnicate": null}),
            json!({"os-stop": null, "os-start": null}),
            json!({}),
            json!([]),
        ] {
            let err = p(bad.clone()).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(
            p(json!({"frobnicate": null}))
                .unwrap_err()
                .message
                .contains("There is no such action")
        );
        assert!(parse(b"{").is_err());
    }
}
