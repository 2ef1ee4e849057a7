//! A packed file that looks after itself: `WRAPKIT_SELF=COMMAND ./app [ARG]` runs one of the
//! runtime's own commands instead of the app, for a machine that received only the packed
//! file and has no `wrapkit`.
//!
//! | `WRAPKIT_SELF=` | does |
//! |---|---|
//! | `info` | name, version, run mode, digest, payload and cache location |
//! | `verify` | every byte checked, as `wrapkit verify` does; exit 1 naming the bad region |
//! | `extract` | the app's files into the directory given as the one argument (new or empty) |
//! | `cache-clear` | removes this app's tree from the cache (exec mode) |
//! | `help` | this list |
//!
//! A variable, not a flag, because every argument belongs to the app: no flag can be chosen
//! that no app will ever take. The app never runs in this mode, so nothing inherits the
//! variable. In a privileged process it is not read at all ([`crate::environ`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::archive::Archive;
use crate::cache::{Cache, Location};
use crate::format::trailer::hex;
use crate::report::Hinted;
use crate::{environ, exit, extract, report, validate, verify};

/// The variable that selects a command.
pub const ENV_SELF: &str = "WRAPKIT_SELF";

const HELP: &str = "\
WRAPKIT_SELF=COMMAND runs one of the runtime's own commands instead of the app:
  info          name, version, run mode, digest, payload and cache location
  verify        check every byte of this file; exit 1 naming the first bad region
  extract DIR   write the app's files into DIR (new or empty)
  cache-clear   remove this app's materialised tree from the cache (exec mode)
  help          this list
";

/// The command asked for, if any.
pub fn requested() -> Option<OsString> {
    environ::var(ENV_SELF).filter(|v| !v.is_empty())
}

/// Runs `command` on the packed file `exe` (mapped as `bytes`; `archive` when it opened) and
/// returns the exit code.
pub fn run(
    command: &OsString,
    exe: &Path,
    bytes: &[u8],
    archive: Option<&Archive<'_>>,
    args: &[OsString],
) -> u8 {
    let shown = exe.display().to_string();
    let fail = |err: &dyn std::error::Error, hint: Option<&str>, code: u8| {
        eprint!("{}", report::render(Some(&shown), err, hint));
        code
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command.to_str() {
        Some("help") => {
            let _ = out.write_all(HELP.as_bytes());
            0
        }
        Some("verify") => match verify::verify(bytes) {
            Ok(v) => {
                let _ = writeln!(
                    out,
                    "ok: {} entries ({} files, {} bytes) check out; blake3 {}",
                    v.entries, v.files, v.bytes, v.digest
                );
                0
            }
            Err(problem) => fail(&problem, None, 1),
        },
        Some(other @ ("info" | "extract" | "cache-clear")) => {
            let Some(archive) = archive else {
                // The archive did not open: say why, as a normal start would.
                return match crate::archive::Archive::open(bytes) {
                    Err(e) => fail(&e, e.hint().as_deref(), e.exit_code()),
                    Ok(_) => exit::BAD_PAYLOAD,
                };
            };
            match other {
                "info" => info(&mut out, archive),
                "extract" => extract_to(archive, args, &shown),
                _ => cache_clear(archive, &shown),
            }
        }
        _ => {
            eprint!(
                "{}",
                report::block(
                    [format!(
                        "{shown}: unknown {ENV_SELF} command `{}`",
                        command.to_string_lossy()
                    )],
                    Some("WRAPKIT_SELF=help lists the commands"),
                )
            );
            2
        }
    }
}

fn info(out: &mut impl Write, archive: &Archive<'_>) -> u8 {
    let manifest = match archive.manifest() {
        Ok(m) => m,
        Err(e) => {
            eprint!("{}", report::render(None, &e, e.hint().as_deref()));
            return e.exit_code();
        }
    };
    let run = match &manifest.run {
        crate::format::manifest::Run::Lua { entry } => format!("lua {entry}"),
        crate::format::manifest::Run::Exec { argv, .. } => format!("exec {}", argv.join(" ")),
    };
    let digest = hex(&archive.trailer().digest);
    let cache = match Location::from_env() {
        Ok(l) => l
            .path
            .join(crate::cache::BUNDLES_DIR)
            .join(&digest)
            .display()
            .to_string(),
        Err(e) => format!("none ({e})"),
    };
    let lines = [
        ("app", format!("{} {}", manifest.name, manifest.version)),
        ("run", run),
        ("packer", manifest.packer.clone()),
        ("format", format!("version {}", archive.trailer().version)),
        ("digest", format!("blake3:{digest}")),
        (
            "payload",
            format!(
                "at offset {}, {} entries",
                archive.start_pos(),
                archive.index().len()
            ),
        ),
        ("cache", cache),
    ];
    for (key, value) in lines {
        let _ = writeln!(
            out,
            "{:<8} {}",
            format!("{key}:"),
            crate::format::path::printable(&value)
        );
    }
    0
}

fn extract_to(archive: &Archive<'_>, args: &[OsString], shown: &str) -> u8 {
    let [dir] = args else {
        eprint!(
            "{}",
            report::block(
                [format!(
                    "{shown}: {ENV_SELF}=extract takes one argument, the directory to write into"
                )],
                Some("WRAPKIT_SELF=extract ./app DIR"),
            )
        );
        return 2;
    };
    let dir = Path::new(dir);
    let result = validate::validate(archive)
        .map_err(extract::ExtractError::from)
        .and_then(|validated| {
            let (target, _) = crate::beneath::Dir::open_or_create(dir, 0o755).map_err(|_| {
                extract::ExtractError::BadTarget {
                    path: dir.to_path_buf(),
                }
            })?;
            if !target.entries().is_ok_and(|e| e.is_empty()) {
                return Err(extract::ExtractError::BadTarget {
                    path: dir.to_path_buf(),
                });
            }
            extract::extract_into(archive, &validated, &target, dir, &Default::default())
        });
    match result {
        Ok(stats) => {
            eprintln!(
                "extracted {} files, {} directories, {} symlinks into {}",
                stats.files,
                stats.dirs,
                stats.symlinks,
                dir.display()
            );
            0
        }
        Err(e) => {
            eprint!("{}", report::render(Some(shown), &e, None));
            1
        }
    }
}

fn cache_clear(archive: &Archive<'_>, shown: &str) -> u8 {
    let digest = hex(&archive.trailer().digest);
    let opened = Location::from_env().and_then(|l| Cache::open_existing(&l));
    match opened {
        Ok(None) => {
            eprintln!("nothing cached for {shown}");
            0
        }
        Ok(Some(cache)) => match cache.remove(&digest) {
            Ok(crate::cache::Removal::Removed(bytes)) => {
                eprintln!(
                    "removed {} ({bytes} bytes)",
                    cache.tree_path(&digest).display()
                );
                0
            }
            Ok(crate::cache::Removal::Busy) => {
                eprintln!(
                    "left {}: it is being filled right now",
                    cache.tree_path(&digest).display()
                );
                1
            }
            Err(e) => {
                eprint!("{}", report::render(Some(shown), &e, None));
                exit::CACHE
            }
        },
        Err(e) => {
            eprint!("{}", report::render(Some(shown), &e, e.hint().as_deref()));
            e.exit_code()
        }
    }
}
