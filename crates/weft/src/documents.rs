//! Reads policy documents from a file or a directory (`*.hcl` and `*.json`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use weft_model::{Model, validate};

/// Documents were read but are invalid: every problem, already formatted.
#[derive(Debug, thiserror::Error)]
#[error("{report}\n{count} error(s) in the documents; nothing was applied")]
pub struct InvalidDocuments {
    pub report: String,
    pub count: usize,
}

/// Lists the document files at `path`, sorted, so that merging is deterministic.
fn document_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let file = entry
            .with_context(|| format!("cannot list {}", path.display()))?
            .path();
        if matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("hcl" | "json")
        ) {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("{} holds no .hcl or .json document", path.display());
    }
    Ok(files)
}

/// Parses and validates every document at `path`. Warnings go to stderr.
pub fn load(path: &Path) -> Result<Model> {
    let mut docs = weft_model::Documents::default();
    for file in document_files(path)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let name = file.display().to_string();
        if file.extension().is_some_and(|e| e == "json") {
            docs.add_json(&name, &text);
        } else {
            docs.add_hcl(&name, &text);
        }
    }
    checked(docs)
}

/// Parses and validates an HCL document built into the binary.
pub fn parse_embedded(name: &str, text: &str) -> Result<Model> {
    let mut docs = weft_model::Documents::default();
    docs.add_hcl(name, text);
    checked(docs)
}

fn checked(docs: weft_model::Documents) -> Result<Model> {
    let model = docs.finish().map_err(|errors| InvalidDocuments {
        count: errors.0.len(),
        report: errors.to_string(),
    })?;
    let report = validate(&model);
    for warning in report.warnings() {
        eprintln!("{warning}");
    }
    let count = report.errors().count();
    if count > 0 {
        let report = report
            .errors()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        return Err(InvalidDocuments { report, count }.into());
    }
    Ok(model)
}
