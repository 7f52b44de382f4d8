//! A stand-in for the InfluxDB v2 management API (no v2 server exists in the package registries).
//!
//! It serves onboarding, orgs, buckets, authorizations and write on a free loopback port, following
//! the OpenAPI contract in `tests/contracts/influxdb-oss-v2/oss.yml` and the behaviour notes beside
//! it: 422 `conflict` for a repeated setup or an existing bucket name, 404 (not an empty list) for an
//! unknown org or bucket name, `{code, message}` error bodies, 8 to 72 character passwords, and
//! tokens hashed (2.9: never listed again) or not (2.7: listed in plain text).
//!
//! Write (`POST /api/v2/write`) answers as the 2.x server's own source does, which the contract
//! leaves unsaid (`http/write_handler.go` and `http/points/points_parser.go` of influxdb v2): the
//! bucket is looked up first (404), then the token's write permission (401 for an unknown token,
//! 403 `forbidden` "insufficient permissions for write"), and only then the body, so an empty body
//! with the permission gets 400 `invalid` "writing requires points", never 204. See
//! `tests/support/influx_v2.contract.md`.
//!
//! Every exchange is recorded, and [`InfluxV2::contract_violations`] checks each request and
//! response against the contract, so neither side can drift from the real API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::openapi::Contract;

#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub request: Option<Value>,
    pub status: u16,
    pub response: Option<Value>,
}

#[derive(Clone, Debug)]
struct Bucket {
    id: String,
    org_id: String,
    name: String,
    every_seconds: u64,
}

#[derive(Clone, Debug)]
struct Auth {
    id: String,
    token: String,
    org_id: String,
    status: String,
    description: String,
    /// (action, resource type, resource id); `None` id: every resource of the type.
    permissions: Vec<(String, String, Option<String>)>,
    operator: bool,
}

#[derive(Default, Debug)]
pub struct State {
    setup_done: bool,
    pub hashing: bool,
    user: Option<(String, String, String)>, // id, name, password
    orgs: Vec<(String, String)>,            // id, name
    buckets: Vec<Bucket>,
    auths: Vec<Auth>,
    next_id: u64,
    pub exchanges: Vec<Exchange>,
    /// When > 0, answer this many requests with 503 first.
    pub fail_next: u32,
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:016x}", 0x0a1b_2c3d_0000_0000u64 + self.next_id)
    }
}

pub struct InfluxV2 {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    handle: Option<JoinHandle<()>>,
}

fn err(status: u16, code: &str, message: &str) -> (u16, Option<Value>) {
    (status, Some(json!({ "code": code, "message": message })))
}

fn random_token() -> String {
    // InfluxDB tokens are 64 random bytes in URL-safe base64 (86 characters with '==').
    let bytes: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
    let mut s = String::new();
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s + "=="
}

fn query(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| {
            q.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), percent_decode(v))).collect()
        })
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bucket_json(b: &Bucket) -> Value {
    let rules =
        if b.every_seconds == 0 { json!([]) } else { json!([{ "type": "expire", "everySeconds": b.every_seconds }]) };
    json!({
        "id": b.id, "orgID": b.org_id, "name": b.name, "type": "user", "retentionRules": rules,
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
        "links": { "self": format!("/api/v2/buckets/{}", b.id), "org": format!("/api/v2/orgs/{}", b.org_id) },
        "labels": []
    })
}

fn auth_json(a: &Auth, show_token: bool) -> Value {
    let perms: Vec<Value> = a
        .permissions
        .iter()
        .map(|(action, ty, id)| {
            let mut r = json!({ "type": ty, "orgID": a.org_id });
            if let Some(id) = id {
                r["id"] = json!(id);
            }
            json!({ "action": action, "resource": r })
        })
        .collect();
    let mut v = json!({
        "id": a.id, "orgID": a.org_id, "status": a.status, "description": a.description,
        "permissions": perms, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
        "links": { "self": format!("/api/v2/authorizations/{}", a.id) }
    });
    if show_token {
        v["token"] = json!(a.token);
    }
    v
}

