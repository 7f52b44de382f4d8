//! `mt5bot runtime-secrets`: the API key, the controller shared secret and the checkpoint AES key.
//!
//! Missing ones are generated from the OS CSPRNG (32 random bytes, base64); existing ones are kept,
//! so a rerun changes nothing and leaves the file byte-identical. `--rotate NAME` (repeatable)
//! replaces NAME only; rotating `CHECKPOINT_AES_KEY` keeps the old key as
//! `CHECKPOINT_AES_KEY_PREVIOUS` so existing checkpoints still decrypt. `--force` regenerates all.

use std::path::PathBuf;

use super::{ensure_parent, DeployError};
use crate::support::encoding::base64;
use crate::support::envfile::{export_line, EnvFile};

use crate::support::names::{API_KEY, CHECKPOINT_AES_KEY, CHECKPOINT_AES_KEY_PREVIOUS, CONTROLLER_SHARED_SECRET};

/// The secrets this helper manages, in file order.
pub const NAMES: [&str; 3] = [API_KEY, CONTROLLER_SHARED_SECRET, CHECKPOINT_AES_KEY];

/// Random bytes per secret.
pub const SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub env_file: PathBuf,
    pub rotate: Vec<String>,
    pub force: bool,
    pub print_exports: bool,
}

/// What happened to each secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kept,
    Generated,
    Rotated,
}

/// The outcome: per-name actions, whether the file was written, and any warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub actions: Vec<(&'static str, Action)>,
    pub written: bool,
    pub warning: Option<String>,
    /// `export KEY='value'` lines, filled when `print_exports` was asked for.
    pub exports: Vec<String>,
}

/// Fresh secret material from the OS CSPRNG.
pub fn generate() -> Result<String, DeployError> {
    use rand::TryRng;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| DeployError::Failed(format!("the operating system's random generator failed: {e}")))?;
    Ok(base64(&bytes))
}

/// Runs the helper with `gen` as the source of new secrets.
pub fn run(opts: &Options, mut gen: impl FnMut() -> Result<String, DeployError>) -> Result<Report, DeployError> {
    for name in &opts.rotate {
        if !NAMES.contains(&name.as_str()) {
            return Err(DeployError::Usage(format!(
                "--rotate {name}: not a runtime secret; valid names: {}",
                NAMES.join(", ")
            )));
        }
    }
    ensure_parent(&opts.env_file)?;
    let mut file = EnvFile::load(&opts.env_file)?;
    let mut actions = Vec::new();
    for name in NAMES {
        let existing = file.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
        let rotate = opts.force || opts.rotate.iter().any(|r| r == name);
        let action = match (&existing, rotate) {
            (Some(_), false) => Action::Kept,
            (None, _) => {
                file.set(name, &gen()?)?;
                Action::Generated
            }
            (Some(old), true) => {
                if name == CHECKPOINT_AES_KEY {
                    file.set(CHECKPOINT_AES_KEY_PREVIOUS, old)?;
                }
                file.set(name, &gen()?)?;
                Action::Rotated
            }
        };
        actions.push((name, action));
    }
    let written = actions.iter().any(|(_, a)| *a != Action::Kept);
    let warning = if written { file.save(&opts.env_file)? } else { crate::support::envfile::tighten(&opts.env_file)? };
    let mut exports = Vec::new();
    if opts.print_exports {
        for name in NAMES.iter().copied().chain([CHECKPOINT_AES_KEY_PREVIOUS]) {
            if let Some(v) = file.get(name) {
                exports.push(export_line(name, v));
            }
        }
    }
    Ok(Report { actions, written, warning, exports })
}

impl Report {
    /// One status line for stderr; names only, never values.
    pub fn summary(&self, path: &std::path::Path) -> String {
        let parts: Vec<String> = self
            .actions
            .iter()
            .map(|(n, a)| {
                let what = match a {
                    Action::Kept => "kept",
                    Action::Generated => "generated",
                    Action::Rotated => "rotated",
                };
                format!("{n} {what}")
            })
            .collect();
        let tail = if self.written { "written" } else { "unchanged" };
        format!("runtime-secrets: {}: {}; file {tail}", path.display(), parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut() -> Result<String, DeployError> {
        let mut n = 0;
        move || {
            n += 1;
            Ok(format!("secret{n}"))
        }
    }

    fn opts(dir: &std::path::Path) -> Options {
        Options { env_file: dir.join("sub/runtime.env"), rotate: vec![], force: false, print_exports: false }
    }

    fn tempdir(name: &str) -> crate::support::testdir::TestDir {
        crate::support::testdir::TestDir::new(&format!("rs-{name}"))
    }

    #[test]
    fn generates_then_keeps_then_rotates() {
        let d = tempdir("cycle");
        let mut o = opts(&d);
        let r = run(&o, counter()).expect("first");
        assert!(r.written);
        assert!(r.actions.iter().all(|(_, a)| *a == Action::Generated));
        let text = std::fs::read_to_string(&o.env_file).expect("read");
        assert_eq!(text, "API_KEY=secret1\nCONTROLLER_SHARED_SECRET=secret2\nCHECKPOINT_AES_KEY=secret3\n");
        let r = run(&o, counter()).expect("second");
        assert!(!r.written);
        assert_eq!(std::fs::read_to_string(&o.env_file).expect("read"), text);
        o.rotate = vec![CHECKPOINT_AES_KEY.into()];
        run(&o, || Ok("new".into())).expect("rotate");
        let f = EnvFile::load(&o.env_file).expect("load");
        assert_eq!(f.get(CHECKPOINT_AES_KEY), Some("new"));
        assert_eq!(f.get(CHECKPOINT_AES_KEY_PREVIOUS), Some("secret3"));
        assert_eq!(f.get(API_KEY), Some("secret1"));
    }

    #[test]
    fn unknown_rotate_name_lists_valid_names() {
        let d = tempdir("unknown");
        let mut o = opts(&d);
        o.rotate = vec!["PASSWORD".into()];
        let e = run(&o, counter()).expect_err("unknown");
        assert!(matches!(e, DeployError::Usage(_)), "a usage error: {e}");
        assert!(e.to_string().contains("API_KEY, CONTROLLER_SHARED_SECRET, CHECKPOINT_AES_KEY"), "{e}");
        assert!(!o.env_file.exists(), "nothing written");
    }

    #[test]
    fn real_secrets_are_32_random_bytes() {
        let a = generate().expect("rng");
        let b = generate().expect("rng");
        assert_ne!(a, b);
        assert_eq!(crate::support::encoding::base64_decode(&a).map(|v| v.len()), Some(32));
    }
}
