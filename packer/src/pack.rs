//! Packing: settings in, executable out, in two steps: [`plan`] runs the recipes and checks
//! what runs ([`crate::plan`]), then [`crate::write`] writes the plan behind a stub.

use std::fs;
use std::path::{Path, PathBuf};

use wrapkit_runtime::format::layer::Libc;
use wrapkit_runtime::format::writer::Compression;

use crate::error::PackError;
use crate::plan::{Plan, RunSpec};
use crate::walk::Filter;
pub use crate::write::PackReport;
use crate::write::{self, WriteOptions};

/// Timestamp stamped on entries when `SOURCE_DATE_EPOCH` is unset: 1980-01-01, zip's epoch.
pub const DEFAULT_MTIME: i64 = 315_532_800;

/// Everything `pack` needs, config file and flags already merged
/// (`commands::pack` says how: a flag replaces the file's value for every key).
#[derive(Debug, Clone)]
pub struct PackOptions {
    pub input: PathBuf,
    pub output: Option<PathBuf>,
    pub runtime: Option<PathBuf>,
    pub name: String,
    pub version: String,
    pub run: RunSpec,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub compression: Compression,
    pub follow_symlinks: bool,
    /// Leave out what `.gitignore` files ignore.
    pub respect_gitignore: bool,
    /// Entry timestamp when `SOURCE_DATE_EPOCH` is unset.
    pub mtime: i64,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
    /// Kinds of usually-mistaken content packed without a warning.
    pub allow: Vec<crate::walk::NoticeKind>,
    /// `--program`: a program from the build machine to bundle and run (then `run` is an
    /// `Exec` whose first element the recipe replaces with the program's archive path).
    pub program: Option<PathBuf>,
    /// `dlopen`ed libraries of the exec program.
    pub libraries: Vec<PathBuf>,
    /// Where a bundled program's glibc comes from.
    pub libc: Libc,
    /// `--python`: the interpreter for a Python app (then `run` is the `Lua` spec naming the
    /// `.py` entry, which the Python recipe turns into its `Exec`).
    pub python: Option<PathBuf>,
    /// `--venv`: its packages.
    pub venv: Option<PathBuf>,
    /// `--requirements` and `--find-links`: packages pip installs for it.
    pub requirements: Option<PathBuf>,
    pub find_links: Vec<PathBuf>,
    /// The app's `pyproject.toml` `[project]`: its dependencies, its script, its dist-info.
    pub project: Option<crate::recipe::pyproject::Packaged>,
    /// Variables for a Python app's interpreter (`--env`).
    pub env: std::collections::BTreeMap<String, String>,
    /// `--node`, `--tcl`: an interpreter from the build machine runs the app's script (then
    /// `run` is an `Exec` whose `argv` the recipe fills).
    pub interpreter: Option<Interpreter>,
}

/// A script interpreter from the build machine and the script it runs.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub language: Language,
    /// Its binary; `None`: the one on `PATH`.
    pub binary: Option<PathBuf>,
    /// The script, a path in the app; `None`: the language's own default.
    pub entry: Option<String>,
}

/// The interpreters `wrapkit pack` knows how to bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Node,
    Tcl,
}

