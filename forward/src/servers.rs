//! Server URLs: parsed for the NATS client, with any user-info moved into
//! the credentials (the client ignores credentials in URLs).

use std::time::Duration;

use async_nats::ServerAddr;

use crate::config::{Auth, ForwardConfig, Secret, redact_urls};
use crate::error::ConfigError;

/// Parses the server URLs, moving any user-info (`user:pass@`, `token@`)
/// into the credentials: the NATS client ignores it in URLs. Every URL
/// that carries credentials must carry the same ones, and not together
/// with `config.auth`.
pub(crate) fn resolve_servers(config: &ForwardConfig) -> Result<(Vec<ServerAddr>, Auth), ConfigError> {
    let mut servers = Vec::new();
    let mut from_urls: Option<Auth> = None;
    for url in config.nats_url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let (bare, userinfo) = split_userinfo(url);
        let addr = bare.parse::<ServerAddr>().map_err(|_| ConfigError::InvalidUrl { url: redact_urls(url) })?;
        if let Some(info) = userinfo {
            let auth = match info.split_once(':') {
                Some((user, pass)) => {
                    Auth::UserPassword { user: percent_decode(user), password: Secret::new(percent_decode(pass)) }
                }
                None => Auth::Token(Secret::new(percent_decode(info))),
            };
            if from_urls.as_ref().is_some_and(|a| *a != auth) {
                return Err(ConfigError::ConflictingCredentials);
            }
            from_urls = Some(auth);
        }
        servers.push(addr);
    }
    let auth = match (&config.auth, from_urls) {
        (a, None) => a.clone(),
        (Auth::None, Some(a)) => a,
        (_, Some(_)) => return Err(ConfigError::ConflictingCredentials),
    };
    Ok((servers, auth))
}

/// True if at least one of `servers` answered with its INFO line and none
/// that answered offers TLS (`tls_required` or `tls_available`): then a
/// connection that requires TLS can never succeed. Servers that start TLS
/// first (`handshake_first`) send no INFO and count as not answering.
pub(crate) async fn no_server_offers_tls(servers: &[ServerAddr], timeout: Duration) -> bool {
    let mut answered = false;
    for s in servers {
        if let Ok(Some(info)) = tokio::time::timeout(timeout, info_line(s.host(), s.port())).await {
            if info.contains("\"tls_required\":true") || info.contains("\"tls_available\":true") {
                return false;
            }
            answered = true;
        }
    }
    answered
}

/// The server's greeting (`INFO {...}`), if it sends one.
async fn info_line(host: &str, port: u16) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.starts_with("INFO ").then_some(text)
}

/// `url` without its user-info, and the user-info (still percent-encoded).
fn split_userinfo(url: &str) -> (String, Option<&str>) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => (format!("{}{}", &url[..start], &rest[at + 1..]), Some(&rest[..at])),
        None => (url.to_string(), None),
    }
}

/// Decodes `%XX` escapes (anything malformed is kept as it is).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c)))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_move_from_urls_into_the_options() {
        let resolve = |urls: &str, auth: Auth| {
            let mut c = ForwardConfig::new("g", urls, "p");
            c.auth = auth;
            resolve_servers(&c).map(|(s, a)| (s.len(), a))
        };
        let pw = |u: &str, p: &str| Auth::UserPassword { user: u.into(), password: p.into() };
        assert_eq!(resolve("nats://a:b%40c@h:1,h2:2", Auth::None), Ok((2, pw("a", "b@c"))));
        assert_eq!(resolve("tok@h:1,nats://tok@h2:2", Auth::None), Ok((2, Auth::Token("tok".into()))));
        assert_eq!(resolve("h:1", pw("x", "y")), Ok((1, pw("x", "y"))));
        assert_eq!(resolve("a:b@h:1,a:c@h2:2", Auth::None), Err(ConfigError::ConflictingCredentials));
        assert_eq!(resolve("a:b@h:1", pw("x", "y")), Err(ConfigError::ConflictingCredentials));
        assert_eq!(split_userinfo("nats://u:p@h:1/x@y"), ("nats://h:1/x@y".to_string(), Some("u:p")));
        assert_eq!(percent_decode("%41%zz%4"), "A%zz%4");
    }
}
