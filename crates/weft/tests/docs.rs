//! The documentation cannot drift from what weft accepts: every document shown in
//! README.md and ARCHITECTURE.md (```hcl and ```json blocks, and any other block that is
//! a weft document), every file under examples/, and the offline commands the README
//! shows are checked through the binary, as `weft validate` checks them.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("run weft")
}

/// A fenced code block of a markdown text.
#[derive(Debug, PartialEq)]
struct Block {
    /// The first word of the info string, lower case ("hcl", "json", "" for none).
    lang: String,
    /// 1-based line of the block's first line of content (the one after the fence).
    line: usize,
    text: String,
    closed: bool,
}

/// Every fenced code block (``` or ~~~, indented at most three spaces).
fn code_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (i, raw) in markdown.lines().enumerate() {
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let line = raw.trim_start_matches(' ');
        let fence: String = line.chars().take_while(|&c| c == '`' || c == '~').collect();
        let is_fence = indent <= 3
            && fence.len() >= 3
            && fence
                .chars()
                .all(|c| c == fence.chars().next().unwrap_or('`'));
        match &mut open {
            None if is_fence => {
                let lang = line[fence.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let block = Block {
                    lang,
                    line: i + 2,
                    text: String::new(),
                    closed: false,
                };
                open = Some((fence, block));
            }
            None => {}
            Some((start, block)) => {
                if is_fence
                    && fence.starts_with(start.as_str())
                    && line[fence.len()..].trim().is_empty()
                {
                    block.closed = true;
                    if let Some((_, block)) = open.take() {
                        blocks.push(block);
                    }
                } else {
                    block.text.push_str(raw);
                    block.text.push('\n');
                }
            }
        }
    }
    blocks.extend(open.map(|(_, block)| block));
    blocks
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A policy document: `tenant` blocks, or JSON with a "tenant" key.
    Policy,
    /// An app document: `app` blocks, or JSON with an "app" key.
    Apps,
}

