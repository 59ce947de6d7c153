//! The dev cluster's entry in OpenStack's `clouds.yaml`, as devstack writes one: `weft
//! dev` adds `clouds.<tag>` (`weft-dev`) to `~/.config/openstack/clouds.yaml` and takes
//! exactly that entry away again when it stops.
//!
//! The file is the user's: every other cloud and top-level key stays. The entry is
//! spliced into the text (after the `clouds:` line) and cut out of it again, so comments
//! and layout are kept and removal gives back the bytes that were there; each edit is
//! checked by parsing the result and comparing it with the intended document, and only a
//! file whose layout the splice cannot handle (flow style, a quoted `clouds` key) is
//! written again from the parsed document instead, without its comments. A file that
//! does not parse is refused with its line and column and never written. Writes go
//! through a temporary file and a rename, keeping the file's mode and owner; a new file
//! is 0600 (it holds a password) and belongs to whoever owns the directory above it.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use yaml_serde::{Mapping, Value};

/// Why the clouds.yaml could not be read, changed or written.
#[derive(Debug, thiserror::Error)]
pub enum CloudsError {
    #[error(
        "{path}:{line}:{column}: not valid YAML ({message}); weft did not change it: fix it or move it away"
    )]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {why}; weft did not change it: fix it or move it away")]
    Shape { path: PathBuf, why: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the clouds.yaml entry: {0}")]
    Encode(String),
}

/// One cloud's settings: what `openstack --os-cloud NAME` needs.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// Keystone's v3 URL, e.g. `http://127.0.0.1:5000/v3`.
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
}

impl Cloud {
    fn to_value(&self) -> Value {
        let mut auth = Mapping::new();
        for (key, value) in [
            ("auth_url", &self.auth_url),
            ("username", &self.username),
            ("password", &self.password),
            ("project_name", &self.project_name),
        ] {
            auth.insert(key.into(), value.as_str().into());
        }
        auth.insert("user_domain_name".into(), "Default".into());
        auth.insert("project_domain_name".into(), "Default".into());
        let mut cloud = Mapping::new();
        cloud.insert("auth".into(), Value::Mapping(auth));
        cloud.insert("region_name".into(), "RegionOne".into());
        cloud.insert("interface".into(), "public".into());
        cloud.insert("identity_api_version".into(), 3.into());
        Value::Mapping(cloud)
    }
}

/// `~/.config/openstack/clouds.yaml` (`$HOME`), the directory every OpenStack client
/// reads; `clouds.yml` there instead when only that one exists, as clients read it then.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let dir = home.join(".config").join("openstack");
    let yml = dir.join("clouds.yml");
    let yaml = dir.join("clouds.yaml");
    if !yaml.exists() && yml.exists() {
        yml
    } else {
        yaml
    }
}

/// Files that OpenStack clients read before `path` (the first one found wins, whole), so
/// an entry written to `path` is not seen while one of them exists.
pub fn shadowing(path: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd);
    }
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        dirs.push(PathBuf::from(xdg).join("openstack"));
    }
    let mut found = Vec::new();
    if let Some(file) = std::env::var_os("OS_CLIENT_CONFIG_FILE").map(PathBuf::from)
        && file != path
    {
        found.push(file);
    }
    for dir in dirs {
        if Some(dir.as_path()) == path.parent() {
            break;
        }
        for name in ["clouds.yaml", "clouds.yml", "clouds.json"] {
            let file = dir.join(name);
            if file.exists() {
                found.push(file);
            }
        }
    }
    // In the entry's own directory, clouds.yaml is read before clouds.yml and .json.
    if let Some(dir) = path.parent()
        && path.file_name().is_some_and(|n| n != "clouds.yaml")
    {
        let file = dir.join("clouds.yaml");
        if file.exists() {
            found.push(file);
        }
    }
    found
}

/// How an edit was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Spliced into the text: comments and layout kept.
    Spliced,
    /// Written again from the parsed document: comments were not kept.
    Rewritten,
    /// Nothing to change.
    Unchanged,
    /// The file was weft's and nothing else was left in it: deleted.
    Deleted,
}

