//! The `scarscope` command: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: huge::HugePages = huge::HugePages;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Keep freed memory for reuse instead of handing it back to the system after every large
/// free: a one-shot `analyze` or `compare` allocates and frees its planes (1–2 MB each at
/// 12 MP) over and over, and glibc's default trimming made each new plane fault its pages in
/// afresh. No block gets a mapping of its own either: a decoded photo (36 MB at 12 MP) comes
/// from the heap too, so once it is dropped the analysis's planes reuse its pages, already
/// faulted in. Not for `batch`, which hands free memory back after each photo on purpose.
pub(crate) fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's tuning; it is called before any worker
    // thread exists and a refused value leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}

/// The system allocator, with large blocks (a decoded photo, full-resolution buffers) offered
/// to the kernel for transparent huge pages: their first touch then faults once per 2 MiB
/// instead of once per 4 KiB page, which at 12 MP was ~14 % of a one-thread `analyze`.
/// Where the kernel gives huge pages only on request (`madvise` mode) this is the request;
/// where it never does, nothing changes. Values computed are unaffected.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod huge {
    use std::alloc::{GlobalAlloc, Layout, System};

    /// [`System`], advising huge pages for blocks of at least [`MIN_BYTES`].
    pub struct HugePages;

    /// Smallest block advised: a decoded photo of ~5 megapixels or more. Smaller blocks
    /// (processing planes, a batch's modest photos) keep base pages, so resident memory
    /// is not rounded up to whole huge pages where the faults saved would be few.
    const MIN_BYTES: usize = 16 << 20;
    const HUGE_PAGE: usize = 2 << 20;

    /// Advise the whole huge pages inside `[p, p + n)`.
    fn advise(p: *mut u8, n: usize) {
        if p.is_null() || n < MIN_BYTES {
            return;
        }
        let start = (p as usize).next_multiple_of(HUGE_PAGE);
        let end = (p as usize).saturating_add(n) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: the range lies inside a block the allocator just handed out and is
            // aligned to a huge page (so to any base page size); MADV_HUGEPAGE changes how
            // its pages are backed, never their contents. A failure only means no huge pages.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }

    // SAFETY: every call is forwarded to `System` with the same arguments; `advise` does not
    // touch the memory or the allocator's bookkeeping.
    unsafe impl GlobalAlloc for HugePages {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = System.alloc(layout);
            advise(p, layout.size());
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = System.alloc_zeroed(layout);
            advise(p, layout.size());
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = System.realloc(ptr, layout, new_size);
            advise(p, new_size);
            p
        }
    }
}
