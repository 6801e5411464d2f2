//! `JsonBody<T>`: a JSON request body read with a size bound and decoded by serde with the path
//! of every failure, so clients get `400 malformed-json` for broken syntax and
//! `422 validation-failed` with a JSON pointer for a wrong type, a missing or an unknown field.
//! The schema in the OpenAPI document still comes from the type's poem-openapi derive.

use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind, FieldError};
use crate::state::AppState;

pub struct JsonBody<T>(pub T);

impl<T: Type + Send> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(m) if m.type_() == "application"
            && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json")))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + Send> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limit = request
            .data::<AppState>()
            .map(|s| s.config.server.max_json_body_bytes)
            .unwrap_or(1024 * 1024);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let bytes = read_bounded(body.take()?, limit).await?;
        decode(&bytes).map(JsonBody).map_err(Into::into)
    }
}

/// Past the limit, this much more is read and discarded before answering 413, so a client
/// still sending its body receives the answer instead of a connection reset.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

async fn read_bounded(body: poem::Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(body.into_bytes_stream());
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorKind::MalformedJson,
                format!("could not read the body: {e}"),
            )
        })?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        } else if seen > limit.saturating_add(DRAIN_LIMIT) {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("JSON bodies are limited to {limit} bytes"),
        ));
    }
    Ok(buf)
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: Type + DeserializeOwned + Send);

/// Decodes `bytes` as `T`, classifying failures as syntax (400) or shape (422).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorKind::MissingBody,
            "the request body is empty; send a JSON object",
        ));
    }
    // serde reads a JSON array into a struct field by field; a body must be an object.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(
        first,
        Some(b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9')
    ) {
        return Err(ApiError::validation(vec![FieldError::new(
            "",
            "invalid-type",
            "the body must be a JSON object",
        )]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match result {
        Ok(v) => v,
        Err(err) => {
            let pointer = to_pointer(&err.path().to_string());
            let inner = err.into_inner();
            use serde_json::error::Category;
            // serde_json reports some wrong types (a number where an enum's string belongs)
            // as syntax errors; if the document itself parses, it is a shape problem.
            let well_formed = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
            return Err(match inner.classify() {
                Category::Syntax if well_formed => shape_error(&pointer, &inner.to_string()),
                Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                    ErrorKind::MalformedJson,
                    format!(
                        "invalid JSON at line {} column {}: {}",
                        inner.line(),
                        inner.column(),
                        strip_position(&inner.to_string())
                    ),
                ),
                Category::Data => shape_error(&pointer, &inner.to_string()),
            });
        }
    };
    // Trailing garbage after a valid value is a syntax error, not something to ignore.
    de.end().map_err(|e| {
        ApiError::new(
            ErrorKind::MalformedJson,
            format!(
                "invalid JSON at line {} column {}: trailing characters",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(value)
}

/// Decodes an already-parsed JSON value (a part of a larger body) as `T`.
pub fn decode_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    decode_value_at(value, "")
}

/// Like [`decode_value`], with field pointers prefixed by `pointer` (the value's place in the body).
pub fn decode_value_at<T: DeserializeOwned>(
    value: &serde_json::Value,
    pointer: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = format!("{pointer}{}", to_pointer(&err.path().to_string()));
        shape_error(&path, &err.inner().to_string())
    })
}

/// A value of the wrong shape at `pointer`, as a field error with a stable code.
fn shape_error(pointer: &str, serde_message: &str) -> ApiError {
    let message = strip_position(serde_message);
    let code = field_code(&message);
    // A missing field is reported at its parent; point at the field itself.
    let pointer = match (code, backticked(&message)) {
        ("required", Some(name)) => format!("{pointer}/{name}"),
        _ => pointer.to_owned(),
    };
    ApiError::validation(vec![FieldError::new(pointer, code, message)])
}

/// serde_path_to_error writes `a.b[0].c`; JSON pointers are `/a/b/0/c`.
fn to_pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for segment in path.split('.') {
        let mut rest = segment;
        while let Some(open) = rest.find('[') {
            let (name, tail) = rest.split_at(open);
            if !name.is_empty() {
                out.push('/');
                out.push_str(name);
            }
            let close = tail.find(']').unwrap_or(tail.len());
            out.push('/');
            out.push_str(tail.get(1..close).unwrap_or_default());
            rest = tail.get(close + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message.get(start..)?.find('`')?;
    message.get(start..start + len)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn field_code(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "unknown-field"
    } else if message.starts_with("missing field") {
        "required"
    } else if message.starts_with("invalid type") {
        "invalid-type"
    } else if message.starts_with("unknown variant") {
        "invalid-value"
    } else {
        "invalid"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        let e = decode::<Body>(b"{\"name\": ").expect_err("eof");
        assert_eq!(e.kind, ErrorKind::MalformedJson);
        let e = decode::<Body>(b"{\"name\":\"a\",\"items\":[]} x").expect_err("trailing");
        assert_eq!(e.kind, ErrorKind::MalformedJson);
        let e = decode::<Body>(b"[\"a\", []]").expect_err("array");
        assert_eq!(e.kind, ErrorKind::ValidationFailed);
        let e = decode::<Body>(b"  ").expect_err("empty");
        assert_eq!(e.kind, ErrorKind::MissingBody);
    }

    #[test]
    fn shape_errors_point_at_the_field() {
        let e = decode::<Body>(br#"{"name":"a","items":[{"n":1},{"n":"x"}]}"#).expect_err("type");
        assert_eq!(e.kind, ErrorKind::ValidationFailed);
        assert_eq!(e.errors[0].pointer, "/items/1/n");
        assert_eq!(e.errors[0].code, "invalid-type");
        let e = decode::<Body>(br#"{"name":"a","items":[],"owner_id":"x"}"#).expect_err("unknown");
        assert_eq!(e.errors[0].code, "unknown-field");
        let e = decode::<Body>(br#"{"items":[]}"#).expect_err("missing");
        assert_eq!(e.errors[0].code, "required");
    }

    #[test]
    fn pointer_conversion() {
        assert_eq!(to_pointer("a.b[0].c"), "/a/b/0/c");
        assert_eq!(to_pointer("."), "");
        assert_eq!(to_pointer("items[12]"), "/items/12");
    }
}

/// A media upload: the raw request body, streamed (never held in memory), with the declared
/// content type. Accepts `video/*`, `audio/*`, `image/*` and `application/octet-stream`.
pub struct MediaBody {
    pub body: poem::Body,
    pub content_type: String,
}

impl Payload for MediaBody {
    const CONTENT_TYPE: &'static str = "application/octet-stream";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(m)
            if matches!(m.type_().as_str(), "video" | "audio" | "image")
                || (m.type_() == "application" && m.subtype() == "octet-stream"))
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::new_with_format("string", "binary"),
        ))
    }
}

impl ParsePayload for MediaBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let content_type = request
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        Ok(MediaBody {
            body: body.take()?,
            content_type,
        })
    }
}

// The one-argument form of this macro expands to an unqualified call that only resolves
// inside poem-openapi; the two-argument form with no bounds is the same thing.
poem_openapi::impl_apirequest_for_payload!(MediaBody,);