/// What kind of weft document a text is, judging by its first block or key.
fn document_kind(text: &str) -> Option<(Kind, &'static str)> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))?;
    let word = first
        .split(|c: char| c.is_whitespace() || c == '{' || c == '"')
        .next()
        .unwrap_or("");
    match word {
        "tenant" => Some((Kind::Policy, "hcl")),
        "app" => Some((Kind::Apps, "hcl")),
        _ if first.starts_with('{') => {
            let value: serde_json::Value = serde_json::from_str(text).ok()?;
            let object = value.as_object()?;
            if object.contains_key("tenant") {
                Some((Kind::Policy, "json"))
            } else if object.contains_key("app") {
                Some((Kind::Apps, "json"))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// `text` with every `path:N` turned into `name:(N + offset)`, so that an error inside a
/// scratch file points at the markdown line.
fn relocate(text: &str, path: &str, name: &str, offset: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(path) {
        out.push_str(&rest[..at]);
        rest = &rest[at + path.len()..];
        let digits: String = rest
            .strip_prefix(':')
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        match digits.parse::<usize>() {
            Ok(n) if n > 0 => {
                out.push_str(&format!("{name}:{}", n + offset));
                rest = &rest[1 + digits.len()..];
            }
            _ => out.push_str(name),
        }
    }
    out.push_str(rest);
    out
}

/// Checks one document file: a policy through `weft validate -f` (parse, validate and
/// compile, as the command does), apps through weft-app's parser and validation, with
/// their EPGs looked up in `policy` when given. The errors, or `None`.
fn check_document(kind: Kind, path: &Path, policy: Option<&weft_model::Model>) -> Option<String> {
    match kind {
        Kind::Policy => {
            let o = weft(&["validate", "-f", path.to_str().unwrap()]);
            (o.status.code() != Some(0)).then(|| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
        }
        Kind::Apps => {
            let text = std::fs::read_to_string(path).unwrap();
            let name = path.to_str().unwrap();
            let parsed = if path.extension().is_some_and(|e| e == "json") {
                weft_app::parse_apps_json(name, &text)
            } else {
                weft_app::parse_apps_hcl(name, &text)
            };
            let apps = match parsed.and_then(|apps| weft_app::validate_apps(&apps).map(|()| apps)) {
                Ok(apps) => apps,
                Err(e) => return Some(e.to_string()),
            };
            let policy = policy?;
            let missing: Vec<String> = apps
                .apps
                .iter()
                .filter(|(_, app)| {
                    let e = &app.epg;
                    policy
                        .tenants
                        .get(&e.tenant)
                        .and_then(|t| t.app_profiles.get(&e.app_profile))
                        .is_none_or(|ap| !ap.epgs.contains_key(&e.epg))
                })
                .map(|(id, app)| {
                    format!(
                        "{}: app {id}: EPG {} is not in the policy",
                        app.loc, app.epg
                    )
                })
                .collect();
            (!missing.is_empty()).then(|| missing.join("\n"))
        }
    }
}

/// Every document block of a markdown text checked; one message per failing block,
/// naming `name` and the markdown line.
fn check_markdown(name: &str, markdown: &str, scratch: &Path) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in code_blocks(markdown) {
        let tagged = matches!(block.lang.as_str(), "hcl" | "json");
        if !block.closed {
            failures.push(format!(
                "{name}:{}: the code block is never closed",
                block.line - 1
            ));
        }
        let Some((kind, ext)) = document_kind(&block.text) else {
            if tagged {
                failures.push(format!(
                    "{name}:{}: a ```{} block that is no weft document (a tenant or app \
                     document); give fragments another language tag",
                    block.line - 1,
                    block.lang
                ));
            }
            continue;
        };
        checked += 1;
        let file = scratch.join(format!("{name}-{}.{ext}", block.line));
        std::fs::write(&file, &block.text).unwrap();
        if let Some(errors) = check_document(kind, &file, None) {
            let errors = relocate(&errors, file.to_str().unwrap(), name, block.line - 1);
            failures.push(format!(
                "{name}:{}: the ```{} block is not a valid document:\n{errors}",
                block.line - 1,
                block.lang
            ));
        }
    }
    (checked, failures)
}

#[test]
fn every_document_in_the_readme_and_architecture_is_valid() {
    let scratch = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for name in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(workspace().join(name)).unwrap();
        let (checked, found) = check_markdown(name, &text, scratch.path());
        eprintln!("{name}: {checked} document block(s) checked");
        if name == "README.md" {
            assert!(checked >= 1, "the README's policy example was not found");
        }
        failures.extend(found);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn a_broken_block_fails_with_its_markdown_line() {
    let scratch = tempfile::tempdir().unwrap();
    let markdown = r#"# A page

Some text, and a shell block that is not a document:

```sh
weft validate -f x.hcl
```

    tenant "indented" { this is no fenced block }

```hcl
tenant "t" {
  vrf "v" {}
  taboo "no-ssh" { subject "ssh" { filters = ["ssh"] } }
}
```

```hcl
tenant "u" {
  taboo "no-ssh" {
    subject "ssh" {
      filters = ["ssh"]
    }
  }
}
```

```json
{"tenant": {"w": {"vrf": {"v": {"enforcd": false}}}}}
```

```hcl
tenant "fine" {
  vrf "v" {}
}
```

~~~hcl
resource "x" {}
~~~
"#;
    let blocks = code_blocks(markdown);
    let langs: Vec<(&str, usize)> = blocks.iter().map(|b| (b.lang.as_str(), b.line)).collect();
    assert_eq!(
        langs,
        [
            ("sh", 6),
            ("hcl", 12),
            ("hcl", 19),
            ("json", 29),
            ("hcl", 33),
            ("hcl", 39)
        ]
    );
    let (checked, failures) = check_markdown("doc.md", markdown, scratch.path());
    assert_eq!(checked, 4, "{failures:#?}");
    assert_eq!(failures.len(), 4, "{failures:#?}");
    // The one-line taboo is malformed HCL, on line 14 of the page.
    assert!(
        failures[0].starts_with("doc.md:11: the ```hcl block"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("doc.md:14: malformed HCL"),
        "{}",
        failures[0]
    );
    // The undeclared filter, at the subject's line.
    assert!(failures[1].starts_with("doc.md:18:"), "{}", failures[1]);
    assert!(
        failures[1]
            .contains("doc.md:21: u/taboo:no-ssh/subject:ssh: filters: unknown filter \"ssh\""),
        "{}",
        failures[1]
    );
    assert!(failures[2].contains("doc.md:29:"), "{}", failures[2]);
    assert!(
        failures[2].contains("unknown field `enforcd`"),
        "{}",
        failures[2]
    );
    assert!(
        failures[3].starts_with("doc.md:38: a ```hcl block that is no weft document"),
        "{}",
        failures[3]
    );

    let (_, failures) = check_markdown("doc.md", "```hcl\ntenant \"t\" {}\n", scratch.path());
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].contains("never closed"), "{failures:#?}");
}

/// The example files: policies alone, apps with the policy of their directory.
#[test]
fn every_example_file_is_valid() {
    let mut files = Vec::new();
    let mut dirs = vec![workspace().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("hcl" | "json")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let kinds: Vec<(PathBuf, Kind)> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let kind = document_kind(&text)
                .unwrap_or_else(|| panic!("{} is no weft document", f.display()))
                .0;
            (f, kind)
        })
        .collect();
    let mut failures = Vec::new();
    for (file, kind) in &kinds {
        // The policies beside an app document, merged.
        let mut docs = weft_model::Documents::default();
        for (other, k) in &kinds {
            if *k == Kind::Policy && other.parent() == file.parent() {
                let text = std::fs::read_to_string(other).unwrap();
                docs.add_hcl(&other.display().to_string(), &text);
            }
        }
        let policy = docs.finish().ok();
        if *kind == Kind::Apps {
            assert!(
                policy.is_some(),
                "{}: no valid policy beside it",
                file.display()
            );
        }
        if let Some(errors) = check_document(*kind, file, policy.as_ref()) {
            failures.push(format!("{}:\n{errors}", file.display()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The README's offline commands (`weft validate|compile|explain -f ...`), run as
/// written from the workspace root: each exits 0 (explain: allowed). Every examples/
/// path the documentation names exists.
#[test]
fn the_readmes_offline_commands_work_as_written() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let mut commands: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        let Some(code) = line.strip_prefix("    ") else {
            pending = None;
            continue;
        };
        let code = code.split(" #").next().unwrap_or("").trim();
        let (text, continued) = match code.strip_suffix('\\') {
            Some(head) => (head.trim(), true),
            None => (code, false),
        };
        let command = match pending.take() {
            Some((start, mut so_far)) => {
                so_far.push(' ');
                so_far.push_str(text);
                (start, so_far)
            }
            None => (i + 1, text.to_string()),
        };
        if continued {
            pending = Some(command);
        } else {
            commands.push(command);
        }
    }
    let offline: Vec<&(usize, String)> = commands
        .iter()
        .filter(|(_, c)| {
            let words: Vec<&str> = c.split_whitespace().collect();
            words.first() == Some(&"weft")
                && matches!(words.get(1), Some(&("validate" | "compile" | "explain")))
                && words.contains(&"-f")
        })
        .collect();
    assert!(offline.len() >= 3, "{commands:#?}");
    for (line, command) in offline {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let o = weft(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "README.md:{line}: {command}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    for name in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(workspace().join(name)).unwrap();
        for (i, line) in text.lines().enumerate() {
            for word in line.split(|c: char| c.is_whitespace() || c == '`') {
                if word.starts_with("examples/") && !word.contains('*') {
                    assert!(
                        workspace().join(word).exists(),
                        "{name}:{}: {word} does not exist",
                        i + 1
                    );
                }
            }
        }
    }
}
