//! Per-stage wall-clock timings of one run (`--timings`): each stage call is wrapped in
//! [`Timings::time`], which adds its elapsed time under the stage's name. Stages keep the
//! order in which they first ran, and a stage that runs several times (two photos of a
//! `compare`, many of a `batch`) accumulates. The record serialises to one JSON object,
//! `{"stages_s": {"decode": 0.151, …}, "total_s": …}`, meant for stderr or a report.
//!
//! Timings are observations, never inputs: nothing in the pipeline reads them, so results
//! stay byte-identical whether or not they are collected.

use std::time::Instant;

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

/// Wall times of named stages, in first-run order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    stages: Vec<(String, f64)>,
}

impl Timings {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `f`, add its wall time to `stage`, and return its result.
    pub fn time<T>(&mut self, stage: &str, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        self.add(stage, t0.elapsed().as_secs_f64());
        out
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
