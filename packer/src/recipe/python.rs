//! A Python app with the interpreter it was written for: `wrapkit pack DIR --python [PATH]`.
//!
//! The interpreter (asked about itself, so that pyenv's bash `python3` shim leads to the real
//! binary) becomes a layer, shared by every app packed with the same interpreter:
//!
//! ```text
//! .layers/python/bin/python3.X                the interpreter (crate::recipe::program)
//! .layers/python/lib/libpython3.X.so.1.0 …    its library closure (and glibc/ for --libc bundle)
//! .layers/python/lib/python3.X/…              the stdlib, every .py precompiled
//! .layers/python/lib/python3.X/lib-dynload/   its extension modules, always present
//! ```
//!
//! and the app's own tree gets what is per app:
//!
//! ```text
//! .python/bin/python3.X        symlink to ../../.layers/python/bin/python3.X: what runs
//! .python/bin/python3.X._pth   sys.path for every start of that path, relative to it
//! .python/pyvenv.cfg           `include-system-site-packages = false`: no user site
//! .python/lib/python3.X/site-packages/   --venv's, --requirements' and pyproject's packages
//! .python/bin/NAME             a `[project.scripts]` launcher, when pyproject.toml has one
//! main.py, mod.py, …          the app, at the root, on sys.path first
//! ```
//!
//! **Isolation lives in a file, not in flags.** CPython reads `<executable>._pth` beside the
//! path it was started by (`argv[0]`, not `/proc/self/exe`): it sets `sys.path` to the lines of
//! the file and turns on isolated mode, so `PYTHONPATH`, `PYTHONHOME`, the user site and every
//! other `PYTHON*` variable are ignored. Because `sys.executable` is that same path, a child
//! started with `subprocess.run([sys.executable, …])` or by multiprocessing gets the same
//! `sys.path` and the same isolation; flags such as `-I` or `-E -s` would not reach it.
//! `import site` in the file keeps `exit()`, `help()` and the venv's `.pth` files; `site` reads
//! `HOME` and `PYTHONUSERBASE` itself, so `.python/` is also a venv (`pyvenv.cfg` without system
//! site packages), which turns the user site off (docs/python.md has the measurements).
//!
//! Every `.py` (stdlib, app, packages) is compiled by the interpreter itself, in one process,
//! into memory, as `compileall --invalidation-mode unchecked-hash` would write it (the source's
//! hash, flags `0b01`): deterministic, and never checked against the source's mtime at run
//! time, so nothing is rewritten in the read-only cache tree. A `__pycache__` found in the app
//! or a venv is left out.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use wrapkit_runtime::format::EntryKind;
use wrapkit_runtime::format::layer::Libc;

use crate::error::PackError;
use crate::plan::{Plan, Planned, RunSpec, Source};
use crate::recipe::program::{self, LAYERS_DIR, Program};
use crate::recipe::pyproject::{self, Packaged};

/// The layer's name: `.layers/python/`.
pub const LAYER: &str = "python";
/// The per-app directory holding the interpreter's link and its `._pth` file.
pub const APP_DIR: &str = ".python";

/// What to pack.
#[derive(Debug, Clone)]
pub struct Python<'a> {
    /// The interpreter as the user named it (`python3`, a path, a pyenv shim).
    pub interpreter: &'a Path,
    /// The script to run, an archive path (already in the plan).
    pub entry: &'a str,
    /// A virtual environment whose site-packages the app imports.
    pub venv: Option<&'a Path>,
    /// A requirements file to install (wheels only) with the interpreter's pip.
    pub requirements: Option<&'a Path>,
    /// Where those wheels come from instead of the index.
    pub find_links: &'a [PathBuf],
    /// The app's `pyproject.toml` project: dependencies installed like `requirements`, its
    /// `[project.scripts]` entry run through a launcher, a `dist-info` for its version.
    pub project: Option<&'a Packaged>,
    /// `dlopen`ed libraries to bundle too.
    pub libraries: &'a [PathBuf],
    pub libc: Libc,
    pub env: std::collections::BTreeMap<String, String>,
}

/// What the interpreter says about itself.
#[derive(Debug, Deserialize)]
struct Probe {
    executable: PathBuf,
    version: (u32, u32, u32),
    abiflags: String,
    cache_tag: String,
    stdlib: PathBuf,
    platstdlib: PathBuf,
}

