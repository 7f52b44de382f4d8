//! The Prometheus text exposition format 0.0.4, written straight into a reused buffer.
//!
//! The output is what `prometheus::TextEncoder` writes, byte for byte, for every value it writes
//! correctly, at about half the cost: no `String` per value, label or escape, integral values
//! (counters, bucket counts) through `itoa`. Infinite values are written `+Inf` and `-Inf`, as
//! the format requires (the crate's encoder writes Rust's `inf`).

use std::fmt::Write as _;

use prometheus::proto::{LabelPair, MetricFamily, MetricType};

/// Appends the families to `out`. Summaries and histograms are expanded as the format describes.
/// Untyped families, which nothing in mt5bot creates (and the crate's encoder refuses), are left out.
/// `identity` labels (`identity:`, which bot of a fleet this is) are added to every sample that
/// does not carry a label of that name already (a venue series keeps its own `venue`).
pub fn encode(families: &[MetricFamily], identity: &[(String, String)], out: &mut Vec<u8>) {
    let mut w = Out { buf: std::mem::take(out), identity };
    for mf in families {
        let kind = mf.get_field_type();
        let type_line = match kind {
            MetricType::COUNTER => " counter\n",
            MetricType::GAUGE => " gauge\n",
            MetricType::HISTOGRAM => " histogram\n",
            MetricType::SUMMARY => " summary\n",
            MetricType::UNTYPED => continue,
        };
        let name = mf.name();
        if !mf.help().is_empty() {
            w.text("# HELP ");
            w.text(name);
            w.text(" ");
            w.escaped(mf.help(), false);
            w.text("\n");
        }
        w.text("# TYPE ");
        w.text(name);
        w.text(type_line);
        for m in mf.get_metric() {
            let labels = m.get_label();
            let ts = m.timestamp_ms();
            match kind {
                MetricType::COUNTER => w.sample(name, "", labels, None, m.get_counter().get_value(), ts),
                MetricType::GAUGE => w.sample(name, "", labels, None, m.get_gauge().get_value(), ts),
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf_seen = false;
                    for b in h.get_bucket() {
                        let le = b.upper_bound();
                        inf_seen |= le.is_infinite() && le.is_sign_positive();
                        w.sample(name, "_bucket", labels, Some(("le", Value(le))), b.cumulative_count() as f64, ts);
                    }
                    if !inf_seen {
                        let count = h.get_sample_count() as f64;
                        w.sample(name, "_bucket", labels, Some(("le", Value(f64::INFINITY))), count, ts);
                    }
                    w.sample(name, "_sum", labels, None, h.get_sample_sum(), ts);
                    w.sample(name, "_count", labels, None, h.get_sample_count() as f64, ts);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        w.sample(name, "", labels, Some(("quantile", Value(q.quantile()))), q.value(), ts);
                    }
                    w.sample(name, "_sum", labels, None, s.sample_sum(), ts);
                    w.sample(name, "_count", labels, None, s.sample_count() as f64, ts);
                }
                MetricType::UNTYPED => {}
            }
        }
    }
    *out = w.buf;
}

/// A sample value or a bound, written as the format wants it.
#[derive(Clone, Copy)]
struct Value(f64);

struct Out<'a> {
    buf: Vec<u8>,
    identity: &'a [(String, String)],
}

