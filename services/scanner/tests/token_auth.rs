//! Pulling from registries with bearer-token authentication (the Docker token flow of Docker
//! Hub, GHCR and Harbor), through the real `trawl-scanner` binary against a real
//! `docker-registry` with `auth: token` and the test kit's token server. The token server's
//! log proves the flow happened: which tokens were requested, by whom, granting what.

mod common;

use common::*;
use std::process::{Command, Output};
use trawl_testkit::{push, Grant, ImageBuilder, Registry};

const UNAUTHORIZED: i32 = 4;
const ALICE: (&str, &str) = ("alice", "t0ken-flow-pass");
const PRIVATE: &str = "private/app";
const PUBLIC: &str = "public/app";

fn scanner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trawl-scanner"))
        .args(args)
        .env_remove("TRAWL_REGISTRY_USERNAME")
        .env_remove("TRAWL_REGISTRY_PASSWORD")
        .env_remove("TRAWL_REGISTRY_TOKEN")
        .output()
        .expect("run trawl-scanner")
}

/// The report of a successful scan.
fn sbom_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn package_names(report: &serde_json::Value) -> Vec<&str> {
    report["packages"].as_array().expect("packages").iter().map(|p| p["name"].as_str().expect("name")).collect()
}

/// Asserts a failure with `code`, one error line containing `needle`, and no report.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "no report may be printed on failure");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line expected: {stderr}");
    assert!(errors[0].contains(needle), "{:?} should mention {needle:?}", errors[0]);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A token registry holding a Debian image in a private and in a public repository.
async fn token_registry() -> Registry {
    let registry = Registry::start_with_token_auth(&[ALICE], &[PUBLIC]).expect("start docker-registry with token auth");
    let image = ImageBuilder::new()
        .layer(debian_base(&[("libc6", "2.36-9", Some("glibc")), ("bash", "5.2.15-2", None)]))
        .build()
        .expect("build image");
    for repo in [PRIVATE, PUBLIC] {
        push(&registry, repo, "v1", &image, Some(ALICE)).await.expect("push through the token flow");
    }
    registry
}

fn reference(registry: &Registry, repo: &str) -> String {
    format!("{}/{repo}:v1", registry.host())
}

fn pull_grant(repo: &str) -> Grant {
    Grant { repository: repo.into(), actions: vec!["pull".into()] }
}

#[tokio::test]
async fn credentials_are_exchanged_for_a_token() {
    let registry = token_registry().await;
    let tokens = registry.token_server().expect("token server");
    let before = tokens.requests().len();

    let out = scanner(&[
        "sbom",
        "--plain-http",
        "--username",
        ALICE.0,
        "--password",
        ALICE.1,
        &reference(&registry, PRIVATE),
    ]);
    let report = sbom_of(&out);
    assert_eq!(package_names(&report), ["bash", "libc6"]);
    assert_eq!(report["distro"]["id"], "debian", "{report}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(ALICE.1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(ALICE.1));

    let scan_requests = &tokens.requests()[before..];
    assert_eq!(scan_requests.len(), 1, "one token per scan, reused for all its requests: {scan_requests:?}");
    for request in scan_requests {
        assert_eq!(request.account.as_deref(), Some(ALICE.0), "{request:?}");
        assert!(request.issued(), "{request:?}");
        assert_eq!(request.scopes, [format!("repository:{PRIVATE}:pull")], "a pull needs no more");
        assert_eq!(request.granted, [pull_grant(PRIVATE)]);
    }
}

#[tokio::test]
async fn anonymous_pulls_get_an_anonymous_token_for_public_repositories_only() {
    let registry = token_registry().await;
    let tokens = registry.token_server().unwrap();
    assert_eq!(tokens.issued_to(None), 0);

    let out = scanner(&["sbom", "--plain-http", &reference(&registry, PUBLIC)]);
    assert_eq!(package_names(&sbom_of(&out)), ["bash", "libc6"]);
    let anonymous = tokens.issued_to(None);
    assert_eq!(anonymous, 1, "an anonymous token must have been issued: {:?}", tokens.requests());
    assert!(tokens.requests().iter().filter(|r| r.account.is_none()).all(|r| r.granted == [pull_grant(PUBLIC)]));

    // The token server issues an anonymous token for the private repository too, but it grants
    // nothing, so the registry refuses the pull.
    let out = scanner(&["sbom", "--plain-http", &reference(&registry, PRIVATE)]);
    assert_fails(&out, UNAUTHORIZED, "refused access");
    let private: Vec<_> = tokens.requests().into_iter().filter(|r| r.account.is_none()).skip(anonymous).collect();
    assert!(!private.is_empty(), "the scanner must have asked for an anonymous token");
    assert!(private.iter().all(|r| r.issued() && r.granted.is_empty()), "{private:?}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_the_token_server_and_never_echoed() {
    let registry = token_registry().await;
    let tokens = registry.token_server().unwrap();
    let refused = tokens.refused();

    let wrong = "Wr0ng-pa55word";
    let out =
        scanner(&["sbom", "--plain-http", "--username", ALICE.0, "--password", wrong, &reference(&registry, PRIVATE)]);
    assert_fails(&out, UNAUTHORIZED, "check the username and password");
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(wrong), "the password must not be echoed");
    }
    assert_eq!(
        tokens.refused(),
        refused + 1,
        "the token server must have refused the credentials: {:?}",
        tokens.requests()
    );
    assert_eq!(tokens.issued_to(Some(ALICE.0)), 2, "no token beyond the two pushes");
}

#[tokio::test]
async fn a_registry_token_is_presented_as_is() {
    let registry = token_registry().await;
    let tokens = registry.token_server().unwrap();
    let scope = format!("repository:{PRIVATE}:pull");
    let token = tokens.request_token(Some(ALICE), &[&scope]).await.expect("token for the test");
    let before = tokens.requests().len();

    let out = scanner(&["sbom", "--plain-http", "--registry-token", &token, &reference(&registry, PRIVATE)]);
    assert_eq!(package_names(&sbom_of(&out)), ["bash", "libc6"]);
    assert_eq!(tokens.requests().len(), before, "a given token is used, not exchanged");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token), "the token must not be logged");

    // The same token does not open another repository: its grants are checked.
    let out = scanner(&["sbom", "--plain-http", "--registry-token", &token, &reference(&registry, PUBLIC)]);
    assert_fails(&out, UNAUTHORIZED, "refused access");
    // Nor does a token the registry cannot verify.
    let out = scanner(&["sbom", "--plain-http", "--registry-token", "not.a-valid.jwt", &reference(&registry, PRIVATE)]);
    assert_fails(&out, UNAUTHORIZED, "refused access");
}
