//! `wrapkit cache dir | ls | verify | gc | clear`: the cache exec-mode apps run from.
//!
//! Everything here goes through `wrapkit_runtime::cache`, the code the packed executables use,
//! so the two cannot disagree about the layout. Removal takes each tree's lock and skips trees
//! being filled at that moment. Data (the listing, verify results, as text or `--json`) goes to
//! stdout; what was removed (notes, silenced by `-q`), and errors, to stderr.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde::Serialize;
use wrapkit_runtime::cache::{self, Bundle, Cache, Location, Removal};
use wrapkit_runtime::report;

use crate::cli::{CacheArgs, CacheCommand};
use crate::inspect::human_bytes;
use crate::messages::{self, detail, note};

pub(crate) fn cache(args: CacheArgs) -> anyhow::Result<ExitCode> {
    let location = match args.cache_dir {
        Some(dir) => Location::explicit(std::path::absolute(dir)?),
        None => Location::from_env()?,
    };
    if let CacheCommand::Dir = args.command {
        writeln!(std::io::stdout().lock(), "{}", location.path.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    detail!("cache: {}", location.path.display());
    let Some(cache) = Cache::open_existing(&location)? else {
        note!(
            "no cache at {} (nothing has run from it yet)",
            location.path.display()
        );
        if let CacheCommand::Ls { json: true } | CacheCommand::Verify { json: true, .. } =
            args.command
        {
            // Nothing cached is still an answer a script can parse.
            writeln!(std::io::stdout().lock(), "[]")?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    match args.command {
        CacheCommand::Dir => unreachable!("handled above"),
        CacheCommand::Ls { json } => ls(&cache, json),
        CacheCommand::Verify { digests, json } => verify(&cache, &digests, json),
        CacheCommand::Gc { max_age, dry_run } => gc(&cache, max_age, dry_run),
        CacheCommand::Clear { digests } => clear(&cache, &digests),
    }
}

fn short(digest: &str) -> &str {
    &digest[..12]
}

fn app(b: &Bundle) -> String {
    if b.layer {
        return match &b.marker {
            Some(m) => format!(
                "layer {} ({})",
                m.name.rsplit('/').next().unwrap_or(&m.name),
                m.libc.as_deref().unwrap_or("?")
            ),
            None => "layer".into(),
        };
    }
    match &b.marker {
        Some(m) => format!("{} {}", m.name, m.version),
        None => "-".into(),
    }
}

fn ago(t: Option<SystemTime>) -> String {
    let Some(age) = t.and_then(|t| SystemTime::now().duration_since(t).ok()) else {
        return "-".into();
    };
    match age.as_secs() / 86_400 {
        0 => "today".into(),
        1 => "1 day ago".into(),
        n => format!("{n} days ago"),
    }
}

/// Whether the executable at `path` still carries the tree with `digest`.
fn exe_state(path: &std::path::Path, digest: &str) -> &'static str {
    match cache::digest_of(path) {
        Some(d) if d == digest => "present",
        Some(_) => "repacked",
        None if path.exists() => "replaced",
        None => "missing",
    }
}

/// The app of a cached tree, in `--json` output.
#[derive(Debug, Serialize)]
struct AppJson<'a> {
    name: &'a str,
    version: &'a str,
}

fn app_json(b: &Bundle) -> Option<AppJson<'_>> {
    b.marker.as_ref().map(|m| AppJson {
        name: &m.name,
        version: &m.version,
    })
}

/// One tree in `wrapkit cache ls --json` (docs/cli.md, "JSON output").
#[derive(Debug, Serialize)]
struct TreeJson<'a> {
    digest: &'a str,
    /// `bundle` (an app's own files) or `layer` (a program and its libraries, shared).
    kind: &'static str,
    /// For a layer: the glibc its fill chose (`host` or `bundle`).
    #[serde(skip_serializing_if = "Option::is_none")]
    libc: Option<&'a str>,
    /// For a bundle: the layers it uses, by digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<&'a str>,
    path: String,
    state: &'static str,
    size: u64,
    /// Seconds since the Unix epoch, to within a day.
    last_used: Option<u64>,
    app: Option<AppJson<'a>>,
    executables: Vec<ExeJson>,
}

#[derive(Debug, Serialize)]
struct ExeJson {
    path: String,
    state: &'static str,
}

