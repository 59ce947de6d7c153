//! Preflight: the external programs a command will run, looked up once when it starts.
//!
//! weft execs a few programs (`nft` for the tables, `ip` for the dev cluster's
//! namespaces, whatever an app's command names). A missing one used to surface late and
//! far from its cause ("nft refused the batch ... No such file or directory", "0 of 4
//! running"); checked here first, it is named with the Debian package that provides it.
//! [`PROGRAMS`] is the one table of program -> package; `scripts/packages.sh`'s
//! `DEMO_PACKAGES` must cover what `weft demo` needs (a unit test of `cmd::demo`).

use anyhow::{Result, bail};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A program weft, or a task it runs, execs; and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub package: &'static str,
    /// Debian marks the package Essential: every installation has it.
    pub essential: bool,
}

pub const NFT: Program = Program {
    name: "nft",
    package: "nftables",
    essential: false,
};
pub const IP: Program = Program {
    name: "ip",
    package: "iproute2",
    essential: false,
};
pub const BRIDGE: Program = Program {
    name: "bridge",
    package: "iproute2",
    essential: false,
};
/// The demo's apps (`busybox nc`); `busybox-static` is the package that needs nothing
/// else (`busybox` provides the same program).
pub const BUSYBOX: Program = Program {
    name: "busybox",
    package: "busybox-static",
    essential: false,
};
/// The etcd members of an HA dev cluster (`weft dev --ha 3`, `weft demo --ha`).
pub const ETCD: Program = Program {
    name: "etcd",
    package: "etcd-server",
    essential: false,
};

/// Every program weft knows the package of.
pub const PROGRAMS: &[Program] = &[
    NFT,
    IP,
    BRIDGE,
    BUSYBOX,
    ETCD,
    Program {
        name: "docker",
        package: "docker.io",
        essential: false,
    },
    Program {
        name: "sh",
        package: "dash",
        essential: true,
    },
    Program {
        name: "cat",
        package: "coreutils",
        essential: true,
    },
];

/// The known program called `name` (or a path ending in it).
pub fn known(name: &str) -> Option<Program> {
    let base = name.rsplit('/').next().unwrap_or(name);
    PROGRAMS.iter().copied().find(|p| p.name == base)
}

/// Where a program must be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// weft's own `PATH` (what it execs itself).
    Own,
    /// The `PATH` process tasks get ([`weft_runtime::TASK_PATH`]): their environment is
    /// cleared, so weft's own `PATH` does not matter to them.
    Tasks,
}

impl Search {
    fn path(self) -> OsString {
        match self {
            Search::Own => std::env::var_os("PATH").unwrap_or_default(),
            Search::Tasks => OsString::from(weft_runtime::TASK_PATH),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Search::Own => "PATH",
            Search::Tasks => "the tasks' PATH",
        }
    }
}

/// One program a command needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub name: String,
    /// `None`: not in [`PROGRAMS`].
    pub package: Option<&'static str>,
    pub search: Search,
    pub purpose: String,
}

impl Need {
    /// A program weft runs itself.
    pub fn own(program: Program, purpose: &str) -> Self {
        Self {
            name: program.name.to_string(),
            package: Some(program.package),
            search: Search::Own,
            purpose: purpose.to_string(),
        }
    }

    /// A program a process task runs (its package looked up in [`PROGRAMS`]).
    pub fn task(name: &str, purpose: &str) -> Self {
        Self {
            name: name.to_string(),
            package: known(name).map(|p| p.package),
            search: Search::Tasks,
            purpose: purpose.to_string(),
        }
    }
}

/// What the node agent runs: `nft -f` loads its tables (always); `ip` and `bridge` make
/// links only when `WEFT_FABRIC_LINKS=ip` asks for commands instead of netlink.
pub fn agent() -> Vec<Need> {
    let mut needs = vec![Need::own(
        NFT,
        "it loads the nftables tables that enforce policy",
    )];
    if !weft_fabric::nl::selected() {
        needs.push(Need::own(IP, "WEFT_FABRIC_LINKS=ip makes links with it"));
        needs.push(Need::own(
            BRIDGE,
            "WEFT_FABRIC_LINKS=ip makes links with it",
        ));
    }
    needs
}

