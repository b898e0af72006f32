//! Per-stage wall-clock timings of one run (`--timings`): each stage call is wrapped in
//! [`Timings::time`], which adds its elapsed time under the stage's name. Stages keep the
//! order in which they first ran, and a stage that runs several times (two photos of a
//! `compare`, many of a `batch`) accumulates. The record serialises to one JSON object,
//! `{"stages_s": {"decode": 0.151, …}, "total_s": …}`, meant for stderr or a report.
//!
//! Timings are observations, never inputs: nothing in the pipeline reads them, so results
//! stay byte-identical whether or not they are collected.
//!
//! With a [`HeapGauge`] attached ([`Timings::with_gauge`]; a counting global allocator, as in
//! `examples/stage_memory.rs`), each stage also records the highest heap use seen while it
//! ran ([`Timings::memory`]): the way to find which stage sets a photo's peak memory.

use std::time::Instant;

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

/// Wall times of named stages, in first-run order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    stages: Vec<(String, f64)>,
    gauge: Gauge,
    memory: Vec<(String, StageMemory)>,
}

/// The process's heap use, for per-stage memory: typically a counting global allocator
/// (the library installs none). Its peak is process-wide, so figures are exact only while
/// one stage runs at a time (one photo, one job).
pub trait HeapGauge: Sync {
    /// Bytes allocated now.
    fn live(&self) -> usize;
    /// Highest bytes allocated since the last [`HeapGauge::reset_peak`].
    fn peak(&self) -> usize;
    /// Start a new peak window at the current use.
    fn reset_peak(&self);
}

/// Heap use of one stage, bytes; a stage run several times keeps its largest figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageMemory {
    /// Allocated when the stage started (what earlier stages still hold).
    pub before: usize,
    /// Highest allocated while the stage ran.
    pub peak: usize,
}

/// An optional gauge; it is an instrument, not data, so it never makes records differ.
#[derive(Clone, Copy, Default)]
struct Gauge(Option<&'static dyn HeapGauge>);

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Gauge(on)"
        } else {
            "Gauge(off)"
        })
    }
}

impl PartialEq for Gauge {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Timings {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty record that also measures each stage's heap use with `gauge`.
    pub fn with_gauge(gauge: &'static dyn HeapGauge) -> Self {
        Timings {
            gauge: Gauge(Some(gauge)),
            ..Self::default()
        }
    }

    /// Run `f`, add its wall time to `stage` (and its heap use, with a gauge), and return
    /// its result.
    pub fn time<T>(&mut self, stage: &str, f: impl FnOnce() -> T) -> T {
        let before = self.gauge.0.map(|g| {
            g.reset_peak();
            g.live()
        });
        let t0 = Instant::now();
        let out = f();
        self.add(stage, t0.elapsed().as_secs_f64());
        if let (Some(g), Some(before)) = (self.gauge.0, before) {
            self.add_memory(
                stage,
                StageMemory {
                    before,
                    peak: g.peak(),
                },
            );
        }
        out
    }

    /// Record heap use of `stage`, keeping the largest figures of repeated runs.
    fn add_memory(&mut self, stage: &str, m: StageMemory) {
        match self.memory.iter_mut().find(|(s, _)| s == stage) {
            Some((_, old)) => {
                old.before = old.before.max(m.before);
                old.peak = old.peak.max(m.peak);
            }
            None => self.memory.push((stage.to_owned(), m)),
        }
    }

    /// Heap use per stage, in first-run order; empty without a gauge.
    pub fn memory(&self) -> &[(String, StageMemory)] {
        &self.memory
    }

    /// Add `seconds` to `stage` (created at the end of the order if new).
    pub fn add(&mut self, stage: &str, seconds: f64) {
        match self.stages.iter_mut().find(|(s, _)| s == stage) {
            Some((_, t)) => *t += seconds,
            None => self.stages.push((stage.to_owned(), seconds)),
        }
    }

