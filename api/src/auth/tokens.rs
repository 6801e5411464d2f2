//! Access tokens: HS256 JWTs with `sub`, `exp`, `iat`, `iss`, `aud` and `typ`, all required and
//! checked. Only HS256 is accepted, so `alg: none` and algorithm-confusion tokens fail.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ErrorKind};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    iat: i64,
    iss: String,
    aud: String,
    /// Guards against a refresh or other token type ever being accepted as an access token.
    typ: String,
}

const ACCESS: &str = "access";

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl_secs: u64) -> Result<Self, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        validation.validate_exp = true;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret).map_err(|e| e.to_string())?,
            decoding: DecodingKey::from_secret(secret).map_err(|e| e.to_string())?,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(900),
        })
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: Uuid) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl_secs,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            typ: ACCESS.to_owned(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(ApiError::internal)
    }

    /// The user id of a valid access token.
    pub fn verify(&self, token: &str) -> Result<Uuid, ApiError> {
        use jsonwebtoken::errors::ErrorKind as K;
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            let why = match e.kind() {
                K::ExpiredSignature => "the access token has expired; refresh it",
                K::InvalidAudience => "the access token is for another audience",
                K::InvalidIssuer => "the access token is from another issuer",
                K::InvalidAlgorithm => "the access token's algorithm is not accepted",
                K::InvalidSignature => "the access token's signature is invalid",
                K::MissingRequiredClaim(_) => "the access token lacks a required claim",
                _ => "the access token is malformed",
            };
            ApiError::new(ErrorKind::InvalidToken, why)
        })?;
        if data.claims.typ != ACCESS {
            return Err(ApiError::new(
                ErrorKind::InvalidToken,
                "not an access token",
            ));
        }
        Uuid::parse_str(&data.claims.sub).map_err(|_| {
            ApiError::new(
                ErrorKind::InvalidToken,
                "the access token's subject is invalid",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", "nve", "nve-api", 60).expect("keys")
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let id = Uuid::now_v7();
        let t = k.issue(id).expect("issue");
        assert_eq!(k.verify(&t).expect("verify"), id);
    }

    #[test]
    fn alg_none_and_tampering_are_rejected() {
        let k = keys();
        let t = k.issue(Uuid::now_v7()).expect("issue");
        let parts: Vec<&str> = t.split('.').collect();
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(k.verify(&format!("{none_header}.{}.", parts[1])).is_err());
        let mut payload = String::from_utf8(B64.decode(parts[1]).expect("b64")).expect("utf8");
        payload = payload.replace("\"sub\":\"", "\"sub\":\"0");
        let forged = format!("{}.{}.{}", parts[0], B64.encode(payload), parts[2]);
        assert!(k.verify(&forged).is_err());
    }

    #[test]
    fn other_issuer_audience_and_secret_fail() {
        let t = keys().issue(Uuid::now_v7()).expect("issue");
        let other_aud =
            JwtKeys::new(b"0123456789abcdef0123456789abcdef", "nve", "other", 60).expect("keys");
        assert!(other_aud.verify(&t).is_err());
        let other_iss =
            JwtKeys::new(b"0123456789abcdef0123456789abcdef", "x", "nve-api", 60).expect("keys");
        assert!(other_iss.verify(&t).is_err());
        let other_key =
            JwtKeys::new(b"ffffffffffffffffffffffffffffffff", "nve", "nve-api", 60).expect("keys");
        assert!(other_key.verify(&t).is_err());
    }
}
