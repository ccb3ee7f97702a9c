//! Bounded, streaming decompression of a batch's records section.
//!
//! The producer's bytes are untrusted, and so is every size inside them: a
//! zstd or lz4 frame's content size, a snappy block's length header, gzip's
//! trailer. None of them is used to allocate: output goes into a buffer the
//! caller owns and reuses, grown by doubling as the decoder fills it and
//! never past `limit + 1` bytes (the one byte past the limit is how an
//! over-long output is noticed). A declared size above the limit is refused
//! before decoding starts; a stream that keeps producing is stopped at the
//! limit, so a bomb (1 GiB of zeros in 32 KB of zstd) costs at most `limit`
//! bytes of output and the CPU to make them.
//!
//! Each codec accepts exactly what every Kafka client can read back, and no
//! more: one gzip member, one zstd frame, one lz4 frame with independent
//! blocks (the Java client refuses linked blocks and dictionary ids), raw
//! snappy or xerial-framed snappy (what the Java client writes), and no
//! byte after the stream. The decoder states (zstd's context, the inflate
//! state, lz4's context) live in [`Decoders`] and are reset, not rebuilt,
//! for each batch.
//!
//! Codecs: `zstd` (its `zstd_safe` layer), `flate2` (raw inflate; the gzip
//! header and trailer are read here), `snap` (raw blocks), `lz4` (the C
//! library's frame decoder through `lz4::liblz4`, the only `unsafe` in this
//! crate). All four were already built for `kafka-protocol`.

use std::ffi::CStr;

use flate2::{Decompress, FlushDecompress, Status};
use lz4::liblz4::{
    LZ4FDecompressionContext, LZ4F_createDecompressionContext, LZ4F_decompress,
    LZ4F_freeDecompressionContext, LZ4F_getErrorName, LZ4F_isError, LZ4F_resetDecompressionContext,
    LZ4F_VERSION,
};
use thiserror::Error;
use zstd::zstd_safe::{self, DCtx, DParameter, InBuffer, OutBuffer, ResetDirective};

use crate::batch::Compression;

/// Why a compressed records section was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecompressError {
    /// The payload is not a valid stream of its codec (or has bytes after it).
    #[error("the {codec} payload is corrupt: {reason}")]
    Corrupt {
        /// The codec's Kafka name.
        codec: &'static str,
        /// What the decoder or the framing check said.
        reason: String,
    },
    /// The records would be larger than the limit once decompressed.
    #[error("the records decompress to more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Output reserved up front when the stream does not say its size.
const FIRST_OUTPUT: usize = 64 << 10;
/// Decoder contexts larger than this after a batch are dropped, not kept.
const KEEP_CONTEXT: usize = 8 << 20;
/// zstd's window may be up to 2^this bytes even under a smaller limit: the
/// Java client's streaming zstd declares a 2 MiB window for any batch.
const MIN_WINDOW_LOG: u32 = 23;
/// zstd's own default cap (128 MiB windows).
const MAX_WINDOW_LOG: u32 = 27;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_VERSIONS: [u8; 8] = [0, 0, 0, 1, 0, 0, 0, 1];

fn corrupt(codec: &'static str, reason: impl Into<String>) -> DecompressError {
    DecompressError::Corrupt {
        codec,
        reason: reason.into(),
    }
}

/// Makes room for more output: doubles the buffer, never past `limit + 1`.
fn grow(out: &mut Vec<u8>, limit: usize) -> Result<(), DecompressError> {
    let max = limit.saturating_add(1);
    if out.len() >= max {
        return Err(DecompressError::TooLarge { limit });
    }
    let target = out
        .capacity()
        .saturating_mul(2)
        .clamp(FIRST_OUTPUT, max)
        .max(out.len() + 1);
    out.reserve_exact(target - out.len());
    Ok(())
}

