//! Why a queued scan failed, as a [`FailureKind`], and what to do with the
//! task: hand it back for a later retry, or give up on it for good.
//!
//! The kinds follow [`trawl_image::ImageError`]'s variants. Registry answers
//! worth a retry have their own: [`ImageError::RateLimited`] (429, with the
//! registry's `Retry-After` when trawl-image could see it — the registry
//! client it uses hides response headers today, so mostly not) and
//! [`ImageError::RegistryUnavailable`] (5xx). Everything else a registry or
//! the Docker Engine API answers is folded into [`ImageError::Registry`]
//! with the status or the OCI error code in its reason (`HTTP 408: …`,
//! `Toomanyrequests: …`), and a connection that breaks while a layer
//! downloads into [`ImageError::CorruptLayer`] with a reason starting
//! `download failed`; those texts are all that is left to tell a rate limit
//! from a server error, or a network drop from a corrupt layer, so they are
//! still read here.
//!
//! A rate-limited task is handed back after the registry's `Retry-After`
//! (between [`MIN_RATE_LIMIT_DELAY`] and [`MAX_RETRY_DELAY`]); without one,
//! and for every other transient failure, after the exponential delay.

use crate::analyze::AnalyzeError;
use std::time::Duration;
use trawl_catalog::WalkError;
use trawl_image::ImageError;
use trawl_protocol::FailureKind;

/// Longest delay before a transient failure is retried.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);
/// Shortest delay after a rate limit, whatever `Retry-After` says (`0` would redeliver at once).
pub const MIN_RATE_LIMIT_DELAY: Duration = Duration::from_secs(1);

/// A failure's kind and, for rate limits, how long the registry asked to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// What went wrong.
    pub kind: FailureKind,
    /// The registry's `Retry-After`, when it gave one.
    pub retry_after: Option<Duration>,
}

impl Classified {
    /// A failure of `kind` without a retry hint.
    pub fn of(kind: FailureKind) -> Classified {
        Classified { kind, retry_after: None }
    }
}

/// The kind of an analysis failure.
pub fn classify(e: &AnalyzeError) -> Classified {
    if let Some(image) = e.image_error() {
        return classify_image(image);
    }
    match e {
        // An archive entry escaping the root: the layer itself is hostile or broken.
        AnalyzeError::Layer { source: WalkError::UnsafePath { .. }, .. } => Classified::of(FailureKind::Corrupt),
        AnalyzeError::Layer { source: WalkError::Read(_), .. } => Classified::of(FailureKind::Corrupt),
        AnalyzeError::Image(image) => classify_image(image),
        // Scratch space or a task join failed: a problem of this scanner, worth a retry elsewhere.
        AnalyzeError::Io(_) => Classified::of(FailureKind::Internal),
    }
}

/// The kind of an image access failure.
pub fn classify_image(e: &ImageError) -> Classified {
    let kind = match e {
        // The controller queued something that is not a pullable reference.
        ImageError::InvalidReference { .. } => FailureKind::BadTask,
        ImageError::Unauthorized { .. } => FailureKind::Auth,
        ImageError::NotFound { .. } => FailureKind::NotFound,
        ImageError::Unreachable { .. } | ImageError::RegistryUnavailable { .. } => FailureKind::RegistryUnavailable,
        ImageError::RateLimited { retry_after, .. } => {
            return Classified { kind: FailureKind::RateLimited, retry_after: *retry_after }
        }
        ImageError::Registry { reason, .. } => return classify_registry_reason(reason),
        ImageError::NotAnImage { .. } => FailureKind::NotAnImage,
        ImageError::NoMatchingPlatform { .. } | ImageError::Unsupported(_) => FailureKind::Unsupported,
        ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. } => FailureKind::DigestMismatch,
        ImageError::Malformed { .. } => FailureKind::Corrupt,
        ImageError::LimitExceeded { .. } => FailureKind::TooLarge,
        ImageError::CorruptLayer { reason, .. } if reason.starts_with("download failed") => {
            FailureKind::RegistryUnavailable
        }
        ImageError::CorruptLayer { .. } => FailureKind::Corrupt,
        ImageError::Io { .. } => FailureKind::Internal,
    };
    Classified::of(kind)
}

