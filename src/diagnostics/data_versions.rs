//! Data versions: a manifest of datasets (`data/manifest.yaml`) with each file's size and sha256,
//! checked by `mt5bot check-data-versions` and the nightly diagnostics.
//!
//! Paths in the manifest are relative to the manifest's folder. Every regular file under that folder
//! (other than the manifest and hidden files) must be listed: an unlisted file is a mismatch too, so a
//! dataset dropped in by hand is noticed. Files are hashed in a streaming way (1 MiB reads), with a
//! progress line on stderr when it is a terminal. `--write` records the current state atomically.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The default manifest.
pub const DEFAULT_MANIFEST: &str = "data/manifest.yaml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub datasets: Vec<Entry>,
}

/// A dataset's state against the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Missing,
    Unlisted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Missing => "missing",
            Status::Unlisted => "unlisted",
        }
    }
}

/// One row of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub path: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub expected_sha256: Option<String>,
    pub expected_size: Option<u64>,
    pub status: Status,
}

/// Reads a manifest; `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<Manifest>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the manifest {}: {e}", path.display())),
    };
    let m: Manifest = serde_yaml::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
        format!("{}{line}: {e}", path.display())
    })?;
    for d in &m.datasets {
        if d.path.starts_with('/') || d.path.split('/').any(|c| c == "..") {
            return Err(format!(
                "{}: dataset path {:?} must stay inside the manifest's folder",
                path.display(),
                d.path
            ));
        }
        if d.sha256.len() != 64 || !d.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{}: {:?} has sha256 {:?}, not 64 hex digits", path.display(), d.path, d.sha256));
        }
    }
    Ok(Some(m))
}

/// sha256 and size of a file, read in 1 MiB pieces; `progress` shows a line on a terminal.
pub fn hash_file(path: &Path, progress: bool) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let total = f.metadata()?.len();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    let show = progress && total > 64 << 20 && std::io::stderr().is_terminal();
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        done += n as u64;
        if show {
            eprint!("\rhashing {}: {:3}%", path.display(), done * 100 / total.max(1));
            let _ = std::io::stderr().flush();
        }
    }
    if show {
        eprintln!();
    }
    Ok((h.finalize().iter().map(|b| format!("{b:02x}")).collect(), done))
}

/// Regular files under `dir`, relative, sorted; hidden names and `skip` are left out.
fn files_under(dir: &Path, skip: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, skip: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') || p == skip {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(root, &p, skip, out),
                Ok(t) if t.is_file() => {
                    if let Ok(rel) = p.strip_prefix(root) {
                        out.push(rel.to_string_lossy().into_owned());
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, skip, &mut out);
    out.sort();
    out
}

fn base(manifest_path: &Path) -> PathBuf {
    match manifest_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks every listed and unlisted dataset.
pub fn check(manifest_path: &Path, manifest: &Manifest, progress: bool) -> Result<Vec<Row>, String> {
    let dir = base(manifest_path);
    let mut rows = Vec::new();
    for d in &manifest.datasets {
        let p = dir.join(&d.path);
        let row = match hash_file(&p, progress) {
            Ok((sha, size)) => Row {
                status: if sha == d.sha256.to_ascii_lowercase() && size == d.size {
                    Status::Ok
                } else {
                    Status::Changed
                },
                path: d.path.clone(),
                size: Some(size),
                sha256: Some(sha),
                expected_sha256: Some(d.sha256.clone()),
                expected_size: Some(d.size),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Row {
                path: d.path.clone(),
                size: None,
                sha256: None,
                expected_sha256: Some(d.sha256.clone()),
                expected_size: Some(d.size),
                status: Status::Missing,
            },
            Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
        };
        rows.push(row);
    }
    for rel in files_under(&dir, manifest_path) {
        if manifest.datasets.iter().any(|d| Path::new(&d.path) == Path::new(&rel)) {
            continue;
        }
        let (sha, size) = hash_file(&dir.join(&rel), progress).map_err(|e| format!("cannot read {rel}: {e}"))?;
        rows.push(Row {
            path: rel,
            size: Some(size),
            sha256: Some(sha),
            expected_sha256: None,
            expected_size: None,
            status: Status::Unlisted,
        });
    }
    Ok(rows)
}

/// The manifest that records `rows` as they are now (missing files leave it).
pub fn recorded(rows: &[Row]) -> Manifest {
    let mut datasets: Vec<Entry> = rows
        .iter()
        .filter_map(|r| Some(Entry { path: r.path.clone(), size: r.size?, sha256: r.sha256.clone()? }))
        .collect();
    datasets.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest { datasets }
}

/// Writes a manifest atomically (mode 0644), with a header comment.
pub fn save(path: &Path, m: &Manifest) -> Result<(), String> {
    let body = serde_yaml::to_string(m).map_err(|e| format!("cannot render the manifest: {e}"))?;
    let text = format!(
        "# Datasets and their sha256, checked by `mt5bot check-data-versions` and the nightly diagnostics.\n# Paths are relative to this file's folder. Record the current files with `mt5bot check-data-versions --write`.\n{body}"
    );
    crate::support::files::write_atomic_mode(path, text.as_bytes(), 0o644).map(|_| ()).map_err(|e| e.to_string())
}

/// A readable table of rows.
pub fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<width$}  {:>12}  {:<8}  {}\n", "PATH", "SIZE", "STATUS", "SHA256");
    for r in rows {
        let size = r.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let sha = r.sha256.as_deref().map(|s| &s[..16]).unwrap_or("-");
        out.push_str(&format!("{:<width$}  {:>12}  {:<8}  {sha}\n", r.path, size, r.status.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sha256() {
        let dir = crate::support::testdir::TestDir::new("dv");
        let p = dir.join("abc");
        std::fs::write(&p, b"abc").expect("write");
        let (sha, size) = hash_file(&p, false).expect("hash");
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(size, 3);
    }

    #[test]
    fn manifests_are_checked() {
        let dir = crate::support::testdir::TestDir::new("dv2");
        let p = dir.join("manifest.yaml");
        std::fs::write(&p, "datasets:\n  - path: ../etc/passwd\n    size: 1\n    sha256: 00\n").expect("write");
        assert!(load(&p).expect_err("escape").contains("inside the manifest's folder"));
        std::fs::write(&p, "datasets:\n  - path: a\n    size: 1\n    sha256: xyz\n").expect("write");
        assert!(load(&p).expect_err("hex").contains("64 hex digits"));
        std::fs::write(&p, "datasets:\n  - path: a\n    sise: 1\n").expect("write");
        assert!(load(&p).expect_err("key").contains(":3:"));
        assert_eq!(load(&dir.join("none.yaml")), Ok(None));
    }
}
