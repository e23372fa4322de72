//! Which repositories and tags of a registry a crawl keeps.
//!
//! The globs come from [`RegistryConfig`]: `repositories` and `tags` include
//! (empty means all), `exclude` removes. An `exclude` entry with a `:` is a
//! `repo:tag` glob (`*:*-debug`); one without is a repository glob
//! (`team/*`). Neither repository names nor tags can contain `:`, so the
//! split is unambiguous.
//!
//! `*` and `?` match `/` too: operators write `library/*` meaning "everything
//! under library", and a lone `*` meaning "everything", including nested
//! names like `team/sub/app`. Path-aware globbing would make `*` silently skip
//! nested repositories, which for a vulnerability scanner is the worse surprise.
//! Matching is case-sensitive (repository names are lowercase; tags are not).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use trawl_protocol::RegistryConfig;

use super::CrawlError;

/// Compiled repository and tag globs of one registry configuration.
#[derive(Debug, Clone)]
pub struct ImageFilter {
    repositories: Option<GlobSet>,
    tags: Option<GlobSet>,
    exclude_repositories: GlobSet,
    exclude_tags: GlobSet,
    // When every include is a plain name, the crawl can do without the catalog
    // (registries that refuse `/v2/_catalog`, like Docker Hub).
    literal_repositories: Option<Vec<String>>,
}

impl ImageFilter {
    /// Compiles the configuration's `repositories`, `tags` and `exclude` globs.
    pub fn new(config: &RegistryConfig) -> Result<ImageFilter, CrawlError> {
        let compile = |field: &str, globs: &[&String]| -> Result<GlobSet, CrawlError> {
            let mut set = GlobSetBuilder::new();
            for glob in globs {
                let compiled =
                    GlobBuilder::new(glob).literal_separator(false).backslash_escape(true).build().map_err(|e| {
                        CrawlError::Config {
                            registry: config.name.clone(),
                            reason: format!("{field}: glob {glob:?}: {e}"),
                        }
                    })?;
                set.add(compiled);
            }
            set.build()
                .map_err(|e| CrawlError::Config { registry: config.name.clone(), reason: format!("{field}: {e}") })
        };
        let include = |field: &str, globs: &[String]| -> Result<Option<GlobSet>, CrawlError> {
            if globs.is_empty() {
                return Ok(None);
            }
            compile(field, &globs.iter().collect::<Vec<_>>()).map(Some)
        };
        let (exclude_tags, exclude_repositories): (Vec<&String>, Vec<&String>) =
            config.exclude.iter().partition(|g| g.contains(':'));
        let mut filter = ImageFilter {
            repositories: include("repositories", &config.repositories)?,
            tags: include("tags", &config.tags)?,
            exclude_repositories: compile("exclude", &exclude_repositories)?,
            exclude_tags: compile("exclude", &exclude_tags)?,
            literal_repositories: None,
        };
        let is_literal = |g: &String| !g.contains(['*', '?', '[', ']', '{', '}', '\\']);
        if !config.repositories.is_empty() && config.repositories.iter().all(is_literal) {
            let mut names: Vec<String> =
                config.repositories.iter().filter(|r| filter.wants_repository(r)).cloned().collect();
            names.sort();
            names.dedup();
            filter.literal_repositories = Some(names);
        }
        Ok(filter)
    }

    /// A filter that keeps every repository and tag.
    pub fn all() -> ImageFilter {
        ImageFilter {
            repositories: None,
            tags: None,
            exclude_repositories: GlobSet::empty(),
            exclude_tags: GlobSet::empty(),
            literal_repositories: None,
        }
    }

    /// Whether the crawl lists the tags of `repository`.
    pub fn wants_repository(&self, repository: &str) -> bool {
        self.repositories.as_ref().is_none_or(|set| set.is_match(repository))
            && !self.exclude_repositories.is_match(repository)
    }

    /// Whether the crawl resolves `repository:tag` (implies [`Self::wants_repository`]).
    pub fn wants_tag(&self, repository: &str, tag: &str) -> bool {
        self.wants_repository(repository)
            && self.tags.as_ref().is_none_or(|set| set.is_match(tag))
            && !self.exclude_tags.is_match(format!("{repository}:{tag}"))
    }

    /// The wanted repositories when every `repositories` entry is a plain name (no glob), sorted.
    pub fn literal_repositories(&self) -> Option<&[String]> {
        self.literal_repositories.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(repositories: &[&str], tags: &[&str], exclude: &[&str]) -> ImageFilter {
        let mut c = RegistryConfig::new("r", "https://r");
        c.repositories = repositories.iter().map(|s| s.to_string()).collect();
        c.tags = tags.iter().map(|s| s.to_string()).collect();
        c.exclude = exclude.iter().map(|s| s.to_string()).collect();
        ImageFilter::new(&c).unwrap()
    }

    #[test]
    fn empty_globs_keep_everything() {
        let f = filter(&[], &[], &[]);
        assert!(f.wants_repository("a/b/c") && f.wants_tag("a/b/c", "anything"));
        assert!(f.literal_repositories().is_none());
        assert!(ImageFilter::all().wants_tag("x", "y"));
    }

    #[test]
    fn star_crosses_slashes() {
        let f = filter(&["library/*"], &[], &[]);
        assert!(f.wants_repository("library/debian"));
        assert!(f.wants_repository("library/sub/app"));
        assert!(!f.wants_repository("team/app"));
        assert!(filter(&["*"], &[], &[]).wants_repository("a/b"));
    }

    #[test]
    fn tags_and_excludes() {
        let f = filter(&[], &["v*", "latest"], &["team/*", "*:*-debug", "app:v0.*"]);
        assert!(f.wants_tag("app", "v1.2"));
        assert!(f.wants_tag("app", "latest"));
        assert!(!f.wants_tag("app", "1.2"), "not included");
        assert!(!f.wants_tag("app", "v1-debug"), "excluded repo:tag");
        assert!(!f.wants_tag("app", "v0.9"));
        assert!(f.wants_tag("other", "v0.9"));
        assert!(f.wants_repository("app"), "a repo:tag exclude leaves the repository");
        assert!(!f.wants_repository("team/api"));
        assert!(!f.wants_tag("team/api", "v1"));
    }

    #[test]
    fn plain_names_are_listed_without_the_excluded() {
        let f = filter(&["b/app", "a/app", "b/app", "c/gone"], &[], &["c/*"]);
        assert_eq!(f.literal_repositories(), Some(&["a/app".to_string(), "b/app".to_string()][..]));
        assert!(filter(&["a/app", "b/*"], &[], &[]).literal_repositories().is_none());
    }

    #[test]
    fn bad_globs_are_config_errors() {
        let mut c = RegistryConfig::new("r", "https://r");
        c.tags = vec!["v[1".into()];
        match ImageFilter::new(&c) {
            Err(CrawlError::Config { reason, .. }) => assert!(reason.contains("v[1"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
