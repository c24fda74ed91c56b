//! [`IntoResponse`] and the small response types: uapi's status shorthands,
//! [`Json`] and [`WithHeaders`].

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use crate::Body;

/// The response type handlers produce: an [`http::Response`] with a [`Body`].
pub type Response = http::Response<Body>;

/// Anything a handler can return.
///
/// Implemented for `String`, `&'static str`, `()`, `Vec<u8>`, [`Bytes`],
/// [`Json<T>`], the status shorthands ([`Created`], [`NoContent`],
/// [`NotFound`], …), [`WithHeaders`], `Result<T, E>` where both are
/// responses, [`StatusCode`], and `http::Response<B>` for any `B` that
/// converts into a [`Body`].
///
/// # Examples
///
/// ```
/// use sessions::{IntoResponse, Response};
///
/// struct Teapot;
///
/// impl IntoResponse for Teapot {
///     fn into_response(self) -> Response {
///         let mut response = "short and stout".into_response();
///         *response.status_mut() = http::StatusCode::IM_A_TEAPOT;
///         response
///     }
/// }
/// # let _ = Teapot.into_response();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a response a handler can return",
    label = "not a response",
    note = "a handler returns a `String`, `&'static str`, `()`, `Json<T>`, a status shorthand such as `Created<T>`, a `Result<T, E>` of responses or an `http::Response`; implement `sessions::IntoResponse` for your own type, or use `#[handler(provider)]` for a function that provides a value to inject"
)]
pub trait IntoResponse {
    /// Converts `self` into a response.
    fn into_response(self) -> Response;

    /// Converts `self` into a response whose headers may go into `headers`
    /// instead of a map of its own. What a handler returns is converted with
    /// this method, `headers` being the request's header map: its room is
    /// already allocated, so a response that takes it over saves the two
    /// allocations (the map's index and entries) of a map of its own, and the
    /// request the two frees of its map.
    ///
    /// A response that takes the map clears it first (it still holds the
    /// request's headers), and leaves an empty map in its place (with
    /// [`std::mem::take`], or by swapping its own empty one in). The default calls
    /// [`into_response`](Self::into_response) and leaves `headers` alone;
    /// implement it for a response type of your own that sets headers, or
    /// forward it to the response you wrap.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{header, HeaderMap, HeaderValue};
    /// use sessions::IntoResponse;
    ///
    /// let mut request_headers = HeaderMap::new();
    /// request_headers.insert(header::HOST, HeaderValue::from_static("example.com"));
    /// let response = "hi".into_response_reusing(&mut request_headers);
    /// assert_eq!(response.headers().len(), 1);
    /// assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    /// assert!(request_headers.is_empty());
    /// ```
    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response
    where
        Self: Sized,
    {
        let _ = headers;
        self.into_response()
    }
}

/// A response of `body` with one header, `name: value`, in `headers`, emptied and taken
/// over: the response's own map (empty, unallocated) is left in its place. Swapped rather
/// than replaced, which would drop that empty map here (about 50 instructions).
fn with_one_header(
    body: Body,
    name: HeaderName,
    value: HeaderValue,
    headers: &mut HeaderMap,
) -> Response {
    let mut response = Response::new(body);
    let map = response.headers_mut();
    std::mem::swap(map, headers);
    map.clear();
    map.insert(name, value);
    response
}

fn text(body: impl Into<Body>, headers: &mut HeaderMap) -> Response {
    with_one_header(
        body.into(),
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
        headers,
    )
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        text(self, &mut HeaderMap::new())
    }

    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
        text(self, headers)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        text(self, &mut HeaderMap::new())
    }

    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
        text(self, headers)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(Body::empty())
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        self.into_response_reusing(&mut HeaderMap::new())
    }

    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
        with_one_header(
            Body::from(self),
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
            headers,
        )
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        self.into_response_reusing(&mut HeaderMap::new())
    }

    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
        Bytes::from(self).into_response_reusing(headers)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self;
        response
    }
}

impl<B: Into<Body>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        self.map(Into::into)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        self.into_response_reusing(&mut HeaderMap::new())
    }

    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
        match self {
            Result::Ok(ok) => ok.into_response_reusing(headers),
            Err(err) => err.into_response_reusing(headers),
        }
    }
}

/// A JSON body: `Json<T>` is both a response (serialized with `serde_json`,
/// `Content-Type: application/json`) and an injectable request body.
///
/// As a parameter, a request without `Content-Type: application/json` is a
/// 415 and a body that does not parse as `T` a 400 saying why.
///
/// # Examples
///
/// ```
/// use sessions::{handler, Json};
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Note {
///     text: String,
/// }
///
/// #[handler]
/// async fn echo(note: Json<Note>) -> Json<Note> {
///     note
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        self.into_response_reusing(&mut HeaderMap::new())
    }

    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
        match serde_json::to_vec(&self.0) {
            Result::Ok(bytes) => with_one_header(
                Body::from(bytes),
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
                headers,
            ),
            Err(error) => {
                tracing::error!(%error, "cannot serialize a JSON response");
                let mut response = "cannot serialize the response".into_response_reusing(headers);
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        }
    }
}

