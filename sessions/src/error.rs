//! [`Error`], [`Result`] and [`Rejection`].

use std::borrow::Cow;

use http::{header, HeaderName, HeaderValue, StatusCode};

use crate::{response::IntoResponse, store::StoreError, Response};

/// `Result<T, sessions::Error>`, what session operations return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a session operation, such as
/// [`Session::update_session`](crate::Session::update_session).
///
/// As a response (handlers may return `sessions::Result<T>`), a store failure
/// is a 503 with `Retry-After`, anything else a 500; the details are logged,
/// not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session store failed or timed out.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signed session cookie would be larger than browsers keep.
    #[error(
        "the session cookie `{name}` would be {size} bytes, over the {limit}-byte limit browsers \
         keep; store less in the session or use server-side sessions (`sessions::redis`)"
    )]
    CookieTooLarge {
        /// The cookie name.
        name: String,
        /// Its size in bytes (name, value and attributes).
        size: usize,
        /// The limit, 4096 bytes.
        limit: usize,
    },
    /// The session could not be serialized.
    #[error("cannot serialize the session: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Store(error) => Rejection::StoreUnavailable(error).into_response(),
            other => {
                tracing::error!(error = %other, "session error");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error".into(),
                )
            }
        }
    }
}

/// Why a request could not be handed to a handler: each variant knows its
/// status, and answers with a short plain-text message.
///
/// Bad input is always a 4xx; only an unavailable store is a 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A required query parameter is absent (400).
    #[error("missing query parameter `{0}`")]
    MissingQueryParameter(&'static str),
    /// A query or path parameter does not parse as its type (400).
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParameter {
        /// The parameter name.
        name: &'static str,
        /// Why it does not parse.
        message: String,
    },
    /// A path parameter is not valid percent-encoded UTF-8 (400).
    #[error("invalid path")]
    InvalidPath,
    /// A required header is absent (400).
    #[error("missing header `{0}`")]
    MissingHeader(HeaderName),
    /// A header does not parse as its type (400).
    #[error("invalid header `{name}`: {message}")]
    InvalidHeader {
        /// The header name.
        name: HeaderName,
        /// Why it does not parse.
        message: String,
    },
    /// A required cookie is absent (400).
    #[error("missing cookie `{0}`")]
    MissingCookie(&'static str),
    /// A cookie does not parse as its type (400).
    #[error("invalid cookie `{name}`: {message}")]
    InvalidCookie {
        /// The cookie name.
        name: &'static str,
        /// Why it does not parse.
        message: String,
    },
    /// The body has the wrong `Content-Type` (415).
    #[error("expected a request with `Content-Type: {expected}`")]
    UnsupportedMediaType {
        /// The content type expected.
        expected: &'static str,
    },
    /// The JSON body does not parse as the parameter's type (400).
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// The form body does not parse as the parameter's type (400).
    #[error("invalid form body: {0}")]
    InvalidForm(String),
    /// The body is larger than the limit (413).
    #[error("request body over {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read (400).
    #[error("cannot read the request body")]
    BodyRead,
    /// The body was already taken by another parameter (500: a handler bug).
    #[error("the request body was already read by another parameter")]
    BodyAlreadyTaken,
    /// Access is refused, e.g. no logged-in user (403).
    #[error("forbidden")]
    Forbidden,
    /// The session store is down or slow (503 with `Retry-After: 1`).
    #[error("session store unavailable, try again")]
    StoreUnavailable(#[source] StoreError),
    /// A custom response, for providers that answer with their own.
    #[error("custom response ({})", .0.status())]
    Response(Box<Response>),
    /// A custom status and message.
    #[error("{message}")]
    Custom {
        /// The status.
        status: StatusCode,
        /// The message, sent as the body.
        message: Cow<'static, str>,
    },
}

impl Rejection {
    /// The status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyAlreadyTaken => StatusCode::INTERNAL_SERVER_ERROR,
            Rejection::Forbidden => StatusCode::FORBIDDEN,
            Rejection::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Response(response) => response.status(),
            Rejection::Custom { status, .. } => *status,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<StoreError> for Rejection {
    fn from(error: StoreError) -> Self {
        Rejection::StoreUnavailable(error)
    }
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        match error {
            Error::Store(error) => Rejection::StoreUnavailable(error),
            other => {
                tracing::error!(error = %other, "session error");
                Rejection::Custom {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "internal server error".into(),
                }
            }
        }
    }
}

fn plain(status: StatusCode, message: Cow<'static, str>) -> Response {
    let mut response = match message {
        Cow::Borrowed(text) => text.into_response(),
        Cow::Owned(text) => text.into_response(),
    };
    *response.status_mut() = status;
    response
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Rejection::Response(response) => *response,
            Rejection::Custom { message, .. } => plain(status, message),
            Rejection::StoreUnavailable(error) => {
                tracing::warn!(%error, "session store unavailable; answering 503");
                let mut response = plain(status, "session store unavailable, try again".into());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            other => {
                if status.is_server_error() {
                    tracing::error!(rejection = %other, "request rejected");
                } else {
                    tracing::debug!(rejection = %other, "request rejected");
                }
                plain(status, other.to_string().into())
            }
        }
    }
}
