//! Size-prefixed frames: a 4-byte big-endian length, then that many bytes.

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The length prefix is negative or larger than `socket.request.max.bytes`.
    #[error("frame of {size} bytes is outside 0..={max} (socket.request.max.bytes)")]
    BadSize {
        /// The length the peer sent.
        size: i64,
        /// The limit.
        max: usize,
    },
    /// The socket failed or closed mid-frame.
    #[error("I/O error reading a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. The length is checked against `max` before any buffer is
/// allocated for it, and the buffer grows only as bytes actually arrive, so a
/// peer that announces a large frame and sends nothing costs nothing.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut BytesMut,
) -> Result<BytesMut, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(len);
    if size < 0 || size as usize > max {
        return Err(FrameError::BadSize {
            size: size as i64,
            max,
        });
    }
    let size = size as usize;
    buf.clear();
    // Grow in steps of at most 64 KiB ahead of what has arrived.
    while buf.len() < size {
        let want = (size - buf.len()).min(64 * 1024);
        buf.reserve(want);
        let n = r.read_buf(&mut buf.limit_mut(want)).await?;
        if n == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(buf.split())
}

trait LimitMut {
    fn limit_mut(&mut self, n: usize) -> bytes::buf::Limit<&mut BytesMut>;
}

impl LimitMut for BytesMut {
    fn limit_mut(&mut self, n: usize) -> bytes::buf::Limit<&mut BytesMut> {
        bytes::BufMut::limit(self, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_oversized_and_negative_lengths() {
        let mut buf = BytesMut::new();
        let mut data: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut data, 1024, &mut buf).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut data: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut data, 1024, &mut buf).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut data: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0];
        assert_eq!(
            &read_frame(&mut data, 1024, &mut buf).await.expect("frame")[..],
            &[1, 2, 3]
        );
        assert!(matches!(
            read_frame(&mut data, 1024, &mut buf).await,
            Err(FrameError::Closed)
        ));
        let mut data: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert!(matches!(
            read_frame(&mut data, 1024, &mut buf).await,
            Err(FrameError::Io(_))
        ));
    }
}
