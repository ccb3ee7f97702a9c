//! Size-prefixed frames: a 4-byte big-endian length, then that many bytes.

use bytes::{BufMut, BytesMut};
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

/// Smallest buffer a [`FrameReader`] allocates: many small frames share one.
const MIN_BUFFER: usize = 64 * 1024;
/// Largest buffer a [`FrameReader`] keeps for reuse; a rare larger frame
/// gets a buffer of its own that is freed with it.
const RETAIN_MAX: usize = 4 << 20;
/// How many buffers still in use by earlier frames a reader keeps. A
/// broker handling each request before reading the next gets its buffer
/// back at once (the same, still cached, megabyte for every Produce); the
/// spares are for frames whose bytes outlive their request and for readers
/// that read ahead. With 2, a reader running 5 produce frames ahead outran
/// them and every other frame paid page faults again (3% of the CPU).
const SPARES: usize = 6;

/// Reads frames from one connection into buffers it reuses once every frame
/// read into them is dropped.
///
/// Why: a producer sends frames of about a megabyte. A fresh buffer per frame
/// costs page faults and zeroing in the kernel (and the allocator hands the
/// memory back in between), which on a produce-bound broker was a tenth of
/// its CPU. The length is checked against `max` before any buffer is
/// allocated; a buffer is only address space until bytes arrive in it, so a
/// peer that announces a large frame and sends nothing costs no memory.
#[derive(Debug)]
pub struct FrameReader {
    max: usize,
    /// The buffer frames are read into; frames are split off its front.
    current: BytesMut,
    /// Size of `current`'s allocation.
    current_size: usize,
    /// Earlier buffers (and their sizes), reused when their frames are gone.
    spare: Vec<(BytesMut, usize)>,
}

impl FrameReader {
    /// A reader that refuses frames longer than `max` bytes.
    pub fn new(max: usize) -> FrameReader {
        FrameReader {
            max,
            current: BytesMut::new(),
            current_size: 0,
            spare: Vec::new(),
        }
    }

    /// Reads one frame and returns its bytes (without the length prefix).
    pub async fn read<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<BytesMut, FrameError> {
        let size = self.read_size(r).await?;
        self.read_body(r, size).await
    }

    /// Reads a frame's 4-byte length prefix and checks it against the
    /// limit; nothing is allocated. A caller that bounds the memory of
    /// frames being read (the broker's request memory pool) reserves
    /// `size` bytes between this and [`FrameReader::read_body`].
    pub async fn read_size<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<usize, FrameError> {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FrameError::Closed)
            }
            Err(e) => return Err(e.into()),
        }
        let size = i32::from_be_bytes(len);
        if size < 0 || size as usize > self.max {
            return Err(FrameError::BadSize {
                size: size as i64,
                max: self.max,
            });
        }
        Ok(size as usize)
    }

    /// Reads the `size` bytes of a frame's body (`size` as returned by
    /// [`FrameReader::read_size`], so within the limit).
    pub async fn read_body<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        size: usize,
    ) -> Result<BytesMut, FrameError> {
        let size = size.min(self.max);
        self.make_room(size);
        while self.current.len() < size {
            let want = size - self.current.len();
            let n = r.read_buf(&mut (&mut self.current).limit(want)).await?;
            if n == 0 {
                return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(self.current.split())
    }

    /// Frees the buffers kept for reuse (a connection gone quiet need not
    /// hold a megabyte or more); frames still held by callers stay valid.
    pub fn release(&mut self) {
        self.spare.clear();
        self.current = BytesMut::new();
        self.current_size = 0;
    }

    /// Bytes of buffer kept for reuse (allocations, whether or not in use).
    pub fn retained(&self) -> usize {
        self.current_size + self.spare.iter().map(|(_, n)| n).sum::<usize>()
    }

    /// Makes `current` an empty buffer with room for `size` bytes: the rest
    /// of the current buffer, a buffer whose frames are all dropped, or a new one.
    fn make_room(&mut self, size: usize) {
        self.current.clear();
        if self.current.capacity() >= size || self.current.try_reclaim(size) {
            return;
        }
        let next = match self.spare.iter_mut().position(|(b, _)| b.try_reclaim(size)) {
            Some(i) => self.spare.swap_remove(i),
            None => {
                let alloc = size.max(MIN_BUFFER);
                (BytesMut::with_capacity(alloc), alloc)
            }
        };
        let old = std::mem::replace(&mut self.current, next.0);
        let old_size = std::mem::replace(&mut self.current_size, next.1);
        if old_size > 0 && old_size <= RETAIN_MAX {
            if self.spare.len() == SPARES {
                self.spare.remove(0);
            }
            self.spare.push((old, old_size));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_oversized_and_negative_lengths() {
        let mut frames = FrameReader::new(1024);
        let mut data: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            frames.read(&mut data).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut data: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            frames.read(&mut data).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut data: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0];
        assert_eq!(
            &frames.read(&mut data).await.expect("frame")[..],
            &[1, 2, 3]
        );
        assert!(matches!(
            frames.read(&mut data).await,
            Err(FrameError::Closed)
        ));
        let mut data: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert!(matches!(
            frames.read(&mut data).await,
            Err(FrameError::Io(_))
        ));
    }

    fn framed(len: usize, fill: u8) -> Vec<u8> {
        let mut v = (len as u32).to_be_bytes().to_vec();
        v.resize(4 + len, fill);
        v
    }

    /// A frame's buffer is reused once the frame is dropped, and never
    /// while it is still held (a request still being handled).
    #[tokio::test]
    async fn reuses_buffers_of_dropped_frames_only() {
        let mut frames = FrameReader::new(4 << 20);
        let mut wire = Vec::new();
        for fill in 1..=4 {
            wire.extend(framed(1 << 20, fill));
        }
        let mut data: &[u8] = &wire;
        let first = frames.read(&mut data).await.expect("frame 1");
        let first_at = first.as_ptr();
        // Held: the next frame must land elsewhere and leave `first` intact.
        let second = frames.read(&mut data).await.expect("frame 2");
        assert_ne!(second.as_ptr(), first_at);
        assert!(first.iter().all(|b| *b == 1));
        drop(first);
        drop(second);
        let third = frames.read(&mut data).await.expect("frame 3");
        assert!(third.iter().all(|b| *b == 3));
        let reused = third.as_ptr();
        drop(third);
        let fourth = frames.read(&mut data).await.expect("frame 4");
        assert_eq!(
            fourth.as_ptr(),
            reused,
            "a dropped frame's buffer is read into again"
        );
        assert!(fourth.iter().all(|b| *b == 4));
        assert!(frames.retained() >= 2 << 20);
        frames.release();
        assert_eq!(frames.retained(), 0);
        assert!(
            fourth.iter().all(|b| *b == 4),
            "a held frame outlives release"
        );
        let mut data: &[u8] = &[0, 0, 0, 2, 7, 8];
        assert_eq!(
            &frames.read(&mut data).await.expect("after release")[..],
            &[7, 8]
        );
    }
}