/// The plan for `opts`: the app directory's entries, checked, and the run spec, checked
/// against them, with warnings about what it will need from the target. Reads the directory;
/// writes nothing.
pub fn plan(opts: &PackOptions) -> Result<(Plan, Vec<String>), PackError> {
    let input = fs::canonicalize(&opts.input).map_err(|source| PackError::Read {
        path: opts.input.clone(),
        source,
    })?;
    let mut plan = Plan::new(opts.name.clone(), opts.version.clone(), opts.run.clone());
    if input.is_file() {
        // `wrapkit pack script.lua`: an app of one file.
        crate::recipe::app::add_file(&mut plan, &input)?;
        let dir = input.parent().unwrap_or(&input).to_path_buf();
        // The one script is what the interpreter runs.
        let interpreter = opts.interpreter.clone().map(|mut i| {
            i.entry = i
                .entry
                .or_else(|| plan.entries().next().map(|e| e.name.clone()));
            i
        });
        bundle_interpreter(&mut plan, &dir, interpreter.as_ref(), opts)?;
        bundle_program(&mut plan, opts)?;
        bundle_python(&mut plan, opts)?;
        let warnings = plan.check_run(&dir)?;
        return Ok((plan, warnings));
    }
    if !input.is_dir() {
        return Err(PackError::NotADirectory {
            path: opts.input.clone(),
        });
    }
    let mut filter = Filter::new(&opts.include, &opts.exclude)?;
    if opts.respect_gitignore {
        filter = filter.respect_gitignore(&input, opts.follow_symlinks)?;
    }
    let notices = crate::recipe::app::add(&mut plan, &input, &filter, opts.follow_symlinks)?;
    bundle_interpreter(&mut plan, &input, opts.interpreter.as_ref(), opts)?;
    bundle_program(&mut plan, opts)?;
    bundle_python(&mut plan, opts)?;
    let mut warnings: Vec<String> = notices
        .iter()
        .filter(|n| !opts.allow.contains(&n.kind))
        .map(|n| n.message())
        .collect();
    warnings.extend(plan.check_run(&input)?);
    Ok((plan, warnings))
}

/// The interpreter recipes: `--node`, `--tcl`.
fn bundle_interpreter(
    plan: &mut Plan,
    app: &Path,
    interpreter: Option<&Interpreter>,
    opts: &PackOptions,
) -> Result<(), PackError> {
    let Some(interpreter) = interpreter else {
        return Ok(());
    };
    let RunSpec::Exec { mut env, .. } = plan.run.clone() else {
        return Ok(());
    };
    let (libraries, libc) = (&opts.libraries, opts.libc);
    let launch = match interpreter.language {
        Language::Node => crate::recipe::node::add(plan, app, interpreter, libraries, libc)?,
        Language::Tcl => crate::recipe::tcl::add(plan, app, interpreter, libraries, libc)?,
    };
    // `--env` and wrapkit.toml's `env` win over what the recipe sets.
    for (key, value) in launch.env {
        env.entry(key).or_insert(value);
    }
    plan.run = RunSpec::Exec {
        argv: launch.argv,
        env,
        argv0: launch.argv0,
    };
    Ok(())
}

