//! The process's allocator: mimalloc, entered by its plain functions wherever they already give
//! the alignment asked for.
//!
//! glibc's allocator was the largest user-space cost under load (malloc/free with lock waits
//! across Pingora's worker threads, see bench/README.md); mimalloc's per-thread heaps avoid it.
//! Built without transparent huge pages (`no_thp`): with them, each thread's heap keeps 2 MiB
//! pages resident and the gateway's memory under load grew by about 20 MB for no speed gain.
//!
//! The `mimalloc` crate passes every allocation to `mi_malloc_aligned`. Its fast path covers
//! blocks up to 1 KiB; above that, mimalloc 3 takes a block as naturally aligned only when its
//! size is a power of two, and allocates every other size (a request's future, Pingora's
//! buffers) with room for an alignment it does not need and a second pass: about twenty times
//! per proxied request. Every mimalloc block of 16 bytes or more is 16-byte aligned, and a smaller
//! one 8-byte aligned (as `malloc` guarantees `max_align_t`), so a request asking for no more than
//! 16 and no more than its size goes to `mi_malloc` and its relatives (the rule Rust's own
//! `System` allocator applies to `malloc`); only larger alignments take the aligned functions.

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc's guaranteed alignment (`MI_MAX_ALIGN_SIZE`) for a block at least this large.
const PLAIN_ALIGN: usize = 16;

/// The gateway's global allocator (`#[global_allocator]` in the binaries).
pub struct Allocator;

/// Whether the plain functions give `layout` its alignment.
#[inline]
fn plain(layout: &Layout) -> bool {
    layout.align() <= PLAIN_ALIGN && layout.align() <= layout.size()
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks of the
// plain and the aligned functions alike); alignments are as argued above and checked by the test.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            mi::mi_malloc(layout.size()) as *mut u8
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            mi::mi_zalloc(layout.size()) as *mut u8
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The new block must have the old alignment, at the new size.
        let plain_now = layout.align() <= PLAIN_ALIGN && layout.align() <= new_size;
        if plain_now {
            mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size to 9 KiB and past, every alignment to 64: the block is aligned, usable to its
    /// size, and survives growing and shrinking with its alignment kept.
    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let a = Allocator;
        let mut kept = Vec::new();
        for align in [1usize, 2, 4, 8, 16, 32, 64] {
            for size in (1..=2048)
                .chain((2049..=9300).step_by(7))
                .chain([65_536, 1 << 20])
            {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; each block is written within its size and freed once
                // with its own layout.
                unsafe {
                    let p = if size % 3 == 0 {
                        a.alloc_zeroed(layout)
                    } else {
                        a.alloc(layout)
                    };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    if size % 3 == 0 {
                        assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == 0));
                    }
                    p.write_bytes(0xa5, size);
                    let grown = a.realloc(p, layout, size * 2 + 1);
                    assert_eq!(grown as usize % align, 0, "grown {size}, align {align}");
                    assert!(std::slice::from_raw_parts(grown, size)
                        .iter()
                        .all(|b| *b == 0xa5));
                    let bigger = Layout::from_size_align(size * 2 + 1, align).unwrap();
                    let shrunk = a.realloc(grown, bigger, size.div_ceil(2));
                    assert_eq!(shrunk as usize % align, 0, "shrunk {size}, align {align}");
                    let half = Layout::from_size_align(size.div_ceil(2), align).unwrap();
                    // Some blocks stay allocated meanwhile, so the heap is not one empty page.
                    if size % 5 == 0 {
                        kept.push((shrunk, half));
                    } else {
                        a.dealloc(shrunk, half);
                    }
                }
            }
        }
        for (p, layout) in kept {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { a.dealloc(p, layout) };
        }
    }
}