/// Makes sure a first stretch of output fits (a kept buffer usually has it).
fn start(out: &mut Vec<u8>, limit: usize) {
    let first = FIRST_OUTPUT.min(limit.saturating_add(1));
    if out.capacity() < first {
        out.reserve_exact(first);
    }
}

/// Reserves room for a declared output size already checked against the limit.
fn reserve_declared(out: &mut Vec<u8>, declared: u64, limit: usize) -> Result<(), DecompressError> {
    if declared > limit as u64 {
        return Err(DecompressError::TooLarge { limit });
    }
    // One byte more, so the decoder's final call has room to report the end.
    out.reserve_exact(declared as usize + 1);
    Ok(())
}

fn check_limit(out: &[u8], limit: usize) -> Result<(), DecompressError> {
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(())
}

/// lz4's frame decompression context (owned; freed on drop).
struct Lz4Context(LZ4FDecompressionContext);

impl Lz4Context {
    fn new() -> Result<Lz4Context, DecompressError> {
        let mut ctx = LZ4FDecompressionContext(std::ptr::null_mut());
        // SAFETY: `ctx` is a valid place for the library to store its pointer.
        let code = unsafe { LZ4F_createDecompressionContext(&mut ctx, LZ4F_VERSION) };
        // SAFETY: `LZ4F_isError` only inspects the code.
        if unsafe { LZ4F_isError(code) } != 0 || ctx.0.is_null() {
            return Err(corrupt("lz4", "cannot create a decompression context"));
        }
        Ok(Lz4Context(ctx))
    }

    /// Starts a new frame (also the way out of the undefined state an error leaves).
    fn reset(&mut self) {
        // SAFETY: the context is valid until drop.
        unsafe { LZ4F_resetDecompressionContext(self.0) }
    }

    /// Decodes from `src` into the spare capacity of `out`; returns the
    /// input bytes consumed and the library's hint (0 once the frame ended).
    fn step(&mut self, src: &[u8], out: &mut Vec<u8>) -> Result<(usize, usize), DecompressError> {
        let mut dst_size = out.capacity() - out.len();
        let mut src_size = src.len();
        // SAFETY: the context is valid; the destination is the `dst_size`
        // bytes of spare capacity after `out`'s end and the source is `src`;
        // the library writes at most `dst_size` and reads at most `src_size`
        // bytes and reports how many through the two sizes.
        let code = unsafe {
            LZ4F_decompress(
                self.0,
                out.as_mut_ptr().add(out.len()),
                &mut dst_size,
                src.as_ptr(),
                &mut src_size,
                std::ptr::null(),
            )
        };
        // SAFETY: as above, `LZ4F_isError` only inspects the code.
        if unsafe { LZ4F_isError(code) } != 0 {
            // SAFETY: the library returns a pointer to a static NUL-terminated name.
            let name = unsafe { CStr::from_ptr(LZ4F_getErrorName(code)) };
            return Err(corrupt("lz4", name.to_string_lossy()));
        }
        // SAFETY: the library initialised `dst_size` bytes past the old end,
        // within the capacity.
        unsafe { out.set_len(out.len() + dst_size) };
        Ok((src_size, code))
    }
}

impl Drop for Lz4Context {
    fn drop(&mut self) {
        // SAFETY: created by `LZ4F_createDecompressionContext`, freed once.
        unsafe { LZ4F_freeDecompressionContext(self.0) };
    }
}

/// The codecs' decoder states, kept between batches (one per thread).
#[derive(Default)]
pub(crate) struct Decoders {
    zstd: Option<DCtx<'static>>,
    inflate: Option<Decompress>,
    lz4: Option<Lz4Context>,
}

impl std::fmt::Debug for Decoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoders")
            .field("zstd", &self.zstd.is_some())
            .field("inflate", &self.inflate.is_some())
            .field("lz4", &self.lz4.is_some())
            .finish()
    }
}

