//! Password hashing with Argon2id (the library's defaults: 19 MiB, 2 passes), off the async
//! threads because each hash deliberately costs tens of milliseconds of CPU.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::ApiError;

pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| ApiError::internal(format!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("argon2: {e}")))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Verifies `password` against a stored hash. With `None` (unknown user) it still spends the
/// time of one verification, so response timing does not reveal which e-mail addresses exist.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| ApiError::internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && stored != DUMMY_HASH)
    })
    .await
    .map_err(ApiError::internal)?
}

/// An Argon2id hash with the default parameters of a password nobody has.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2nH5V0Nn2gcvbV1VG3jnqxZzT2SItxf/Mq0YrJmPzXg";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .expect("verify")
        );
        assert!(!verify("wrong horse".into(), Some(h)).await.expect("verify"));
        assert!(!verify("anything".into(), None).await.expect("dummy"));
    }
}
