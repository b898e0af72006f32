//! `scarscope merge OUT1 OUT2 ... --out DIR`: combine the outputs of `batch --shard I/N`
//! runs into exactly what one `batch` run over the whole study writes.
//!
//! Each shard's `study.json` lists its subjects; their documents and overlays are copied
//! byte for byte, then `study.json`, `scars.csv` and the HTML report are rebuilt from the
//! subject documents (one in memory at a time, as `batch` does).
//! The shards must come from the same study, settings and tool version, and together cover
//! every shard 1..N exactly once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context};
use clap::Args;
use scarscope::batch::{lock_output, write_scars_csv, Kept};
use scarscope::report::study::{study_doc, StudyDoc, SubjectDoc};
use scarscope::report::{to_json_bytes, write_atomic};

/// Arguments of `merge`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status:
  0  merged; the study has no failures
  1  merged; the study lists failures (as the single run would have exited)
  2  not merged: shards missing, duplicated or from different studies or settings")]
pub struct MergeArgs {
    /// Output folders of `batch --shard I/N` runs, one per shard.
    #[arg(value_name = "OUT", required = true)]
    shards: Vec<PathBuf>,
    /// Folder to write the merged outputs into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<(T, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a scarscope document", path.display()))?;
    Ok((v, bytes))
}

/// Output paths from a document must stay inside the output folder.
fn inside(rel: &str) -> anyhow::Result<&Path> {
    let p = Path::new(rel);
    ensure!(
        p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_))),
        "refusing output path `{rel}`: it would leave the output folder"
    );
    Ok(p)
}

/// Run `merge`.
pub fn run(a: MergeArgs) -> anyhow::Result<ExitCode> {
    let mut studies: Vec<(PathBuf, StudyDoc)> = Vec::new();
    for dir in &a.shards {
        let (doc, _) = read_json::<StudyDoc>(&dir.join("study.json"))?;
        studies.push((dir.clone(), doc));
    }
    let (first_dir, first) = &studies[0];
    let Some(count) = first.shard.map(|s| s.count) else {
        bail!(
            "{} is not a shard output (its study.json has no shard); nothing to merge",
            first_dir.display()
        );
    };
    let mut seen = vec![None::<&Path>; count];
    for (dir, s) in &studies {
        let shard = s.shard.with_context(|| {
            format!(
                "{} is not a shard output (no shard in study.json)",
                dir.display()
            )
        })?;
        ensure!(
            shard.count == count,
            "{} is shard {}/{} but {} is of {count} shards",
            dir.display(),
            shard.index,
            shard.count,
            first_dir.display()
        );
        ensure!(
            s.tool == first.tool
                && s.schema_version == first.schema_version
                && s.study == first.study
                && s.provenance == first.provenance
                && s.warnings == first.warnings,
            "{} and {} come from different studies, settings or scarscope versions",
            dir.display(),
            first_dir.display()
        );
        if let Some(other) = seen[shard.index - 1].replace(dir) {
            bail!(
                "shard {}/{count} given twice: {} and {}",
                shard.index,
                other.display(),
                dir.display()
            );
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|&i| seen[i].is_none())
        .map(|i| format!("{}/{count}", i + 1))
        .collect();
    ensure!(
        missing.is_empty(),
        "missing shard(s): {}",
        missing.join(", ")
    );

    let _lock = lock_output(&a.out)?;
    // One digest per subject is kept; the documents are read, copied and dropped one by one.
    let mut kept: Vec<Kept> = Vec::new();
    for (dir, s) in &studies {
        for sum in &s.subjects {
            let rel = inside(&sum.document)?;
            let (doc, bytes) = read_json::<SubjectDoc>(&dir.join(rel))?;
            ensure!(
                doc.fingerprint == sum.fingerprint,
                "{}: the subject document does not match its shard's study.json (rerun that shard)",
                dir.join(rel).display()
            );
            for o in doc
                .views
                .iter()
                .flat_map(|v| &v.sessions)
                .filter_map(|s| s.overlay.as_ref())
            {
                let rel_o = inside(o)?;
                let img = std::fs::read(dir.join(rel_o))
                    .with_context(|| format!("cannot read {}", dir.join(rel_o).display()))?;
                write_atomic(&a.out.join(rel_o), &img)?;
            }
            write_atomic(&a.out.join(rel), &bytes)?;
            // The report is rebuilt from the merged documents, as a single run writes it.
            scarscope::report::html::write_subject_page(&a.out, &doc)?;
            kept.push(Kept::new(&doc, true));
        }
    }
    kept.sort_by_key(|k| k.digest.order);
    if let Some(w) = kept
        .windows(2)
        .find(|w| w[0].digest.order == w[1].digest.order)
    {
        bail!(
            "subject `{}` appears in two shards",
            w[1].digest.summary.subject
        );
    }
    let merged = study_doc(
        first.study.clone(),
        first.provenance.clone(),
        None,
        first.warnings.clone(),
        kept.iter().map(|k| &k.digest),
    );
    write_scars_csv(&a.out, &kept)?;
    scarscope::report::html::write_study_index(&a.out, &merged)?;
    write_atomic(&a.out.join("study.json"), &to_json_bytes(&merged)?)?;
    println!(
        "merged {count} shards: {} subjects, {} of {} photos analysed, {} failures; results in {}",
        merged.totals.subjects,
        merged.totals.analysed,
        merged.totals.photos,
        merged.totals.failures,
        a.out.join("study.json").display()
    );
    Ok(if merged.totals.failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
