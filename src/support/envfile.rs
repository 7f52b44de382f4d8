//! Env files: `KEY=value` lines that systemd's `EnvironmentFile=` and a POSIX shell read the same way.
//!
//! Values are written bare when they only hold characters both readers take literally
//! (`A-Z a-z 0-9 _ . / : @ % + , = -`), in single quotes otherwise (no expansion in either reader),
//! and in double quotes only when the value holds a single quote but nothing a shell would expand
//! inside double quotes. A value neither reader could carry the same way (a newline, a NUL, or a
//! single quote together with `$`, `` ` ``, `\` or `"`) is refused with an error naming the key,
//! never the value (it may be a secret).
//!
//! Writes merge: [`EnvFile::set`] replaces a key's line in place or appends it, and every other line,
//! comment and blank keeps its place. [`EnvFile::save`] is atomic: a temp file created 0600 in the
//! target's own folder, written, fsynced, renamed over the target, and the folder fsynced. A target
//! that is a symlink is written through: the file it points at is replaced in its folder and the
//! link stays.

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use crate::support::files::{resolve_target, write_atomic, write_atomic_mode, FileError};

/// Mode of every env file written.
pub const MODE: u32 = crate::support::files::SECRET_MODE;

/// What went wrong with an env file; never carries a value.
#[derive(Debug)]
pub enum EnvFileError {
    /// A line of an existing file could not be understood.
    Parse { path: PathBuf, line: usize, message: String },
    /// A key or value cannot be written so that systemd and sh read it alike.
    Unwritable { key: String, message: String },
    /// Reading or writing failed.
    Io { path: PathBuf, action: &'static str, source: io::Error },
}

impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvFileError::Parse { path, line, message } => write!(f, "{}:{line}: {message}", path.display()),
            EnvFileError::Unwritable { key, message } => write!(f, "cannot write {key}: {message}"),
            EnvFileError::Io { path, action, source } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl From<FileError> for EnvFileError {
    fn from(e: FileError) -> Self {
        EnvFileError::Io { path: e.path, action: e.action, source: e.source }
    }
}

impl std::error::Error for EnvFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnvFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `KEY=value` (possibly `export KEY=value`), with the raw text kept for an unchanged rewrite.
    Assign { key: String, value: String, raw: String },
    /// A comment, a blank, or anything else: kept verbatim.
    Other(String),
}

/// An env file in memory: its lines in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    lines: Vec<Line>,
    /// Whether the original text ended with a newline (kept on rewrite).
    trailing_newline: bool,
}

impl Default for EnvFile {
    /// An empty file; once it has lines, it ends with a newline.
    fn default() -> Self {
        EnvFile { lines: Vec::new(), trailing_newline: true }
    }
}

/// Whether `key` is a valid variable name for both readers.
pub fn valid_key(key: &str) -> bool {
    let mut b = key.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn is_bare_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '@' | '%' | '+' | ',' | '=' | '-')
}

/// The text of `value` as it goes after `KEY=`.
pub fn quote(key: &str, value: &str) -> Result<String, EnvFileError> {
    let refuse = |message: &str| Err(EnvFileError::Unwritable { key: key.to_owned(), message: message.to_owned() });
    if value.contains(['\n', '\r']) {
        return refuse("the value contains a line break, which an env file cannot hold");
    }
    if value.contains('\0') {
        return refuse("the value contains a NUL byte");
    }
    if !value.is_empty() && value.chars().all(is_bare_safe) {
        return Ok(value.to_owned());
    }
    if !value.contains('\'') {
        return Ok(format!("'{value}'"));
    }
    if value.contains(['$', '`', '\\', '"']) {
        return refuse(
            "the value mixes a single quote with $, `, \\ or \", which systemd and sh would read differently",
        );
    }
    Ok(format!("\"{value}\""))
}

/// `export KEY='value'` for `eval` in a POSIX shell (any value without a NUL).
pub fn export_line(key: &str, value: &str) -> String {
    format!("export {key}='{}'", value.replace('\'', "'\\''"))
}

