//! Which stage of `batch` sets a job's peak memory: one phantom subject (2 sessions of an
//! 800×600 photo, the `batch_memory` bench's settings) run through
//! `batch::process_subject_timed` on one thread, with a counting global allocator as the
//! heap gauge. Prints, per stage, the heap held when it started and the highest heap use
//! while it ran (over both photos), then the whole run's peak.
//!
//! `cargo run --release --example stage_memory [WIDTH HEIGHT [SESSIONS [MM_PER_PX]]]`
//! (a pixel size above 0.05 mm makes the analysis run at full resolution, as for about half
//! the bench's second sessions; at 0.05 mm it runs at half resolution)
//!
//! Heap bytes only: the resident set also holds the binary, thread stacks and what the
//! allocator keeps of freed memory (`batch_memory` measures that, from the kernel).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use scarscope::batch::{process_subject_timed, BatchConfig, PhotoGate};
use scarscope::load::LoadLimits;
use scarscope::report::to_json_bytes;
use scarscope::study::{Settings, Study};
use scarscope::synth::{write_study, SynthOptions};
use scarscope::timings::{HeapGauge, Timings};

/// The system allocator, counting bytes in use and their highest level.
struct Counting {
    live: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            self.grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            self.grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        self.live.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            self.live.fetch_sub(l.size(), Relaxed);
            self.grew(new);
        }
        q
    }
}

impl Counting {
    fn grew(&self, n: usize) {
        let now = self.live.fetch_add(n, Relaxed) + n;
        self.peak.fetch_max(now, Relaxed);
    }
}

impl HeapGauge for Counting {
    fn live(&self) -> usize {
        self.live.load(Relaxed)
    }
    fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }
    fn reset_peak(&self) {
        self.peak.store(self.live(), Relaxed);
    }
}

#[global_allocator]
static HEAP: Counting = Counting {
    live: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (width, height, sessions) = (arg(1, 800), arg(2, 600), arg(3, 2));
    let dir = tempfile::TempDir::new()?;
    let root = dir.path().join("study");
    let opts = SynthOptions {
        subjects: 1,
        sessions,
        seed: 9,
        width,
        height,
        px_per_mm: 20.0,
        scars: 12,
        cast_shadows: false,
    };
    write_study(&root, &opts)?;
    let study = Study::plan(&root)?;
    let cfg = BatchConfig {
        overrides: Settings {
            mm_per_px: std::env::args().nth(4).and_then(|s| s.parse().ok()),
            ..Settings::default()
        },
        limits: LoadLimits::default(),
        absolute_paths: false,
        out: dir.path().join("out"),
        gate: std::sync::Arc::new(PhotoGate::new(1)),
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut t = Timings::with_gauge(&HEAP);
    let start = HEAP.live();
    HEAP.reset_peak();
    pool.install(|| {
        let doc = process_subject_timed(
            &study,
            &study.subjects[0],
            &cfg,
            String::new(),
            &|| {},
            &mut t,
        );
        t.time("subject json", || to_json_bytes(&doc).map(|b| b.len()))
    })?;
    let whole = t
        .memory()
        .iter()
        .map(|(_, m)| m.peak)
        .max()
        .unwrap_or(start);
    println!("| stage ({width}×{height}, {sessions} sessions, one job) | heap held at start | peak heap in the stage | wall, all photos |");
    println!("|---|---|---|---|");
    for (stage, m) in t.memory() {
        println!(
            "| {stage} | {:.2} MiB | {:.2} MiB | {:.3} s |",
            mib(m.before.saturating_sub(start)),
            mib(m.peak.saturating_sub(start)),
            t.get(stage).unwrap_or(0.0)
        );
    }
    println!(
        "whole subject: peak heap {:.2} MiB",
        mib(whole.saturating_sub(start))
    );
    Ok(())
}
