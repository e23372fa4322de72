//! The token-auth registry fixture: a real `docker-registry` with `auth: token` trusting the
//! kit's token server, checked with skopeo (an independent implementation of the Docker token
//! flow) and with raw HTTP.

mod common;

use common::{run, skopeo_json};
use serde_json::json;
use trawl_testkit::{
    push, token_claims, Grant, ImageBuilder, LayerBuilder, Registry, TokenServer, TOKEN_ISSUER, TOKEN_LIFETIME_SECS,
    TOKEN_SERVICE,
};

const ALICE: (&str, &str) = ("alice", "s3cret pass");

fn tiny_image(content: &str) -> trawl_testkit::BuiltImage {
    ImageBuilder::new().layer(LayerBuilder::new().file("hello", content, 0o644)).build().expect("build image")
}

fn token_registry() -> Registry {
    Registry::start_with_token_auth(&[ALICE, ("bob", "hunter2")], &["public/app"]).expect("start token registry")
}

fn grant(repository: &str, actions: &[&str]) -> Grant {
    Grant { repository: repository.into(), actions: actions.iter().map(|a| (*a).to_owned()).collect() }
}

#[tokio::test]
async fn anonymous_requests_get_a_bearer_challenge() {
    let registry = token_registry();
    let tokens = registry.token_server().expect("token server");
    assert_eq!(registry.credentials(), Some(ALICE));

    let resp = reqwest::get(format!("{}/v2/", registry.url())).await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenge = resp.headers().get("www-authenticate").expect("challenge").to_str().unwrap().to_owned();
    assert!(challenge.starts_with(&format!("Bearer realm=\"{}\"", tokens.realm())), "{challenge}");
    assert!(challenge.contains(&format!("service=\"{TOKEN_SERVICE}\"")), "{challenge}");

    // A token the registry trusts opens /v2/ (the registry verified signature, issuer, audience).
    let token = tokens.request_token(Some(ALICE), &[]).await.unwrap();
    let resp = reqwest::Client::new().get(format!("{}/v2/", registry.url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::OK,
        "registry log:\n{:?}",
        std::fs::read_to_string(registry.log_path())
    );

    // A token signed by another server's key (not in the rootcertbundle) is rejected.
    let stranger = TokenServer::start(&[ALICE], &[]).unwrap();
    let forged = stranger.request_token(Some(ALICE), &[]).await.unwrap();
    let resp = reqwest::Client::new().get(format!("{}/v2/", registry.url())).bearer_auth(&forged).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn skopeo_pulls_with_credentials_and_wrong_passwords_fail() {
    let registry = token_registry();
    let tokens = registry.token_server().unwrap();
    let image = tiny_image("private");
    let digest = push(&registry, "private/app", "v1", &image, registry.credentials()).await.expect("push");
    assert_eq!(digest, image.manifest_digest);
    let pushed = tokens.requests();
    assert_eq!(pushed.len(), 1, "one token per push: {pushed:?}");
    assert_eq!(pushed[0].account.as_deref(), Some("alice"));
    assert_eq!(pushed[0].scopes, ["repository:private/app:pull,push"]);
    assert_eq!(pushed[0].granted, [grant("private/app", &["pull", "push"])]);

    let reference = format!("docker://{}/private/app:v1", registry.host());
    let inspect = skopeo_json(&["inspect", "--tls-verify=false", "--creds", "alice:s3cret pass", &reference]);
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
    assert!(tokens.issued_to(Some("alice")) >= 2, "skopeo must have fetched a token: {:?}", tokens.requests());
    // bob is a user too.
    skopeo_json(&["inspect", "--tls-verify=false", "--creds", "bob:hunter2", &reference]);
    assert!(tokens.issued_to(Some("bob")) >= 1);

    let refused_before = tokens.refused();
    let wrong = run("skopeo", &["inspect", "--tls-verify=false", "--creds", "alice:not-the-password", &reference]);
    assert!(!wrong.status.success(), "a wrong password must fail");
    assert!(tokens.refused() > refused_before, "the token server must have refused: {:?}", tokens.requests());

    // Anonymous: a token is issued, but it grants nothing on a private repository.
    let anonymous = run("skopeo", &["inspect", "--tls-verify=false", "--no-creds", &reference]);
    assert!(!anonymous.status.success(), "anonymous pull of a private repository must fail");
    let anonymous_requests: Vec<_> = tokens.requests().into_iter().filter(|r| r.account.is_none()).collect();
    assert!(!anonymous_requests.is_empty());
    assert!(anonymous_requests.iter().all(|r| r.issued() && r.granted.is_empty()), "{anonymous_requests:?}");
}

#[tokio::test]
async fn anonymous_clients_pull_public_repositories_but_never_push() {
    let registry = token_registry();
    let tokens = registry.token_server().unwrap();
    let image = tiny_image("public");
    push(&registry, "public/app", "v1", &image, Some(ALICE)).await.expect("push");

    let reference = format!("docker://{}/public/app:v1", registry.host());
    let inspect = skopeo_json(&["inspect", "--tls-verify=false", "--no-creds", &reference]);
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
    assert!(tokens.issued_to(None) >= 1);
    assert!(tokens
        .requests()
        .iter()
        .filter(|r| r.account.is_none())
        .all(|r| r.granted.iter().all(|g| g.actions == ["pull"])));

    // Anonymous push gets a pull-only token, which the registry refuses for an upload.
    let err = push(&registry, "public/app", "v2", &tiny_image("other"), None).await.expect_err("anonymous push");
    assert!(format!("{err:#}").contains("401"), "{err:#}");
    // A wrong password is refused by the token server itself, and never echoed.
    let err = push(&registry, "public/app", "v2", &image, Some(("alice", "wrong-pass"))).await.expect_err("bad pass");
    let msg = format!("{err:#}");
    assert!(msg.contains("refused") && msg.contains("401"), "{msg}");
    assert!(!msg.contains("wrong-pass"), "{msg}");
}

#[tokio::test]
async fn token_server_follows_the_token_spec() {
    let server = TokenServer::start(&[ALICE], &["public/app"]).unwrap();

    let token = server.request_token(Some(ALICE), &["repository:team/app:pull,push,delete"]).await.unwrap();
    let claims = token_claims(&token).unwrap();
    assert_eq!(claims["iss"], TOKEN_ISSUER);
    assert_eq!(claims["aud"], TOKEN_SERVICE, "a string, as distribution 2.8 requires");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["access"], json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]));
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(exp - claims["iat"].as_u64().unwrap(), TOKEN_LIFETIME_SECS);
    // The JWS header carries the signing certificate for the registry to verify.
    let header = token_claims(&format!("x.{}", token.split('.').next().unwrap())).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["x5c"].as_array().map(Vec::len), Some(1));

    // Several scopes, repeated or space-separated; other resource types earn nothing.
    let token = server
        .request_token(Some(ALICE), &["repository:a:pull repository:b:push", "registry:catalog:*"])
        .await
        .unwrap();
    let access = &token_claims(&token).unwrap()["access"];
    assert_eq!(access.as_array().unwrap().len(), 2, "{access}");

    // Anonymous: pull on public repositories only, even when push is asked for.
    let token = server.request_token(None, &["repository:public/app:pull,push", "repository:team/app:pull"]).await;
    let access = &token_claims(&token.unwrap()).unwrap()["access"];
    assert_eq!(access, &json!([{"type": "repository", "name": "public/app", "actions": ["pull"]}]));

    let err = server.request_token(Some(("alice", "nope")), &["repository:public/app:pull"]).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err:#}");
    let err = server.request_token(Some(("mallory", "s3cret pass")), &[]).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err:#}");

    let log = server.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].granted, [grant("team/app", &["pull", "push"])]);
    assert_eq!(log[1].scopes, ["repository:a:pull", "repository:b:push", "registry:catalog:*"]);
    assert_eq!(log[1].granted, [grant("a", &["pull"]), grant("b", &["push"])]);
    assert_eq!(log[2].account, None);
    assert_eq!((log[3].status, log[4].status), (401, 401));
    assert_eq!(log[4].account.as_deref(), Some("mallory"));
    assert_eq!((server.issued_to(Some("alice")), server.issued_to(None), server.refused()), (2, 1, 2));
}
