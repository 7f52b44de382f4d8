//! Bakes the facts `mt5bot --version`, `mt5bot_build_info` and `mt5bot diagnostics` report into
//! the binary: git commit, rustc version, target triple, build profile, and the sha256 of
//! `Cargo.lock` with the dependency list (name and version of every package) it pins.

use std::process::Command;

use sha2::{Digest, Sha256};

include!("src/support/lockfile.rs");

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    let commit = std::env::var("MT5BOT_GIT_COMMIT")
        .ok()
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // --no-optional-locks: a plain `git status` refreshes and rewrites .git/index (it does after
    // every fresh clone), which is watched below, so every build would trigger the next one.
    let dirty = run("git", &["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"]).is_some();
    let commit = if dirty && commit != "unknown" { format!("{commit}-dirty") } else { commit };

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".to_owned());

    println!("cargo:rustc-env=MT5BOT_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=MT5BOT_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=MT5BOT_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=MT5BOT_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=MT5BOT_GIT_COMMIT");
    // Re-run when HEAD moves or the index changes, so the commit is never stale.
    for path in [".git/HEAD", ".git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(head_ref) =
        std::fs::read_to_string(".git/HEAD").ok().and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
    {
        let path = format!(".git/{head_ref}");
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let lock = std::fs::read("Cargo.lock").unwrap_or_default();
    let digest = Sha256::digest(&lock);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=MT5BOT_CARGO_LOCK_SHA256={hex}");
    let deps = lock_packages(&String::from_utf8_lossy(&lock)).join("\n");
    let out =
        std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("dependencies.txt");
    if let Err(e) = std::fs::write(&out, deps) {
        panic!("cannot write {}: {e}", out.display());
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=src/support/lockfile.rs");
    println!("cargo:rerun-if-changed=build.rs");
}