    /// Add every stage of `other` to this record (e.g. one photo's timings to a batch's).
    pub fn merge(&mut self, other: &Timings) {
        for (s, t) in &other.stages {
            self.add(s, *t);
        }
        for (s, m) in &other.memory {
            self.add_memory(s, *m);
        }
    }

    /// Seconds spent in `stage`, if it ran.
    pub fn get(&self, stage: &str) -> Option<f64> {
        self.stages
            .iter()
            .find(|(s, _)| s == stage)
            .map(|(_, t)| *t)
    }

    /// The stages and their seconds, in first-run order.
    pub fn stages(&self) -> &[(String, f64)] {
        &self.stages
    }

    /// Sum over all stages, seconds.
    pub fn total(&self) -> f64 {
        self.stages.iter().map(|(_, t)| t).sum()
    }

    /// The record as one line of JSON (see the module notes).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Seconds rounded to the microsecond: finer digits are noise.
fn micro(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

struct Stages<'a>(&'a [(String, f64)]);

impl Serialize for Stages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, t) in self.0 {
            m.serialize_entry(name, &micro(*t))?;
        }
        m.end()
    }
}

impl Serialize for Timings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Timings", 2)?;
        st.serialize_field("stages_s", &Stages(&self.stages))?;
        st.serialize_field("total_s", &micro(self.total()))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_keep_first_run_order_and_repeated_stages_accumulate() {
        let mut t = Timings::new();
        t.add("decode", 0.5);
        t.add("segment", 0.25);
        t.add("decode", 0.25);
        let v = t.time("write", || 7);
        assert_eq!(v, 7);
        let names: Vec<&str> = t.stages().iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["decode", "segment", "write"]);
        assert_eq!(t.get("decode"), Some(0.75));
        assert!(t.get("write").is_some_and(|w| w >= 0.0));
        assert_eq!(t.get("relief"), None);
    }

    /// A gauge driven by hand: `live` and `peak` are whatever the test sets.
    struct FakeGauge {
        live: std::sync::atomic::AtomicUsize,
        peak: std::sync::atomic::AtomicUsize,
    }

    impl HeapGauge for FakeGauge {
        fn live(&self) -> usize {
            self.live.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn peak(&self) -> usize {
            self.peak.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn reset_peak(&self) {
            self.peak
                .store(self.live(), std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_gauge_records_each_stages_heap_peak_and_repeats_keep_the_largest() {
        use std::sync::atomic::Ordering::SeqCst;
        static G: FakeGauge = FakeGauge {
            live: std::sync::atomic::AtomicUsize::new(100),
            peak: std::sync::atomic::AtomicUsize::new(0),
        };
        let mut t = Timings::with_gauge(&G);
        t.time("decode", || G.peak.store(900, SeqCst));
        G.live.store(300, SeqCst);
        t.time("relief", || G.peak.store(500, SeqCst));
        t.time("decode", || G.peak.store(700, SeqCst));
        let m = t.memory();
        assert_eq!(
            m[0],
            (
                "decode".into(),
                StageMemory {
                    before: 300,
                    peak: 900
                }
            )
        );
        assert_eq!(
            m[1],
            (
                "relief".into(),
                StageMemory {
                    before: 300,
                    peak: 500
                }
            )
        );
        assert_eq!(m.len(), 2);
        assert!(Timings::new().memory().is_empty());
        // The gauge is an instrument: the JSON of the timings does not change with it.
        assert!(!t.to_json_line().contains("peak"));
    }

    #[test]
    fn json_lists_stages_in_order_with_their_total() {
        let mut a = Timings::new();
        a.add("normalise", 0.125);
        a.add("decode", 0.5);
        let mut b = Timings::new();
        b.add("decode", 0.25);
        b.add("measure", 0.0000004);
        a.merge(&b);
        assert_eq!(
            a.to_json_line(),
            r#"{"stages_s":{"normalise":0.125,"decode":0.75,"measure":0.0},"total_s":0.875}"#
        );
    }
}