/// An entry weft added, to be taken away again with [`Installed::remove`].
#[derive(Debug)]
pub struct Installed {
    pub path: PathBuf,
    pub name: String,
    pub written: Written,
    /// weft created the file (then it deletes it once no cloud is left in it).
    created_file: bool,
    /// Directories weft created, outermost first (removed again when empty).
    created_dirs: Vec<PathBuf>,
}

/// Reads and checks the file without changing anything: `Ok(())` when it is absent or a
/// clouds.yaml weft can add an entry to.
pub fn check(path: &Path) -> Result<(), CloudsError> {
    if let Some(text) = read(path)? {
        let doc = parse(path, &text)?;
        clouds_of(path, &doc)?;
    }
    Ok(())
}

/// Adds (or replaces) `clouds.<name>` in the file at `path`, creating it and its
/// directories when missing.
pub fn install(path: &Path, name: &str, cloud: &Cloud) -> Result<Installed, CloudsError> {
    let existing = read(path)?;
    let original = existing.clone().unwrap_or_default();
    let mut doc = parse(path, &original)?;
    clouds_of(path, &doc)?;
    set_entry(&mut doc, name, cloud.to_value());
    let spliced = splice_in(&original, name, cloud)?;
    let (text, written) = if same(path, &spliced, &doc) {
        (spliced, Written::Spliced)
    } else {
        (encode(&doc)?, Written::Rewritten)
    };
    let created_dirs = match path.parent() {
        Some(dir) => create_dirs(dir)?,
        None => Vec::new(),
    };
    write(path, &text)?;
    Ok(Installed {
        path: path.to_path_buf(),
        name: name.to_string(),
        written,
        created_file: existing.is_none(),
        created_dirs,
    })
}

impl Installed {
    /// Takes `clouds.<name>` out again, keeping everything else; deletes the file if weft
    /// created it and it holds nothing else now, and the directories weft created if they
    /// are empty.
    pub fn remove(self) -> Result<Written, CloudsError> {
        let written = remove_entry(&self.path, &self.name, self.created_file)?;
        for dir in self.created_dirs.iter().rev() {
            // Only when empty: remove_dir refuses anything else.
            let _ = std::fs::remove_dir(dir);
        }
        Ok(written)
    }
}

/// Takes `clouds.<name>` out of the file at `path`, if it is there. With `delete_if_empty`
/// the file is deleted when nothing but an empty `clouds` is left.
pub fn remove_entry(
    path: &Path,
    name: &str,
    delete_if_empty: bool,
) -> Result<Written, CloudsError> {
    let Some(text) = read(path)? else {
        return Ok(Written::Unchanged);
    };
    let mut doc = parse(path, &text)?;
    let had = clouds_of(path, &doc)?.is_some_and(|clouds| clouds.contains_key(name));
    if !had {
        return Ok(Written::Unchanged);
    }
    if let Some(Value::Mapping(clouds)) = top(&mut doc).get_mut("clouds") {
        clouds.shift_remove(name);
    }
    let empty = match &doc {
        Value::Mapping(top) => top.iter().all(|(key, value)| {
            key.as_str() == Some("clouds")
                && match value {
                    Value::Mapping(clouds) => clouds.is_empty(),
                    other => other.is_null(),
                }
        }),
        _ => false,
    };
    if delete_if_empty && empty {
        std::fs::remove_file(path).map_err(|source| CloudsError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Written::Deleted);
    }
    let (text, written) = match splice_out(&text, name) {
        Some(text) if same(path, &text, &doc) => (text, Written::Spliced),
        _ => (encode(&doc)?, Written::Rewritten),
    };
    write(path, &text)?;
    Ok(written)
}

fn read(path: &Path) -> Result<Option<String>, CloudsError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| CloudsError::Shape {
                path: path.to_path_buf(),
                why: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CloudsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse(path: &Path, text: &str) -> Result<Value, CloudsError> {
    yaml_serde::from_str::<Value>(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        // The message without the location it starts with (kept in front), with the
        // context after it ("while parsing a flow mapping at line 3 column 11").
        let message = e
            .to_string()
            .replacen(&format!(" at line {line} column {column}"), "", 1);
        CloudsError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}

/// The document's `clouds` mapping (`None` when absent or empty), or why the document is
/// not a clouds.yaml.
fn clouds_of<'a>(path: &Path, doc: &'a Value) -> Result<Option<&'a Mapping>, CloudsError> {
    let shape = |why: &str| CloudsError::Shape {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    match doc {
        Value::Null => Ok(None),
        Value::Mapping(top) => match top.get("clouds") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Mapping(clouds)) => Ok(Some(clouds)),
            Some(_) => Err(shape("`clouds` is not a mapping of cloud names")),
        },
        _ => Err(shape("the top level is not a mapping")),
    }
}

