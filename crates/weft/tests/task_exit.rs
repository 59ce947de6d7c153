//! A process task whose command is not installed (issue 12: the demo's apps exec
//! `busybox`): on both start paths, the direct one and a spare process running this
//! very binary as the shim, the start succeeds, the run ends with code 127 and the
//! runtime hands over the shell's own words ("...: not found") for the task's status.
//! Root only (a network namespace and cgroups); spares need cgroup v1.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::time::Duration;
use weft_runtime::cgroup::CgroupLayout;
use weft_runtime::spare::SparePool;
use weft_runtime::{ProcessRuntime, TaskSpec};

fn need_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED {test}: needs root (a network namespace, cgroups). CI runs it as root.\n"
    );
    false
}

/// Starts `sh -c "exec <missing program>"` and returns (start result, exit code, last
/// stderr line).
async fn run_missing(rt: &ProcessRuntime, id: &str, netns: &str) -> (Option<i32>, Option<String>) {
    let spec = TaskSpec::process(id, netns, &["sh", "-c", "exec weft-no-such-program -p 80"])
        .with_limits(0.1, 32);
    rt.start(&spec).await.unwrap_or_else(|e| {
        panic!("{id}: a command that is not installed is a run that ends, not a failed start: {e}")
    });
    let exit = tokio::time::timeout(Duration::from_secs(10), rt.wait(id))
        .await
        .unwrap()
        .unwrap();
    let line = rt.last_error_line(id).await;
    rt.stop(id, Duration::ZERO).await.unwrap();
    (exit.code, line)
}

/// Removes the namespace, the state directory and the cgroup scope, also when the
/// test fails halfway.
struct Cleanup {
    netns: String,
    state: PathBuf,
    scope: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = weft_fabric::netns::delete(&self.netns);
        let _ = std::fs::remove_dir_all(&self.state);
        if let Ok(layout) = CgroupLayout::detect() {
            for dir in layout.task_dirs(&self.scope) {
                let children = std::fs::read_dir(&dir).into_iter().flatten().flatten();
                for child in children.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                    let _ = std::fs::remove_dir(child.path());
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

#[test]
fn a_missing_command_ends_with_127_and_says_not_found_on_both_start_paths() {
    if !need_root("a_missing_command_ends_with_127_and_says_not_found_on_both_start_paths") {
        return;
    }
    let pid = std::process::id();
    let netns = format!("weft-texit-{pid}");
    weft_fabric::netns::create(&netns).unwrap();
    let state: PathBuf = std::env::temp_dir().join(format!("weft-texit-{pid}"));
    let scope = format!("weft-texit-{pid}");
    let _cleanup = Cleanup {
        netns: netns.clone(),
        state: state.clone(),
        scope: scope.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        let direct = ProcessRuntime::new(&state)
            .unwrap()
            .with_cgroup_scope(&scope)
            .unwrap();
        let first = run_missing(&direct, "missing-direct", &netns).await;
        direct.remove_scope_dirs();

        let layout = CgroupLayout::detect().unwrap();
        let pool = SparePool::new(
            PathBuf::from(env!("CARGO_BIN_EXE_weft")),
            layout.clone(),
            1,
            Some(&scope),
        );
        let second = match pool {
            Some(pool) => {
                let spared = ProcessRuntime::with_cgroups(&state, layout)
                    .unwrap()
                    .with_cgroup_scope(&scope)
                    .unwrap()
                    .with_spares(pool.clone());
                // The pool fills in the background: wait for its spare.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let r = run_missing(&spared, "missing-spare", &netns).await;
                let p = pool.clone();
                let _ = tokio::task::spawn_blocking(move || p.close()).await;
                spared.remove_scope_dirs();
                Some(r)
            }
            None => {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!! SKIPPED the spare half: no spares on cgroup v2\n"
                );
                None
            }
        };
        (first, second)
    });
    let (first, second) = outcome;
    for (path, (code, line)) in
        std::iter::once(("direct", first)).chain(second.map(|s| ("spare", s)))
    {
        assert_eq!(code, Some(127), "{path}: {line:?}");
        let line = line.unwrap_or_default();
        assert!(
            line.contains("weft-no-such-program") && line.contains("not found"),
            "{path}: {line:?}"
        );
    }
}
