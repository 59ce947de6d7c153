//! A wrong controller address and a rejected join token are logged clearly and retried
//! with backoff; the agent never exits on them and registers once the right controller
//! answers. Needs no root: these agents have no endpoints and no node namespace.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Agent, Controller, Shared, THREE_TIER, compile, config, runtime};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_agent::{AgentEvent, ControllerError};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const WAIT: Duration = Duration::from_secs(10);

fn retrying(e: &AgentEvent, unreachable: bool) -> bool {
    match e {
        AgentEvent::Retrying { error, delay } => {
            assert!(*delay <= Duration::from_millis(500), "capped: {delay:?}");
            matches!(
                (error, unreachable),
                (ControllerError::Unreachable { .. }, true)
                    | (ControllerError::Rejected { .. }, false)
            )
        }
        _ => false,
    }
}

#[test]
fn wrong_address_and_rejected_token_are_retried_until_they_work() {
    let logs = Logs::default();
    let sink = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .try_init();
    let rt = runtime();
    let prefix = format!("weft-t{}-retry", std::process::id());
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();

    // Agent A: nothing listens at its address (yet).
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url_a = format!("http://{free}");
    let shared_a = Shared::new("weft-right", compile(THREE_TIER));
    let cfg = config(
        &url_a,
        "weft-right",
        "wa",
        None,
        &format!("{prefix}-wa"),
        dir_a.path(),
    );
    let mut agent_a = Agent::start(&rt, cfg);

    // Agent B: the controller is there but does not accept its token.
    let shared_b = Shared::new("weft-other", compile(THREE_TIER));
    let ctl_b = Controller::start(shared_b.clone(), "127.0.0.1:0".parse().unwrap());
    let cfg = config(
        &ctl_b.url(),
        "weft-wrong",
        "wb",
        None,
        &format!("{prefix}-wb"),
        dir_b.path(),
    );
    let mut agent_b = Agent::start(&rt, cfg);

    for _ in 0..3 {
        agent_a.wait_event(&rt, WAIT, |e| retrying(e, true));
        agent_b.wait_event(&rt, WAIT, |e| retrying(e, false));
    }
    assert!(!agent_a.task.is_finished() && !agent_b.task.is_finished());
    assert_eq!(shared_b.registrations("wb"), 0);
    let text = logs.text();
    assert!(
        text.contains(&format!("cannot reach controller at {url_a}")),
        "logs:\n{text}"
    );
    assert!(
        text.contains(&format!("join token rejected by {}", ctl_b.url())),
        "logs:\n{text}"
    );

    // The right controller appears at A's address; B's token is accepted from now on.
    let ctl_a = Controller::start(shared_a.clone(), free);
    shared_b.update(|d| d.token = "weft-wrong".into());
    agent_a.wait_event(&rt, WAIT, |e| *e == AgentEvent::Registered);
    agent_b.wait_event(&rt, WAIT, |e| *e == AgentEvent::Registered);
    assert_eq!(shared_a.registrations("wa"), 1);
    assert_eq!(shared_b.registrations("wb"), 1);
    // Both go on to fetch their (empty) desired state and report it.
    agent_a.wait_event(&rt, WAIT, |e| matches!(e, AgentEvent::Reported { .. }));
    agent_b.wait_event(&rt, WAIT, |e| matches!(e, AgentEvent::Reported { .. }));

    agent_a.shutdown(&rt).unwrap();
    agent_b.shutdown(&rt).unwrap();
    drop((ctl_a, ctl_b));
    assert!(
        weft_fabric::netns::list_with_prefix(&prefix).is_empty(),
        "nothing created"
    );
}