/// What a dev cluster on this machine runs: its agents' programs, and `ip` for the node
/// namespaces and the underlay between them.
pub fn dev_cluster() -> Vec<Need> {
    let mut needs = agent();
    if !needs.iter().any(|n| n.name == IP.name) {
        needs.push(Need::own(
            IP,
            "it makes the node namespaces and the underlay",
        ));
    }
    needs
}

/// [`dev_cluster`] with its control plane on etcd (`--ha`): also `etcd`, unless
/// `$WEFT_ETCD_BIN` names the binary.
pub fn dev_cluster_ha() -> Vec<Need> {
    let mut needs = dev_cluster();
    if std::env::var_os(weft_store_etcd::cluster::ETCD_BIN_ENV).is_none() {
        needs.push(Need::own(
            ETCD,
            "the controllers of an HA cluster share a three-member etcd cluster",
        ));
    }
    needs
}

/// The programs a shell command line runs: the words in command position (first, after
/// `exec`, `;`, `&&`, `||`, `|`) and the argument of `-e` (`busybox nc -e /bin/cat`).
/// Variable assignments in front of a command are skipped. Enough for the simple
/// commands weft writes itself; not a shell parser.
pub fn command_programs(cmd: &str) -> Vec<String> {
    let spaced = cmd
        .replace("&&", " ; ")
        .replace("||", " ; ")
        .replace(['|', ';', '\n'], " ; ");
    let mut programs: Vec<String> = Vec::new();
    let mut at_command = true;
    let mut after_e = false;
    for word in spaced.split_whitespace() {
        let word = word.trim_matches(['"', '\'']);
        if word == ";" {
            at_command = true;
            continue;
        }
        let is_assignment = word.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        if at_command && (word == "exec" || is_assignment) {
            continue;
        }
        if (at_command || after_e) && !word.is_empty() && !programs.iter().any(|p| p == word) {
            programs.push(word.to_string());
        }
        after_e = word == "-e";
        at_command = false;
    }
    programs
}

/// `name` on the search path `path` (or `name` itself when it holds a `/`), if it is an
/// executable file.
pub fn find_program(name: &str, path: &OsStr) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// Directories a program may be in although a user's `PATH` lacks them.
const USUAL_DIRS: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Looks every need up once; an error names each missing program, the Debian package
/// that provides it and the `apt-get install` line.
pub fn check(command: &str, needs: &[Need]) -> Result<()> {
    match missing_message(
        command,
        needs,
        |search| search.path(),
        OsStr::new(USUAL_DIRS),
    ) {
        Some(message) => bail!("{message}"),
        None => Ok(()),
    }
}

