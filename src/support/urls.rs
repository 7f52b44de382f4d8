//! Credentials in URLs (`https://user:password@host/...`): split off so they travel as HTTP basic
//! credentials and never as part of the address, and redacted wherever a URL is shown (logs,
//! `config check`, `/api/v1/config`, error messages).

/// The URL without its userinfo, and the userinfo (`user:password`, as written) when there was one.
pub fn split_userinfo(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = authority[..at].to_owned();
            (format!("{scheme}://{}{}", &authority[at + 1..], &rest[authority_end..]), Some(userinfo))
        }
        None => (url.to_owned(), None),
    }
}

/// The URL with any userinfo replaced by `***`, for showing.
pub fn redact(url: &str) -> String {
    match split_userinfo(url) {
        (bare, Some(_)) => match bare.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://***@{rest}"),
            None => bare,
        },
        (bare, None) => bare,
    }
}

/// The `Authorization` value for a `user:password` userinfo (percent-escapes decoded).
pub fn basic_auth(userinfo: &str) -> String {
    let decoded = percent_decode(userinfo);
    format!("Basic {}", crate::support::encoding::base64(decoded.as_bytes()))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_off_and_redacted() {
        assert_eq!(
            split_userinfo("https://elastic:s3cr%40t@logs.example:9200/_bulk?x=1"),
            ("https://logs.example:9200/_bulk?x=1".to_owned(), Some("elastic:s3cr%40t".to_owned()))
        );
        assert_eq!(split_userinfo("http://host:8086"), ("http://host:8086".to_owned(), None));
        assert_eq!(
            split_userinfo("http://host/a@b"),
            ("http://host/a@b".to_owned(), None),
            "an @ in the path is no userinfo"
        );
        assert_eq!(redact("https://u:p@host/x"), "https://***@host/x");
        assert_eq!(redact("http://host/x"), "http://host/x");
        assert_eq!(
            basic_auth("elastic:s3cr%40t"),
            format!("Basic {}", crate::support::encoding::base64(b"elastic:s3cr@t"))
        );
    }
}