impl Decoders {
    /// Replaces `out`'s contents with `input` decompressed; refuses output
    /// beyond `limit` bytes. `codec` must not be `None`.
    pub(crate) fn decompress(
        &mut self,
        codec: Compression,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DecompressError> {
        out.clear();
        match codec {
            Compression::None => {
                check_limit(input, limit)?;
                out.extend_from_slice(input);
                Ok(())
            }
            Compression::Gzip => self.gzip(input, out, limit),
            Compression::Snappy => snappy(input, out, limit),
            Compression::Lz4 => self.lz4(input, out, limit),
            Compression::Zstd => self.zstd(input, out, limit),
        }
    }

    fn zstd(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DecompressError> {
        let bad = |r: &str| corrupt("zstd", r);
        if !input.starts_with(&ZSTD_MAGIC) {
            return Err(bad("not a zstd frame"));
        }
        match zstd_safe::get_frame_content_size(input) {
            Ok(Some(n)) => reserve_declared(out, n, limit)?,
            Ok(None) => start(out, limit),
            Err(_) => return Err(bad("unreadable frame header")),
        }
        let window_log =
            (usize::BITS - limit.leading_zeros()).clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG);
        let dctx = self.zstd.get_or_insert_with(DCtx::create);
        let name = |code| bad(zstd_safe::get_error_name(code));
        dctx.reset(ResetDirective::SessionOnly).map_err(name)?;
        dctx.set_parameter(DParameter::WindowLogMax(window_log))
            .map_err(name)?;
        let mut src = InBuffer::around(input);
        let result = loop {
            if out.len() == out.capacity() {
                if let Err(e) = grow(out, limit) {
                    break Err(e);
                }
            }
            let pos = out.len();
            let mut dst = OutBuffer::around_pos(out, pos);
            let hint = match dctx.decompress_stream(&mut dst, &mut src) {
                Ok(h) => h,
                Err(code) => break Err(name(code)),
            };
            if let Err(e) = check_limit(out, limit) {
                break Err(e);
            }
            if hint == 0 {
                break if src.pos() == input.len() {
                    Ok(())
                } else {
                    Err(bad("bytes follow the frame"))
                };
            }
            if src.pos() == input.len() && out.len() < out.capacity() {
                break Err(bad("the frame is truncated"));
            }
        };
        if dctx.sizeof() > KEEP_CONTEXT {
            self.zstd = None;
        }
        result
    }

    fn gzip(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DecompressError> {
        let bad = |r: &str| corrupt("gzip", r);
        let body = &input[gzip_header(input).map_err(bad)?..];
        let d = self.inflate.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        start(out, limit);
        loop {
            if out.len() == out.capacity() {
                grow(out, limit)?;
            }
            let (consumed, produced) = (d.total_in() as usize, out.len());
            let status = d
                .decompress_vec(&body[consumed..], out, FlushDecompress::None)
                .map_err(|e| corrupt("gzip", e.to_string()))?;
            check_limit(out, limit)?;
            let now_consumed = d.total_in() as usize;
            if status == Status::StreamEnd {
                break;
            }
            let stuck = now_consumed == consumed && out.len() == produced;
            if (now_consumed == body.len() || stuck) && out.len() < out.capacity() {
                return Err(bad("the deflate stream is truncated"));
            }
        }
        let trailer = &body[d.total_in() as usize..];
        if trailer.len() != 8 {
            return Err(bad(if trailer.len() < 8 {
                "the trailer is truncated"
            } else {
                "bytes follow the gzip member"
            }));
        }
        let mut crc = flate2::Crc::new();
        crc.update(out);
        let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let stored_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc.sum() != stored_crc || out.len() as u32 != stored_len {
            return Err(bad("the trailer's CRC32 or length does not match the data"));
        }
        Ok(())
    }

    fn lz4(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DecompressError> {
        let bad = |r: &str| corrupt("lz4", r);
        if input.len() < 7 || input[..4] != LZ4_MAGIC {
            return Err(bad("not an lz4 frame"));
        }
        let (flg, bd) = (input[4], input[5]);
        // Version 01, independent blocks, no dictionary id: the frames the
        // Java client reads (and every client writes).
        if flg >> 6 != 1 || flg & 0x20 == 0 || flg & 0x03 != 0 {
            return Err(bad(
                "frame flags other than version 1 with independent blocks",
            ));
        }
        if bd & 0x8f != 0 || !(4..=7).contains(&((bd >> 4) & 7)) {
            return Err(bad("invalid block descriptor"));
        }
        if flg & 0x08 != 0 {
            let size = input
                .get(6..14)
                .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .ok_or_else(|| bad("truncated frame header"))?;
            reserve_declared(out, size, limit)?;
        } else {
            start(out, limit);
        }
        if self.lz4.is_none() {
            self.lz4 = Some(Lz4Context::new()?);
        }
        let Some(ctx) = self.lz4.as_mut() else {
            return Err(bad("no decompression context"));
        };
        ctx.reset();
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                grow(out, limit)?;
            }
            let (consumed, hint) = ctx.step(&input[pos..], out)?;
            pos += consumed;
            check_limit(out, limit)?;
            if hint == 0 {
                break;
            }
            if pos == input.len() && out.len() < out.capacity() {
                return Err(bad("the frame is truncated"));
            }
        }
        if pos != input.len() {
            return Err(bad("bytes follow the frame"));
        }
        Ok(())
    }
}

/// Where the deflate data starts after a gzip member header (RFC 1952).
fn gzip_header(input: &[u8]) -> Result<usize, &'static str> {
    if input.len() < 10 || input[..3] != [0x1f, 0x8b, 8] {
        return Err("not a gzip stream");
    }
    let flags = input[3];
    if flags & 0xe0 != 0 {
        return Err("reserved header flags are set");
    }
    let mut p = 10;
    if flags & 0x04 != 0 {
        let xlen = input.get(p..p + 2).ok_or("truncated header")?;
        p += 2 + u16::from_le_bytes([xlen[0], xlen[1]]) as usize;
    }
    for flag in [0x08, 0x10] {
        if flags & flag != 0 {
            let zero = input
                .get(p..)
                .and_then(|rest| rest.iter().position(|&b| b == 0))
                .ok_or("truncated header")?;
            p += zero + 1;
        }
    }
    if flags & 0x02 != 0 {
        let stored = input.get(p..p + 2).ok_or("truncated header")?;
        let mut crc = flate2::Crc::new();
        crc.update(&input[..p]);
        if crc.sum() as u16 != u16::from_le_bytes([stored[0], stored[1]]) {
            return Err("the header CRC does not match");
        }
        p += 2;
    }
    if p > input.len() {
        return Err("truncated header");
    }
    Ok(p)
}

/// Raw snappy, or xerial-framed snappy (a 16-byte header, then blocks each
/// behind a 4-byte big-endian length).
fn snappy(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), DecompressError> {
    if !input.starts_with(XERIAL_MAGIC) {
        return snappy_block(input, out, limit);
    }
    if input.get(8..16) != Some(&XERIAL_VERSIONS[..]) {
        return Err(corrupt("snappy", "unsupported xerial header"));
    }
    let mut p = 16;
    while p < input.len() {
        let len = input
            .get(p..p + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| corrupt("snappy", "truncated block length"))?;
        p += 4;
        let block = input
            .get(p..p + len)
            .ok_or_else(|| corrupt("snappy", "truncated block"))?;
        p += len;
        snappy_block(block, out, limit)?;
    }
    Ok(())
}

fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), DecompressError> {
    let bad = |e: snap::Error| corrupt("snappy", e.to_string());
    let n = snap::raw::decompress_len(block).map_err(bad)?;
    let start = out.len();
    if n > limit.saturating_sub(start) {
        return Err(DecompressError::TooLarge { limit });
    }
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(bad)?;
    if written != n {
        return Err(corrupt(
            "snappy",
            "the block is shorter than its header says",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
