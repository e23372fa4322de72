//! Connecting to NATS from what an operator types: a URL (or a comma-separated
//! list) that may carry `user:pass@` or `token@`, and optionally a `.creds`
//! file (JWT + NKey seed).
//!
//! async-nats does not take credentials from the URL itself, so they are
//! lifted out here, percent-decoded, passed as connect options, and removed
//! from the addresses the client keeps (its errors and logs name addresses,
//! which must never carry a secret). [`redact_url`] is for anything we print.

use crate::error::DistError;
use percent_encoding::percent_decode_str;
use std::path::Path;

/// Connects to the NATS servers in `servers` (comma-separated URLs; `nats://`
/// is assumed when no scheme is given), authenticating with credentials in
/// the URL or with `creds_file`, and naming the connection `name`.
pub async fn connect(servers: &str, creds_file: Option<&Path>, name: &str) -> Result<async_nats::Client, DistError> {
    let (addresses, auth) = split_credentials(servers)?;
    let mut options = async_nats::ConnectOptions::new().name(name);
    match (auth, creds_file) {
        (Some(_), Some(_)) => {
            return Err(DistError::Config(
                "credentials given both in the NATS URL and as a creds file; use one".to_string(),
            ))
        }
        (Some(UrlAuth::UserPassword(user, password)), None) => options = options.user_and_password(user, password),
        (Some(UrlAuth::Token(token)), None) => options = options.token(token),
        (None, Some(path)) => {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| DistError::Config(format!("cannot read NATS credentials file {}: {e}", path.display())))?
        }
        (None, None) => {}
    }
    let display = redact_url(servers);
    options.connect(addresses).await.map_err(|e| DistError::nats(format!("connecting to {display}"), e))
}

/// `servers` with any password or token replaced by `***`, for logs and errors.
pub fn redact_url(servers: &str) -> String {
    servers
        .split(',')
        .map(|s| {
            let s = s.trim();
            match parse_server(s) {
                Ok(mut url) if !url.username().is_empty() => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    } else {
                        let _ = url.set_username("***");
                    }
                    url.to_string()
                }
                Ok(_) => s.to_string(),
                // Unparsable: print nothing of it past a possible `@`, which may follow a secret.
                Err(_) => match s.rfind('@') {
                    Some(at) => format!("***@{}", &s[at + 1..]),
                    None => s.to_string(),
                },
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, PartialEq, Eq)]
enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

fn parse_server(s: &str) -> Result<url::Url, url::ParseError> {
    if s.contains("://") {
        url::Url::parse(s)
    } else {
        url::Url::parse(&format!("nats://{s}"))
    }
}

/// Splits the server list into credential-free addresses and the credentials
/// of the first URL that has any.
fn split_credentials(servers: &str) -> Result<(Vec<async_nats::ServerAddr>, Option<UrlAuth>), DistError> {
    let mut addresses = Vec::new();
    let mut auth = None;
    for s in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut url = parse_server(s).map_err(|e| DistError::Config(format!("bad NATS URL {}: {e}", redact_url(s))))?;
        if !url.username().is_empty() {
            let decode = |v: &str| percent_decode_str(v).decode_utf8_lossy().into_owned();
            let found = match url.password() {
                Some(password) => UrlAuth::UserPassword(decode(url.username()), decode(password)),
                None => UrlAuth::Token(decode(url.username())),
            };
            auth.get_or_insert(found);
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let address = url
            .as_str()
            .parse::<async_nats::ServerAddr>()
            .map_err(|e| DistError::Config(format!("bad NATS URL {}: {e}", redact_url(s))))?;
        addresses.push(address);
    }
    if addresses.is_empty() {
        return Err(DistError::Config("no NATS server URL given".to_string()));
    }
    Ok((addresses, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_lifted_out_of_the_url() {
        let (addresses, auth) = split_credentials("nats://scanner:p%40ss@127.0.0.1:4222").unwrap();
        assert_eq!(auth, Some(UrlAuth::UserPassword("scanner".into(), "p@ss".into())));
        assert_eq!(addresses.len(), 1);
        assert!(!format!("{:?}", addresses[0]).contains("p%40ss"));
        let (_, auth) = split_credentials("s3cret@nats.example:4222").unwrap();
        assert_eq!(auth, Some(UrlAuth::Token("s3cret".into())));
        let (addresses, auth) = split_credentials("nats://a:1,nats://b:2").unwrap();
        assert_eq!((addresses.len(), auth), (2, None));
        assert!(split_credentials(" , ").is_err());
    }

    #[test]
    fn redaction_hides_passwords_and_tokens() {
        assert_eq!(redact_url("nats://u:secret@h:4222"), "nats://u:***@h:4222");
        assert_eq!(redact_url("nats://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert!(!redact_url("nats://u:secret@h:4222,tls://x:y@h2").contains("secret"));
        assert!(!redact_url("nats://u:sec ret@[bad").contains("sec"));
    }
}
