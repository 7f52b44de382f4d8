// The Cargo.lock reader shared by `build.rs` (through `include!`, so it uses std only and no crate
// paths) and the diagnostics, which compare the list baked into the binary with a checkout's.

/// `name version` of every `[[package]]` in a Cargo.lock text, sorted.
pub fn lock_packages(lock: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut name: Option<&str> = None;
    for line in lock.lines().map(str::trim) {
        if line == "[[package]]" {
            name = None;
        } else if let Some(v) = line.strip_prefix("name = ") {
            name = Some(v.trim_matches('"'));
        } else if let Some(v) = line.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                out.push(format!("{n} {}", v.trim_matches('"')));
            }
        }
    }
    out.sort();
    out
}
