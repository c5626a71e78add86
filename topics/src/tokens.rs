//! Bearer tokens as every bluelight HTTP service keeps them: only the SHA-256 of each token is
//! stored, and a presented token is compared with every stored hash in constant time, so timing
//! says nothing about which (or whether any) credential matched.

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
    entries: impl IntoIterator<Item = (&'a T, &'a [u8; 32])>,
    token: &str,
) -> Option<&'a T> {
    let presented = Sha256::digest(token.as_bytes());
    let mut found = None;
    for (entry, hash) in entries {
        if bool::from(presented.as_slice().ct_eq(hash)) {
            found = Some(entry);
        }
    }
    found
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
}