impl Auth {
    fn allows(&self, action: &str, ty: &str, id: Option<&str>) -> bool {
        self.status == "active"
            && (self.operator
                || self
                    .permissions
                    .iter()
                    .any(|(a, t, pid)| a == action && t == ty && (pid.is_none() || pid.as_deref() == id)))
    }
}

fn handle(
    st: &mut State,
    method: &str,
    url: &str,
    auth_header: Option<&str>,
    body: Option<&Value>,
) -> (u16, Option<Value>) {
    if st.fail_next > 0 {
        st.fail_next -= 1;
        return err(503, "unavailable", "service unavailable");
    }
    let path = url.split('?').next().unwrap_or(url);
    let q = query(url);
    let token = auth_header.and_then(|h| h.strip_prefix("Token ").or_else(|| h.strip_prefix("Bearer "))).map(str::trim);
    let caller = token.and_then(|t| st.auths.iter().find(|a| a.token == t && a.status == "active")).cloned();
    let unauthorized = || err(401, "unauthorized", "unauthorized access");
    match (method, path) {
        ("GET", "/api/v2/setup") => (200, Some(json!({ "allowed": !st.setup_done }))),
        ("POST", "/api/v2/setup") => {
            if st.setup_done {
                return err(422, "conflict", "onboarding has already been completed");
            }
            let b = body.cloned().unwrap_or(Value::Null);
            let (Some(user), Some(org), Some(bucket)) =
                (b["username"].as_str(), b["org"].as_str(), b["bucket"].as_str())
            else {
                return err(400, "invalid", "username, org and bucket are required");
            };
            let password = b["password"].as_str().unwrap_or("");
            if !(8..=72).contains(&password.chars().count()) {
                return err(400, "invalid", "passwords must be between 8 and 72 characters long");
            }
            let (uid, oid, bid, aid) = (st.id(), st.id(), st.id(), st.id());
            st.user = Some((uid.clone(), user.to_owned(), password.to_owned()));
            st.orgs.push((oid.clone(), org.to_owned()));
            let bk = Bucket {
                id: bid,
                org_id: oid.clone(),
                name: bucket.to_owned(),
                every_seconds: b["retentionPeriodSeconds"].as_u64().unwrap_or(0),
            };
            st.buckets.push(bk.clone());
            let token = b["token"].as_str().map(str::to_owned).unwrap_or_else(random_token);
            let auth = Auth {
                id: aid,
                token,
                org_id: oid.clone(),
                status: "active".into(),
                description: format!("{user}'s Token"),
                permissions: vec![("read".into(), "buckets".into(), None), ("write".into(), "buckets".into(), None)],
                operator: true,
            };
            st.auths.push(auth.clone());
            st.setup_done = true;
            (
                201,
                Some(json!({
                    "user": { "id": uid, "name": user, "status": "active", "links": { "self": format!("/api/v2/users/{uid}") } },
                    "org": { "id": oid, "name": org, "status": "active", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z" },
                    "bucket": bucket_json(&bk),
                    "auth": auth_json(&auth, true),
                })),
            )
        }
        ("GET", "/api/v2/orgs") => {
            let Some(c) = caller else { return unauthorized() };
            if !c.operator {
                return unauthorized();
            }
            let orgs: Vec<Value> = st
                .orgs
                .iter()
                .filter(|(_, n)| q.get("org").is_none_or(|want| want == n))
                .map(|(id, n)| json!({ "id": id, "name": n, "status": "active" }))
                .collect();
            if orgs.is_empty() && q.contains_key("org") {
                return err(404, "not found", &format!("organization name \"{}\" not found", q["org"]));
            }
            (200, Some(json!({ "links": { "self": "/api/v2/orgs" }, "orgs": orgs })))
        }
        ("GET", "/api/v2/buckets") => {
            let Some(c) = caller else { return unauthorized() };
            let list: Vec<Value> = st
                .buckets
                .iter()
                .filter(|b| q.get("orgID").is_none_or(|o| *o == b.org_id) && q.get("name").is_none_or(|n| *n == b.name))
                .filter(|b| c.allows("read", "buckets", Some(&b.id)))
                .map(bucket_json)
                .collect();
            if list.is_empty() && q.contains_key("name") {
                return err(404, "not found", &format!("bucket \"{}\" not found", q["name"]));
            }
            (200, Some(json!({ "links": { "self": "/api/v2/buckets" }, "buckets": list })))
        }
        ("POST", "/api/v2/buckets") => {
            let Some(c) = caller else { return unauthorized() };
            if !c.operator {
                return unauthorized();
            }
            let b = body.cloned().unwrap_or(Value::Null);
            let (Some(org_id), Some(name)) = (b["orgID"].as_str(), b["name"].as_str()) else {
                return err(400, "invalid", "orgID and name are required");
            };
            if !st.orgs.iter().any(|(id, _)| id == org_id) {
                return err(404, "not found", "organization not found");
            }
            if st.buckets.iter().any(|x| x.org_id == org_id && x.name == name) {
                return err(422, "conflict", &format!("bucket with name {name} already exists"));
            }
            let every = b["retentionRules"][0]["everySeconds"].as_u64().unwrap_or(0);
            let bk = Bucket { id: st.id(), org_id: org_id.into(), name: name.into(), every_seconds: every };
            st.buckets.push(bk.clone());
            (201, Some(bucket_json(&bk)))
        }
        ("POST", "/api/v2/authorizations") => {
            let Some(c) = caller else { return unauthorized() };
            if !c.operator {
                return unauthorized();
            }
            let b = body.cloned().unwrap_or(Value::Null);
            let Some(org_id) = b["orgID"].as_str() else { return err(400, "invalid", "orgID is required") };
            let perms: Vec<(String, String, Option<String>)> = b["permissions"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            (
                                p["action"].as_str().unwrap_or("").into(),
                                p["resource"]["type"].as_str().unwrap_or("").into(),
                                p["resource"]["id"].as_str().map(str::to_owned),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if perms.is_empty() {
                return err(400, "invalid", "at least one permission is required");
            }
            let a = Auth {
                id: st.id(),
                token: random_token(),
                org_id: org_id.into(),
                status: "active".into(),
                description: b["description"].as_str().unwrap_or("").into(),
                permissions: perms,
                operator: false,
            };
            st.auths.push(a.clone());
            (201, Some(auth_json(&a, true)))
        }
        ("GET", "/api/v2/authorizations") => {
            let Some(c) = caller else { return unauthorized() };
            if !c.operator {
                return unauthorized();
            }
            let show = !st.hashing;
            let list: Vec<Value> = st.auths.iter().map(|a| auth_json(a, show)).collect();
            (200, Some(json!({ "links": { "self": "/api/v2/authorizations" }, "authorizations": list })))
        }
        ("POST", "/api/v2/write") => {
            let Some(c) = caller else { return unauthorized() };
            let bucket = q.get("bucket").cloned().unwrap_or_default();
            let Some(b) = st.buckets.iter().find(|b| b.id == bucket || b.name == bucket) else {
                return err(404, "not found", &format!("bucket \"{bucket}\" not found"));
            };
            if !c.allows("write", "buckets", Some(&b.id)) {
                return err(403, "forbidden", "insufficient permissions for write");
            }
            if body.is_none() {
                // After the permission check, as in the server's write handler.
                return err(400, "invalid", "writing requires points");
            }
            (204, None)
        }
        (m, p) if p.starts_with("/api/v2/buckets/") => {
            let id = p.trim_start_matches("/api/v2/buckets/").to_owned();
            let Some(c) = caller else { return unauthorized() };
            let Some(i) = st.buckets.iter().position(|b| b.id == id) else {
                return err(404, "not found", "bucket not found");
            };
            match m {
                "GET" if c.allows("read", "buckets", Some(&id)) => (200, Some(bucket_json(&st.buckets[i]))),
                "PATCH" if c.operator => {
                    if let Some(rules) = body.and_then(|b| b["retentionRules"].as_array()) {
                        st.buckets[i].every_seconds =
                            rules.first().and_then(|r| r["everySeconds"].as_u64()).unwrap_or(0);
                    }
                    (200, Some(bucket_json(&st.buckets[i])))
                }
                "GET" | "PATCH" => unauthorized(),
                _ => err(405, "method not allowed", "method not allowed"),
            }
        }
        _ => err(404, "not found", "path not found"),
    }
}

impl InfluxV2 {
    /// Starts the stand-in; `hashing` chooses 2.9 (true) or 2.7 (false) token behaviour.
    pub fn start(hashing: bool) -> InfluxV2 {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind stand-in"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip addr"));
        let state = Arc::new(Mutex::new(State { hashing, ..State::default() }));
        let (srv, st) = (Arc::clone(&server), Arc::clone(&state));
        let handle = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let method = req.method().as_str().to_owned();
                let url = req.url().to_owned();
                let auth =
                    req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str().to_owned());
                let mut raw = String::new();
                let _ = req.as_reader().read_to_string(&mut raw);
                let request: Option<Value> = if raw.trim().is_empty() {
                    None
                } else {
                    serde_json::from_str(&raw).ok().or(Some(Value::String(raw.clone())))
                };
                let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                let (status, response) = handle(&mut s, &method, &url, auth.as_deref(), request.as_ref());
                s.exchanges.push(Exchange {
                    method,
                    url,
                    request: if url_is_write(&req) { None } else { request },
                    status,
                    response: response.clone(),
                });
                drop(s);
                let body = response.map(|v| v.to_string()).unwrap_or_default();
                let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
                if status != 204 {
                    resp.add_header(
                        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json; charset=utf-8"[..])
                            .expect("header"),
                    );
                }
                let _ = req.respond(resp);
            }
        });
        InfluxV2 { url, state, server, handle: Some(handle) }
    }

    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Revokes every token that is not the operator's (as an admin would in the UI).
    pub fn revoke_bot_tokens(&self) {
        self.with_state(|s| s.auths.iter_mut().filter(|a| !a.operator).for_each(|a| a.status = "inactive".into()));
    }

    pub fn bucket_retention(&self, name: &str) -> Option<u64> {
        self.with_state(|s| s.buckets.iter().find(|b| b.name == name).map(|b| b.every_seconds))
    }

    /// Sets up the instance out of band, as an operator who ran `influx setup` by hand.
    pub fn preset(&self, org: &str, bucket: Option<(&str, u64)>, admin_token: &str) {
        self.with_state(|s| {
            let oid = s.id();
            s.orgs.push((oid.clone(), org.into()));
            if let Some((name, every)) = bucket {
                let id = s.id();
                s.buckets.push(Bucket { id, org_id: oid.clone(), name: name.into(), every_seconds: every });
            }
            let id = s.id();
            s.auths.push(Auth {
                id,
                token: admin_token.into(),
                org_id: oid,
                status: "active".into(),
                description: "operator".into(),
                permissions: vec![],
                operator: true,
            });
            s.setup_done = true;
        });
    }

    /// Active tokens that can read and write `bucket` and nothing else.
    pub fn scoped_tokens(&self, bucket: &str) -> Vec<String> {
        self.with_state(|s| {
            let Some(b) = s.buckets.iter().find(|b| b.name == bucket) else { return vec![] };
            s.auths
                .iter()
                .filter(|a| {
                    !a.operator
                        && a.status == "active"
                        && a.allows("read", "buckets", Some(&b.id))
                        && a.allows("write", "buckets", Some(&b.id))
                })
                .filter(|a| {
                    a.permissions.iter().all(|(_, t, id)| t == "buckets" && id.as_deref() == Some(b.id.as_str()))
                })
                .map(|a| a.token.clone())
                .collect()
        })
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.with_state(|s| s.exchanges.clone())
    }

    /// Every request and response so far, checked against the contract.
    pub fn contract_violations(&self, contract: &Contract) -> Vec<String> {
        let mut v = Vec::new();
        for x in self.exchanges() {
            v.extend(contract.check_request(&x.method, &x.url, x.request.as_ref()));
            v.extend(contract.check_response(&x.method, &x.url, x.status, x.response.as_ref()));
        }
        v
    }
}

fn url_is_write(req: &tiny_http::Request) -> bool {
    req.url().starts_with("/api/v2/write")
}

impl Drop for InfluxV2 {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
