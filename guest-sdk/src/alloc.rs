//! The plugin's global allocator on `wasm32-unknown-unknown`: a bump allocator
//! over the free tail of the linear memory the instance starts with (from
//! `__heap_base` to the end of the initial pages), in front of Rust's own
//! allocator for everything that does not fit there.
//!
//! Why: Rust's allocator on that target starts by growing the memory
//! (`memory.grow`) however much of it is free, and a grown memory costs the host
//! two `mprotect` calls per upgrade (one to grow, one to shrink the pooled slot
//! back for the next instance). An instance lives for one upgrade, so a bump
//! allocator wastes nothing that matters; what it cannot hold goes to the
//! system allocator, so a plugin that needs more memory gets it as before.
//!
//! Only on `wasm32-unknown-unknown`: on `wasm32-wasip2` the system allocator
//! (wasi-libc's) already owns the initial tail.
//!
//! `unsafe_code` is allowed here because a global allocator is unsafe by
//! nature: it hands out raw memory and reads the linker's `__heap_base`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Bytes in a wasm page.
const PAGE: usize = 65536;

extern "C" {
    /// Where the heap starts (after the stack and static data); set by the linker.
    static __heap_base: u8;
}

/// Bump allocation over the initial memory's free tail, then [`System`].
pub struct Allocator {
    /// Next free byte of the bump region; 0 before the first allocation.
    next: Cell<usize>,
    /// End of the bump region (the initial memory size).
    end: Cell<usize>,
    /// Start of the latest bump allocation (freed or grown in place), 0 if none.
    last: Cell<usize>,
}

// SAFETY: wasm32-unknown-unknown plugins are single-threaded.
unsafe impl Sync for Allocator {}

impl Allocator {
    /// An allocator that sets its region up on first use.
    pub const fn new() -> Self {
        Allocator {
            next: Cell::new(0),
            end: Cell::new(0),
            last: Cell::new(0),
        }
    }

    fn start() -> usize {
        // Only the address of the linker symbol is taken (no read: no `unsafe`).
        std::ptr::addr_of!(__heap_base) as usize
    }

    /// Whether `ptr` came from the bump region (a zero-size allocation may sit at its end).
    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        self.next.get() != 0 && p >= Self::start() && p <= self.end.get()
    }

    /// A block from the bump region, if it has room.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        if self.next.get() == 0 {
            let start = Self::start();
            let end = core::arch::wasm32::memory_size(0) * PAGE;
            self.next.set(start);
            self.end.set(end.max(start));
        }
        let at = self.next.get().checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let new_next = at.checked_add(layout.size())?;
        if new_next > self.end.get() {
            return None;
        }
        self.next.set(new_next);
        self.last.set(at);
        Some(at as *mut u8)
    }
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: bump blocks are disjoint, aligned and inside memory the instance
// owns and nobody else allocates from (Rust's allocator on this target only
// uses memory it grows); other blocks are System's and go back to it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => p,
            // SAFETY: the caller's contract is passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: not a bump block, so System gave it.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // The latest block is given back; any other stays until the instance goes.
        if ptr as usize == self.last.get() && ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
            self.last.set(0);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: not a bump block, so System gave it.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let p = ptr as usize;
        if p == self.last.get() && p + layout.size() == self.next.get() {
            if let Some(new_next) = p.checked_add(new_size).filter(|&n| n <= self.end.get()) {
                self.next.set(new_next);
                return ptr;
            }
        }
        // SAFETY: `layout.align()` is a valid alignment, and the caller
        // guarantees `new_size` rounded up to it does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for `alloc`; the old block holds `layout.size()` bytes
        // and the new one `new_size`, and they do not overlap.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
