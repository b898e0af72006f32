//! Writes a synthetic study folder from the phantom: `OUT/<subject>/<session>/<view>.jpg`,
//! a `study.toml` manifest with each session's calibration and date, and the ground truth of
//! every photo in `OUT/.truth/<subject>/<session>/<view>.json` (a hidden folder, so a batch
//! run over the study does not mistake it for a subject).

use std::path::Path;

use rayon::prelude::*;

use crate::phantom::{Subject, SubjectConfig};
use crate::report::{write_atomic, WriteError};

/// What `synth` makes.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of subjects.
    pub subjects: usize,
    /// Sessions per subject (baseline included).
    pub sessions: usize,
    /// Seed of the whole study.
    pub seed: u64,
    /// Photo width, px.
    pub width: usize,
    /// Photo height, px.
    pub height: usize,
    /// Baseline px per mm.
    pub px_per_mm: f64,
    /// Scars per subject.
    pub scars: usize,
    /// Whether the skin casts shadows on itself (slower to render).
    pub cast_shadows: bool,
}

/// The view name every synthetic photo carries.
pub const VIEW: &str = "left_cheek";

/// Subject id of the `i`-th synthetic subject (0-based).
pub fn subject_id(i: usize) -> String {
    format!("S{:02}", i + 1)
}

/// Write the study; returns the number of photos written.
pub fn write_study(out: &Path, o: &SynthOptions) -> Result<usize, WriteError> {
    let subjects: Vec<Subject> = (0..o.subjects)
        .map(|i| {
            let cfg = SubjectConfig {
                width: o.width,
                height: o.height,
                px_per_mm: o.px_per_mm,
                n_scars: o.scars,
                sessions: o.sessions,
                cast_shadows: o.cast_shadows,
                ..Default::default()
            };
            let seed = o.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            Subject::generate(&subject_id(i), seed, &cfg)
        })
        .collect();
    let jobs: Vec<(usize, usize)> = (0..subjects.len())
        .flat_map(|s| (0..o.sessions).map(move |k| (s, k)))
        .collect();
    jobs.par_iter().try_for_each(|&(s, k)| {
        let subj = &subjects[s];
        let ses = &subj.sessions[k].name;
        let photo = out.join(&subj.id).join(ses).join(format!("{VIEW}.jpg"));
        write_atomic(&photo, &subj.render_jpeg(k))?;
        let truth = subj.truth(k, VIEW);
        let tpath = out
            .join(".truth")
            .join(&subj.id)
            .join(ses)
            .join(format!("{VIEW}.json"));
        let mut text = serde_json::to_string_pretty(&truth).unwrap_or_default();
        text.push('\n');
        write_atomic(&tpath, text.as_bytes())
    })?;
    write_atomic(&out.join("study.toml"), manifest(&subjects, o).as_bytes())?;
    Ok(jobs.len())
}

fn manifest(subjects: &[Subject], o: &SynthOptions) -> String {
    let mut m = String::new();
    m.push_str("# scarscope study manifest, written by `scarscope synth`\n");
    m.push_str(&format!(
        "# seed {}, {} subjects x {} sessions; ground truth in .truth/\n",
        o.seed, o.subjects, o.sessions
    ));
    m.push_str("schema_version = 1\nname = \"synthetic study\"\n\n[defaults]\n");
    m.push_str(&format!("views = [\"{VIEW}\"]\n\n"));
    for s in subjects {
        for (k, ses) in s.sessions.iter().enumerate() {
            m.push_str(&format!("[subjects.{}.sessions.{}]\n", s.id, ses.name));
            // Sessions six weeks apart, as in a microneedling course.
            let day = 10 + 42 * k;
            let (month, dom) = (1 + day / 28, 1 + day % 28);
            m.push_str(&format!("date = \"2026-{month:02}-{dom:02}\"\n"));
            m.push_str(&format!("mm_per_px = {:.6}\n\n", s.session_mm_per_px(k)));
        }
    }
    m
}