/// The program recipe, where it applies: `--program`, or an `exec` program in the app that is
/// dynamically linked against libraries the app does not hold (which would otherwise run only
/// where the target happens to have them). The program moves into its layer; a symlink at its
/// place in the app keeps `{root}/bin/tool` working.
fn bundle_program(plan: &mut Plan, opts: &PackOptions) -> Result<(), PackError> {
    use crate::recipe::program::{self, Program};
    let RunSpec::Exec { argv, env, argv0 } = plan.run.clone() else {
        return Ok(());
    };
    if argv.is_empty() {
        return Ok(()); // Plan::check_run says what is wrong.
    }
    if let Some(path) = &opts.program {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| PackError::NonUtf8Name { path: path.clone() })?
            .to_owned();
        let bin = program::add(
            plan,
            &Program::plain(path, &name, &opts.libraries, opts.libc),
        )?;
        let mut argv = argv;
        argv[0] = bin;
        plan.run = RunSpec::Exec { argv, env, argv0 };
        return Ok(());
    }
    let Some(in_app) = plan.needs_closure(&argv[0])? else {
        return Ok(());
    };
    let (name, disk) = in_app;
    let file = name.rsplit('/').next().unwrap_or(&name).to_owned();
    let bin = match program::add(
        plan,
        &Program::plain(&disk, &file, &opts.libraries, opts.libc),
    ) {
        Ok(bin) => bin,
        // Not on this machine either: pack it as it is, and `check_run` warns that it will
        // need them from the target.
        Err(PackError::LibrariesNotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    plan.replace_with_link(&name, &bin)?;
    let mut argv = argv;
    argv[0] = bin;
    plan.run = RunSpec::Exec { argv, env, argv0 };
    Ok(())
}

/// The Python recipe, with `--python`: the interpreter layer, the app's `.python/` and the
/// venv; the Lua-style entry becomes the script the interpreter runs.
fn bundle_python(plan: &mut Plan, opts: &PackOptions) -> Result<(), PackError> {
    use crate::recipe::python::{self, Python};
    let Some(interpreter) = &opts.python else {
        return Ok(());
    };
    let RunSpec::Lua { entry } = plan.run.clone() else {
        return Ok(()); // `--exec` and `--program` conflict with `--python` in `merge`.
    };
    python::add(
        plan,
        &Python {
            interpreter,
            entry: &entry,
            venv: opts.venv.as_deref(),
            requirements: opts.requirements.as_deref(),
            find_links: &opts.find_links,
            project: opts.project.as_ref(),
            libraries: &opts.libraries,
            libc: opts.libc,
            env: opts.env.clone(),
        },
    )
}

/// Plans and writes; returns what was written, the plan's warnings and its notes.
pub fn pack(opts: &PackOptions) -> Result<(PackReport, Vec<String>, Vec<String>), PackError> {
    let input = fs::canonicalize(&opts.input).map_err(|source| PackError::Read {
        path: opts.input.clone(),
        source,
    })?;
    let output = match &opts.output {
        Some(o) if o.as_os_str() == "-" => return Err(PackError::OutputIsStdout),
        Some(o) => o.clone(),
        None => default_output(&opts.name, &input),
    };
    let output = absolute_output(&output)?;
    if output.starts_with(&input) {
        return Err(PackError::OutputInsideInput { output, input });
    }
    check_output(&output)?;
    let mtime = source_date_epoch()?.unwrap_or(opts.mtime);
    let (plan, warnings) = plan(opts)?;
    let stub = crate::stub::load(opts.runtime.as_deref())?;
    let report = write::write(
        &plan,
        &WriteOptions {
            output: &output,
            stub: &stub,
            compression: opts.compression,
            mtime,
            progress: opts.progress,
        },
    )?;
    Ok((report, warnings, plan.notes.clone()))
}

/// Where the executable goes without `-o`: the app's name in the working directory, or, when
/// that is inside the app directory, beside the app directory; with `.run` added when the name
/// there is a directory (typically the app directory itself: `wrapkit pack hello` writes
/// `./hello.run`).
fn default_output(name: &str, input: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let dir = if cwd.starts_with(input) {
        input.parent().unwrap_or(input).to_path_buf()
    } else {
        cwd
    };
    let plain = dir.join(name);
    if plain.is_dir() {
        dir.join(format!("{name}.run"))
    } else {
        plain
    }
}

/// The output is written beside its name and renamed over it: right for a regular file (or
/// nothing), never for a directory, FIFO, socket or device, which would be replaced by a file
/// (as root, `-o /dev/null` would replace the system's). A symlink is replaced, never followed.
fn check_output(output: &Path) -> Result<(), PackError> {
    let Ok(meta) = std::fs::symlink_metadata(output) else {
        return Ok(());
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() || ft.is_symlink() {
        return Ok(());
    } else if ft.is_dir() {
        "directory"
    } else {
        crate::walk::special_kind(ft)
    };
    Err(PackError::OutputNotAFile {
        path: output.to_path_buf(),
        kind,
    })
}

/// The output path made absolute through its (existing) parent directory, so that "inside
/// the input" is decided on real paths.
fn absolute_output(output: &Path) -> Result<PathBuf, PackError> {
    let file_name = output.file_name().ok_or_else(|| PackError::Write {
        path: output.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the output must name a file",
        ),
    })?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = fs::canonicalize(parent).map_err(|source| PackError::Write {
        path: output.to_path_buf(),
        source,
    })?;
    Ok(parent.join(file_name))
}

/// `SOURCE_DATE_EPOCH`, when set (reproducible-builds.org).
pub(crate) fn source_date_epoch() -> Result<Option<i64>, PackError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| PackError::SourceDateEpoch { value }),
        _ => Ok(None),
    }
}