fn state(b: &Bundle) -> &'static str {
    if b.marker.is_some() {
        "complete"
    } else {
        "incomplete"
    }
}

fn ls(cache: &Cache, json: bool) -> anyhow::Result<ExitCode> {
    let bundles = cache.bundles()?;
    let mut out = std::io::stdout().lock();
    if json {
        let trees: Vec<TreeJson<'_>> = bundles
            .iter()
            .map(|b| TreeJson {
                digest: &b.digest,
                kind: if b.layer { "layer" } else { "bundle" },
                libc: b.marker.as_ref().and_then(|m| m.libc.as_deref()),
                layers: b
                    .marker
                    .as_ref()
                    .map_or_else(Vec::new, |m| m.layers.iter().map(String::as_str).collect()),
                path: b.path.display().to_string(),
                state: state(b),
                size: b.size,
                last_used: b
                    .last_used
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
                app: if b.layer { None } else { app_json(b) },
                executables: b.marker.as_ref().map_or_else(Vec::new, |m| {
                    m.exes
                        .iter()
                        .map(|p| ExeJson {
                            path: p.display().to_string(),
                            state: exe_state(p, &b.digest),
                        })
                        .collect()
                }),
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &trees)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<12}  {:<10}  {:>10}  {:<11}  {:<20}  EXECUTABLES",
        "DIGEST", "STATE", "SIZE", "LAST USED", "APP"
    )?;
    for b in &bundles {
        let state = state(b);
        let exes = b.marker.as_ref().map_or_else(String::new, |m| {
            m.exes
                .iter()
                .map(|p| match exe_state(p, &b.digest) {
                    "present" => p.display().to_string(),
                    other => format!("{} ({other})", p.display()),
                })
                .collect::<Vec<_>>()
                .join(", ")
        });
        writeln!(
            out,
            "{:<12}  {:<10}  {:>10}  {:<11}  {:<20}  {exes}",
            short(&b.digest),
            state,
            human_bytes(b.size),
            ago(b.last_used),
            app(b),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The bundles named by `digests` (full or unique prefixes), or all when empty.
fn select(cache: &Cache, digests: &[String]) -> anyhow::Result<Vec<Bundle>> {
    let all = cache.bundles()?;
    if digests.is_empty() {
        return Ok(all);
    }
    let mut picked = Vec::new();
    for want in digests {
        let matches: Vec<&Bundle> = all
            .iter()
            .filter(|b| b.digest.starts_with(want.as_str()))
            .collect();
        match matches.as_slice() {
            [one] => picked.push((*one).clone()),
            [] => {
                bail!("no cached tree has a digest starting with `{want}` (see `wrapkit cache ls`)")
            }
            _ => bail!(
                "`{want}` matches {} cached trees; give more digits",
                matches.len()
            ),
        }
    }
    Ok(picked)
}

/// One tree in `wrapkit cache verify --json` (docs/cli.md, "JSON output").
#[derive(Debug, Serialize)]
struct CheckedJson<'a> {
    digest: &'a str,
    state: &'static str,
    app: Option<AppJson<'a>>,
    /// What is wrong, when `state` is `damaged`.
    problem: Option<String>,
}

fn verify(cache: &Cache, digests: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let bundles = select(cache, digests)?;
    let mut out = std::io::stdout().lock();
    let mut damaged = Vec::new();
    let mut checked = Vec::new();
    for b in &bundles {
        let (state, problem) = if b.marker.is_none() {
            ("incomplete", None)
        } else {
            match cache.verify(&b.digest) {
                Ok(()) => ("ok", None),
                Err(damage) => {
                    damaged.push(short(&b.digest).to_owned());
                    ("damaged", Some(damage.to_string()))
                }
            }
        };
        if json {
            checked.push(CheckedJson {
                digest: &b.digest,
                state,
                app: if b.layer { None } else { app_json(b) },
                problem,
            });
            continue;
        }
        match problem {
            None if state == "incomplete" => writeln!(
                out,
                "incomplete  {}  {} (the next start repairs it; `wrapkit cache gc` removes it)",
                short(&b.digest),
                app(b)
            )?,
            None => writeln!(out, "ok          {}  {}", short(&b.digest), app(b))?,
            Some(damage) => writeln!(
                out,
                "damaged     {}  {}: {damage}",
                short(&b.digest),
                app(b)
            )?,
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut out, &checked)?;
        writeln!(out)?;
    }
    out.flush()?;
    if damaged.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let error = format!(
        "{} of {} cached trees {} damaged",
        damaged.len(),
        bundles.len(),
        if damaged.len() == 1 { "is" } else { "are" }
    );
    let hint = format!(
        "`wrapkit cache clear {}` removes them; the next start of each app materialises it again",
        damaged.join(" ")
    );
    eprint!(
        "{}",
        report::block_styled([error], Some(&hint), messages::style())
    );
    Ok(ExitCode::from(crate::EXIT_FAILURE))
}

/// How long a layer no bundle uses is kept (a start fills its layers before its bundle).
const LAYER_GRACE: Duration = Duration::from_secs(3600);

fn gc(cache: &Cache, max_age_days: u64, dry_run: bool) -> anyhow::Result<ExitCode> {
    let max_age = Duration::from_secs(max_age_days.saturating_mul(86_400));
    let now = SystemTime::now();
    let (mut removed, mut freed) = (0u64, 0u64);
    let verb = if dry_run { "would remove" } else { "removed" };
    // Layers a kept bundle uses (bundles come before layers in the listing).
    let mut used_layers = std::collections::HashSet::new();
    for b in cache.bundles()? {
        let reason = match &b.marker {
            None => Some("incomplete".to_owned()),
            // Just filled for a start that has not written its bundle's marker yet: an hour's
            // grace before an unused layer goes.
            Some(_)
                if b.layer
                    && !used_layers.contains(&b.digest)
                    && b.last_used
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age > LAYER_GRACE) =>
            {
                Some("no app in the cache uses it".to_owned())
            }
            Some(m)
                if !m.exes.is_empty()
                    && m.exes.iter().all(|p| exe_state(p, &b.digest) != "present") =>
            {
                Some("no executable uses it any more".to_owned())
            }
            Some(_)
                if b.last_used
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age > max_age) =>
            {
                Some(format!("unused for more than {max_age_days} days"))
            }
            Some(_) => None,
        };
        let Some(reason) = reason else {
            if let Some(m) = &b.marker {
                used_layers.extend(m.layers.iter().cloned());
            }
            continue;
        };
        if dry_run {
            note!(
                "{verb} {} {} ({}): {reason}",
                short(&b.digest),
                app(&b),
                human_bytes(b.size)
            );
            removed += 1;
            freed += b.size;
            continue;
        }
        match cache
            .remove(&b.digest)
            .with_context(|| format!("cannot remove {}", b.path.display()))?
        {
            Removal::Removed(n) => {
                note!(
                    "{verb} {} {} ({}): {reason}",
                    short(&b.digest),
                    app(&b),
                    human_bytes(n)
                );
                removed += 1;
                freed += n;
            }
            Removal::Busy => note!("skipped {}: being filled right now", short(&b.digest)),
        }
    }
    let mut seen = Vec::new();
    for (path, digest) in cache.leftovers()? {
        if seen.contains(&digest) {
            continue;
        }
        seen.push(digest.clone());
        if dry_run {
            note!(
                "{verb} leftovers of an interrupted start: {}",
                path.display()
            );
            continue;
        }
        if let Removal::Removed(n) = cache.remove_leftovers(&digest)? {
            note!(
                "{verb} leftovers of an interrupted start of {}",
                short(&digest)
            );
            freed += n;
        }
    }
    note!(
        "{verb} {removed} tree{}, {} freed",
        if removed == 1 { "" } else { "s" },
        human_bytes(freed)
    );
    Ok(ExitCode::SUCCESS)
}

fn clear(cache: &Cache, digests: &[String]) -> anyhow::Result<ExitCode> {
    let (mut removed, mut freed, mut busy) = (0u64, 0u64, 0u64);
    for b in select(cache, digests)? {
        match cache
            .remove(&b.digest)
            .with_context(|| format!("cannot remove {}", b.path.display()))?
        {
            Removal::Removed(n) => {
                removed += 1;
                freed += n;
            }
            Removal::Busy => {
                // Not a note: it is why the command fails, so `-q` keeps it.
                eprintln!("skipped {}: being filled right now", short(&b.digest));
                busy += 1;
            }
        }
    }
    note!(
        "removed {removed} tree{} from {}, {} freed",
        if removed == 1 { "" } else { "s" },
        cache.root().display(),
        human_bytes(freed)
    );
    Ok(if busy == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FAILURE)
    })
}
