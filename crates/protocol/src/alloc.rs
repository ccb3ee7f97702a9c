//! The process allocator: the system allocator, except that very large
//! requests get lazily committed anonymous memory.
//!
//! Why: a decoder that trusts a wire count (see `decode`) may ask for
//! `Vec::with_capacity(2^31)` of 100-byte structs. The system allocator would
//! refuse and Rust would abort the whole broker. Served from a
//! `MAP_NORESERVE` mapping, the request costs address space only; the decoder
//! then fails on the short buffer after touching a page or two, and the
//! mapping is returned. Ordinary large buffers (fetch responses, batches)
//! work the same way they would with `malloc`, which also maps large blocks.
//!
//! Install it in each binary with
//! `#[global_allocator] static A: GuardedAlloc = GuardedAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};

/// Requests at or above this size are mapped lazily.
pub const LAZY_THRESHOLD: usize = 256 << 20;

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct GuardedAlloc;

/// Largest block glibc serves from its heaps instead of a mapping of its
/// own (glibc's ceiling for this setting on 64-bit).
const HEAP_BLOCKS_UP_TO: usize = 32 << 20;
/// Free memory glibc keeps at the top of a heap instead of handing it back.
const KEEP_FREE: usize = 64 << 20;

/// Makes glibc keep and reuse freed megabyte-sized buffers instead of
/// returning them to the kernel at once.
///
/// Why: a broker and a client cycle buffers of about a megabyte all the
/// time (produce frames, batches, fetch reads and responses). glibc's
/// defaults hand such blocks back when they are freed (a mapping of their
/// own, or a heap trimmed above 2× the last one's size), so the next one is
/// page-faulted and zeroed afresh. On the 2-core VMs we measure on that was
/// a third of a consuming broker's CPU (1 KiB consume: broker 1.76 → 0.60
/// CPU-s per GB, 498 → 1,017 MB/s). What it costs: up to 64 MiB of freed
/// memory stays resident per heap after a burst. Call it first in `main`;
/// elsewhere than glibc it does nothing.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; it is called before
    // any thread exists and both values are within glibc's allowed ranges.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREE as libc::c_int);
    }
}

const PAGE: usize = 4096;

fn lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_THRESHOLD && layout.align() <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every pointer handed out is either from `System` (and returned to
// it) or from a private anonymous mapping of at least `layout.size()` bytes,
// page aligned (>= the layout's alignment), returned with `munmap`. Which one
// is decided by `lazy(layout)`, which depends only on the layout the caller
// must pass back unchanged.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            // SAFETY: see `map`.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            // Fresh anonymous pages are zero.
            // SAFETY: see `map`.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if lazy(&layout) {
            // SAFETY: `ptr` came from `map` with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `layout.align()` is valid and `new_size` nonzero.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !lazy(&layout) && !lazy(&new_layout) {
            // SAFETY: both sides are System's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: allocation with a valid layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both regions are valid for the copied length and distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
