//! The response body type.

use std::{
    any::Any,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt};

/// A boxed error, as carried by streaming bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a [`Response`](crate::Response).
///
/// Whole bodies (`String`, `&'static str`, `Vec<u8>`, [`Bytes`]) are kept
/// inline without boxing; any other [`http_body::Body`] can be wrapped with
/// [`Body::new`].
///
/// # Examples
///
/// ```
/// use sessions::Body;
///
/// let body = Body::from("hello");
/// let empty = Body::empty();
/// # let _ = (body, empty);
/// ```
pub struct Body(Kind);

enum Kind {
    Full(Option<Bytes>),
    /// A request body straight from hyper, kept as it is: boxing it cost an allocation per
    /// request, body or not.
    Incoming(hyper::body::Incoming),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// An empty body.
    pub const fn empty() -> Self {
        Body(Kind::Full(None))
    }

    /// Wraps any body whose data is [`Bytes`].
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // hyper's own request body and a `Body` are kept as they are, without boxing.
        let mut body = Some(body);
        let any: &mut dyn Any = &mut body;
        if let Some(incoming) = any
            .downcast_mut::<Option<hyper::body::Incoming>>()
            .and_then(Option::take)
        {
            return Body(Kind::Incoming(incoming));
        }
        if let Some(same) = any.downcast_mut::<Option<Body>>().and_then(Option::take) {
            return same;
        }
        match body {
            Some(body) => Body(Kind::Boxed(body.map_err(Into::into).boxed_unsync())),
            None => Body::empty(),
        }
    }

    /// Collects the whole body into bytes.
    ///
    /// # Errors
    ///
    /// The error of the wrapped body, if it fails.
    pub async fn collect(self) -> Result<Bytes, BoxError> {
        match self.0 {
            Kind::Full(bytes) => Ok(bytes.unwrap_or_default()),
            Kind::Incoming(body) => Ok(body.collect().await?.to_bytes()),
            Kind::Boxed(body) => Ok(body.collect().await?.to_bytes()),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Full(bytes) => f
                .debug_tuple("Body")
                .field(&bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Incoming(_) | Kind::Boxed(_) => f.write_str("Body(<stream>)"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body(Kind::Full((!bytes.is_empty()).then_some(bytes)))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<()> for Body {
    fn from((): ()) -> Self {
        Body::empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Incoming(body) => body.is_end_stream(),
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Incoming(body) => body.size_hint(),
            Kind::Boxed(body) => body.size_hint(),
        }
    }
}