/// Parses one value as both readers would; `None` when this reader does not accept it.
fn unquote(text: &str) -> Result<String, String> {
    let text = text.trim_end();
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err("unterminated double quote".into()),
                    },
                    Some('$' | '`') => return Err("a $ or ` inside double quotes would be expanded by a shell".into()),
                    Some(c) => out.push(c),
                    None => return Err("unterminated double quote".into()),
                }
            },
            '\\' => match chars.next() {
                Some(c) => out.push(c),
                None => return Err("a trailing backslash".into()),
            },
            '$' | '`' => return Err("an unquoted $ or ` would be expanded by a shell".into()),
            c if c.is_whitespace() => return Err("unquoted whitespace inside a value".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl EnvFile {
    /// Parses env file text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<EnvFile, EnvFileError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let body = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
            let fail = |message: String| EnvFileError::Parse { path: path.to_owned(), line: i + 1, message };
            let Some((key, value)) = body.split_once('=') else {
                return Err(fail("expected KEY=value, a comment (#) or a blank line".into()));
            };
            let key = key.trim_end();
            if !valid_key(key) {
                return Err(fail(format!(
                    "{key:?} is not a variable name (letters, digits, _; not starting with a digit)"
                )));
            }
            let value = unquote(value.trim_start()).map_err(|m| fail(format!("{key}: {m}")))?;
            lines.push(Line::Assign { key: key.to_owned(), value, raw: raw.to_owned() });
        }
        Ok(EnvFile { lines, trailing_newline: text.is_empty() || text.ends_with('\n') })
    }

    /// Reads `path`; a missing file is an empty env file.
    pub fn load(path: &Path) -> Result<EnvFile, EnvFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => EnvFile::parse(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(EnvFile::default()),
            Err(e) => Err(EnvFileError::Io { path: path.to_owned(), action: "read", source: e }),
        }
    }

    /// The value of `key` (the last assignment wins, as in both readers).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Assign { key: k, value, .. } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// Keys in file order (each once).
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for l in &self.lines {
            if let Line::Assign { key, .. } = l {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// Sets `key`: replaces its (last) line in place, or appends one. Returns whether it changed.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, EnvFileError> {
        if !valid_key(key) {
            return Err(EnvFileError::Unwritable { key: key.to_owned(), message: "not a variable name".into() });
        }
        let raw = format!("{key}={}", quote(key, value)?);
        if self.get(key) == Some(value) {
            return Ok(false);
        }
        let last = self.lines.iter().rposition(|l| matches!(l, Line::Assign { key: k, .. } if k == key));
        let line = Line::Assign { key: key.to_owned(), value: value.to_owned(), raw };
        match last {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
        Ok(true)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, l) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            match l {
                Line::Assign { raw, .. } | Line::Other(raw) => out.push_str(raw),
            }
        }
        if !self.lines.is_empty() && self.trailing_newline {
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically (see the module docs). Returns a warning to show when an existing
    /// file was readable by others and is now 0600.
    pub fn save(&self, path: &Path) -> Result<Option<String>, EnvFileError> {
        Ok(write_atomic(path, self.render().as_bytes())?)
    }
}

/// A warning when the secrets file at `path` can be read by other users, naming the fix; `None`
/// when it is 0600 (or tighter) or missing.
pub fn loose_mode_warning(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is mode {mode:o}: other users on this host can read the secrets in it; run `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

/// Sets a secrets file that others can read to 0600 (a writer's rerun that changed nothing
/// else); returns what it did.
pub fn tighten(path: &Path) -> Result<Option<String>, EnvFileError> {
    let Ok(m) = std::fs::metadata(path) else { return Ok(None) };
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(MODE)).map_err(|e| EnvFileError::Io {
        path: path.to_owned(),
        action: "set the mode of",
        source: e,
    })?;
    Ok(Some(format!("{} was readable by others (mode {mode:o}); it is now {MODE:o}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EnvFile {
        EnvFile::parse(text, Path::new("t.env")).expect("parses")
    }

    #[test]
    fn quoting_is_minimal_and_safe() {
        assert_eq!(quote("K", "abc+/=").expect("ok"), "abc+/=");
        assert_eq!(quote("K", "http://h:9091/metrics/job/x").expect("ok"), "http://h:9091/metrics/job/x");
        assert_eq!(quote("K", "").expect("ok"), "''");
        assert_eq!(quote("K", "a b$c\\d\"e").expect("ok"), "'a b$c\\d\"e'");
        assert_eq!(quote("K", "it's").expect("ok"), "\"it's\"");
        assert!(quote("K", "it's $HOME").is_err());
        let e = quote("SECRET", "line1\nline2").expect_err("newline");
        assert!(e.to_string().starts_with("cannot write SECRET: "), "{e}");
        assert!(!e.to_string().contains("line1"), "never shows the value");
    }

    #[test]
    fn parses_what_it_quotes() {
        for v in ["plain", "", "a b", "$HOME", "back\\slash", "q\"uote", "it's", "tab\there", "ünïcode"] {
            let line = format!("K={}", quote("K", v).expect("quotable"));
            assert_eq!(parse(&line).get("K"), Some(v), "{line}");
        }
    }

    #[test]
    fn keeps_comments_order_and_other_keys() {
        let text = "# secrets\nA=1\n\nexport B='two words'\n; systemd comment\nC=3";
        let mut f = parse(text);
        assert_eq!(f.render(), text, "unchanged text round-trips byte for byte");
        assert!(f.set("B", "2").expect("set"));
        assert!(!f.set("A", "1").expect("same value"));
        assert!(f.set("D", "4").expect("append"));
        assert_eq!(f.render(), "# secrets\nA=1\n\nB=2\n; systemd comment\nC=3\nD=4");
        assert_eq!(f.keys(), vec!["A", "B", "C", "D"]);
    }

    #[test]
    fn refuses_what_it_cannot_understand() {
        for (text, want) in [
            ("no equals sign", ":1: expected KEY=value"),
            ("1A=x", "is not a variable name"),
            ("A='open", "unterminated single quote"),
            ("A=$HOME", "would be expanded"),
            ("A=two words", "unquoted whitespace"),
        ] {
            let e = EnvFile::parse(text, Path::new("t.env")).expect_err(text);
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn export_lines_survive_any_quote() {
        assert_eq!(export_line("K", "it's"), "export K='it'\\''s'");
    }

    #[test]
    fn last_assignment_wins() {
        let mut f = parse("A=1\nA=2\n");
        assert_eq!(f.get("A"), Some("2"));
        f.set("A", "3").expect("set");
        assert_eq!(f.render(), "A=1\nA=3\n");
    }
}
