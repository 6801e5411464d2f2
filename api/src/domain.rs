//! Validated values of the API's own domain (accounts and projects). Each `parse` returns the
//! clean value or a field error code and message; handlers collect them so one response lists
//! every problem.

use crate::error::{ApiError, FieldError};

/// `(code, message)` of a value that failed to parse.
pub type Invalid = (&'static str, String);

fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

fn bounded_text(value: &str, what: &str, max: usize, allow_empty: bool) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if !allow_empty && trimmed.is_empty() {
        return Err(("required", format!("{what} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err((
            "too-long",
            format!("{what} is longer than {max} characters"),
        ));
    }
    if has_control(trimmed) && what != "description" {
        return Err((
            "invalid-characters",
            format!("{what} contains control or bidirectional-override characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Lower-cased and trimmed, so one address is one account however it is typed.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let v = value.trim().to_lowercase();
        let invalid = || {
            (
                "invalid-email",
                format!(
                    "`{}` is not an e-mail address",
                    value.chars().take(80).collect::<String>()
                ),
            )
        };
        if v.len() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = v.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid());
        }
        Ok(Self(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// Argon2 hashes whatever it is given; the cap keeps a request from buying minutes of CPU.
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(value: &str) -> Result<Self, Invalid> {
        if value.chars().count() < Self::MIN_CHARS {
            return Err((
                "too-short",
                format!("passwords need at least {} characters", Self::MIN_CHARS),
            ));
        }
        if value.len() > Self::MAX_BYTES {
            return Err((
                "too-long",
                format!("passwords are limited to {} bytes", Self::MAX_BYTES),
            ));
        }
        if value.trim().is_empty() {
            return Err(("invalid", "a password cannot be only spaces".to_owned()));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

pub fn display_name(value: &str) -> Result<String, Invalid> {
    bounded_text(value, "display name", 100, false)
}

pub fn project_name(value: &str) -> Result<String, Invalid> {
    bounded_text(value, "project name", 200, false)
}

pub fn description(value: &str) -> Result<String, Invalid> {
    bounded_text(value, "description", 5000, true)
}

pub fn key_name(value: &str) -> Result<String, Invalid> {
    bounded_text(value, "key name", 100, false)
}

/// Collects field results; `finish` fails with every problem at once.
#[derive(Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    pub fn check<T>(&mut self, pointer: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err((code, message)) => {
                self.0.push(FieldError::new(pointer, code, message));
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

/// Unwraps a value that `Fields::check` accepted; used after `finish()` succeeded, where a
/// `None` would be a bug in the handler rather than bad input.
pub fn accepted<T>(value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::internal("validated field missing after validation passed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.ORG ").expect("ok").as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@x.org",
            "a@@x.org",
            "a b@x.org",
            "a@x..org",
            "a@.x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("        ").is_err());
        assert!(Password::parse(&"x".repeat(2000)).is_err());
        assert!(Password::parse("correct horse").is_ok());
    }

    #[test]
    fn names_reject_control_and_bidi_characters() {
        assert!(project_name("ok name").is_ok());
        assert!(project_name("   ").is_err());
        assert!(project_name("evil\u{202E}txt.exe").is_err());
        assert!(project_name("nul\0").is_err());
        assert!(project_name(&"x".repeat(201)).is_err());
    }
}
