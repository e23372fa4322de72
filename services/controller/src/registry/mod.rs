//! Crawling a registry: repositories, tags and manifest digests.
