//! # scarscope
//!
//! Measures atrophic acne scars in skin photographs and tracks how they change across
//! treatment sessions. The library is a pipeline of stages, one module each, through which
//! data flows one way:
//!
//! [`load`] → [`normalize`] → [`intrinsics`] → [`filters`] → [`relief`] → [`segment`] →
//! [`symmetry`] → [`measure`], orchestrated for one photo by [`analyze`]; [`report`] turns
//! results into the JSON contract and overlays.
//!
//! [`phantom`] is the synthetic skin generator that provides ground truth for tests and
//! benchmarks ([`synth`] writes a whole study from it); [`eval`] scores a result against that
//! truth.
//!
//! A whole study: [`study`] walks the folder and manifest into a plan, [`batch`] runs one
//! subject of it, [`report::study`] holds the subject and study documents and the tidy CSV.

pub mod analyze;
pub mod batch;
pub mod change;
pub mod compare;
pub mod error;
pub mod eval;
pub mod filters;
pub mod intrinsics;
pub mod load;
pub mod measure;
pub mod normalize;
pub mod phantom;
pub mod pitfit;
pub mod register;
pub mod relief;
pub mod report;
pub mod segment;
pub mod study;
pub mod symmetry;
pub mod synth;
pub mod timings;
pub mod track;
pub mod validate;
