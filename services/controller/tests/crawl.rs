//! The registry crawler against a real `docker-registry` (anonymous, basic
//! auth, token auth) and, for the failure modes a healthy registry never
//! shows (429, 5xx, looping or hostile pagination), a tiny in-test HTTP server.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use trawl_controller::registry::{crawl, CrawlError, ImageFilter, RegistryClient, ResolvedTag, RetryPolicy};
use trawl_protocol::registry::CredentialSource;
use trawl_protocol::RegistryConfig;
use trawl_testkit::{
    push, sha256_digest, Artifact, BuiltImage, ImageBuilder, IndexBuilder, LayerBuilder, MediaTypes, Registry,
    DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};

fn config(url: &str) -> RegistryConfig {
    let mut c = RegistryConfig::new("test", url);
    c.insecure = true;
    c
}

/// Retries as the defaults do, with waits short enough for tests.
fn quick_retries() -> RetryPolicy {
    RetryPolicy { backoff: vec![Duration::from_millis(10); 2], ..RetryPolicy::default() }
}

fn image(id: &str, media_types: MediaTypes) -> BuiltImage {
    ImageBuilder::new()
        .media_types(media_types)
        .layer(LayerBuilder::new().dir("etc").file("etc/image-id", id, 0o644))
        .label("id", id)
        .build()
        .expect("build test image")
}

fn start(registry: anyhow::Result<Registry>) -> Registry {
    registry.expect("start docker-registry (run scripts/setup)")
}

async fn push_image<A: Artifact + ?Sized>(
    registry: &Registry,
    repo: &str,
    tag: &str,
    artifact: &A,
    media_type: &str,
    auth: Option<(&str, &str)>,
) -> ResolvedTag {
    let digest = push(registry, repo, tag, artifact, auth).await.expect("push");
    ResolvedTag { repository: repo.into(), tag: tag.into(), digest, media_type: media_type.into() }
}

/// Six repositories (one nested two levels), one with six tags, in all four manifest media types.
async fn seeded_registry() -> (Registry, Vec<ResolvedTag>) {
    let registry = start(Registry::start());
    let mut expected = Vec::new();
    for repo in ["alpha", "library/alpine", "team/sub/tool"] {
        expected.push(push_image(&registry, repo, "1.0", &image(repo, MediaTypes::Oci), OCI_MANIFEST, None).await);
    }
    for tag in ["11", "12", "12-debug", "bookworm", "latest", "sid"] {
        let img = image(&format!("debian:{tag}"), MediaTypes::Oci);
        expected.push(push_image(&registry, "library/debian", tag, &img, OCI_MANIFEST, None).await);
    }
    let docker = image("team/api", MediaTypes::DockerV2);
    expected.push(push_image(&registry, "team/api", "1.0", &docker, DOCKER_MANIFEST, None).await);
    let index = IndexBuilder::new(MediaTypes::Oci)
        .image(image("web-amd64", MediaTypes::Oci))
        .image(
            ImageBuilder::new()
                .platform("linux", "arm64")
                .layer(LayerBuilder::new().file("web", "arm64", 0o644))
                .build()
                .expect("build arm64 image"),
        )
        .build()
        .expect("build index");
    expected.push(push_image(&registry, "team/web", "1.0", &index, OCI_INDEX, None).await);
    expected.sort();
    (registry, expected)
}

fn keys(images: &[ResolvedTag]) -> Vec<String> {
    images.iter().map(|i| format!("{}:{}", i.repository, i.tag)).collect()
}

#[tokio::test]
async fn pagination_with_page_size_two_lists_everything_once() {
    let (registry, _) = seeded_registry().await;
    let client = RegistryClient::new(&config(&registry.url())).unwrap().with_page_size(2);
    assert_eq!(
        client.catalog().await.unwrap(),
        ["alpha", "library/alpine", "library/debian", "team/api", "team/sub/tool", "team/web"]
    );
    assert_eq!(client.tags("library/debian").await.unwrap(), ["11", "12", "12-debug", "bookworm", "latest", "sid"]);
    assert_eq!(client.tags("team/sub/tool").await.unwrap(), ["1.0"]);
    match client.tags("library/nothing-here").await {
        Err(CrawlError::NotFound { request, .. }) => assert!(request.contains("library/nothing-here"), "{request}"),
        other => panic!("{other:?}"),
    }
    // The page cap is what stops a registry that paginates forever; here it cuts a real listing short.
    let capped = RegistryClient::new(&config(&registry.url())).unwrap().with_page_size(2).with_max_pages(2);
    assert!(matches!(capped.catalog().await, Err(CrawlError::TooManyPages { pages: 2, .. })));
}

