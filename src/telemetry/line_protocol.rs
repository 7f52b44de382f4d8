//! InfluxDB line protocol: `measurement,tag=v field=1.5,n=3i,s="text" 1700000000000000000`.
//!
//! Escaping follows the line-protocol rules: in measurement names, commas and spaces; in tag keys,
//! tag values and field keys, commas, equals signs and spaces; in string field values, double quotes
//! and backslashes. Two things line protocol cannot carry portably are replaced rather than risked:
//! a line break anywhere but a string field becomes a space (inside a string field, the two
//! characters `\n`), and a backslash in a name or tag becomes `/`, since servers disagree on it (a
//! trailing one even swallows the separator after it). Empty tags are left out, as the protocol
//! requires, and non-finite floats are skipped (a point left without fields is not written).

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Float(f64),
    Int(i64),
    Str(&'a str),
    Bool(bool),
}

/// Appends a measurement name, tag key, tag value or field key, escaped.
fn name(out: &mut String, s: &str, escape_equals: bool) {
    let special = |b: &u8| matches!(b, b',' | b' ' | b'\\' | b'\n' | b'\r') || (escape_equals && *b == b'=');
    // Names and tags are almost always plain: copy them whole.
    if !s.as_bytes().iter().any(special) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            // A line break would end the point: it becomes an (escaped) space.
            '\n' | '\r' => out.push_str("\\ "),
            '=' if escape_equals => out.push_str("\\="),
            '\\' => out.push('/'),
            c => out.push(c),
        }
    }
}

fn string_field(out: &mut String, s: &str) {
    out.push('"');
    if !s.as_bytes().iter().any(|b| matches!(b, b'"' | b'\\' | b'\n' | b'\r')) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends one point and a newline to `out`. Returns false (and appends nothing) when no field is
/// writable.
pub fn write_point(
    out: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, Field<'_>)],
    unix_ns: i128,
) -> bool {
    let usable = |f: &Field<'_>| !matches!(f, Field::Float(x) if !x.is_finite());
    if measurement.is_empty() || !fields.iter().any(|(k, f)| !k.is_empty() && usable(f)) {
        return false;
    }
    let start = out.len();
    name(out, measurement, false);
    for (k, v) in tags.iter().filter(|(k, v)| !k.is_empty() && !v.is_empty()) {
        out.push(',');
        name(out, k, true);
        out.push('=');
        name(out, v, true);
    }
    let mut first = true;
    for (k, f) in fields.iter().filter(|(k, f)| !k.is_empty() && usable(f)) {
        out.push(if first { ' ' } else { ',' });
        first = false;
        name(out, k, true);
        out.push('=');
        match f {
            // Finite (checked above); ryu writes the shortest form that reads back exactly,
            // `1.5`, `2.0`, `1e-7`, all of which line protocol accepts.
            Field::Float(x) => out.push_str(ryu::Buffer::new().format_finite(*x)),
            Field::Int(i) => {
                out.push_str(itoa::Buffer::new().format(*i));
                out.push('i');
            }
            Field::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Field::Str(s) => string_field(out, s),
        }
    }
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(unix_ns));
    out.push('\n');
    debug_assert!(out.len() > start);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(m: &str, tags: &[(&str, &str)], fields: &[(&str, Field<'_>)]) -> String {
        let mut s = String::new();
        write_point(&mut s, m, tags, fields, 42);
        s
    }

    #[test]
    fn plain_point() {
        assert_eq!(
            line(
                "mt5bot_trades",
                &[("host", "h1"), ("symbol", "EURUSD")],
                &[("qty", Field::Float(1.5)), ("exec_id", Field::Int(7)), ("ok", Field::Bool(true))]
            ),
            "mt5bot_trades,host=h1,symbol=EURUSD qty=1.5,exec_id=7i,ok=true 42\n"
        );
    }

    #[test]
    fn nasty_names_tags_and_strings() {
        assert_eq!(
            line("m x,y=z", &[("tag k", "a=b,c d"), ("u", "été ✓")], &[("f k", Field::Str("q\"uo\\te"))]),
            "m\\ x\\,y=z,tag\\ k=a\\=b\\,c\\ d,u=été\\ ✓ f\\ k=\"q\\\"uo\\\\te\" 42\n"
        );
        assert_eq!(
            line("m", &[("t", "back\\"), ("n", "two\nlines")], &[("s", Field::Str("l1\nl2"))]),
            "m,t=back/,n=two\\ lines s=\"l1\\nl2\" 42\n"
        );
    }

    #[test]
    fn empty_tags_and_bad_floats_are_left_out() {
        assert_eq!(
            line("m", &[("empty", ""), ("", "v")], &[("a", Field::Float(f64::NAN)), ("b", Field::Float(2.0))]),
            "m b=2.0 42\n"
        );
        assert_eq!(line("m", &[], &[("a", Field::Float(f64::INFINITY))]), "");
        assert_eq!(line("", &[], &[("a", Field::Int(1))]), "");
    }

    #[test]
    fn floats_read_back_exactly_and_ints_keep_their_suffix() {
        for x in [0.1, -3.0, 1.1 + 99.0 * 1e-4, 1e-7, 1.5e20, f64::MAX, f64::MIN_POSITIVE, -0.0] {
            let s = line("m", &[], &[("v", Field::Float(x))]);
            let text = s.strip_prefix("m v=").and_then(|r| r.strip_suffix(" 42\n")).expect(&s);
            assert_eq!(text.parse::<f64>().ok(), Some(x), "{s:?}");
        }
        assert_eq!(line("m", &[], &[("n", Field::Int(i64::MIN))]), "m n=-9223372036854775808i 42\n");
        let mut s = String::new();
        write_point(&mut s, "m", &[], &[("n", Field::Int(1))], i128::from(i64::MAX) + 1);
        assert_eq!(s, "m n=1i 9223372036854775808\n");
    }

    #[test]
    fn one_line_per_point_whatever_the_input() {
        let s = line("m\nx", &[("t\r", "v\n")], &[("f\n", Field::Str("a\r\nb"))]);
        assert_eq!(s.matches('\n').count(), 1, "{s:?}");
    }
}