/// Reads a registry error's reason: `HTTP <status>: …` for plain HTTP
/// errors, `<OCI error code>: …` (one per error, `; `-separated) for
/// registries that answer with an OCI error envelope, anything else for
/// transport errors.
fn classify_registry_reason(reason: &str) -> Classified {
    if let Some(status) = reason.strip_prefix("HTTP ").and_then(|r| r.get(..3)).and_then(|s| s.parse::<u16>().ok()) {
        let kind = match status {
            429 => FailureKind::RateLimited,
            401 | 403 => FailureKind::Auth,
            404 | 410 => FailureKind::NotFound,
            408 | 500..=599 => FailureKind::RegistryUnavailable,
            // Any other client error is the registry refusing what was asked, the same way next time.
            400..=499 => FailureKind::Unsupported,
            _ => FailureKind::RegistryUnavailable,
        };
        return Classified::of(kind);
    }
    let codes: Vec<&str> = reason.split("; ").filter_map(|e| e.split_once(':').map(|(code, _)| code.trim())).collect();
    let has = |names: &[&str]| codes.iter().any(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)));
    let kind = if has(&["Toomanyrequests"]) {
        FailureKind::RateLimited
    } else if has(&["DigestInvalid", "SizeInvalid"]) {
        FailureKind::DigestMismatch
    } else if has(&["ManifestInvalid", "ManifestBlobUnknown"]) {
        FailureKind::Corrupt
    } else if has(&["NameInvalid", "TagInvalid"]) {
        FailureKind::BadTask
    } else if has(&["Unsupported"]) {
        FailureKind::Unsupported
    } else {
        // Transport errors (a reset mid-body) and codes the spec does not define: try again later.
        FailureKind::RegistryUnavailable
    };
    Classified::of(kind)
}

/// What to do with a task whose scan failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hand it back (`-NAK`) to be delivered again after this delay.
    Retry(Duration),
    /// Give up: publish a failed result and a dead letter, then terminate it.
    Bury,
}

/// Retries transient failures while deliveries remain: after the registry's
/// `Retry-After` for rate limits (at least [`MIN_RATE_LIMIT_DELAY`]), else
/// after `base × 2^(delivered−1)`, at most [`MAX_RETRY_DELAY`] either way.
/// `max_deliver` ≤ 0 means unlimited deliveries.
pub fn decide(failure: Classified, delivered: u64, max_deliver: i64, base: Duration) -> Decision {
    let deliveries_left = max_deliver <= 0 || delivered < max_deliver as u64;
    if !failure.kind.is_transient() || !deliveries_left {
        return Decision::Bury;
    }
    let delay = match failure.retry_after {
        Some(after) if failure.kind == FailureKind::RateLimited => after.max(MIN_RATE_LIMIT_DELAY),
        _ => {
            let exponent = u32::try_from(delivered.saturating_sub(1)).unwrap_or(u32::MAX).min(31);
            base.saturating_mul(1u32 << exponent)
        }
    };
    Decision::Retry(delay.min(MAX_RETRY_DELAY))
}

