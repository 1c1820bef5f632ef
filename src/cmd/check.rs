//! `kvr check`: verifies a database file without changing it (see
//! `store::check`). Each problem is a line on stdout, `problem: WHERE: WHAT`;
//! any problem makes the command fail (exit 3).

use std::io::Write;

use super::{remote, store_options};
use crate::cli::{CheckArgs, Global};
use crate::error::{Error, Result};

/// `check --json` of a file without problems, its fields in this order.
#[derive(serde::Serialize)]
struct Passed {
    ok: bool,
    keys: u64,
    revision: u64,
    expired: u64,
}

/// `check --json` of a file with problems.
#[derive(serde::Serialize)]
struct Failed<'a> {
    ok: bool,
    problems: Vec<Problem<'a>>,
}

#[derive(serde::Serialize)]
struct Problem<'a> {
    #[serde(rename = "where")]
    place: &'a str,
    what: &'a str,
}

/// The check's page cache unless `--cache-mib` is given: it reads each
/// page about twice, so a large cache does not help. On a 1.4 GB file,
/// 64 MiB took 7.7 s and 110 MB of memory; the 1 GiB default 13 s and 1.4 GB.
pub(super) const CHECK_CACHE_BYTES: usize = 64 << 20;

pub fn run(g: &Global, args: &CheckArgs) -> anyhow::Result<()> {
    local_only(g, "check")?;
    let opts = store_options(g)?;
    let cache = match g.cache_mib {
        Some(_) => opts.cache_bytes,
        None => CHECK_CACHE_BYTES,
    };
    let mut report = crate::store::check(&g.db, cache, opts.lock_timeout)
        .map_err(|e| e.for_file_command("check"))?;
    if report.cluster_identity.is_some() {
        if check_raft_log(g, &mut report) {
            note_unapplied_raft_log(g, &report);
        }
    } else {
        note_stale_raft_log(g);
    }
    for note in &report.notes {
        // Not `eprintln!`, which panics when stderr cannot be written.
        let _ = writeln!(std::io::stderr(), "kvr: note: {note}");
    }
    let mut out = std::io::stdout().lock();
    let write_err = |e| Error::io("cannot write output", e);
    // Counted as `stats` and reads count them: expired keys are absent.
    let keys = report.keys - report.expired;
    if args.json {
        // In the README's order (`json!` would sort the keys).
        let line = match report.problems.is_empty() {
            true => serde_json::to_string(&Passed {
                ok: true,
                keys,
                revision: report.revision,
                expired: report.expired,
            }),
            false => serde_json::to_string(&Failed {
                ok: false,
                problems: report
                    .problems
                    .iter()
                    .map(|p| Problem {
                        place: &p.place,
                        what: &p.what,
                    })
                    .collect(),
            }),
        }
        .map_err(|e| Error::Storage(e.to_string()))?;
        writeln!(out, "{line}").map_err(write_err)?;
    } else if report.problems.is_empty() {
        writeln!(out, "ok: {keys} keys, revision {}", report.revision).map_err(write_err)?;
        if report.expired > 0 {
            // Not `eprintln!`, which panics when stderr cannot be written.
            let _ = writeln!(
                std::io::stderr(),
                "kvr: note: {} more key{} in the file expired and {} deleted by the next write",
                report.expired,
                if report.expired == 1 { "" } else { "s" },
                if report.expired == 1 { "is" } else { "are" },
            );
        }
    } else {
        for p in &report.problems {
            writeln!(out, "problem: {}: {}", p.place, p.what).map_err(write_err)?;
        }
    }
    if report.problems.is_empty() {
        return Ok(());
    }
    let db = g.db.display();
    Err(Error::Corrupt(format!(
        "check found {} problem{} in {db} (listed on stdout); restore a backup of it, or copy \
         what can still be read (kvr --db {db} range | kvr --db NEW batch)",
        report.problems.len(),
        if report.problems.len() == 1 { "" } else { "s" },
    ))
    .into())
}

/// A cluster member's Raft log that its next start would refuse (damaged,
/// not torn, or another member's) is a problem of the file's too. Whether
/// the log is the file's own.
fn check_raft_log(g: &Global, report: &mut crate::store::Report) -> bool {
    let dir = crate::cluster::log_store::dir_of(&g.db);
    let place = format!("raft log {}", dir.display());
    // A member that applied entries but whose log (and so its vote) is
    // gone: `serve` refuses to start it (`cluster::start::log_gone`), so
    // this file cannot serve as it is.
    if !crate::cluster::log_store::holds_vote(&dir)
        && let Some(identity) = report.cluster_identity.as_deref()
        && let Ok((_, node)) = crate::cluster::start::decode_identity(identity)
        && let Ok(Some(applied)) =
            crate::cluster::catch_up::applied_index(report.cluster_marker.as_deref())
    {
        let gone = crate::cluster::start::log_gone(&g.db, &dir, node, applied);
        report.problem(place, gone.to_string());
        return false;
    }
    if !dir.is_dir() {
        return true;
    }
    // Another member's log (its file was replaced): not this file's, so
    // not checked as its.
    let owned = report
        .cluster_identity
        .as_deref()
        .map(crate::cluster::start::decode_identity)
        .transpose()
        .and_then(|id| match id {
            Some(id) => crate::cluster::owner::check(&dir, &g.db, &id),
            None => Ok(()),
        });
    if let Err(e) = owned {
        report.problem(place, e.to_string());
        return false;
    }
    if let Err(e) = crate::cluster::log_store::verify(&dir) {
        report.problem(place, e.to_string());
    }
    true
}

/// A Raft log beside a file that is not a member's was left by a member
/// file deleted since: not checked as the file's, only pointed out.
fn note_stale_raft_log(g: &Global) {
    let dir = crate::cluster::log_store::dir_of(&g.db);
    if dir.is_dir() {
        let _ = writeln!(
            std::io::stderr(),
            "kvr: note: {} is not a cluster member's file, so the Raft log {} beside it is \
             not its own (left by a member file deleted since); commands ignore it, and \
             `kvr serve --cluster-init` or `--join` on this file removes it",
            g.db.display(),
            dir.display()
        );
    }
}

/// A stopped cluster member's file lacks what its Raft log holds after a
/// `kill -9` (see `cluster::catch_up`); check leaves the file as it is, so
/// it says so on stderr (a note: the file itself is sound).
fn note_unapplied_raft_log(g: &Global, report: &crate::store::Report) {
    let behind = crate::cluster::catch_up::entries_behind(report.cluster_marker.as_deref(), &g.db);
    if let Ok(n @ 1..) = behind {
        let _ = writeln!(
            std::io::stderr(),
            "kvr: note: the Raft log {} holds {n} committed entr{} that {} does not hold \
             yet; any other command that opens the file, or the node's next start, applies \
             them",
            crate::cluster::log_store::dir_of(&g.db).display(),
            if n == 1 { "y" } else { "ies" },
            g.db.display()
        );
    }
}

/// `check` and `compact` work on a file: with a server, say so (exit 2).
pub(super) fn local_only(g: &Global, command: &str) -> Result<()> {
    if remote(g)?.is_some() {
        return Err(Error::invalid(format!(
            "kvr {command} works on a database file: give --db PATH (of a file no server holds)"
        )));
    }
    Ok(())
}
