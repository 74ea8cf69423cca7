//! The binary's memory allocator: a bump arena in front of the system allocator.
//!
//! A vnetgen process is short and small: `render laptop-wifi` makes about 4 500 allocations
//! that total about 1 MB and peak at half that, and then exits. musl's allocator, which the
//! release binary is linked with (xtask/src/release.rs), made such a render 45 % slower than
//! glibc's; this one made it faster than either (README, Speed). It reserves one region of
//! address space at the first allocation and hands out memory from it by moving an offset: no
//! free lists, no headers. Freeing the newest block gives its memory back and growing the newest
//! block grows it in place (a `String` or `Vec` being built); any other freed memory stays used
//! until the process exits. Pages become memory only when first touched. When the region is
//! full, or cannot be reserved, the system allocator serves instead, and a block of the region
//! is never handed to it.
//!
//! Only the binary uses it (`#[global_allocator]` in main.rs); the library and its tests use the
//! system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Address space the binary's arena reserves. Only what is used becomes memory; a process that
/// needs more goes on with the system allocator.
pub const RESERVE: usize = 64 << 20;

/// A bump arena of `SIZE` bytes of address space.
pub struct Arena<const SIZE: usize> {
    /// Start of the region; 0 before the first allocation, 1 if it could not be reserved.
    base: AtomicUsize,
    /// Offset of the first free byte.
    top: AtomicUsize,
}

impl<const SIZE: usize> Arena<SIZE> {
    pub const fn new() -> Self {
        Arena { base: AtomicUsize::new(0), top: AtomicUsize::new(0) }
    }

    /// The region's start, reserving it on first use; `None` if that failed.
    fn base(&self) -> Option<usize> {
        match self.base.load(Ordering::Acquire) {
            0 => {}
            1 => return None,
            b => return Some(b),
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
        // existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        let mine = if p == libc::MAP_FAILED { 1 } else { p as usize };
        match self.base.compare_exchange(0, mine, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => (mine != 1).then_some(mine),
            Err(theirs) => {
                // Another thread reserved one first: use theirs.
                if mine != 1 {
                    // SAFETY: `p` is the mapping made above, used by no one.
                    unsafe { libc::munmap(p, SIZE) };
                }
                (theirs != 1).then_some(theirs)
            }
        }
    }

    /// A block of the region for `layout`, or `None` when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base()?;
        let mut top = self.top.load(Ordering::Relaxed);
        loop {
            // The address is aligned, not the offset: the region is only page-aligned, a
            // layout may ask for more.
            let start = (base + top).checked_next_multiple_of(layout.align())? - base;
            let end = start.checked_add(layout.size()).filter(|&e| e <= SIZE)?;
            match self.top.compare_exchange_weak(top, end, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some((base + start) as *mut u8),
                Err(now) => top = now,
            }
        }
    }

    /// The block's offset if `ptr` lies in the region.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        let base = self.base.load(Ordering::Acquire);
        let p = ptr as usize;
        (base > 1 && p >= base && p < base + SIZE).then(|| p - base)
    }
}

impl<const SIZE: usize> Default for Arena<SIZE> {
    fn default() -> Self {
        Arena::new()
    }
}