const PROBE: &str = r#"
import json, os, sys, sysconfig
print(json.dumps({
    "executable": os.path.realpath(sys.executable),
    "version": list(sys.version_info[:3]),
    "abiflags": getattr(sys, "abiflags", ""),
    "cache_tag": sys.implementation.cache_tag or "",
    "stdlib": sysconfig.get_path("stdlib"),
    "platstdlib": sysconfig.get_path("platstdlib"),
}))
"#;

/// Compiles `(source, name)` pairs read from stdin (one JSON list per line) and writes each
/// `.pyc` to stdout as a length-prefixed record, in order.
const COMPILE: &str = r#"
import importlib.util, json, marshal, os, sys
out = sys.stdout.buffer
for line in sys.stdin:
    src, name = json.loads(line)
    with open(src, "rb") as f:
        data = f.read()
    try:
        code = compile(importlib.util.decode_source(data), name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeDecodeError) as e:
        out.write(b"E" + len(str(e).encode()).to_bytes(8, "little") + str(e).encode())
        continue
    h = importlib.util.source_hash(data)
    pyc = bytearray(importlib.util.MAGIC_NUMBER)
    pyc += (0b01).to_bytes(4, "little")  # hash-based, not checked
    pyc += h
    pyc += marshal.dumps(code)
    out.write(b"P" + len(pyc).to_bytes(8, "little") + bytes(pyc))
out.flush()
"#;

/// Directories of the stdlib that are not packed: test suites, the IDE, Tk, and what installs
/// or converts packages rather than running them.
const STDLIB_SKIP_DIRS: &[&str] = &[
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "__pycache__",
    "site-packages",
    "dist-packages",
    "lib-dynload",
];

