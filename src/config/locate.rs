//! Where in the file an error is: serde_yaml's errors turned into a [`ConfigError`] with the
//! line and the dotted key, [`locate`] for checks made after parsing, and long quoted values kept
//! out of messages (a token pasted in the wrong place must not be echoed).

use super::*;

/// Quoted values longer than this are not repeated in an error message.
const MAX_QUOTED_VALUE: usize = 40;

/// Replaces every value quoted in a message (`"..."` or `` `...` ``, as serde quotes them) that is
/// longer than [`MAX_QUOTED_VALUE`] with its length: the message says where and what kind of value
/// was wrong without repeating a long one (a token pasted in the wrong place, a line of another
/// file).
fn redact_long_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let value = &after[..end];
        if value.chars().count() > MAX_QUOTED_VALUE {
            out.push_str(&format!("a value of {} characters (not shown)", value.chars().count()));
        } else {
            out.push(quote);
            out.push_str(value);
            out.push(quote);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Turns a serde_yaml error into a [`ConfigError`] with the line and key it names.
pub(super) fn yaml_error(e: &serde_yaml::Error, text: &str, name: &str) -> ConfigError {
    // A file that is not a YAML mapping is not a config at all (an env file of secrets given by
    // mistake, a symlink to the wrong file): say so and where, and repeat nothing of it.
    let value = serde_yaml::from_str::<serde_yaml::Value>(text);
    // A key written twice (two `venue:` sections) is a mapping all the same: name the key and the
    // second place, rather than calling the file something else.
    if let Err(dup) = &value {
        let message = dup.to_string();
        // serde_yaml puts the path of a nested mapping first: "venue: duplicate entry ...".
        if let Some(rest) = message.find("duplicate entry ").map(|at| &message[at + "duplicate entry ".len()..]) {
            let what = rest.split(" at line ").next().unwrap_or(rest);
            let key = what.strip_prefix("with key ").map(|k| k.trim_matches('"')).unwrap_or_default();
            let map = dup.location().map(|l| (l.line(), l.column()));
            return ConfigError {
                file: name.to_owned(),
                line: map.and_then(|(line, column)| second_entry(text, key, line, column)).or(map.map(|m| m.0)),
                key: String::new(),
                message: redact_long_values(&format!(
                    "duplicate entry {what}: a key appears twice in one section; merge the two into one"
                )),
            };
        }
    }
    if !matches!(value, Ok(serde_yaml::Value::Mapping(_))) {
        return ConfigError {
            file: name.to_owned(),
            line: e.location().map(|l| l.line()),
            key: String::new(),
            message: "this is not a YAML mapping of config sections, so it is not an mt5bot config (is it the \
                      right file? a config has sections such as venue:, feed:, risk:, metrics:); its content is \
                      not shown, since it may be a secrets file"
                .into(),
        };
    }
    let line = e.location().map(|l| l.line());
    let full = e.to_string();
    // serde_yaml renders "path.to.key: message at line L column C"; split the parts apart.
    let without_loc = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    let (key, message) = match without_loc.split_once(": ") {
        Some((k, m)) if !k.contains(' ') => (k.to_owned(), m.to_owned()),
        _ => (String::new(), without_loc.to_owned()),
    };
    // serde names the struct's key for an unknown field; point at the offending key itself.
    let key = match (message.strip_prefix("unknown field `"), key.is_empty()) {
        (Some(rest), _) => {
            let field = rest.split('`').next().unwrap_or_default();
            if key.is_empty() {
                field.to_owned()
            } else {
                format!("{key}.{field}")
            }
        }
        _ => key,
    };
    let line = line.or_else(|| locate(text, &key));
    ConfigError { file: name.to_owned(), line, key, message: redact_long_values(&message) }
}

/// The 1-based line where `key` appears the second time among the entries of the block mapping
/// that starts at `line`, `column` (as serde_yaml places a mapping: at its first key).
fn second_entry(text: &str, key: &str, line: usize, column: usize) -> Option<usize> {
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (no, raw) in text.lines().enumerate().skip(line.checked_sub(1)?) {
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let at = raw.len() - content.len();
        if at < indent {
            return None; // left the mapping
        }
        if at == indent && content.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':')) {
            seen += 1;
            if seen == 2 {
                return Some(no + 1);
            }
        }
    }
    None
}

/// Finds the 1-based line of a dotted key in block-style YAML, for errors raised after parsing.
///
/// Sequence items are addressed as `key[N]`. Returns `None` where the document uses another style.
pub fn locate(text: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    // Each line as (line index, column where its content starts after any "- " markers, content).
    let lines: Vec<(usize, usize, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(no, line)| {
            let trimmed = line.trim_start();
            (!trimmed.is_empty() && !trimmed.starts_with('#')).then(|| (no, line.len() - trimmed.len(), trimmed))
        })
        .collect();
    let mut cursor = 0usize; // index into `lines`
    let mut min_col = 0usize;
    let mut found = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        let mut hit = None;
        for (i, &(no, col, content)) in lines.iter().enumerate().skip(cursor) {
            let (col, content) = strip_dashes(col, content);
            if col < min_col {
                break; // left the parent's block
            }
            if content.strip_prefix(name).is_some_and(|r| r.trim_start().starts_with(':')) {
                hit = Some((i, no, col));
                break;
            }
        }
        let (i, no, col) = hit?;
        found = Some(no + 1);
        cursor = i + 1;
        min_col = col + 1;
        if let Some(want) = index {
            let mut seen = 0usize;
            let mut item = None;
            for (j, &(no, col, content)) in lines.iter().enumerate().skip(cursor) {
                if col < min_col.saturating_sub(1) {
                    break;
                }
                if content.starts_with("- ") || content == "-" {
                    if seen == want {
                        item = Some((j, no, col));
                        break;
                    }
                    seen += 1;
                }
            }
            let (j, no, col) = item?;
            found = Some(no + 1);
            // The item's first key shares the dash's line; search from it, inside the item.
            cursor = j;
            min_col = col + 1;
        }
    }
    found
}

/// Skips "- " sequence markers, returning the column and text of the content after them.
fn strip_dashes(mut col: usize, mut content: &str) -> (usize, &str) {
    while let Some(rest) = content.strip_prefix("- ") {
        let trimmed = rest.trim_start();
        col += content.len() - trimmed.len();
        content = trimmed;
    }
    (col, content)
}
