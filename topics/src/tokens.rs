//! Bearer tokens as every bluelight HTTP service keeps them: only the SHA-256 of each token is
//! stored, and a presented token is compared with every stored hash in constant time, so timing
//! says nothing about which (or whether any) credential matched.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The hex SHA-256 of a token, as credential files store it (`printf %s "$TOKEN" | sha256sum`).
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The 32 bytes of a hex SHA-256, or `None` when it is not 64 hex digits.
pub fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// The entry whose hash matches `token`. Every hash is compared, whatever matched before.
pub fn authenticate<'a, T>(
    entries: impl IntoIterator<Item = (T, &'a [u8; 32])>,
    token: &str,
) -> Option<T> {
    let presented = Sha256::digest(token.as_bytes());
    let mut found = None;
    for (entry, hash) in entries {
        if bool::from(presented.as_slice().ct_eq(hash)) {
            found = Some(entry);
        }
    }
    found
}

/// The token of an `Authorization` header value `Bearer <token>` (scheme in any case).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An entry of a credentials file (gateway users, ingest sources).
pub trait Credential {
    /// Names the entry in error messages.
    fn name(&self) -> &str;
    /// The hex SHA-256 of its token.
    fn token_sha256(&self) -> &str;
    /// For demo files only: the token in clear, which must match the hash.
    fn demo_token(&self) -> Option<&str>;
}

/// Checked credentials: every hash well formed, demo tokens matching their hashes, no token or
/// name used twice, at least one entry.
#[derive(Clone)]
pub struct Credentials<T> {
    entries: Vec<(T, [u8; 32])>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Credentials<T> {
    /// The entries as they print themselves; never the hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(e, _)| e))
            .finish()
    }
}

impl<T: Credential> Credentials<T> {
    /// Checks the entries of `file`; `kind` is the TOML table name (`user`, `source`) and
    /// `nobody` what no entry would mean ("sign in", "publish").
    pub fn check(entries: Vec<T>, file: &str, kind: &str, nobody: &str) -> Result<Self, String> {
        let mut checked: Vec<(T, [u8; 32])> = Vec::with_capacity(entries.len());
        for e in entries {
            let name = e.name();
            let hash = parse_hash(e.token_sha256()).ok_or_else(|| {
                format!("{file}: {kind} {name}: token_sha256 must be 64 hex digits")
            })?;
            if let Some(demo) = e.demo_token()
                && token_hash(demo) != e.token_sha256().to_ascii_lowercase()
            {
                return Err(format!(
                    "{file}: {kind} {name}: demo_token does not match token_sha256"
                ));
            }
            if checked.iter().any(|(_, h)| *h == hash) {
                return Err(format!(
                    "{file}: {kind} {name} has the same token as another {kind}; each needs its own"
                ));
            }
            if checked.iter().any(|(o, _)| o.name() == name) {
                return Err(format!("{file}: {kind} {name} is listed twice"));
            }
            checked.push((e, hash));
        }
        if checked.is_empty() {
            return Err(format!(
                "{file}: no [[{kind}]] entries; nobody could {nobody}"
            ));
        }
        Ok(Credentials { entries: checked })
    }

    /// The entry a token belongs to, compared in constant time against every hash.
    pub fn authenticate(&self, token: &str) -> Option<&T> {
        self.authenticate_indexed(token).map(|(_, e)| e)
    }

    /// The entry a token belongs to and its position (for [`RateLimits::admit`]).
    pub fn authenticate_indexed(&self, token: &str) -> Option<(usize, &T)> {
        authenticate(
            self.entries
                .iter()
                .enumerate()
                .map(|(i, (e, h))| ((i, e), h)),
            token,
        )
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(e, _)| e)
    }
}

/// Request rate limits per credential: a token bucket for each entry of a credentials file, so
/// the state is as bounded as the file, refilled at `per_second` and holding at most `burst`
/// requests. One caller's flood is answered 429 without touching anyone else's allowance.
#[derive(Debug)]
pub struct RateLimits {
    per_second: f64,
    burst: f64,
    buckets: Vec<Mutex<Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimits {
    /// `per_second` 0 turns the limit off.
    pub fn new(credentials: usize, per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        let now = Instant::now();
        RateLimits {
            per_second,
            burst,
            buckets: (0..credentials)
                .map(|_| {
                    Mutex::new(Bucket {
                        tokens: burst,
                        at: now,
                    })
                })
                .collect(),
        }
    }

    /// `Retry-After` in whole seconds for a wait [`RateLimits::admit`] gave: rounded up, at least 1.
    pub fn retry_after_secs(wait: Duration) -> u32 {
        wait.as_secs_f64().ceil().max(1.0) as u32
    }

    /// Takes one request from entry `i`'s allowance; when there is none, how long until there
    /// is (for `Retry-After`).
    pub fn admit(&self, i: usize) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let Some(bucket) = self.buckets.get(i) else {
            return Ok(());
        };
        let mut b = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let refilled = now.duration_since(b.at).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refilled).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_match_in_full_only() {
        let h = token_hash("s3cret");
        let bytes = parse_hash(&h).expect("64 hex digits");
        let entries = [("a", bytes)];
        let found = authenticate(entries.iter().map(|(n, h)| (n, h)), "s3cret");
        assert_eq!(found, Some(&"a"));
        assert!(authenticate(entries.iter().map(|(n, h)| (n, h)), "s3cre").is_none());
        assert!(parse_hash("abc").is_none());
        assert!(parse_hash(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn a_credential_past_its_burst_waits_and_others_do_not() {
        let limits = RateLimits::new(2, 1.0, 3);
        for _ in 0..3 {
            assert!(limits.admit(0).is_ok());
        }
        let wait = limits.admit(0).expect_err("the burst is spent");
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(
            limits.admit(1).is_ok(),
            "another credential has its own allowance"
        );
        let off = RateLimits::new(1, 0.0, 1);
        assert!((0..100).all(|_| off.admit(0).is_ok()));
    }

    #[test]
    fn bearer_headers_give_their_token() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
