//! The layering rules of ARCHITECTURE.md, held by reading the `crate::` paths of every file in
//! `src/` (in the spirit of rust-analyzer's tidy tests): a forbidden edge fails with the file, the
//! line and the rule it breaks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a file sits: its module path under `src/` (`venue::fix44::session`).
fn module_of(rel: &Path) -> String {
    let s = rel.to_string_lossy().trim_end_matches(".rs").replace('/', "::");
    s.strip_suffix("::mod").unwrap_or(&s).to_owned()
}

/// The layer a module path belongs to, as the rules name them.
fn layer(module: &str) -> &'static str {
    let mut parts = module.split("::");
    match (parts.next().unwrap_or(""), parts.next()) {
        ("support", _) => "support",
        ("domain", _) => "domain",
        ("config", _) => "config",
        ("secrets", _) => "secrets",
        ("venue", _) => "venue",
        ("engine", _) => "engine",
        ("link", _) => "link",
        ("telemetry", Some("console" | "control" | "http" | "server")) => "control",
        ("telemetry", Some("metrics" | "exposition")) => "metrics",
        ("telemetry", _) => "telemetry",
        ("deployment", _) => "deployment",
        ("diagnostics", _) => "diagnostics",
        ("app" | "main" | "lib", _) => "app",
        _ => "unknown",
    }
}

/// The layers a layer may import (besides itself).
fn allowed(from: &str) -> &'static [&'static str] {
    match from {
        "support" => &[],
        "domain" => &["support"],
        "config" | "secrets" => &["domain", "support"],
        "metrics" => &["domain", "support"],
        "link" => &["config", "domain", "support"],
        "venue" => &["config", "secrets", "domain", "metrics", "support"],
        "engine" => &["config", "secrets", "domain", "venue", "link", "metrics", "support"],
        "telemetry" => &["config", "secrets", "domain", "metrics", "support"],
        "control" => &["config", "secrets", "domain", "link", "metrics", "telemetry", "support"],
        "deployment" => &["config", "domain", "support"],
        "diagnostics" => &["config", "domain", "metrics", "telemetry", "support"],
        "app" => &[
            "config",
            "secrets",
            "domain",
            "venue",
            "engine",
            "link",
            "metrics",
            "telemetry",
            "control",
            "deployment",
            "diagnostics",
            "support",
        ],
        _ => &[],
    }
}

/// The `crate::a::b` paths a source text names (in `use` lines, braces, and inline), with their
/// line numbers; comments are skipped.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_use_braces: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split("//").next().unwrap_or("");
        // `use crate::{a::b, c};` over one or several lines.
        if let Some(prefix) = &in_use_braces {
            for item in line.split([',', '{', '}', ';']).map(str::trim).filter(|i| !i.is_empty()) {
                out.push((n + 1, format!("{prefix}{item}")));
            }
            if line.contains("};") {
                in_use_braces = None;
            }
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(braced) = after.strip_prefix('{') {
                let inner = braced.split('}').next().unwrap_or("");
                for item in inner.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    out.push((n + 1, format!("crate::{item}")));
                }
                if !braced.contains('}') {
                    in_use_braces = Some("crate::".into());
                }
                break;
            }
            let path: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            out.push((n + 1, format!("crate::{path}")));
            rest = &after[path.len()..];
        }
    }
    out
}

/// The forbidden edges of one file's text, as readable lines.
fn violations(rel: &Path, text: &str) -> Vec<String> {
    let from_module = module_of(rel);
    let from = layer(&from_module);
    let mut out = Vec::new();
    for (line, path) in crate_paths(text) {
        let target = path.trim_start_matches("crate::");
        let to = layer(target);
        if to == from || to == "unknown" && target.split("::").next().unwrap_or("").is_empty() {
            continue;
        }
        if !allowed(from).contains(&to) {
            out.push(format!(
                "{}:{line}: {from} ({from_module}) may not import {to} ({path}); {from} may import only {:?}",
                rel.display(),
                allowed(from)
            ));
        }
    }
    out
}

/// The layers on an import cycle: peel off layers that import nothing left; what remains is on one.
fn on_a_cycle<'a>(edges: &BTreeSet<(&'a str, &'a str)>) -> BTreeSet<&'a str> {
    let mut left: BTreeSet<&str> = edges.iter().flat_map(|(a, b)| [*a, *b]).collect();
    while let Some(leaf) = left.iter().copied().find(|l| !edges.iter().any(|(a, b)| a == l && left.contains(b))) {
        left.remove(leaf);
    }
    left
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_layer_imports_one_it_may_not() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 40, "found the sources: {}", files.len());
    let mut bad = Vec::new();
    let mut layers = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        layers.insert(layer(&module_of(rel)));
        let text = std::fs::read_to_string(f).expect("read");
        bad.extend(violations(rel, &text));
    }
    assert!(!layers.contains("unknown"), "every file has a layer: {layers:?}");
    assert!(bad.is_empty(), "forbidden imports (see ARCHITECTURE.md, Invariants):\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_every_form_of_a_forbidden_edge() {
    let venue = Path::new("venue/fix44/mod.rs");
    let forms = [
        "use crate::engine::core::TradingCore;",
        "use crate::{domain::types::Tick, engine::executor};",
        "use crate::{\n    domain::types::Tick,\n    engine::executor,\n};",
        "    let x = crate::link::Health::new(d);",
        "use crate::telemetry::control::Control;",
    ];
    for text in forms {
        assert_eq!(violations(venue, text).len(), 1, "{text:?}: {:?}", violations(venue, text));
    }
    assert!(violations(venue, "// use crate::engine::core;\nuse crate::domain::types::Tick;").is_empty());
    assert!(violations(venue, "use crate::telemetry::metrics::FixMetrics;").is_empty());
    assert_eq!(violations(Path::new("support/files.rs"), "use crate::config::Config;").len(), 1);
    assert_eq!(violations(Path::new("domain/types.rs"), "use crate::venue::paper;").len(), 1);
    assert_eq!(violations(Path::new("telemetry/http.rs"), "use crate::engine::reactor::Command;").len(), 1);
    assert_eq!(violations(Path::new("engine/checkpoint.rs"), "crate::diagnostics::report_stem(x)").len(), 1);
    assert!(violations(Path::new("app/daemon.rs"), "use crate::deployment::hostname;").is_empty());
    let cycle: BTreeSet<_> = [("engine", "venue"), ("venue", "engine"), ("venue", "domain")].into();
    assert_eq!(on_a_cycle(&cycle), ["engine", "venue"].into());
    let dag: BTreeSet<_> = [("engine", "venue"), ("venue", "domain"), ("engine", "domain")].into();
    assert!(on_a_cycle(&dag).is_empty());
}

#[test]
fn the_layers_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let from = layer(&module_of(rel));
        for (_, path) in crate_paths(&std::fs::read_to_string(f).expect("read")) {
            let to = layer(path.trim_start_matches("crate::"));
            if to != from {
                edges.insert((from, to));
            }
        }
    }
    assert!(edges.len() > 20, "read the imports: {edges:?}");
    let left = on_a_cycle(&edges);
    let graph: Vec<String> = edges.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
    assert!(left.is_empty(), "layers on an import cycle: {left:?}\n{}", graph.join("\n"));
}