/// The message for what is missing (`None`: nothing is), with each search path from
/// `path_of`; a program found in `usual` instead is pointed at rather than installed.
fn missing_message(
    command: &str,
    needs: &[Need],
    path_of: impl Fn(Search) -> OsString,
    usual: &OsStr,
) -> Option<String> {
    let mut lines = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for need in needs {
        let path = path_of(need.search);
        if find_program(&need.name, &path).is_some() {
            continue;
        }
        let package = need.package.map_or_else(
            || "no Debian package known to weft".to_string(),
            |p| format!("Debian package {p}"),
        );
        let mut line = format!(
            "weft {command} needs `{}` ({package}), which is not on {} ({}): {}",
            need.name,
            need.search.describe(),
            path.to_string_lossy(),
            need.purpose
        );
        if let Some(elsewhere) = find_program(&need.name, usual) {
            line.push_str(&format!(
                " (it is at {}: add {} to PATH)",
                elsewhere.display(),
                elsewhere.parent().unwrap_or(Path::new("/")).display()
            ));
        } else if let Some(p) = need.package
            && !packages.contains(&p)
        {
            packages.push(p);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return None;
    }
    if !packages.is_empty() {
        lines.push(format!(
            "install with: apt-get install {}",
            packages.join(" ")
        ));
    }
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory under the system's temp dir (removed by the caller).
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("weft-preflight-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let prog = dir.join(name);
        std::fs::write(&prog, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        prog
    }

    #[test]
    fn a_missing_program_is_named_with_its_package_and_the_install_line() {
        let empty = scratch("empty");
        let path = empty.clone().into_os_string();
        let needs = [Need::own(
            NFT,
            "it loads the nftables tables that enforce policy",
        )];
        let message =
            missing_message("agent", &needs, |_| path.clone(), &path).expect("nft is missing");
        assert_eq!(
            message,
            format!(
                "weft agent needs `nft` (Debian package nftables), which is not on PATH ({}): \
                 it loads the nftables tables that enforce policy\n\
                 install with: apt-get install nftables",
                empty.display()
            )
        );
        let _ = std::fs::remove_dir_all(&empty);
    }

    #[test]
    fn every_missing_program_is_listed_and_each_package_installed_once() {
        let empty = scratch("many");
        let path = empty.clone().into_os_string();
        let needs = [
            Need::own(IP, "a"),
            Need::own(BRIDGE, "b"),
            Need::task("busybox", "the demo's apps run it"),
            Need::task("no-such-program", "c"),
        ];
        let message = missing_message("demo", &needs, |_| path.clone(), &path).expect("missing");
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), 5, "{message}");
        assert!(lines[0].starts_with("weft demo needs `ip` (Debian package iproute2)"));
        assert!(lines[1].starts_with("weft demo needs `bridge` (Debian package iproute2)"));
        assert!(
            lines[2].starts_with(
                "weft demo needs `busybox` (Debian package busybox-static), which is not on the tasks' PATH"
            ),
            "{message}"
        );
        assert!(
            lines[3]
                .starts_with("weft demo needs `no-such-program` (no Debian package known to weft)"),
            "{message}"
        );
        assert_eq!(
            lines[4],
            "install with: apt-get install iproute2 busybox-static"
        );
        let _ = std::fs::remove_dir_all(&empty);
    }

    #[test]
    fn a_program_outside_path_is_pointed_at() {
        let (empty, usual) = (scratch("path"), scratch("usual"));
        let nft = executable(&usual, "nft");
        let needs = [Need::own(NFT, "x")];
        let message = missing_message(
            "agent",
            &needs,
            |_| empty.clone().into_os_string(),
            usual.as_os_str(),
        )
        .expect("missing from PATH");
        assert!(
            message.ends_with(&format!(
                "(it is at {}: add {} to PATH)",
                nft.display(),
                usual.display()
            )),
            "{message}"
        );
        assert!(!message.contains("apt-get"), "{message}");
        let _ = std::fs::remove_dir_all(&empty);
        let _ = std::fs::remove_dir_all(&usual);
    }

    #[test]
    fn a_program_found_on_the_path_is_not_missing() {
        let dir = scratch("found");
        let path = dir.clone().into_os_string();
        std::fs::write(dir.join("nft"), "#!/bin/sh\n").expect("write");
        let needs = [Need::own(NFT, "x")];
        // Not executable: still missing.
        assert!(missing_message("agent", &needs, |_| path.clone(), &path).is_some());
        let prog = executable(&dir, "nft");
        assert_eq!(
            missing_message("agent", &needs, |_| path.clone(), &path),
            None
        );
        assert_eq!(find_program("nft", &path), Some(prog.clone()));
        let full = prog.to_str().unwrap_or_default().to_string();
        assert_eq!(find_program(&full, OsStr::new("")), Some(prog));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_tasks_path_is_the_runtime_s() {
        assert_eq!(
            Search::Tasks.path(),
            OsString::from(weft_runtime::TASK_PATH)
        );
    }

    #[test]
    fn programs_of_a_command_line() {
        assert_eq!(
            command_programs("exec busybox nc -ll -p 80 -e /bin/cat"),
            vec!["busybox", "/bin/cat"]
        );
        assert_eq!(
            command_programs("A=1 python3 -m http.server; echo done && sleep 1 | tee x"),
            vec!["python3", "echo", "sleep", "tee"]
        );
        assert_eq!(known("/bin/cat").map(|p| p.package), Some("coreutils"));
        assert_eq!(known("busybox").map(|p| p.package), Some("busybox-static"));
        assert_eq!(known("nope"), None);
    }
}