/// Whether `text` parses to `doc` (an empty `clouds` and a null one are the same).
fn same(path: &Path, text: &str, doc: &Value) -> bool {
    let normal = |mut v: Value| {
        if let Value::Mapping(top) = &mut v
            && let Some(clouds) = top.get_mut("clouds")
            && clouds.is_null()
        {
            *clouds = Value::Mapping(Mapping::new());
        }
        v
    };
    parse(path, text).is_ok_and(|parsed| normal(parsed) == normal(doc.clone()))
}

/// The top-level mapping (an empty document becomes one).
fn top(doc: &mut Value) -> &mut Mapping {
    if !doc.is_mapping() {
        *doc = Value::Mapping(Mapping::new());
    }
    match doc {
        Value::Mapping(top) => top,
        _ => unreachable!("made a mapping above"),
    }
}

fn set_entry(doc: &mut Value, name: &str, cloud: Value) {
    let top = top(doc);
    let clouds = top
        .entry("clouds".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !clouds.is_mapping() {
        *clouds = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(clouds) = clouds {
        clouds.insert(name.into(), cloud);
    }
}

fn encode(value: &Value) -> Result<String, CloudsError> {
    yaml_serde::to_string(value).map_err(|e| CloudsError::Encode(e.to_string()))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Blank or only a comment.
fn is_filler(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// `KEY:` alone on its line (plain, or quoted), maybe with a comment after it.
fn is_key_line(line: &str, key: &str) -> bool {
    let t = line.trim_start_matches(' ').trim_end();
    [key.to_string(), format!("'{key}'"), format!("\"{key}\"")]
        .iter()
        .any(|k| {
            t.strip_prefix(k.as_str())
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|rest| {
                    let rest = rest.trim();
                    rest.is_empty() || rest.starts_with('#')
                })
        })
}

/// The text with `clouds.<name>` spliced in after the `clouds:` line (any earlier entry of
/// that name cut out first), or a `clouds:` appended; the caller checks the result.
fn splice_in(text: &str, name: &str, cloud: &Cloud) -> Result<String, CloudsError> {
    let body = encode(&cloud.to_value())?;
    let text = match splice_out(text, name) {
        Some(cut) => cut,
        None => text.to_string(),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let clouds_line = lines
        .iter()
        .position(|l| indent_of(l) == 0 && is_key_line(l, "clouds"));
    let block = |indent: usize| {
        let pad = " ".repeat(indent);
        let mut out = format!("{pad}{name}:\n");
        for line in body.lines() {
            out.push_str(&format!("{pad}  {line}\n"));
        }
        out
    };
    let mut out = String::with_capacity(text.len() + 512);
    match clouds_line {
        Some(at) => {
            // The clouds' indentation is that of the first line under `clouds:`.
            let indent = lines[at + 1..]
                .iter()
                .find(|l| !is_filler(l))
                .map(|l| indent_of(l))
                .filter(|&i| i > 0)
                .unwrap_or(2);
            for line in &lines[..=at] {
                out.push_str(line);
            }
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&block(indent));
            for line in &lines[at + 1..] {
                out.push_str(line);
            }
        }
        None => {
            // No `clouds` yet: it goes at the end.
            out.push_str(&text);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("clouds:\n");
            out.push_str(&block(2));
        }
    }
    Ok(out)
}

/// The text without the lines of `clouds.<name>` (its key line and everything indented
/// under it, up to the last such line), or `None` where it is not found in block style.
fn splice_out(text: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let clouds = lines
        .iter()
        .position(|l| indent_of(l) == 0 && is_key_line(l, "clouds"))?;
    let mut start = None;
    for (i, line) in lines.iter().enumerate().skip(clouds + 1) {
        if is_filler(line) {
            continue;
        }
        if indent_of(line) == 0 {
            break; // the next top-level key
        }
        if is_key_line(line, name) {
            start = Some(i);
            break;
        }
    }
    let start = start?;
    let indent = indent_of(lines[start]);
    let mut end = start;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if is_filler(line) {
            continue;
        }
        if indent_of(line) <= indent {
            break;
        }
        end = i;
    }
    let mut out = String::with_capacity(text.len());
    for line in lines[..start].iter().chain(&lines[end + 1..]) {
        out.push_str(line);
    }
    Some(out)
}

/// Creates `dir` and its missing parents; each new one belongs to the owner of the one
/// above it (`sudo` with a user's `$HOME` leaves nothing of root's there). Returns the
/// directories it created, outermost first.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, CloudsError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    missing.reverse();
    for d in &missing {
        std::fs::create_dir(d).map_err(|source| CloudsError::Write {
            path: d.clone(),
            source,
        })?;
        if let Some(owner) = d.parent().and_then(|p| std::fs::metadata(p).ok()) {
            let _ = std::os::unix::fs::chown(d, Some(owner.uid()), Some(owner.gid()));
        }
    }
    Ok(missing)
}

/// Replaces the file through a temporary file and a rename: the old mode and owner are
/// kept; a new file is 0600 and belongs to the owner of its directory.
fn write(path: &Path, text: &str) -> Result<(), CloudsError> {
    let err = |source| CloudsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let (mode, uid, gid) = match std::fs::metadata(path) {
        Ok(m) => (m.mode() & 0o7777, m.uid(), m.gid()),
        Err(_) => {
            let dir = path
                .parent()
                .and_then(|d| std::fs::metadata(d).ok())
                .map_or((0, 0), |m| (m.uid(), m.gid()));
            (0o600, dir.0, dir.1)
        }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.weft-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        let _ = std::os::unix::fs::fchown(&file, Some(uid), Some(gid));
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly
mod tests {
    use super::*;

    fn cloud() -> Cloud {
        Cloud {
            auth_url: "http://127.0.0.1:5000/v3".into(),
            username: "demo".into(),
            // Digits only: must stay a string, not become a number.
            password: "0123456789".into(),
            project_name: "demo".into(),
        }
    }

    const OTHER: &str = "# my clouds\nclouds:\n  # the lab\n  lab:\n    auth:\n      auth_url: https://lab.example:5000/v3\n      username: me\n    region_name: RegionTwo\n\n  other: {auth: {username: x}}\ncache:\n  max_age: 3600\n";

    fn load(path: &Path) -> Value {
        yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn merge_keeps_other_clouds_keys_and_comments_and_removal_restores_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        std::fs::write(&path, OTHER).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let installed = install(&path, "weft-dev", &cloud()).unwrap();
        assert_eq!(installed.written, Written::Spliced);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# the lab") && text.contains("# my clouds"),
            "{text}"
        );
        let doc = load(&path);
        let entry = &doc["clouds"]["weft-dev"];
        assert_eq!(entry["auth"]["password"].as_str(), Some("0123456789"));
        assert_eq!(
            entry["auth"]["auth_url"].as_str(),
            Some("http://127.0.0.1:5000/v3")
        );
        assert_eq!(entry["identity_api_version"].as_u64(), Some(3));
        assert_eq!(
            doc["clouds"]["lab"]["region_name"].as_str(),
            Some("RegionTwo")
        );
        assert_eq!(
            doc["clouds"]["other"]["auth"]["username"].as_str(),
            Some("x")
        );
        assert_eq!(doc["cache"]["max_age"].as_u64(), Some(3600));
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o640, "the file's mode is kept");

        assert_eq!(installed.remove().unwrap(), Written::Spliced);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), OTHER);
    }

    #[test]
    fn removal_keeps_clouds_added_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        std::fs::write(&path, OTHER).unwrap();
        let installed = install(&path, "weft-dev", &cloud()).unwrap();
        // Someone adds a cloud while the cluster runs, after weft's entry.
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace(
            "  # the lab\n",
            "  later:\n    region_name: R3\n  # the lab\n",
        );
        std::fs::write(&path, text).unwrap();
        installed.remove().unwrap();
        let doc = load(&path);
        let clouds = doc["clouds"].as_mapping().unwrap();
        let names: Vec<&str> = clouds.keys().filter_map(Value::as_str).collect();
        assert_eq!(names, ["later", "lab", "other"]);
        assert_eq!(doc["cache"]["max_age"].as_u64(), Some(3600));
    }

    #[test]
    fn an_old_entry_of_that_name_is_replaced_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        let old = "clouds:\n    weft-dev:\n        auth:\n            password: stale\n        region_name: Old\n    lab:\n        region_name: RegionTwo\n";
        std::fs::write(&path, old).unwrap();
        let installed = install(&path, "weft-dev", &cloud()).unwrap();
        assert_eq!(installed.written, Written::Spliced);
        let doc = load(&path);
        assert_eq!(
            doc["clouds"]["weft-dev"]["auth"]["password"].as_str(),
            Some("0123456789")
        );
        assert_eq!(
            doc["clouds"]["weft-dev"]["region_name"].as_str(),
            Some("RegionOne")
        );
        assert_eq!(
            doc["clouds"]["lab"]["region_name"].as_str(),
            Some("RegionTwo")
        );
        installed.remove().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "clouds:\n    lab:\n        region_name: RegionTwo\n"
        );
    }

    #[test]
    fn flow_style_is_rewritten_with_the_same_clouds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        std::fs::write(
            &path,
            "{clouds: {lab: {region_name: R2}}, cache: {max_age: 1}}\n",
        )
        .unwrap();
        let installed = install(&path, "weft-dev", &cloud()).unwrap();
        assert_eq!(installed.written, Written::Rewritten);
        let doc = load(&path);
        assert_eq!(doc["clouds"]["lab"]["region_name"].as_str(), Some("R2"));
        assert_eq!(
            doc["clouds"]["weft-dev"]["auth"]["username"].as_str(),
            Some("demo")
        );
        installed.remove().unwrap();
        let doc = load(&path);
        assert!(doc["clouds"].get("weft-dev").is_none());
        assert_eq!(doc["clouds"]["lab"]["region_name"].as_str(), Some("R2"));
        assert_eq!(doc["cache"]["max_age"].as_u64(), Some(1));
    }

    #[test]
    fn a_file_weft_created_goes_with_its_directories_once_empty() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(".config/openstack/clouds.yaml");
        let installed = install(&path, "weft-dev", &cloud()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "a new clouds.yaml holds a password");
        let doc = load(&path);
        assert_eq!(
            doc["clouds"]["weft-dev"]["auth"]["project_name"].as_str(),
            Some("demo")
        );
        assert_eq!(installed.remove().unwrap(), Written::Deleted);
        assert!(!home.path().join(".config").exists());
    }

    #[test]
    fn a_file_weft_created_stays_when_someone_added_a_cloud() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(".config/openstack/clouds.yaml");
        let installed = install(&path, "weft-dev", &cloud()).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("  mine:\n    region_name: R9\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(installed.remove().unwrap(), Written::Spliced);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "clouds:\n  mine:\n    region_name: R9\n"
        );
    }

    #[test]
    fn a_malformed_file_is_refused_with_its_line_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        let bad = "clouds:\n  lab:\n    auth: {username: me\n  other:\n    region_name: R\n";
        std::fs::write(&path, bad).unwrap();
        for err in [
            check(&path).unwrap_err(),
            install(&path, "weft-dev", &cloud()).unwrap_err(),
            remove_entry(&path, "weft-dev", true).unwrap_err(),
        ] {
            let CloudsError::Syntax { line, .. } = &err else {
                panic!("{err}")
            };
            assert!((3..=5).contains(line), "{err}");
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("{}:", path.display())),
                "{shown}"
            );
            assert!(shown.contains("did not change it"), "{shown}");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "no temporary file left");
    }

    #[test]
    fn duplicate_keys_and_wrong_shapes_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        for bad in [
            "clouds:\n  lab: {}\n  lab: {}\n",
            "clouds: [lab]\n",
            "- clouds\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = install(&path, "weft-dev", &cloud()).unwrap_err();
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        }
    }

    #[test]
    fn an_empty_or_comment_only_file_gets_a_clouds_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clouds.yaml");
        std::fs::write(&path, "# nothing yet").unwrap();
        let installed = install(&path, "weft-dev", &cloud()).unwrap();
        assert_eq!(installed.written, Written::Spliced);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# nothing yet\nclouds:\n  weft-dev:\n"),
            "{text}"
        );
        // Not created by weft: the file stays, with its comment.
        installed.remove().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "# nothing yet\nclouds:\n");
    }
}
