//! A strict checker of JSON requests and responses against an OpenAPI 3.0 contract, so the
//! InfluxDB v2 stand-in and the bootstrap's requests cannot drift from the published API.
//!
//! Supported: `$ref`, `allOf`, `oneOf`/`anyOf`, `type`, `properties`, `required`, `enum`, `items`,
//! `minItems`, `minimum`, `nullable`, `readOnly`. Stricter than OpenAPI on purpose: a property the
//! schema does not declare is an error (it catches typos in requests and inventions in the
//! stand-in), a `readOnly` property in a request is an error, and a query parameter the operation
//! does not declare is an error.

use serde_json::{Map, Value};

pub struct Contract {
    doc: Value,
    prefix: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Request,
    Response,
}

impl Contract {
    /// Loads the contract; `prefix` is the server base path (`/api/v2`).
    pub fn load(path: &std::path::Path, prefix: &str) -> Contract {
        let text = std::fs::read_to_string(path).expect("read the contract");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("contract YAML");
        let doc = yaml_to_json(yaml);
        Contract { doc, prefix: prefix.to_owned() }
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let mut cur = &self.doc;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            v = cur;
        }
        v
    }

    /// The operation object for `method path` (path with query stripped, prefix included).
    fn operation(&self, method: &str, path: &str) -> Option<(&Value, String)> {
        let path = path.split('?').next().unwrap_or(path);
        let rel = path.strip_prefix(&self.prefix)?;
        let paths = self.doc["paths"].as_object()?;
        for (template, item) in paths {
            let (t, r): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), rel.split('/').collect());
            if t.len() == r.len() && t.iter().zip(&r).all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}'))) {
                if let Some(op) = item.get(method.to_ascii_lowercase()) {
                    return Some((op, template.clone()));
                }
            }
        }
        None
    }

    /// Problems with a request: unknown operation, undeclared query parameters, body schema.
    pub fn check_request(&self, method: &str, path_and_query: &str, body: Option<&Value>) -> Vec<String> {
        let Some((op, template)) = self.operation(method, path_and_query) else {
            return vec![format!("{method} {path_and_query}: no such operation in the contract")];
        };
        let mut errs = Vec::new();
        let declared: Vec<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| self.resolve(p))
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let Some((_, q)) = path_and_query.split_once('?') {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let name = pair.split('=').next().unwrap_or("");
                if !declared.iter().any(|d| d == name) {
                    errs.push(format!("{method} {template}: query parameter {name:?} is not declared"));
                }
            }
        }
        let schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
        match (body, schema.is_null()) {
            (Some(b), false) => {
                self.validate(&schema, b, &format!("{method} {template} request"), Dir::Request, &mut errs)
            }
            (None, false) if op["requestBody"]["required"] == true => {
                errs.push(format!("{method} {template}: request body required"))
            }
            (Some(_), true) if template != "/write" => {
                errs.push(format!("{method} {template}: the operation takes no JSON body"))
            }
            _ => {}
        }
        errs
    }

    /// Problems with a response: undeclared status (without `default`), body schema.
    pub fn check_response(&self, method: &str, path: &str, status: u16, body: Option<&Value>) -> Vec<String> {
        let Some((op, template)) = self.operation(method, path) else {
            return vec![format!("{method} {path}: no such operation in the contract")];
        };
        let responses = &op["responses"];
        let resp = match responses.get(status.to_string()).or_else(|| responses.get("default")) {
            Some(r) => self.resolve(r),
            None => return vec![format!("{method} {template}: status {status} is not declared")],
        };
        let mut errs = Vec::new();
        let schema = &resp["content"]["application/json"]["schema"];
        match (body, schema.is_null()) {
            (Some(b), false) => {
                self.validate(schema, b, &format!("{method} {template} {status}"), Dir::Response, &mut errs)
            }
            (Some(_), true) => errs.push(format!("{method} {template} {status}: the contract declares no JSON body")),
            (None, false) => errs.push(format!("{method} {template} {status}: a JSON body is declared, none sent")),
            (None, true) => {}
        }
        errs
    }

    /// Properties declared by a schema, including those of `allOf` parts; `None` for free objects.
    fn properties(&self, schema: &Value) -> Option<Map<String, Value>> {
        let s = self.resolve(schema);
        let mut props = Map::new();
        let mut any = false;
        if let Some(p) = s["properties"].as_object() {
            any = true;
            props.extend(p.clone());
        }
        if let Some(all) = s["allOf"].as_array() {
            for part in all {
                if let Some(p) = self.properties(part) {
                    any = true;
                    props.extend(p);
                }
            }
        }
        if s.get("additionalProperties").is_some() {
            return None;
        }
        any.then_some(props)
    }

    fn required(&self, schema: &Value, out: &mut Vec<String>) {
        let s = self.resolve(schema);
        if let Some(r) = s["required"].as_array() {
            out.extend(r.iter().filter_map(|x| x.as_str().map(str::to_owned)));
        }
        if let Some(all) = s["allOf"].as_array() {
            for part in all {
                self.required(part, out);
            }
        }
    }

    fn validate(&self, schema: &Value, v: &Value, at: &str, dir: Dir, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        if v.is_null() && s["nullable"] == true {
            return;
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = s[key].as_array() {
                let ok = alts.iter().any(|alt| {
                    let mut e = Vec::new();
                    self.validate(alt, v, at, dir, &mut e);
                    e.is_empty()
                });
                if !ok {
                    errs.push(format!("{at}: matches none of {key}"));
                }
                return;
            }
        }
        if let Some(all) = s["allOf"].as_array() {
            for part in all {
                let part = self.resolve(part);
                // Check each part's types and enums, but required and unknown keys on the whole.
                if let (Some(obj), Some(props)) = (v.as_object(), part["properties"].as_object()) {
                    for (k, pv) in obj {
                        if let Some(ps) = props.get(k) {
                            self.validate(ps, pv, &format!("{at}.{k}"), dir, errs);
                        }
                    }
                }
            }
        }
        if let Some(e) = s["enum"].as_array() {
            if !e.contains(v) {
                errs.push(format!("{at}: {v} is not one of {}", Value::Array(e.clone())));
            }
        }
        let ty = s["type"]
            .as_str()
            .or_else(|| (s.get("properties").is_some() || s.get("allOf").is_some()).then_some("object"));
        match ty {
            Some("object") => {
                let Some(obj) = v.as_object() else {
                    errs.push(format!("{at}: expected an object, got {v}"));
                    return;
                };
                let mut required = Vec::new();
                self.required(s, &mut required);
                let props = self.properties(s);
                for r in required {
                    let read_only = props
                        .as_ref()
                        .and_then(|p| p.get(&r))
                        .map(|p| self.resolve(p)["readOnly"] == true)
                        .unwrap_or(false);
                    let excused = dir == Dir::Request && read_only;
                    if !obj.contains_key(&r) && !excused {
                        errs.push(format!("{at}: required property {r:?} missing"));
                    }
                }
                if let Some(props) = props {
                    for (k, pv) in obj {
                        match props.get(k) {
                            None => errs.push(format!("{at}: property {k:?} is not in the contract")),
                            Some(ps) => {
                                if dir == Dir::Request
                                    && (ps["readOnly"] == true || self.resolve(ps)["readOnly"] == true)
                                {
                                    errs.push(format!("{at}: read-only property {k:?} sent in a request"));
                                }
                                if s.get("allOf").is_none() || s["properties"].get(k).is_some() {
                                    self.validate(ps, pv, &format!("{at}.{k}"), dir, errs);
                                }
                            }
                        }
                    }
                }
            }
            Some("array") => {
                let Some(items) = v.as_array() else {
                    errs.push(format!("{at}: expected an array, got {v}"));
                    return;
                };
                if let Some(min) = s["minItems"].as_u64() {
                    if (items.len() as u64) < min {
                        errs.push(format!("{at}: fewer than {min} items"));
                    }
                }
                for (i, item) in items.iter().enumerate() {
                    self.validate(&s["items"], item, &format!("{at}[{i}]"), dir, errs);
                }
            }
            Some("string") if !v.is_string() => errs.push(format!("{at}: expected a string, got {v}")),
            Some("boolean") if !v.is_boolean() => errs.push(format!("{at}: expected a boolean, got {v}")),
            Some("integer") => match v.as_i64() {
                None => errs.push(format!("{at}: expected an integer, got {v}")),
                Some(n) => {
                    if let Some(min) = s["minimum"].as_i64() {
                        if n < min {
                            errs.push(format!("{at}: {n} is below the minimum {min}"));
                        }
                    }
                }
            },
            Some("number") if !v.is_number() => errs.push(format!("{at}: expected a number, got {v}")),
            _ => {}
        }
    }
}

fn yaml_to_json(y: serde_yaml::Value) -> Value {
    match y {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        serde_yaml::Value::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        serde_yaml::Value::String(s) => s,
                        serde_yaml::Value::Number(n) => n.to_string(),
                        serde_yaml::Value::Bool(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value),
    }
}