/// Extension modules of `lib-dynload` that belong to the test suite or to Tk.
fn skip_dynload(name: &str) -> bool {
    [
        "_test",
        "_ctypes_test",
        "_xxtestfuzz",
        "xxlimited",
        "_tkinter",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Adds the interpreter layer, the per-app `.python/` directory and the venv to `plan`, and
/// sets its run spec.
pub fn add(plan: &mut Plan, python: &Python<'_>) -> Result<(), PackError> {
    if let Some(script) = python.project.and_then(|p| p.script.as_ref()) {
        plan.add(generated(
            &launcher_path(&script.name),
            0o644,
            pyproject::launcher(script).into_bytes(),
        ))?;
    }
    if plan
        .resolve(python.entry)
        .is_none_or(|e| e.kind != EntryKind::File)
    {
        return Err(PackError::MissingPythonEntry {
            entry: python.entry.to_owned(),
        });
    }
    let probe = probe(python.interpreter)?;
    let (major, minor, _) = probe.version;
    if (major, minor) < (3, 8) {
        return Err(PackError::Python {
            interpreter: python.interpreter.to_path_buf(),
            reason: format!(
                "Python {major}.{minor} is too old: unchecked-hash .pyc files and `._pth` files need 3.8 or newer"
            ),
        });
    }
    let version = format!("{major}.{minor}");
    let bin = format!("python{version}{}", probe.abiflags);
    let layer = format!("{LAYERS_DIR}/{LAYER}");
    let lib = format!("{layer}/lib/python{version}");
    let ext = format!("{}.pyc", probe.cache_tag);
    let mut sources: Vec<(PathBuf, String)> = Vec::new();

    // The stdlib; `lib-dynload` always, even empty (it is how exec_prefix is found).
    let stdlib = walk(&probe.stdlib, STDLIB_SKIP_DIRS)?;
    for (rel, path) in &stdlib {
        // Debian's sitecustomize.py is a link into /etc; the app does not want the host's.
        if rel == "sitecustomize.py" || rel == "EXTERNALLY-MANAGED" {
            continue;
        }
        add_file(plan, &format!("{lib}/{rel}"), path)?;
        if rel.ends_with(".py") {
            sources.push((path.clone(), format!("{lib}/{rel}")));
        }
    }
    let dynload_dir = probe.platstdlib.join("lib-dynload");
    add_dir(plan, &format!("{lib}/lib-dynload"))?;
    let mut placed = Vec::new();
    if let Ok(read) = std::fs::read_dir(&dynload_dir) {
        let mut names: Vec<(String, PathBuf)> = read
            .flatten()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .filter(|(n, p)| n.ends_with(".so") && !skip_dynload(n) && p.is_file())
            .collect();
        names.sort();
        for (name, path) in names {
            program::add_library(plan, &format!("{lib}/lib-dynload/{name}"), &path)?;
            placed.push(path);
        }
    }

    // The venv's packages and the requirements', in the app's tree.
    let site = format!("{APP_DIR}/lib/python{version}/site-packages");
    let mut placed_dirs = vec![dynload_dir.clone()];
    let mut package_dirs = Vec::new();
    let mut pip_dir = None;
    if let Some(venv) = python.venv {
        package_dirs.push(venv_site_packages(venv, &version)?);
    }
    let dependencies: &[String] = python.project.map_or(&[], |p| &p.project.dependencies);
    if python.requirements.is_some() || !dependencies.is_empty() {
        let staging = tempfile::Builder::new()
            .prefix("wrapkit-pip-")
            .tempdir()
            .map_err(|source| PackError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        pip_install(
            &probe.executable,
            python.requirements,
            dependencies,
            python.project.map(|p| p.path.as_path()),
            python.find_links,
            staging.path(),
        )?;
        pip_dir = Some(staging.path().to_path_buf());
        package_dirs.push(staging.path().to_path_buf());
        plan.staging.push(staging);
    }
    for dir in package_dirs {
        for (rel, path) in walk(&dir, &["__pycache__"])? {
            let top = rel.split('/').next().unwrap_or_default();
            // pip itself; and the console scripts `pip install --target` writes to `bin/`,
            // which name the staging directory in their `#!` lines.
            if top == "pip"
                || (top.starts_with("pip-") && top.ends_with(".dist-info"))
                || (top == "bin" && pip_dir.as_ref() == Some(&dir))
            {
                continue;
            }
            if is_extension(&rel) && is_elf(&path) {
                program::add_library(plan, &format!("{site}/{rel}"), &path)?;
                placed.push(path);
                continue;
            }
            add_file(plan, &format!("{site}/{rel}"), &path)?;
            if rel.ends_with(".py") {
                sources.push((path.clone(), format!("{site}/{rel}")));
            }
        }
        placed_dirs.push(std::fs::canonicalize(&dir).unwrap_or(dir));
    }

    // The project's own dist-info, so that `importlib.metadata.version(name)` answers.
    if let Some(project) = python.project.map(|p| &p.project)
        && let Some(version) = &project.version
    {
        let info = format!("{site}/{}-{version}.dist-info", project.dist_name());
        let metadata = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {version}\n",
            project.name
        );
        plan.add(generated(
            &format!("{info}/METADATA"),
            0o644,
            metadata.into_bytes(),
        ))?;
        plan.add(generated(
            &format!("{info}/INSTALLER"),
            0o644,
            b"wrapkit\n".to_vec(),
        ))?;
        plan.add(generated(&format!("{info}/RECORD"), 0o644, Vec::new()))?;
    }

    // The app's own modules: everything at the root that is not ours.
    for e in plan.entries() {
        if e.kind != EntryKind::File
            || !e.name.ends_with(".py")
            || e.name.starts_with(&format!("{LAYERS_DIR}/"))
            || e.name.starts_with(&format!("{APP_DIR}/"))
        {
            continue;
        }
        if let Source::Disk(path) = &e.source {
            sources.push((path.clone(), e.name.clone()));
        }
    }
    for (name, bytes) in compile(&probe.executable, &sources)? {
        let (dir, file) = name.rsplit_once('/').unwrap_or(("", &name));
        let stem = file.strip_suffix(".py").unwrap_or(file);
        let pyc = if dir.is_empty() {
            format!("__pycache__/{stem}.{ext}")
        } else {
            format!("{dir}/__pycache__/{stem}.{ext}")
        };
        plan.add(generated(&pyc, 0o644, bytes))?;
    }

    let real = program::add(
        plan,
        &Program {
            path: &probe.executable,
            layer: LAYER,
            name: &bin,
            libraries: python.libraries,
            placed: &placed,
            placed_dirs: &placed_dirs,
            libc: python.libc,
        },
    )?;

    // What runs: the app's own path to the interpreter, with the `._pth` beside it and a
    // `pyvenv.cfg` one up (which makes `site` treat `.python/` as a venv without system site
    // packages: no user site, whatever HOME or PYTHONUSERBASE say).
    let link = format!("{APP_DIR}/bin/{bin}");
    let target = format!("../../{real}");
    plan.add(Planned {
        name: link.clone(),
        kind: EntryKind::Symlink,
        mode: 0o777,
        size: target.len() as u64,
        target: Some(target),
        source: Source::None,
    })?;
    add_dir(plan, &site)?;
    // A project's `src/` layout imports as the installed project would.
    let src =
        if python.project.is_some() && plan.get("src").is_some_and(|e| e.kind == EntryKind::Dir) {
            "../../src\n"
        } else {
            ""
        };
    let pth = format!(
        "../..\n{src}../../{lib}\n../../{lib}/lib-dynload\n../lib/python{version}/site-packages\nimport site\n"
    );
    plan.add(generated(
        &format!("{APP_DIR}/bin/{bin}._pth"),
        0o644,
        pth.into_bytes(),
    ))?;
    let (a, b, c) = probe.version;
    let cfg = format!("include-system-site-packages = false\nversion = {a}.{b}.{c}\n");
    plan.add(generated(
        &format!("{APP_DIR}/pyvenv.cfg"),
        0o644,
        cfg.into_bytes(),
    ))?;

    let packages = plan
        .entries()
        .filter(|e| e.kind == EntryKind::Dir && path_parent(&e.name) == site)
        .filter(|e| !e.name.ends_with(".dist-info") && !e.name.ends_with("__pycache__"))
        .count();
    plan.notes.push(format!(
        "python: {} ({}.{}.{}{}), {} stdlib files, {} extension modules{}; runs {}",
        probe.executable.display(),
        probe.version.0,
        probe.version.1,
        probe.version.2,
        if python.interpreter != probe.executable {
            format!(", from `{}`", python.interpreter.display())
        } else {
            String::new()
        },
        stdlib.len(),
        placed.len(),
        if packages > 0 {
            format!(", {packages} package directories")
        } else {
            String::new()
        },
        python.entry,
    ));
    plan.run = RunSpec::Exec {
        argv: vec![link, format!("{{root}}/{}", python.entry)],
        env: python.env.clone(),
        argv0: None,
    };
    Ok(())
}

/// Where the launcher of a `[project.scripts]` entry goes: beside the interpreter, as pip
/// installs console scripts in a venv's `bin/`.
pub fn launcher_path(name: &str) -> String {
    format!("{APP_DIR}/bin/{name}")
}

/// Asks the interpreter where it lives and what it is.
fn probe(interpreter: &Path) -> Result<Probe, PackError> {
    let fail = |reason: String| PackError::Python {
        interpreter: interpreter.to_path_buf(),
        reason,
    };
    let out = Command::new(interpreter)
        .args(["-I", "-S", "-c", PROBE])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "asking it about itself failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("unexpected answer: {e}")))
}

/// Installs `requirements` with the interpreter's own pip into `target` (a private directory
/// that becomes the app's site-packages): wheels only, nothing compiled (the recipe compiles),
/// from the index or, with `find_links`, only from those directories.
fn pip_install(
    interpreter: &Path,
    requirements: Option<&Path>,
    dependencies: &[String],
    pyproject: Option<&Path>,
    find_links: &[PathBuf],
    target: &Path,
) -> Result<(), PackError> {
    let fail = |reason: String| PackError::Requirements {
        path: requirements
            .or(pyproject)
            .unwrap_or(Path::new("pyproject.toml"))
            .to_path_buf(),
        reason,
    };
    let mut cmd = Command::new(interpreter);
    cmd.args([
        "-I",
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
    ])
    .args([
        "--no-compile",
        "--no-warn-script-location",
        "--only-binary",
        ":all:",
    ])
    .arg("--target")
    .arg(target)
    .stdin(Stdio::null());
    if let Some(file) = requirements {
        cmd.arg("--requirement").arg(file);
    }
    if !find_links.is_empty() {
        cmd.arg("--no-index");
        for dir in find_links {
            cmd.arg("--find-links").arg(dir);
        }
    }
    // After `--`, so that a dependency is never read as an option.
    if !dependencies.is_empty() {
        cmd.arg("--").args(dependencies);
    }
    let out = cmd
        .output()
        .map_err(|e| fail(format!("cannot run {} -m pip: {e}", interpreter.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(fail(format!(
            "pip failed ({}): {}",
            out.status,
            last[last.len().saturating_sub(4)..].join(" / ")
        )));
    }
    Ok(())
}

/// `DIR/lib/python3.X/site-packages`.
fn venv_site_packages(venv: &Path, version: &str) -> Result<PathBuf, PackError> {
    let dir = venv.join(format!("lib/python{version}/site-packages"));
    if dir.is_dir() {
        return Ok(dir);
    }
    Err(PackError::Venv {
        venv: venv.to_path_buf(),
        reason: format!(
            "it has no lib/python{version}/site-packages: is it a venv made with Python {version}?"
        ),
    })
}

/// Regular files below `root` (symlinks followed, as the interpreter would read them), as
/// sorted `(relative name, path)` pairs, leaving out directories named in `skip`.
fn walk(root: &Path, skip: &[&str]) -> Result<Vec<(String, PathBuf)>, PackError> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(e.file_type().is_dir()
                    && e.file_name().to_str().is_some_and(|n| skip.contains(&n)))
        });
    for e in walker {
        let e = e.map_err(|e| PackError::Read {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("a symlink loop")),
        })?;
        if !e.file_type().is_file() {
            continue;
        }
        let Ok(rel) = e.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else {
            continue; // the stdlib has none; a package's non-UTF-8 name cannot be stored
        };
        out.push((rel.to_owned(), e.path().to_path_buf()));
    }
    Ok(out)
}

