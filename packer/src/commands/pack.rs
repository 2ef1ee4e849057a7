//! `wrapkit pack DIR -o OUT`, and `wrapkit pack DIR --list`.
//!
//! Settings come from `wrapkit.toml` and the flags, merged here once: a flag replaces the
//! file's value, for every key, with two additive exceptions kept from the start (`--exclude`
//! adds to the file's list, `--env` to its table). What runs is one choice: `--entry` or
//! `--exec` on the command line replaces whatever the file says (an `entry` or an `exec`);
//! without either, the file's `entry` or `exec` (both is an error), else `main.lua`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use wrapkit_runtime::format::trailer::hex;

use crate::cli::PackArgs;
use crate::config::{self, Config};
use crate::error::PackError;
use crate::inspect::human_bytes;
use crate::messages::{self, detail, note};
use crate::pack::{self, DEFAULT_MTIME, Interpreter, Language, PackOptions, PackReport};
use crate::plan::RunSpec;

/// `wrapkit pack --json`: what was written (docs/cli.md, "JSON output").
#[derive(Debug, Serialize)]
struct Packed {
    output: String,
    files: u64,
    entries: u64,
    input_bytes: u64,
    stub_bytes: u64,
    total_bytes: u64,
    digest: String,
    elapsed_seconds: f64,
}

pub(crate) fn pack(args: PackArgs) -> anyhow::Result<ExitCode> {
    // A single script has no wrapkit.toml of its own.
    let config = if args.dir.is_file() {
        Config::default()
    } else {
        let config_path = args.dir.join(config::FILE_NAME);
        if config_path.is_file() {
            detail!("config: {}", config_path.display());
        }
        Config::load(&args.dir)?
    };
    let list = args.list;
    let json = args.json;
    let mut opts = merge(args, config)?;
    opts.progress = !messages::quiet();
    if list {
        let (plan, warnings) = pack::plan(&opts)?;
        for n in &plan.notes {
            note!("{n}");
        }
        for w in &warnings {
            messages::warning(w, None);
        }
        std::io::stdout()
            .lock()
            .write_all(plan.listing().as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    // Before packing: `--runtime X -o X` repacks X in place.
    let runtime_len = opts
        .runtime
        .as_deref()
        .and_then(|r| std::fs::metadata(r).ok())
        .map(|m| m.len());
    let (report, warnings, notes) = pack::pack(&opts)?;
    for n in &notes {
        note!("{n}");
    }
    for w in &warnings {
        messages::warning(w, None);
    }
    detail!("{}", stub_origin(&opts, runtime_len, &report));
    note!(
        "packed {} file{} ({}) into {} ({}, {} of it payload) in {:.2} s",
        report.files,
        if report.files == 1 { "" } else { "s" },
        human_bytes(report.input_bytes),
        report.output.display(),
        human_bytes(report.total_bytes),
        human_bytes(report.total_bytes - report.stub_bytes),
        report.elapsed.as_secs_f64(),
    );
    if json {
        let packed = Packed {
            output: report.output.display().to_string(),
            files: report.files,
            entries: report.entries,
            input_bytes: report.input_bytes,
            stub_bytes: report.stub_bytes,
            total_bytes: report.total_bytes,
            digest: format!("blake3:{}", hex(&report.trailer.digest)),
            elapsed_seconds: report.elapsed.as_secs_f64(),
        };
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &packed)?;
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `-v`: which runtime stub went in front of the payload (`runtime_len`: the `--runtime`
/// file's size before packing).
fn stub_origin(opts: &PackOptions, runtime_len: Option<u64>, report: &PackReport) -> String {
    let size = human_bytes(report.stub_bytes);
    let Some(runtime) = &opts.runtime else {
        return format!("stub: built into wrapkit {}, {size}", crate::cli::VERSION);
    };
    if runtime_len.is_some_and(|len| len > report.stub_bytes) {
        format!(
            "stub: {} ({size}; a packed executable, its payload left out)",
            runtime.display()
        )
    } else {
        format!("stub: {} ({size})", runtime.display())
    }
}

/// The languages a single script given to `wrapkit pack FILE` is recognised in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScriptKind {
    Python,
    Node,
    Tcl,
}

/// A single script's language, from its extension, else its `#!` line (`#!/usr/bin/env
/// python3`, `#!/usr/bin/node`, `#!/usr/bin/tclsh8.6`); `None` for Lua and everything else.
fn script_kind(file: &std::path::Path) -> Option<ScriptKind> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("py") => return Some(ScriptKind::Python),
        Some("js" | "mjs" | "cjs") => return Some(ScriptKind::Node),
        Some("tcl") => return Some(ScriptKind::Tcl),
        Some(_) => return None,
        None => {}
    }
    let mut head = [0u8; 128];
    let n = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line.split(|&b| b == b'\n').next()?).into_owned();
    // The interpreter is the command's last word that is not an option (`env -S python3 -u`).
    let words: Vec<&str> = line.split_whitespace().collect();
    let program = words
        .iter()
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .find(|w| !w.starts_with('-') && *w != "env")?;
    if program.starts_with("python") {
        Some(ScriptKind::Python)
    } else if program == "node" || program == "nodejs" {
        Some(ScriptKind::Node)
    } else if program.starts_with("tclsh") {
        Some(ScriptKind::Tcl)
    } else {
        None
    }
}