#[tokio::test]
async fn crawl_resolves_the_digests_push_returned() {
    let (registry, expected) = seeded_registry().await;
    let client = RegistryClient::new(&config(&registry.url())).unwrap().with_page_size(2);
    let outcome = crawl(&client, &ImageFilter::all(), 4).await.unwrap();
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.images, expected);
    assert_eq!(client.resolve("team/web", "1.0").await.unwrap().media_type, OCI_INDEX);
}

#[tokio::test]
async fn filters_pick_repositories_and_tags() {
    let (registry, _) = seeded_registry().await;
    let mut c = config(&registry.url());
    c.repositories = vec!["library/*".into(), "team/*".into()];
    c.tags = vec!["1.*".into(), "1[12]*".into(), "latest".into()];
    c.exclude = vec!["team/web".into(), "*:*-debug".into()];
    let outcome = crawl(&RegistryClient::new(&c).unwrap(), &ImageFilter::new(&c).unwrap(), 2).await.unwrap();
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        keys(&outcome.images),
        [
            "library/alpine:1.0",
            "library/debian:11",
            "library/debian:12",
            "library/debian:latest",
            "team/api:1.0",
            "team/sub/tool:1.0"
        ]
    );
}

#[tokio::test]
async fn basic_auth_works_with_the_right_password_and_names_only_its_file_otherwise() {
    let registry = start(Registry::start_with_basic_auth("ci", "right-horse-battery"));
    let pushed = push_image(
        &registry,
        "team/app",
        "2.1",
        &image("basic", MediaTypes::Oci),
        OCI_MANIFEST,
        Some(("ci", "right-horse-battery")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let with_password = |password: &str| {
        let file = dir.path().join(format!("password-{}", password.len()));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let mut c = config(&registry.url());
        c.credentials =
            Some(CredentialSource { username: Some("ci".into()), password_file: Some(file), ..Default::default() });
        c
    };

    let good = RegistryClient::new(&with_password("right-horse-battery")).unwrap();
    let outcome = crawl(&good, &ImageFilter::all(), 2).await.unwrap();
    assert_eq!(outcome.images, [pushed]);
    assert!(!format!("{good:?}").contains("right-horse-battery"));

    let wrong = with_password("wrong-staple");
    let file = wrong.credentials.as_ref().and_then(|c| c.password_file.clone()).unwrap();
    let err = crawl(&RegistryClient::new(&wrong).unwrap(), &ImageFilter::all(), 2).await.unwrap_err();
    assert!(matches!(err, CrawlError::Auth { status: 401, .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("wrong-staple") && !text.contains("right-horse-battery"), "{text}");
    }
    let text = err.to_string();
    assert!(text.contains("check the registry's credentials") && text.contains(&file.display().to_string()), "{text}");

    let anonymous = RegistryClient::new(&config(&registry.url())).unwrap();
    match anonymous.catalog().await {
        Err(e @ CrawlError::Auth { .. }) => assert!(e.to_string().contains("add \"credentials\""), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn token_auth_fetches_tokens_and_crawls_named_repositories_without_the_catalog() {
    let registry = start(Registry::start_with_token_auth(&[("alice", "alice-pw")], &["public/app"]));
    let auth = Some(("alice", "alice-pw"));
    let public = push_image(&registry, "public/app", "1", &image("public", MediaTypes::Oci), OCI_MANIFEST, auth).await;
    let private =
        push_image(&registry, "private/app", "1", &image("private", MediaTypes::Oci), OCI_MANIFEST, auth).await;
    let tokens = registry.token_server().unwrap();
    let before = tokens.issued_to(Some("alice"));

    let mut c = config(&registry.url());
    std::env::set_var("TRAWL_CRAWL_TEST_ALICE_PW", "alice-pw");
    c.credentials = Some(CredentialSource {
        username: Some("alice".into()),
        password_env: Some("TRAWL_CRAWL_TEST_ALICE_PW".into()),
        ..Default::default()
    });
    let client = RegistryClient::new(&c).unwrap();
    assert_eq!(client.tags("private/app").await.unwrap(), ["1"]);
    assert_eq!(client.resolve("private/app", "1").await.unwrap(), private);
    assert!(tokens.issued_to(Some("alice")) > before, "the client fetched its own token");

    // This token server, like Docker Hub's, never grants `registry:catalog:*`.
    match client.catalog().await {
        Err(e @ CrawlError::Auth { .. }) => {
            let text = e.to_string();
            assert!(text.contains("TRAWL_CRAWL_TEST_ALICE_PW") && !text.contains("alice-pw"), "{text}");
            assert!(text.contains("registry:catalog:*"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    // With plain repository names the crawl does without it.
    c.repositories = vec!["public/app".into(), "private/app".into()];
    let outcome = crawl(&client, &ImageFilter::new(&c).unwrap(), 2).await.unwrap();
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.images, [private.clone(), public.clone()]);

    // Anonymous: the public repository resolves, the private one is a problem, not a failed crawl.
    let mut anonymous = config(&registry.url());
    anonymous.repositories = c.repositories.clone();
    let outcome =
        crawl(&RegistryClient::new(&anonymous).unwrap(), &ImageFilter::new(&anonymous).unwrap(), 2).await.unwrap();
    assert_eq!(outcome.images, [public]);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!((outcome.errors[0].repository.as_str(), outcome.errors[0].tag.as_deref()), ("private/app", None));
    assert!(matches!(outcome.errors[0].error, CrawlError::Auth { status: 401, .. }), "{:?}", outcome.errors[0]);
    assert!(tokens.issued_to(None) > 0, "anonymous tokens were asked for");
}

/// Every request a [`fake`] server saw: when, and the path with its query.
type Hits = Arc<Mutex<Vec<(Instant, Method, String)>>>;

/// A loopback HTTP server answering every request with `respond(request index, method, uri)`.
async fn fake<F>(respond: F) -> (String, Hits)
where
    F: Fn(usize, &Method, &Uri) -> Response + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits: Hits = Arc::default();
    let respond = Arc::new(respond);
    let seen = hits.clone();
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let (respond, seen) = (respond.clone(), seen.clone());
        async move {
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push((Instant::now(), method.clone(), uri.to_string()));
                seen.len() - 1
            };
            respond(n, &method, &uri)
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (url, hits)
}

fn json_page(body: String, link: Option<&str>) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link.parse().unwrap());
    }
    response
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_asked() {
    let (url, hits) = fake(|n, _, _| match n {
        0 => (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "slow down").into_response(),
        _ => json_page(r#"{"repositories": ["a"]}"#.into(), None),
    })
    .await;
    let client = RegistryClient::new(&config(&url)).unwrap().with_retry_policy(quick_retries());
    assert_eq!(client.catalog().await.unwrap(), ["a"]);
    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2);
    assert!(hits[1].0 - hits[0].0 >= Duration::from_secs(1), "retried before Retry-After");

    // A wait beyond the cap is not sat out: the crawl fails now, saying how long the registry asked for.
    let (url, hits) =
        fake(|_, _, _| (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "3600")], "").into_response()).await;
    let client = RegistryClient::new(&config(&url)).unwrap().with_retry_policy(quick_retries());
    match client.catalog().await {
        Err(e @ CrawlError::RateLimited { retry_after: Some(wait), .. }) => {
            assert_eq!(wait, Duration::from_secs(3600));
            assert!(e.to_string().contains("3600 s"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_twice_then_reported() {
    let (url, hits) = fake(|_, _, _| (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()).await;
    let client = RegistryClient::new(&config(&url)).unwrap().with_retry_policy(quick_retries());
    match client.resolve("library/debian", "12").await {
        Err(CrawlError::ServerError { status: 500, attempts: 3, request, .. }) => {
            assert_eq!(request, "HEAD /v2/library/debian/manifests/12")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.lock().unwrap().len(), 3);

    let closed = trawl_testkit::free_port().unwrap();
    let client =
        RegistryClient::new(&config(&format!("http://127.0.0.1:{closed}"))).unwrap().with_retry_policy(quick_retries());
    assert!(matches!(client.catalog().await, Err(CrawlError::Unreachable { .. })));
}

#[tokio::test]
async fn tag_lists_follow_next_links() {
    // docker-registry 2.8 ignores `n` on tags/list and sends every tag at once;
    // registries that honour it (distribution 3, Harbor, GHCR) page like this.
    const TAGS: [&str; 5] = ["a", "b", "c", "d", "e"];
    let (url, hits) = fake(|_, _, uri| {
        let query: Vec<(&str, &str)> =
            uri.query().unwrap_or("").split('&').filter_map(|kv| kv.split_once('=')).collect();
        let param = |name: &str| query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let n: usize = param("n").and_then(|n| n.parse().ok()).unwrap_or(TAGS.len());
        let start = param("last").and_then(|last| TAGS.iter().position(|t| *t == last)).map_or(0, |i| i + 1);
        let page = &TAGS[start..(start + n).min(TAGS.len())];
        let link = (start + n < TAGS.len())
            .then(|| format!(r#"</v2/app/tags/list?n={n}&last={}>; rel="next""#, page[page.len() - 1]));
        json_page(serde_json::json!({"name": "app", "tags": page}).to_string(), link.as_deref())
    })
    .await;
    let client = RegistryClient::new(&config(&url)).unwrap().with_page_size(2);
    assert_eq!(client.tags("app").await.unwrap(), TAGS);
    let paths: Vec<String> = hits.lock().unwrap().iter().map(|h| h.2.clone()).collect();
    assert_eq!(paths, ["/v2/app/tags/list?n=2", "/v2/app/tags/list?n=2&last=b", "/v2/app/tags/list?n=2&last=d"]);
}

#[tokio::test]
async fn hostile_pagination_and_bodies_are_refused() {
    let client = |url: &str| RegistryClient::new(&config(url)).unwrap().with_page_size(2).with_max_pages(5);

    // Page 2 links back to page 1.
    let (url, hits) = fake(|n, _, _| {
        let link =
            if n == 0 { r#"</v2/_catalog?last=a&n=2>; rel="next""# } else { r#"</v2/_catalog?n=2>; rel="next""# };
        json_page(r#"{"repositories": ["a"]}"#.into(), Some(link))
    })
    .await;
    match client(&url).catalog().await {
        Err(CrawlError::BadResponse { reason, .. }) => assert!(reason.contains("already read"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.lock().unwrap().len(), 2);

    // Every page links to a new one.
    let (url, _) = fake(|n, _, _| {
        json_page(format!(r#"{{"repositories": ["r{n}"]}}"#), Some(&format!("</v2/_catalog?last=r{n}&n=2>; rel=next")))
    })
    .await;
    assert!(matches!(client(&url).catalog().await, Err(CrawlError::TooManyPages { pages: 5, .. })));

    // A link to another host would carry the credentials there.
    let (url, hits) = fake(|_, _, _| {
        json_page(r#"{"repositories": []}"#.into(), Some(r#"<http://127.0.0.2:9/v2/_catalog>; rel="next""#))
    })
    .await;
    match client(&url).catalog().await {
        Err(CrawlError::BadResponse { reason, .. }) => assert!(reason.contains("leaves"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.lock().unwrap().len(), 1);

    // A 9 MiB page, and a non-JSON one.
    let (url, _) = fake(|_, _, _| json_page(format!(r#"{{"repositories": ["{}"]}}"#, "a".repeat(9 << 20)), None)).await;
    match client(&url).catalog().await {
        Err(CrawlError::BadResponse { reason, .. }) => assert!(reason.contains("larger than"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let (url, _) = fake(|_, _, _| "<html>not a registry</html>".into_response()).await;
    assert!(matches!(client(&url).catalog().await, Err(CrawlError::BadResponse { .. })));

    // `"tags": null` is an empty repository; names the registry lists are checked before use.
    let (url, _) = fake(|_, _, uri| match uri.path() {
        "/v2/_catalog" => json_page(r#"{"repositories": ["empty", "../../etc"]}"#.into(), None),
        _ => json_page(r#"{"name": "empty", "tags": null}"#.into(), None),
    })
    .await;
    let c = client(&url);
    assert_eq!(c.tags("empty").await.unwrap(), Vec::<String>::new());
    let outcome = crawl(&c, &ImageFilter::all(), 2).await.unwrap();
    assert!(outcome.images.is_empty());
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert!(matches!(outcome.errors[0].error, CrawlError::InvalidName { what: "repository", .. }));
}

#[tokio::test]
async fn a_head_without_digest_falls_back_to_hashing_the_manifest() {
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "0".repeat(64)), "size": 2},
        "layers": []
    }))
    .unwrap();
    let expected = sha256_digest(&manifest);
    let body = manifest.clone();
    let (url, hits) = fake(move |_, method, _| {
        if *method == Method::HEAD {
            // No Docker-Content-Digest, and a generic content type.
            ([(header::CONTENT_TYPE, "application/json")], "").into_response()
        } else {
            ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
        }
    })
    .await;
    let resolved = RegistryClient::new(&config(&url)).unwrap().resolve("app", "1").await.unwrap();
    assert_eq!((resolved.digest.as_str(), resolved.media_type.as_str()), (expected.as_str(), OCI_MANIFEST));
    let methods: Vec<Method> = hits.lock().unwrap().iter().map(|h| h.1.clone()).collect();
    assert_eq!(methods, [Method::HEAD, Method::GET]);
}
