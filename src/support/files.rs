//! Files replaced whole and atomically: a temporary file beside the target, written, synced,
//! renamed over it, and the folder synced, so a reader (or a crash) sees the old file or the new,
//! never a mix. Symbolic links are followed to the file they name, which is replaced in place.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file that holds a secret.
pub const SECRET_MODE: u32 = 0o600;
const MODE: u32 = SECRET_MODE;

/// A file operation that failed: what was being done, to which path, and why. Never carries the
/// data written.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub action: &'static str,
    pub source: io::Error,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} {}: {}", self.action, self.path.display(), self.source)
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Follows symlinks (up to 40) to the file that should be replaced.
pub fn resolve_target(path: &Path) -> Result<PathBuf, FileError> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&current).map_err(|e| FileError {
                    path: current.clone(),
                    action: "read the symlink",
                    source: e,
                })?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(FileError { path: current, action: "inspect", source: e }),
        }
    }
    Err(FileError {
        path: path.to_owned(),
        action: "resolve",
        source: io::Error::other("too many levels of symbolic links"),
    })
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError { path, action, source }
}

/// Atomically replaces the file at `path` (through symlinks) with `data`, mode 0600.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<Option<String>, FileError> {
    write_atomic_mode(path, data, MODE)
}

/// [`write_atomic`] with another mode, for files that hold no secret (reports, manifests). The
/// "readable by others" warning only applies to the 0600 mode.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> Result<Option<String>, FileError> {
    let target = resolve_target(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let warning = match std::fs::metadata(&target) {
        Ok(m) if mode == MODE && m.permissions().mode() & 0o077 != 0 => Some(format!(
            "{} was readable by others (mode {:o}); it is now {MODE:o}",
            target.display(),
            m.permissions().mode() & 0o777
        )),
        _ => None,
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "env".into());
    let mut tmp = None;
    for attempt in 0..16u32 {
        let candidate = dir.join(format!(".{name}.tmp-{}-{}-{attempt}", std::process::id(), rand::random::<u32>()));
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&candidate) {
            Ok(f) => {
                tmp = Some((candidate, f));
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&dir, "create a temporary file in")(e)),
        }
    }
    let Some((tmp_path, mut file)) = tmp else {
        return Err(FileError {
            path: dir,
            action: "create a temporary file in",
            source: io::Error::other("name collisions"),
        });
    };
    let result = (|| {
        // The mode given at creation is masked by the umask; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io_err(&tmp_path, "set the mode of"))?;
        file.write_all(data).map_err(io_err(&tmp_path, "write"))?;
        file.sync_all().map_err(io_err(&tmp_path, "sync"))?;
        drop(file);
        std::fs::rename(&tmp_path, &target).map_err(io_err(&target, "replace"))?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err(&dir, "sync the folder"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
    }
    result.map(|()| warning)
}