// SAFETY: every block handed out lies inside the region, is aligned as asked and belongs to one
// caller: the offset of the first free byte moves by compare-and-swap, forward to hand out a
// block, and back only over the newest block, by its owner, when it frees or shrinks it.
unsafe impl<const SIZE: usize> GlobalAlloc for Arena<SIZE> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => p,
            // SAFETY: the caller's contract for `alloc` is passed on unchanged.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => {
                // The region was zero when mapped, but a freed newest block is handed out again.
                // SAFETY: `p` is a fresh block of `layout.size()` bytes.
                unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
                p
            }
            // SAFETY: as in `alloc`.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            Some(start) => {
                // The newest block goes back; any other stays used.
                let _ = self.top.compare_exchange(start + layout.size(), start, Ordering::AcqRel, Ordering::Relaxed);
            }
            // SAFETY: not in the region, so the system allocator made it.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(start) = self.offset(ptr) else {
            // SAFETY: not in the region, so the system allocator made it.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        let end = start + layout.size();
        if new_size <= layout.size() {
            // Shrinking: the newest block gives back its tail, any other keeps it.
            let _ = self.top.compare_exchange(end, start + new_size, Ordering::AcqRel, Ordering::Relaxed);
            return ptr;
        }
        // Growing the newest block in place.
        if let Some(new_end) = start.checked_add(new_size).filter(|&e| e <= SIZE) {
            if self.top.compare_exchange(end, new_end, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return ptr;
            }
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are at least `layout.size()` long and distinct: `new` was
            // handed out while `ptr` was still in use.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small arena, so that tests can fill it.
    type Small = Arena<{ 64 << 10 }>;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_distinct_and_the_newest_one_comes_back() {
        let a = Small::new();
        unsafe {
            let x = a.alloc(layout(3, 1));
            let y = a.alloc(layout(8, 64));
            assert_eq!(y as usize % 64, 0);
            assert!(y as usize >= x as usize + 3);
            x.write_bytes(0xaa, 3);
            y.write_bytes(0xbb, 8);
            assert_eq!(*x.add(2), 0xaa);
            // Freeing the newest block hands out the same memory again, zeroed when asked.
            a.dealloc(y, layout(8, 64));
            let z = a.alloc_zeroed(layout(8, 64));
            assert_eq!(z, y);
            assert_eq!(std::slice::from_raw_parts(z, 8), &[0; 8]);
            // Freeing an older block keeps it used.
            a.dealloc(x, layout(3, 1));
            let w = a.alloc(layout(3, 1));
            assert!(w as usize > z as usize);
        }
    }

    #[test]
    fn an_alignment_above_the_page_size_is_kept() {
        let a = Small::new();
        unsafe {
            let small = a.alloc(layout(1, 1));
            for align in [8192, 16384] {
                let p = a.alloc(layout(8, align));
                assert_eq!(p as usize % align, 0, "align {align}");
                assert!(p as usize > small as usize);
                let z = a.alloc_zeroed(layout(8, align));
                assert_eq!(z as usize % align, 0, "zeroed, align {align}");
            }
        }
    }

    #[test]
    fn the_newest_block_grows_in_place_and_an_older_one_moves_with_its_bytes() {
        let a = Small::new();
        unsafe {
            let x = a.alloc(layout(4, 4));
            x.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let grown = a.realloc(x, layout(4, 4), 400);
            assert_eq!(grown, x, "the newest block grows where it is");
            let y = a.alloc(layout(16, 8));
            let moved = a.realloc(x, layout(400, 4), 800);
            assert_ne!(moved, x);
            assert!(moved as usize > y as usize);
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"abcd");
            let shrunk = a.realloc(moved, layout(800, 4), 2);
            assert_eq!(shrunk, moved);
            assert_eq!(std::slice::from_raw_parts(shrunk, 2), b"ab");
            // The newest block gave back its tail.
            let next = a.alloc(layout(1, 1));
            assert_eq!(next as usize, shrunk as usize + 2);
        }
    }

    #[test]
    fn a_full_arena_hands_over_to_the_system_allocator() {
        let a = Small::new();
        unsafe {
            let big = a.alloc(layout(60 << 10, 8));
            assert!(a.offset(big).is_some());
            let outside = a.alloc(layout(8 << 10, 8));
            assert!(!outside.is_null() && a.offset(outside).is_none(), "served by the system allocator");
            outside.write_bytes(1, 8 << 10);
            // Growing past the end moves the block out, bytes and all.
            big.write_bytes(7, 16);
            let moved = a.realloc(big, layout(60 << 10, 8), 70 << 10);
            assert!(a.offset(moved).is_none());
            assert_eq!(std::slice::from_raw_parts(moved, 16), &[7; 16]);
            a.dealloc(moved, layout(70 << 10, 8));
            a.dealloc(outside, layout(8 << 10, 8));
        }
    }

    #[test]
    fn threads_never_share_a_block() {
        static A: Small = Small::new();
        let threads: Vec<_> = (0u8..4)
            .map(|t| {
                std::thread::spawn(move || unsafe {
                    let mut mine = Vec::new();
                    for i in 0..200usize {
                        let l = layout(1 + i % 24, 8);
                        let p = A.alloc(l);
                        p.write_bytes(t, l.size());
                        mine.push((p, l));
                        if i % 3 == 0 {
                            let (p, l) = mine.pop().unwrap();
                            A.dealloc(p, l);
                        }
                    }
                    for (p, l) in &mine {
                        assert!(std::slice::from_raw_parts(*p, l.size()).iter().all(|&b| b == t), "a block was shared");
                    }
                    for (p, l) in mine {
                        A.dealloc(p, l);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
