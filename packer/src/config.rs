//! `wrapkit.toml`: how an app directory asks to be packed. Every key is optional; command-line
//! flags override the file.
//!
//! ```toml
//! name = "report"          # default: the directory's name
//! version = "1.2.0"        # default: "0.0.0"
//! entry = "main.lua"       # default: main.lua
//! include = ["**"]         # globs of files to pack, relative to the directory
//! exclude = ["*.tmp"]      # globs to leave out (wins over include)
//! compression = "auto"     # auto | store | deflate
//! follow-symlinks = false  # pack what symlinks point to instead of the links
//! respect-gitignore = false  # leave out what .gitignore files ignore
//! source-date-epoch = 0    # entry timestamps; the SOURCE_DATE_EPOCH variable wins over it
//! exec = ["bin/app", "--data", "{root}/data"]  # run a bundled program instead of Lua
//! env = { APP_HOME = "{root}" }                # extra environment for that program
//! program = "/usr/bin/jq"  # or: bundle a program from this machine with its libraries
//! args = ["-C"]            # that program's first arguments
//! libraries = []           # dlopen'ed libraries it needs too (plugins, extension modules)
//! libc = "auto"            # host | bundle | auto: where its glibc comes from
//! node = true              # or: run the app with this machine's node ("PATH" or "npm:22.12.0")
//! tcl = true               # or: with this machine's tclsh ("PATH")
//! python = "python3"      # or: a Python app, run with this interpreter from this machine
//! venv = ".venv-build"     # its packages (a venv made with that interpreter)
//! allow = ["large"]        # no warning for these: dotenv, git, venv, cache, large
//!
//! [deploy]                 # read by `wrapkit deploy systemd --config`, not packed
//! user = "report"          # or dynamic-user = true
//! network = "none"         # none | inet
//! ```
//!
//! Unknown keys are an error, so a typo does not silently do nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use wrapkit_runtime::format::writer::Compression;

use crate::error::PackError;

/// The file name looked for in the app directory.
pub const FILE_NAME: &str = "wrapkit.toml";

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub name: Option<String>,
    pub version: Option<String>,
    pub entry: Option<String>,
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    pub compression: Option<CompressionSetting>,
    pub follow_symlinks: Option<bool>,
    /// Leave out what `.gitignore` files ignore (`--respect-gitignore`).
    pub respect_gitignore: Option<bool>,
    /// Timestamp for every entry when `SOURCE_DATE_EPOCH` is not set (written by `unpack`).
    pub source_date_epoch: Option<i64>,
    /// Exec mode: the program (a path in the app) and its first arguments; `{root}` and
    /// `{exe}` are expanded at run time (docs/cache.md).
    pub exec: Option<Vec<String>>,
    /// Exec mode: environment variables for the program (values expand like `exec`).
    pub env: Option<BTreeMap<String, String>>,
    /// A program on the build machine to bundle with its shared libraries and run.
    pub program: Option<std::path::PathBuf>,
    /// The program's first arguments.
    pub args: Option<Vec<String>>,
    /// `dlopen`ed libraries the program needs too.
    pub libraries: Option<Vec<std::path::PathBuf>>,
    /// Where a bundled program's glibc comes from.
    pub libc: Option<LibcSetting>,
    /// Run the app with Node.js from the build machine (`true`, or its binary, or
    /// `npm:VERSION`), as `--node`.
    pub node: Option<InterpreterSetting>,
    /// Run the app with Tcl from the build machine (`true`, or its tclsh), as `--tcl`.
    pub tcl: Option<InterpreterSetting>,
    /// A Python app: the interpreter to bundle (`entry` is then a `.py` file).
    pub python: Option<std::path::PathBuf>,
    /// The venv whose site-packages a Python app imports.
    pub venv: Option<std::path::PathBuf>,
    /// What to pack without a warning: `dotenv`, `git`, `venv`, `cache`, `large`.
    pub allow: Option<Vec<crate::walk::NoticeKind>>,
    /// How `wrapkit deploy` installs the packed file (docs/deploy.md). Checked here, used there:
    /// it does not reach the manifest.
    pub deploy: Option<crate::deploy::DeployConfig>,
}

/// The `compression` key and `--compression` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CompressionSetting {
    /// Deflate what shrinks by 10 % or more; store the rest, and files under 1 KiB.
    Auto,
    /// Store everything uncompressed (fastest start, largest file).
    Store,
    /// Deflate everything.
    Deflate,
}

/// `node = true` (the one on PATH) or `node = "PATH"`; `false` is the same as leaving it out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum InterpreterSetting {
    Default(bool),
    Path(std::path::PathBuf),
}

impl InterpreterSetting {
    /// `None` when not asked for; `Some(None)` for the default binary.
    pub fn binary(&self) -> Option<Option<std::path::PathBuf>> {
        match self {
            InterpreterSetting::Default(false) => None,
            InterpreterSetting::Default(true) => Some(None),
            InterpreterSetting::Path(p) => Some(Some(p.clone())),
        }
    }
}

/// The `libc` key and `--libc` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LibcSetting {
    /// The target's glibc and loader; everything else is bundled.
    Host,
    /// glibc and its loader bundled too: runs in an empty chroot, on older distributions.
    Bundle,
    /// At the first start, the target's glibc if it is new enough, else the bundled one.
    Auto,
}

impl From<LibcSetting> for wrapkit_runtime::format::layer::Libc {
    fn from(l: LibcSetting) -> Self {
        use wrapkit_runtime::format::layer::Libc;
        match l {
            LibcSetting::Host => Libc::Host,
            LibcSetting::Bundle => Libc::Bundle,
            LibcSetting::Auto => Libc::Auto,
        }
    }
}

impl From<CompressionSetting> for Compression {
    fn from(c: CompressionSetting) -> Self {
        match c {
            CompressionSetting::Auto => Compression::Auto,
            CompressionSetting::Store => Compression::Store,
            CompressionSetting::Deflate => Compression::Deflate,
        }
    }
}

impl Config {
    /// Reads `dir/wrapkit.toml`, or the defaults when there is none.
    pub fn load(dir: &Path) -> Result<Self, PackError> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(PackError::Read { path, source }),
        };
        toml::from_str(&text).map_err(|source| PackError::Config { path, source })
    }
}
