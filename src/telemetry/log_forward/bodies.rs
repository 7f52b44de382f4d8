//! HTTP request bodies for the log intakes: JSON lines, Elasticsearch `_bulk`, Datadog, Loki.

use super::*;

/// The body of a batch in `format`; also how many records it holds (Datadog may take fewer).
pub(super) fn http_body(
    format: LogFormat,
    batch: &[ForwardRecord],
    ctx: &Context,
    index: &str,
) -> (String, &'static str, usize) {
    match format {
        LogFormat::Json => {
            let mut out = String::new();
            for r in batch {
                let mut v = json!({ "ts": rfc3339_micros(r.unix_ns()), "level": r.level, "target": r.target, "msg": r.msg, "host": ctx.host, "app": ctx.app });
                for (k, value) in &ctx.identity {
                    v[k] = json!(value);
                }
                out.push_str(&v.to_string());
                out.push('\n');
            }
            (out, "application/x-ndjson", batch.len())
        }
        LogFormat::Elasticsearch => {
            let mut out = String::new();
            let action = json!({ "create": { "_index": index } }).to_string();
            for r in batch {
                let mut doc = json!({ "@timestamp": rfc3339_micros(r.unix_ns()), "message": r.msg, "log.level": r.level, "log.logger": r.target, "host.name": ctx.host, "service.name": ctx.app });
                // ECS keeps custom keywords under `labels`.
                for (k, value) in &ctx.identity {
                    doc[format!("labels.{k}")] = json!(value);
                }
                out.push_str(&action);
                out.push('\n');
                out.push_str(&doc.to_string());
                out.push('\n');
            }
            (out, "application/x-ndjson", batch.len())
        }
        LogFormat::Datadog => {
            let mut entries: Vec<String> = Vec::new();
            let mut size = 2;
            for r in batch.iter().take(1000) {
                let mut msg = r.msg.clone();
                let mut entry = datadog_entry(r, &msg, ctx);
                if entry.len() > DATADOG_MAX_ENTRY {
                    msg = truncate_for_udp(&msg, DATADOG_MAX_ENTRY - (entry.len() - msg.len()) - 64);
                    entry = datadog_entry(r, &msg, ctx);
                }
                if size + entry.len() + 1 > DATADOG_MAX_PAYLOAD && !entries.is_empty() {
                    break;
                }
                size += entry.len() + 1;
                entries.push(entry);
            }
            let n = entries.len();
            (format!("[{}]", entries.join(",")), "application/json", n)
        }
        LogFormat::Loki => {
            let mut streams: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
            for r in batch {
                let level = r.level.to_ascii_lowercase();
                let line = json!({ "level": r.level, "target": r.target, "msg": r.msg }).to_string();
                let value = json!([r.ns, line]);
                match streams.iter_mut().find(|(l, _)| *l == level) {
                    Some((_, v)) => v.push(value),
                    None => streams.push((level, vec![value])),
                }
            }
            let streams: Vec<serde_json::Value> = streams
                .into_iter()
                .map(|(level, values)| {
                    let mut stream = json!({ "job": ctx.app, "host": ctx.host, "level": level });
                    for (k, value) in &ctx.identity {
                        stream[k] = json!(value);
                    }
                    json!({ "stream": stream, "values": values })
                })
                .collect();
            (json!({ "streams": streams }).to_string(), "application/json", batch.len())
        }
    }
}

pub(super) fn datadog_entry(r: &ForwardRecord, msg: &str, ctx: &Context) -> String {
    let mut entry = json!({
        "message": msg,
        "ddsource": "mt5bot",
        "service": ctx.app,
        "hostname": ctx.host,
        "status": r.level.to_ascii_lowercase(),
        "logger": { "name": r.target },
        "timestamp": (r.unix_ns() / 1_000_000) as i64,
    });
    if !ctx.identity.is_empty() {
        let tags: Vec<String> = ctx.identity.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        entry["ddtags"] = json!(tags.join(","));
    }
    entry.to_string()
}
