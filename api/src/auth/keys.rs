//! API keys: `nve_<prefix>_<secret>`. The prefix is stored in clear (listing, lookup); the whole
//! key only as SHA-256, since 256 random bits need no slow hash.

use sha2::{Digest, Sha256};

pub const KEY_MARKER: &str = "nve_";

pub struct NewKey {
    pub prefix: String,
    pub key: String,
    pub hash: String,
}

pub fn generate() -> NewKey {
    let prefix = hex::encode(rand::random::<[u8; 6]>());
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let key = format!("{KEY_MARKER}{prefix}_{secret}");
    let hash = sha256_hex(&key);
    NewKey { prefix, key, hash }
}

/// The prefix of something shaped like a key, or `None`.
pub fn prefix_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(KEY_MARKER)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12 && secret.len() == 64).then_some(prefix)
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Constant-time comparison of two hex digests.
pub fn digest_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash() {
        let k = generate();
        assert_eq!(prefix_of(&k.key), Some(k.prefix.as_str()));
        assert!(digest_eq(&sha256_hex(&k.key), &k.hash));
        assert!(prefix_of("nve_short_x").is_none());
        assert!(prefix_of("eyJhbGciOi.x.y").is_none());
        assert_ne!(generate().key, k.key);
    }
}