/// A single script runs itself.
fn single_script_name(single: Option<&std::path::Path>) -> Option<String> {
    Some(single?.file_name()?.to_str()?.to_owned())
}

/// The one place the config file and the flags meet.
fn merge(args: PackArgs, config: Config) -> Result<PackOptions, PackError> {
    merge_with(args, config, true)
}

/// `merge`; a Python app is recognised (by its `.py` entry or script) only with `detect`.
fn merge_with(args: PackArgs, config: Config, detect: bool) -> Result<PackOptions, PackError> {
    // The directory's name, or a single script's without its extension.
    let canonical = std::fs::canonicalize(&args.dir).ok();
    let single = canonical.as_deref().filter(|p| p.is_file());
    let dir_name = canonical
        .as_deref()
        .and_then(|p| match single {
            Some(file) => file.file_stem(),
            None => p.file_name(),
        })
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    let mut env = config.env.unwrap_or_default();
    let flag_env = !args.env.is_empty();
    env.extend(args.env);
    // A flag replaces whatever wrapkit.toml says should run; the file itself names one thing.
    let from_file = match (
        config.node.as_ref().and_then(|n| n.binary()),
        config.tcl.as_ref().and_then(|t| t.binary()),
    ) {
        (Some(_), Some(_)) => {
            return Err(PackError::RunConflict {
                reason: "wrapkit.toml sets both `node` and `tcl`; choose one".into(),
            });
        }
        (Some(binary), None) => Some((Language::Node, binary)),
        (None, Some(binary)) => Some((Language::Tcl, binary)),
        (None, None) => None,
    };
    if from_file.is_some() && (config.exec.is_some() || config.program.is_some()) {
        return Err(PackError::RunConflict {
            reason: "wrapkit.toml sets an interpreter (`node` or `tcl`) and also `exec` or `program`; choose one".into(),
        });
    }
    let script = single.and_then(script_kind);
    let interpreter = match (&args.node, &args.tcl) {
        (Some(binary), _) => Some((Language::Node, binary.clone())),
        (None, Some(binary)) => Some((Language::Tcl, binary.clone())),
        (None, None) if args.exec.is_empty() && args.program.is_none() => {
            from_file.or_else(|| match (detect && args.python.is_none(), script) {
                (true, Some(ScriptKind::Node)) => {
                    note!(
                        "node: a JavaScript script; packing it with `node` from PATH (choose another with `--node PATH`)"
                    );
                    Some((Language::Node, None))
                }
                (true, Some(ScriptKind::Tcl)) => {
                    note!(
                        "tcl: a Tcl script; packing it with `tclsh` from PATH (choose another with `--tcl PATH`)"
                    );
                    Some((Language::Tcl, None))
                }
                _ => None,
            })
        }
        (None, None) => None,
    }
    .map(|(language, binary)| Interpreter {
        language,
        binary,
        entry: args.entry.clone().or_else(|| config.entry.clone()),
    });
    let program = args.program.clone().or_else(|| {
        (args.entry.is_none() && args.exec.is_empty() && interpreter.is_none())
            .then(|| config.program.clone())
            .flatten()
    });
    let python = args.python.clone().or_else(|| {
        (args.exec.is_empty() && args.program.is_none() && interpreter.is_none())
            .then(|| config.python.clone())
            .flatten()
    });
    // Read for every app, but an error in it matters only to a Python app.
    let loaded = match single {
        Some(_) => Ok(None),
        None => crate::recipe::pyproject::Project::load(&args.dir),
    };
    let project = loaded.as_ref().ok().cloned().flatten();
    let python = python.or_else(|| {
        let lone = args.exec.is_empty()
            && args.program.is_none()
            && interpreter.is_none()
            && config.exec.is_none()
            && config.program.is_none();
        let named = args.entry.as_deref().or(config.entry.as_deref());
        let packages = args.venv.is_some() || args.requirements.is_some();
        let implied = packages
            || match (named, single) {
                (Some(entry), _) => entry.ends_with(".py"),
                (None, Some(_)) => script == Some(ScriptKind::Python),
                (None, None) => {
                    !args.dir.join("main.lua").exists()
                        && (project.is_some()
                            || ["main.py", "__main__.py"]
                                .iter()
                                .any(|n| args.dir.join(n).is_file()))
                }
            };
        (detect && lone && implied).then(|| {
            note!(
                "python: a Python app; packing it with `python3` from PATH (choose another with `--python PATH`)"
            );
            PathBuf::from("python3")
        })
    });
    if let Some(python) = python {
        let project = loaded?;
        if args.program.is_none() && (config.exec.is_some() || config.program.is_some()) {
            return Err(PackError::RunConflict {
                reason: "wrapkit.toml sets `python` and also `exec` or `program`; choose one"
                    .into(),
            });
        }
        let named = args
            .entry
            .clone()
            .or(config.entry.clone())
            .or_else(|| single_script_name(single));
        let path = args.dir.join("pyproject.toml");
        let script = match (&named, &project) {
            (None, Some(p)) => p.script(&path)?,
            _ => None,
        };
        let entry = match (&named, &script) {
            (Some(entry), _) => entry.clone(),
            (None, Some(s)) => crate::recipe::python::launcher_path(&s.name),
            (None, None) => python_entry(&args.dir),
        };
        // A Lua app's `entry` (wrapkit.toml's, or the default) is not a script for Python.
        if entry.ends_with(".lua") {
            return Err(PackError::RunConflict {
                reason: format!(
                    "`{entry}` is a Lua script, and `--python` runs a Python one; name it with `--entry FILE.py`"
                ),
            });
        }
        let packaged = project.map(|project| crate::recipe::pyproject::Packaged {
            project,
            script,
            path,
        });
        let mut venv = args.venv.clone().or_else(|| {
            config.venv.as_ref().map(|v| {
                if v.is_relative() {
                    args.dir.join(v)
                } else {
                    v.clone()
                }
            })
        });
        // A `.venv` in the app is the app's packages, not files to pack as they are (its
        // scripts and links name this machine's paths).
        let dot_venv = args.dir.join(".venv");
        if venv.is_none() && dot_venv.join("pyvenv.cfg").is_file() {
            note!("python: using the app's .venv for its packages (as `--venv .venv`)");
            venv = Some(dot_venv);
        }
        let requirements = args.requirements.clone();
        let find_links = args.find_links.clone();
        let mut exclude = args.exclude.clone();
        exclude.extend(["**/__pycache__".to_owned(), ".venv".to_owned()]);
        let mut opts = merge_with(
            PackArgs {
                entry: Some(entry),
                python: None,
                venv: None,
                requirements: None,
                find_links: Vec::new(),
                env: Vec::new(),
                exclude,
                ..args
            },
            Config {
                entry: None,
                exec: None,
                program: None,
                env: None,
                python: None,
                venv: None,
                ..config
            },
            false,
        )?;
        opts.python = Some(python);
        opts.venv = venv;
        opts.requirements = requirements;
        opts.find_links = find_links;
        opts.project = packaged;
        opts.env = env;
        return Ok(opts);
    }
    let run = match (args.entry, args.exec.is_empty(), &program) {
        // The recipe fills in the interpreter and its script.
        _ if interpreter.is_some() => RunSpec::Exec {
            argv: Vec::new(),
            env: env.clone(),
            argv0: None,
        },
        (Some(entry), _, _) => RunSpec::Lua { entry },
        (None, false, _) => RunSpec::Exec {
            argv: args.exec,
            env: env.clone(),
            argv0: None,
        },
        (None, true, Some(_)) => {
            if args.program.is_none() && (config.entry.is_some() || config.exec.is_some()) {
                return Err(PackError::RunConflict {
                    reason: "wrapkit.toml sets `program` and also `exec` or `entry`; choose one"
                        .into(),
                });
            }
            let args = if args.args.is_empty() {
                config.args.clone().unwrap_or_default()
            } else {
                args.args
            };
            // The recipe puts the program's archive path first.
            RunSpec::Exec {
                argv: std::iter::once(String::new()).chain(args).collect(),
                env: env.clone(),
                argv0: None,
            }
        }
        (None, true, None) => match (config.entry, config.exec) {
            (Some(entry), Some(_)) => {
                return Err(PackError::RunConflict {
                    reason: format!(
                        "wrapkit.toml sets both `exec` and the Lua entry `{entry}`; choose one"
                    ),
                });
            }
            (None, Some(argv)) => RunSpec::Exec {
                argv,
                env: env.clone(),
                argv0: None,
            },
            (entry, None) => RunSpec::Lua {
                entry: entry
                    .or_else(|| single_script_name(single))
                    .unwrap_or_else(|| "main.lua".into()),
            },
        },
    };
    if matches!(run, RunSpec::Lua { .. }) && !env.is_empty() {
        let from = if flag_env {
            "`--env`"
        } else {
            "`env` in wrapkit.toml"
        };
        return Err(PackError::RunConflict {
            reason: format!(
                "{from} sets variables for an `exec` program, but this app runs a Lua script; choose one"
            ),
        });
    }
    Ok(PackOptions {
        input: args.dir,
        output: args.output,
        runtime: args.runtime,
        name: args.name.or(config.name).unwrap_or(dir_name),
        version: args
            .app_version
            .or(config.version)
            .unwrap_or_else(|| "0.0.0".into()),
        run,
        include: if args.include.is_empty() {
            config.include.unwrap_or_else(|| vec!["**".into()])
        } else {
            args.include
        },
        exclude: config
            .exclude
            .unwrap_or_default()
            .into_iter()
            .chain(args.exclude)
            .collect(),
        compression: args
            .compression
            .or(config.compression)
            .map(Into::into)
            .unwrap_or_default(),
        follow_symlinks: args.follow_symlinks || config.follow_symlinks.unwrap_or(false),
        respect_gitignore: args.respect_gitignore || config.respect_gitignore.unwrap_or(false),
        allow: config
            .allow
            .unwrap_or_default()
            .into_iter()
            .chain(args.allow)
            .collect(),
        mtime: config.source_date_epoch.unwrap_or(DEFAULT_MTIME),
        progress: true,
        program,
        libraries: config
            .libraries
            .unwrap_or_default()
            .into_iter()
            .chain(args.libraries)
            .collect(),
        libc: args
            .libc
            .or(config.libc)
            .map_or(wrapkit_runtime::format::layer::Libc::Auto, Into::into),
        interpreter,
        python: None,
        venv: None,
        requirements: None,
        find_links: Vec::new(),
        project: None,
        env: std::collections::BTreeMap::new(),
    })
}

/// A Python app's script when none is named: `main.py`, else `__main__.py`.
fn python_entry(dir: &std::path::Path) -> String {
    ["main.py", "__main__.py"]
        .into_iter()
        .find(|name| dir.join(name).is_file())
        .unwrap_or("main.py")
        .to_owned()
}