/// The archive path's parent (`""` at the root).
fn path_parent(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| &magic == b"\x7fELF")
}

fn is_extension(name: &str) -> bool {
    name.ends_with(".so") || name.contains(".so.")
}

/// Compiles every source with `interpreter`, in one process.
fn compile(
    interpreter: &Path,
    sources: &[(PathBuf, String)],
) -> Result<Vec<(String, Vec<u8>)>, PackError> {
    let fail = |reason: String| PackError::Python {
        interpreter: interpreter.to_path_buf(),
        reason,
    };
    let mut child = Command::new(interpreter)
        .args(["-I", "-S", "-c", COMPILE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it to compile: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let lines: Vec<String> = sources
        .iter()
        .map(|(path, name)| {
            serde_json::to_string(&(path.to_string_lossy(), name)).expect("strings serialise")
        })
        .collect();
    let writer = std::thread::spawn(move || {
        for line in lines {
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
    });
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("compiling: {e}")))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(fail(format!(
            "compiling the sources failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut rest = &out.stdout[..];
    let mut compiled = Vec::new();
    for (_, name) in sources {
        if rest.len() < 9 {
            return Err(fail("the compiler's answer ended early".into()));
        }
        let len = u64::from_le_bytes(rest[1..9].try_into().expect("8 bytes")) as usize;
        let (kind, body) = (rest[0], &rest[9..9 + len.min(rest.len() - 9)]);
        if kind == b'P' {
            compiled.push((name.clone(), body.to_vec()));
        }
        // Else a file Python itself cannot compile (a py2-only file in a package, a template
        // with a .py name): packed as it is, with no .pyc, as pip leaves it.
        rest = &rest[9 + len.min(rest.len() - 9)..];
    }
    Ok(compiled)
}

fn add_dir(plan: &mut Plan, name: &str) -> Result<(), PackError> {
    plan.add(Planned {
        name: name.to_owned(),
        kind: EntryKind::Dir,
        mode: 0o755,
        size: 0,
        target: None,
        source: Source::None,
    })
}

fn add_file(plan: &mut Plan, name: &str, path: &Path) -> Result<(), PackError> {
    let meta = std::fs::metadata(path).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    plan.add(Planned {
        name: name.to_owned(),
        kind: EntryKind::File,
        mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        size: meta.len(),
        target: None,
        source: Source::Disk(path.to_path_buf()),
    })
}

fn generated(name: &str, mode: u32, bytes: Vec<u8>) -> Planned {
    Planned {
        name: name.to_owned(),
        kind: EntryKind::File,
        mode,
        size: bytes.len() as u64,
        target: None,
        source: Source::Generated(bytes),
    }
}