/// The delay to put in a `-NAK` so that the task comes back after `wanted`.
///
/// When a consumer has a `backoff` list, nats-server does not wait a NAK's
/// delay from now: it treats the NAK as if the message had been delivered
/// `ack_wait − delay` ago and redelivers once the *backoff* entry for this
/// delivery has passed, so the task comes back after
/// `delay + backoff[delivered−1] − ack_wait` (measured with nats-server
/// 2.15). The offset is taken off here; `nats/consumers/` sets no backoff
/// (docs/nats.md), so there the delay is sent as it is. Returns the delay to
/// send and when the task is expected back, which is later than `wanted` only
/// when the offset alone exceeds it.
pub fn nak_delay(wanted: Duration, delivered: u64, ack_wait: Duration, backoff: &[Duration]) -> (Duration, Duration) {
    let Some(last) = backoff.len().checked_sub(1) else { return (wanted, wanted) };
    let index = usize::try_from(delivered.saturating_sub(1)).unwrap_or(usize::MAX).min(last);
    let deadline = backoff[index];
    // Returned at `sent + deadline − ack_wait`; solve for `sent`.
    let sent = (wanted + ack_wait).saturating_sub(deadline);
    // A zero delay would be read as no delay at all (an immediate redelivery).
    let sent = sent.max(Duration::from_millis(1));
    (sent, (sent + deadline).saturating_sub(ack_wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(reason: &str) -> FailureKind {
        classify_image(&ImageError::Registry { registry: "r".into(), reference: "r/a:1".into(), reason: reason.into() })
            .kind
    }

    #[test]
    fn registry_answers_map_to_what_an_operator_would_do() {
        assert_eq!(registry("HTTP 429: slow down"), FailureKind::RateLimited);
        assert_eq!(registry("Toomanyrequests: You have reached your pull rate limit"), FailureKind::RateLimited);
        assert_eq!(registry("HTTP 503: unavailable"), FailureKind::RegistryUnavailable);
        assert_eq!(registry("HTTP 500: "), FailureKind::RegistryUnavailable);
        assert_eq!(registry("HTTP 403: no"), FailureKind::Auth);
        assert_eq!(registry("HTTP 400: bad request"), FailureKind::Unsupported);
        assert_eq!(registry("Other(\"X\"): a; DigestInvalid: digest does not match"), FailureKind::DigestMismatch);
        assert_eq!(registry("ManifestInvalid: bad"), FailureKind::Corrupt);
        assert_eq!(registry("error decoding response body: connection reset"), FailureKind::RegistryUnavailable);
    }

    #[test]
    fn rate_limits_keep_the_registrys_delay_and_server_errors_are_unavailable() {
        let limited = |retry_after| ImageError::RateLimited {
            registry: "r".into(),
            reference: "r/a:1".into(),
            retry_after,
            reason: "HTTP 429: slow down".into(),
        };
        assert_eq!(
            classify_image(&limited(Some(Duration::from_secs(3)))),
            Classified { kind: FailureKind::RateLimited, retry_after: Some(Duration::from_secs(3)) }
        );
        assert_eq!(classify_image(&limited(None)), Classified::of(FailureKind::RateLimited));
        let through_a_layer = AnalyzeError::Image(limited(Some(Duration::from_secs(9))));
        assert_eq!(classify(&through_a_layer).retry_after, Some(Duration::from_secs(9)));
        let down = ImageError::RegistryUnavailable {
            registry: "r".into(),
            reference: "r/a:1".into(),
            status: 503,
            reason: "maintenance".into(),
        };
        assert_eq!(classify_image(&down), Classified::of(FailureKind::RegistryUnavailable));
    }

    #[test]
    fn image_errors_map_by_variant() {
        let kind = |e: ImageError| classify(&AnalyzeError::Image(e)).kind;
        assert_eq!(kind(ImageError::Unauthorized { registry: "r".into(), reference: "x".into() }), FailureKind::Auth);
        assert_eq!(kind(ImageError::NotFound { reference: "x".into() }), FailureKind::NotFound);
        assert_eq!(
            kind(ImageError::Unreachable { registry: "r".into(), reason: "refused".into() }),
            FailureKind::RegistryUnavailable
        );
        assert_eq!(
            kind(ImageError::NotAnImage {
                reference: "x".into(),
                what: "it is a Helm chart".into(),
                media_type: "application/vnd.cncf.helm.config.v1+json".into()
            }),
            FailureKind::NotAnImage
        );
        assert_eq!(
            kind(ImageError::DigestMismatch { what: "layer".into(), expected: "a".into(), actual: "b".into() }),
            FailureKind::DigestMismatch
        );
        assert_eq!(
            kind(ImageError::SizeMismatch { what: "layer".into(), expected: 2, actual: 1 }),
            FailureKind::DigestMismatch
        );
        assert_eq!(
            kind(ImageError::LimitExceeded { what: "layer".into(), reason: "ratio".into(), flag: "--x" }),
            FailureKind::TooLarge
        );
        assert_eq!(
            kind(ImageError::CorruptLayer { layer: "l".into(), reason: "bad gzip".into() }),
            FailureKind::Corrupt
        );
        assert_eq!(
            kind(ImageError::CorruptLayer { layer: "l".into(), reason: "download failed: reset".into() }),
            FailureKind::RegistryUnavailable
        );
        let unsafe_path =
            AnalyzeError::Layer { layer: "l".into(), source: WalkError::UnsafePath { path: "../etc".into() } };
        assert_eq!(classify(&unsafe_path).kind, FailureKind::Corrupt);
        // A typed image error carried inside a walk's I/O error is classified as itself.
        let wrapped = std::io::Error::other(ImageError::NotFound { reference: "x".into() });
        let layer = AnalyzeError::Layer { layer: "l".into(), source: WalkError::Read(wrapped) };
        assert_eq!(classify(&layer).kind, FailureKind::NotFound);
    }

    #[test]
    fn transient_failures_back_off_exponentially_until_the_last_delivery() {
        let base = Duration::from_secs(30);
        let unavailable = Classified::of(FailureKind::RegistryUnavailable);
        assert_eq!(decide(unavailable, 1, 5, base), Decision::Retry(Duration::from_secs(30)));
        assert_eq!(decide(unavailable, 2, 5, base), Decision::Retry(Duration::from_secs(60)));
        assert_eq!(decide(unavailable, 4, 5, base), Decision::Retry(Duration::from_secs(240)));
        assert_eq!(decide(unavailable, 5, 5, base), Decision::Bury);
        assert_eq!(decide(unavailable, 40, -1, base), Decision::Retry(MAX_RETRY_DELAY));
        let limited = Classified { kind: FailureKind::RateLimited, retry_after: Some(Duration::from_secs(7)) };
        assert_eq!(decide(limited, 3, 5, base), Decision::Retry(Duration::from_secs(7)));
        // The registry's delay, not the exponential one, but never zero and never past the cap.
        let asked = |secs| Classified { kind: FailureKind::RateLimited, retry_after: Some(Duration::from_secs(secs)) };
        assert_eq!(decide(asked(0), 1, 5, base), Decision::Retry(MIN_RATE_LIMIT_DELAY));
        assert_eq!(decide(asked(86_400), 1, 5, base), Decision::Retry(MAX_RETRY_DELAY));
        assert_eq!(decide(asked(1), 5, 5, base), Decision::Bury);
        // Without Retry-After a rate limit backs off like any transient failure.
        let unsaid = Classified::of(FailureKind::RateLimited);
        assert_eq!(decide(unsaid, 3, 5, base), Decision::Retry(Duration::from_secs(120)));
        // A Retry-After on another kind is not a reason to skip the backoff.
        let odd = Classified { kind: FailureKind::RegistryUnavailable, retry_after: Some(Duration::from_secs(1)) };
        assert_eq!(decide(odd, 2, 5, base), Decision::Retry(Duration::from_secs(60)));
        assert_eq!(decide(Classified::of(FailureKind::DigestMismatch), 1, 5, base), Decision::Bury);
        assert_eq!(decide(Classified::of(FailureKind::Auth), 1, 5, base), Decision::Bury);
    }

    #[test]
    fn nak_delays_take_the_consumers_backoff_into_account() {
        let s = Duration::from_secs;
        let backoff = [s(30), s(60), s(120), s(300)];
        // No backoff: the delay is the delay.
        assert_eq!(nak_delay(s(45), 2, s(30), &[]), (s(45), s(45)));
        // First delivery: backoff[0] is ack_wait, nothing to correct.
        assert_eq!(nak_delay(s(30), 1, s(30), &backoff), (s(30), s(30)));
        // Second: the server adds 60 − 30 s, so 30 s are sent for 60.
        assert_eq!(nak_delay(s(60), 2, s(30), &backoff), (s(30), s(60)));
        // Fourth: 270 s of offset exceed the 240 s wanted; the task returns after 270 s.
        assert_eq!(nak_delay(s(240), 4, s(30), &backoff).1, s(270) + Duration::from_millis(1));
        // Past the list, the last entry applies.
        assert_eq!(nak_delay(s(600), 9, s(30), &backoff), (s(330), s(600)));
    }
}
