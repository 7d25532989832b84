//! A response body: whole, or produced piece by piece as the client reads it
//! (the export), so that no host holds a large answer in memory.
//!
//! [`Body`] implements [`http_body::Body`], which both hyper (native) and
//! workers-rs (the Worker's `ReadableStream`) take as it is. A stream that
//! fails after the status was sent ends with an error frame: the host aborts
//! the transfer, so the client sees a broken download, never a short one
//! that looks whole.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body::{Frame, SizeHint};

/// Pieces of a streamed body, in order.
pub type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, StreamError>> + Send>>;

/// A streamed body failed after its first byte.
#[derive(Debug, thiserror::Error)]
#[error("the response stream failed: {detail}")]
pub struct StreamError {
    /// What went wrong, without personal data: for the host's log.
    pub detail: String,
}

/// A response body.
pub struct Body(Inner);

enum Inner {
    Full(Option<Bytes>),
    /// Behind a mutex only so that `Body` is `Sync`, as hyper asks; it is
    /// never locked, only reached through `&mut`.
    Stream(Mutex<Chunks>),
}

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Body(Inner::Full((!bytes.is_empty()).then_some(bytes)))
    }

    pub fn empty() -> Self {
        Body(Inner::Full(None))
    }

    pub fn stream(chunks: Chunks) -> Self {
        Body(Inner::Stream(Mutex::new(chunks)))
    }

    /// Calls `log` when a streamed body fails (the host's log line; the
    /// client only sees the transfer break).
    pub fn on_error(self, log: impl Fn(&StreamError) + Send + 'static) -> Body {
        match self.0 {
            Inner::Stream(s) => Body::stream(Box::pin(unlocked(s).inspect_err(log))),
            full => Body(full),
        }
    }
}

fn unlocked(m: Mutex<Chunks>) -> Chunks {
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        match &mut self.0 {
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(s) => loop {
                let s = s.get_mut().unwrap_or_else(|e| e.into_inner());
                match s.as_mut().poll_next(cx) {
                    // An empty piece says nothing; ask for the next.
                    Poll::Ready(Some(Ok(b))) if b.is_empty() => continue,
                    other => return other.map(|o| o.map(|r| r.map(Frame::data))),
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Inner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use http_body_util::BodyExt;

    #[test]
    fn full_and_streamed_bodies_yield_their_bytes() {
        let full = block_on(Body::full("abc").collect()).unwrap().to_bytes();
        assert_eq!(&full[..], b"abc");
        assert!(http_body::Body::is_end_stream(&Body::empty()));

        let pieces = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"a")),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"b")),
        ]);
        let streamed = block_on(Body::stream(Box::pin(pieces)).collect())
            .unwrap()
            .to_bytes();
        assert_eq!(&streamed[..], b"ab");

        let failing = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"a")),
            Err(StreamError {
                detail: "test".into(),
            }),
        ]);
        assert!(block_on(Body::stream(Box::pin(failing)).collect()).is_err());
    }
}
