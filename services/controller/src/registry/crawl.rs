//! One crawl of one registry: catalog → tags of each wanted repository →
//! digest of each wanted tag.
//!
//! Only the repository list is all-or-nothing: without it there is nothing to
//! crawl. Past that, a repository or tag that fails becomes a
//! [`CrawlProblem`] in the outcome and the crawl goes on, because one deleted
//! or forbidden repository must not hide the rest of a registry from scanning.

use futures::stream::{self, StreamExt};

use super::{CrawlError, ImageFilter, RegistryClient, ResolvedTag};

/// What a crawl found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlOutcome {
    /// Every wanted tag that resolved, sorted by repository and tag.
    pub images: Vec<ResolvedTag>,
    /// The repositories and tags that could not be listed or resolved, sorted likewise.
    pub errors: Vec<CrawlProblem>,
}

/// A repository (`tag: None`: its tags could not be listed) or tag that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawlProblem {
    /// The repository.
    pub repository: String,
    /// The tag, when resolving it failed.
    pub tag: Option<String>,
    /// Why.
    pub error: CrawlError,
}

impl std::fmt::Display for CrawlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{}:{tag}: {}", self.repository, self.error),
            None => write!(f, "{}: {}", self.repository, self.error),
        }
    }
}

/// Crawls the registry behind `client`, keeping what `filter` wants, with at
/// most `concurrency` requests in flight (0 counts as 1).
///
/// If the catalog is refused (401/403) or absent (404) and every
/// `repositories` entry is a plain name, those names are crawled instead:
/// Docker Hub, GHCR and most token-auth registries never grant the catalog.
pub async fn crawl(
    client: &RegistryClient,
    filter: &ImageFilter,
    concurrency: usize,
) -> Result<CrawlOutcome, CrawlError> {
    let concurrency = concurrency.max(1);
    let repositories = match client.catalog().await {
        Ok(all) => all.into_iter().filter(|r| filter.wants_repository(r)).collect(),
        Err(e @ (CrawlError::Auth { .. } | CrawlError::NotFound { .. })) => match filter.literal_repositories() {
            Some(names) => {
                tracing::info!(registry = client.registry(), error = %e, "catalog unavailable; crawling the configured repositories");
                names.to_vec()
            }
            None => return Err(e),
        },
        Err(e) => return Err(e),
    };

    let mut outcome = CrawlOutcome::default();
    let listed: Vec<(String, Result<Vec<String>, CrawlError>)> = stream::iter(repositories)
        .map(|repository| async move {
            let tags = client.tags(&repository).await;
            (repository, tags)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut wanted = Vec::new();
    for (repository, tags) in listed {
        match tags {
            Ok(tags) => wanted
                .extend(tags.into_iter().filter(|t| filter.wants_tag(&repository, t)).map(|t| (repository.clone(), t))),
            Err(error) => outcome.errors.push(CrawlProblem { repository, tag: None, error }),
        }
    }

    let resolved: Vec<(String, String, Result<ResolvedTag, CrawlError>)> = stream::iter(wanted)
        .map(|(repository, tag)| async move {
            let result = client.resolve(&repository, &tag).await;
            (repository, tag, result)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for (repository, tag, result) in resolved {
        match result {
            Ok(image) => outcome.images.push(image),
            Err(error) => outcome.errors.push(CrawlProblem { repository, tag: Some(tag), error }),
        }
    }

    outcome.images.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
    outcome.errors.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
    tracing::info!(
        registry = client.registry(),
        images = outcome.images.len(),
        problems = outcome.errors.len(),
        "crawl finished"
    );
    Ok(outcome)
}