/// A response with extra headers, made by [`IntoResponseExt::with_header`]
/// (uapi's `headers=` argument of its status shorthands).
///
/// # Examples
///
/// ```
/// use sessions::{Created, IntoResponseExt};
///
/// let response = Created("made").with_header("location", "/things/1");
/// # let _ = response;
/// ```
#[derive(Debug)]
pub struct WithHeaders<R> {
    inner: R,
    headers: HeaderMap,
    invalid: bool,
}

impl<R> WithHeaders<R> {
    /// Adds another header. Invalid names or values make the response a 500
    /// (logged), since they are a programming error.
    #[must_use]
    pub fn with_header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Result::Ok(name), Result::Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.invalid = true,
        }
        self
    }
}

impl<R: IntoResponse> IntoResponse for WithHeaders<R> {
    fn into_response(self) -> Response {
        self.into_response_reusing(&mut HeaderMap::new())
    }

    fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
        if self.invalid {
            tracing::error!("a handler added an invalid header name or value");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        let mut response = self.inner.into_response_reusing(headers);
        let mut previous = None;
        for (name, value) in self.headers {
            let name = name.or_else(|| previous.clone());
            if let Some(name) = name {
                response.headers_mut().append(name.clone(), value);
                previous = Some(name);
            }
        }
        response
    }
}

/// Adds headers to any response.
pub trait IntoResponseExt: IntoResponse + Sized {
    /// Returns this response with one more header; chain for several.
    fn with_header<K, V>(self, name: K, value: V) -> WithHeaders<Self>
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        WithHeaders {
            inner: self,
            headers: HeaderMap::new(),
            invalid: false,
        }
        .with_header(name, value)
    }
}

impl<R: IntoResponse> IntoResponseExt for R {}

macro_rules! shorthands {
    ($($(#[$doc:meta])* $name:ident => $status:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// Wraps any response and sets its status; add headers with
        /// [`IntoResponseExt::with_header`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name<T = ()>(pub T);

        impl<T: IntoResponse> IntoResponse for $name<T> {
            fn into_response(self) -> Response {
                self.into_response_reusing(&mut HeaderMap::new())
            }

            fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
                let mut response = self.0.into_response_reusing(headers);
                *response.status_mut() = StatusCode::$status;
                response
            }
        }
    )*};
}

shorthands! {
    /// 200 OK, uapi's `Ok`. Not re-exported at the crate root, where it would
    /// shadow `Result::Ok`: write `sessions::responses::Ok`.
    Ok => OK;
    /// 201 Created, uapi's `Created`.
    Created => CREATED;
    /// 400 Bad Request, uapi's `BadRequest`.
    BadRequest => BAD_REQUEST;
    /// 401 Unauthorized, uapi's `Unauthorized`.
    Unauthorized => UNAUTHORIZED;
    /// 403 Forbidden, uapi's `Forbidden`.
    Forbidden => FORBIDDEN;
    /// 404 Not Found, uapi's `NotFound`.
    NotFound => NOT_FOUND;
    /// 409 Conflict, uapi's `Conflict`.
    Conflict => CONFLICT;
    /// 500 Internal Server Error, uapi's `InternalServerError`.
    InternalServerError => INTERNAL_SERVER_ERROR;
}

/// 204 No Content, uapi's `NoContent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}

macro_rules! redirects {
    ($($(#[$doc:meta])* $name:ident => $status:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl IntoResponse for $name {
            fn into_response(self) -> Response {
                self.into_response_reusing(&mut HeaderMap::new())
            }

            fn into_response_reusing(self, headers: &mut HeaderMap) -> Response {
                match HeaderValue::try_from(self.0) {
                    Result::Ok(location) => {
                        let mut response =
                            with_one_header(Body::empty(), header::LOCATION, location, headers);
                        *response.status_mut() = StatusCode::$status;
                        response
                    }
                    Err(_) => {
                        tracing::error!("a redirect location is not a valid header value");
                        StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }
        }
    )*};
}

redirects! {
    /// 302 Found to the given location, uapi's `Found`.
    Found => FOUND;
    /// 303 See Other to the given location, uapi's `SeeOther`.
    SeeOther => SEE_OTHER;
    /// 307 Temporary Redirect to the given location, uapi's `TemporaryRedirect`.
    TemporaryRedirect => TEMPORARY_REDIRECT;
    /// 308 Permanent Redirect to the given location, uapi's `PermanentRedirect`.
    PermanentRedirect => PERMANENT_REDIRECT;
}