impl Out<'_> {
    fn text(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Help text escapes backslash and newline; label values also the double quote.
    fn escaped(&mut self, s: &str, quote: bool) {
        // Nearly every help text and label value needs no escape: copy it whole.
        if !s.as_bytes().iter().any(|&b| b == b'\\' || b == b'\n' || (quote && b == b'"')) {
            self.text(s);
            return;
        }
        for &b in s.as_bytes() {
            match b {
                b'\\' => self.text("\\\\"),
                b'\n' => self.text("\\n"),
                b'"' if quote => self.text("\\\""),
                b => self.buf.push(b),
            }
        }
    }

    fn value(&mut self, Value(v): Value) {
        if v.is_nan() {
            self.text("NaN");
        } else if v.is_infinite() {
            self.text(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 && !(v == 0.0 && v.is_sign_negative()) {
            // Integral and exact in an i64: what `Display` writes, without the float machinery.
            self.text(itoa::Buffer::new().format(v as i64));
        } else {
            let mut s = String::new();
            let _ = write!(s, "{v}");
            self.text(&s);
        }
    }

    fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[LabelPair],
        extra: Option<(&str, Value)>,
        value: f64,
        timestamp_ms: i64,
    ) {
        self.text(name);
        self.text(suffix);
        if !labels.is_empty() || extra.is_some() || !self.identity.is_empty() {
            let mut sep = "{";
            for lp in labels {
                self.text(sep);
                self.text(lp.name());
                self.text("=\"");
                self.escaped(lp.value(), true);
                self.text("\"");
                sep = ",";
            }
            let identity = self.identity;
            for (k, v) in identity {
                if labels.iter().any(|lp| lp.name() == k) {
                    continue;
                }
                self.text(sep);
                self.text(k);
                self.text("=\"");
                self.escaped(v, true);
                self.text("\"");
                sep = ",";
            }
            if let Some((k, v)) = extra {
                self.text(sep);
                self.text(k);
                self.text("=\"");
                self.value(v);
                self.text("\"");
            }
            self.text("}");
        }
        self.text(" ");
        self.value(Value(value));
        if timestamp_ms != 0 {
            self.text(" ");
            self.text(itoa::Buffer::new().format(timestamp_ms));
        }
        self.text("\n");
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    use super::*;

    fn crate_encoder(families: &[MetricFamily]) -> String {
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(families, &mut out).expect("encode");
        String::from_utf8(out).expect("utf-8")
    }

    fn ours(families: &[MetricFamily]) -> String {
        let mut out = b"kept ".to_vec();
        encode(families, &[], &mut out);
        String::from_utf8(out).expect("utf-8").strip_prefix("kept ").expect("appends").to_owned()
    }

    #[test]
    fn writes_what_the_crate_encoder_writes() {
        let r = Registry::new();
        let c =
            IntCounterVec::new(Opts::new("c_total", "a \\ help\nwith \"quotes\""), &["kind"]).expect("valid metric");
        r.register(Box::new(c.clone())).expect("valid metric");
        c.with_label_values(&["plain"]).inc_by(12_345_678_901);
        c.with_label_values(&["nasty \" \\ \n é"]).inc();
        let g = GaugeVec::new(Opts::new("g", "gauge"), &["symbol", "venue"]).expect("valid metric");
        r.register(Box::new(g.clone())).expect("valid metric");
        for (i, v) in [0.1, -3.0, 1e-7, 123.456, 1e21, -0.0, 2.5e-300, 0.0].into_iter().enumerate() {
            g.with_label_values(&[&format!("S{i}"), "paper"]).set(v);
        }
        let lone = Gauge::new("lone", "no labels").expect("valid metric");
        r.register(Box::new(lone.clone())).expect("valid metric");
        lone.set(42.0);
        let h =
            HistogramVec::new(HistogramOpts::new("h_seconds", "latency").buckets(vec![1e-6, 0.5, 1.0, 10.0]), &["op"])
                .expect("valid metric");
        r.register(Box::new(h.clone())).expect("valid metric");
        for x in [0.0, 2e-7, 0.3, 0.7, 5.0, 100.0] {
            h.with_label_values(&["send"]).observe(x);
        }
        let families = r.gather();
        let (want, got) = (crate_encoder(&families), ours(&families));
        assert!(got.contains("h_seconds_bucket{op=\"send\",le=\"0.000001\"} 2\n"), "{got}");
        assert!(got.contains("h_seconds_bucket{op=\"send\",le=\"+Inf\"} 6\n"), "{got}");
        assert!(got.contains("c_total{kind=\"nasty \\\" \\\\ \\n é\"} 1\n"), "{got}");
        assert_eq!(got, want);
    }

    #[test]
    fn infinities_are_written_as_the_format_requires() {
        let r = Registry::new();
        let g = GaugeVec::new(Opts::new("g", "h"), &["k"]).expect("valid metric");
        r.register(Box::new(g.clone())).expect("valid metric");
        g.with_label_values(&["pos"]).set(f64::INFINITY);
        g.with_label_values(&["neg"]).set(f64::NEG_INFINITY);
        g.with_label_values(&["nan"]).set(f64::NAN);
        let got = ours(&r.gather());
        assert!(got.contains("g{k=\"pos\"} +Inf\n"), "{got}");
        assert!(got.contains("g{k=\"neg\"} -Inf\n"), "{got}");
        assert!(got.contains("g{k=\"nan\"} NaN\n"), "{got}");
    }

    #[test]
    fn identity_labels_go_on_every_sample_that_lacks_them() {
        let r = Registry::new();
        let g = GaugeVec::new(Opts::new("g", "h"), &["venue"]).expect("valid metric");
        r.register(Box::new(g.clone())).expect("valid metric");
        g.with_label_values(&["fix44"]).set(1.0);
        let lone = Gauge::new("lone", "no labels").expect("valid metric");
        r.register(Box::new(lone.clone())).expect("valid metric");
        let h = HistogramVec::new(HistogramOpts::new("h", "x").buckets(vec![1.0]), &[]).expect("valid metric");
        r.register(Box::new(h.clone())).expect("valid metric");
        h.with_label_values::<&str>(&[]).observe(0.5);
        let identity = [("account".to_owned(), "acct \"1\"".to_owned()), ("venue".to_owned(), "mt5".to_owned())];
        let mut out = Vec::new();
        encode(&r.gather(), &identity, &mut out);
        let got = String::from_utf8(out).expect("utf-8");
        assert!(got.contains("g{venue=\"fix44\",account=\"acct \\\"1\\\"\"} 1\n"), "the series keeps its venue: {got}");
        assert!(got.contains("lone{account=\"acct \\\"1\\\"\",venue=\"mt5\"} 0\n"), "{got}");
        assert!(got.contains("h_bucket{account=\"acct \\\"1\\\"\",venue=\"mt5\",le=\"1\"} 1\n"), "{got}");
    }
}
