//! The command line. The doc comment on each field is its `--help` text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, ColorChoice, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::CompressionSetting;

/// `wrapkit --version`: the version, and the commit and its date when built from a git checkout
/// (`wrapkit 0.1.0 (a1b2c3d4e 2026-12-02)`, as `cargo --version` prints); see `build.rs`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), env!("WRAPKIT_BUILD_COMMIT"));

/// Turn an application directory into one self-contained executable.
#[derive(Debug, Parser)]
#[command(name = "wrapkit", version = VERSION, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags every command takes, before or after its name (`wrapkit -q pack` or `wrapkit pack -q`).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print nothing on stderr but errors (no progress, no notes or warnings).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more on stderr: which stub, config and cache a command uses.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to colour the `error:`, `warning:` and `hint:` labels and the help (auto: when
    /// stderr is a terminal and NO_COLOR is not set).
    #[arg(long, value_name = "WHEN", global = true, default_value = "auto")]
    pub color: ColorChoice,
}

/// Parses the process's arguments; exits with clap's message (coloured as `--color` says) on a
/// usage error, `--help` or `--version`.
pub fn parse() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Clap styles its own help and usage errors before it hands back `--color`, so the flag is
    // looked up once beforehand; the parse below still validates it.
    let command = Cli::command().color(color_flag(&args).unwrap_or(ColorChoice::Auto));
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The last `--color WHEN` or `--color=WHEN` before a `--`, if it is a valid choice.
fn color_flag(args: &[OsString]) -> Option<ColorChoice> {
    let mut found = None;
    let mut args = args.iter().skip(1).map(|a| a.to_str());
    while let Some(arg) = args.next() {
        let value = match arg {
            Some("--") => break,
            Some("--color") => args.next().flatten(),
            Some(a) => a.strip_prefix("--color="),
            None => None,
        };
        if let Some(choice) = value.and_then(|v| clap::ValueEnum::from_str(v, false).ok()) {
            found = Some(choice);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_color_flag_is_found_before_parsing() {
        let find = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            color_flag(&args)
        };
        assert_eq!(find(&["wrapkit", "ls", "x"]), None);
        assert_eq!(
            find(&["wrapkit", "--color", "never", "ls"]),
            Some(ColorChoice::Never)
        );
        assert_eq!(
            find(&["wrapkit", "ls", "--color=always", "--color=never"]),
            Some(ColorChoice::Never)
        );
        assert_eq!(find(&["wrapkit", "--color", "pink"]), None);
        assert_eq!(find(&["wrapkit", "pack", "--", "--color=always"]), None);
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack DIR into one executable that runs its Lua script or a program it carries.
    Pack(Box<PackArgs>),
    /// List the files in a packed executable.
    Ls(LsArgs),
    /// Print one file of a packed executable to stdout.
    Cat(CatArgs),
    /// Write a packed executable's files into DIR (new or empty).
    Extract(ExtractArgs),
    /// Show what a packed executable is: stub, payload, manifest.
    Info(InfoArgs),
    /// Check every byte of a packed executable; name the first bad region.
    Verify(VerifyArgs),
    /// Write the app and a wrapkit.toml into DIR, so `wrapkit pack DIR` gives the same executable.
    Unpack(UnpackArgs),
    /// Show, check and prune the cache that exec-mode apps run from.
    Cache(CacheArgs),
    /// Say what each program and library in a packed executable needs, where each need is met
    /// (bundled, glibc, missing), and which glibc the target must have.
    Audit(AuditArgs),
    /// Write the files that install a packed executable as a service: a systemd unit, an OCI image, a portable service image.
    Deploy(DeployArgs),
    /// Write a small working app with a commented wrapkit.toml into DIR (new or empty).
    Init(InitArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// Save it where the shell looks for completions, e.g. `wrapkit completions bash >
    /// ~/.local/share/bash-completion/completions/wrapkit`.
    Completions(CompletionsArgs),
    /// Print the man page of wrapkit or of one of its commands, as roff.
    ///
    /// Read it with `wrapkit man pack | man -l -`, or install it: `wrapkit man > wrapkit.1`,
    /// `wrapkit man pack > wrapkit-pack.1`, and so on for each command.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(subcommand)]
    pub target: DeployTarget,
}

#[derive(Debug, Subcommand)]
pub enum DeployTarget {
    /// Write NAME.service, hardened, and for a named user sysusers.d/NAME.conf (and for
    /// --empty-root tmpfiles.d/NAME.conf) into DIR.
    Systemd(Box<SystemdArgs>),
    /// Write an OCI image layout into DIR: the executable run as a non-root user, reproducibly
    /// (`skopeo`, `umoci` and `podman` read it as `oci:DIR:TAG`).
    Oci(Box<OciArgs>),
    /// Write a systemd portable service image, the directory DIR (named NAME or NAME_VERSION):
    /// the executable, its hardened unit with DynamicUser=yes, os-release; nothing else.
    Portable(Box<PortableArgs>),
}

#[derive(Debug, Args)]
pub struct PortableArgs {
    /// The packed executable (its name, version and run mode are read from its manifest).
    pub app: PathBuf,

    /// The image directory to create (it must not exist): its name is the image's, NAME or
    /// NAME_VERSION, as portablectl requires [default: ./NAME_VERSION].
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// A wrapkit.toml (or the app directory holding one) whose [deploy] table gives defaults;
    /// flags replace its values, and add to its lists and environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Unit and directory name, and the image's [default: the app's name].
    #[arg(long)]
    pub name: Option<String>,

    /// Which sockets the service may open [default: none for a Lua app, inet for exec mode].
    #[arg(long, value_enum, value_name = "NET")]
    pub network: Option<crate::deploy::Network>,

    /// The program compiles code at run time (V8, a JVM, LuaJIT): leave out
    /// MemoryDenyWriteExecute= [default: from the program's name].
    #[arg(long)]
    pub jit: bool,

    /// A host path bound read-only into the service, `PATH` or `SRC:DST`
    /// (BindReadOnlyPaths=; repeatable).
    #[arg(long, value_name = "PATH")]
    pub bind_read_only: Vec<String>,

    /// An environment variable for the service (Environment=; repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub environment: Vec<(String, String)>,

    /// Arguments for the app, after `--` (replace [deploy]'s `args`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OciArgs {
    /// The packed executable (its name, version and run mode are read from its manifest).
    pub app: PathBuf,

    /// The layout's directory: new, empty, or a layout an earlier run wrote (replaced whole).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// A wrapkit.toml (or the app directory holding one) whose [deploy] table gives defaults
    /// (`name`, `environment`, `args`); flags replace its values, and add to its environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The user's and the executable's name (/usr/bin/NAME) [default: the app's name].
    #[arg(long)]
    pub name: Option<String>,

    /// The image's tag in index.json.
    #[arg(long, default_value = "latest")]
    pub tag: String,

    /// Exec mode: fill the cache now and ship it as a layer, so no start fills it (and a
    /// read-only container runs).
    #[arg(long)]
    pub prefill: bool,

    /// Add the host's CA certificates at /etc/ssl/certs/ca-certificates.crt (and set
    /// SSL_CERT_FILE).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "/etc/ssl/certs/ca-certificates.crt")]
    pub ca_certs: Option<PathBuf>,

    /// Add the host's time-zone database at /usr/share/zoneinfo.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "/usr/share/zoneinfo")]
    pub tzdata: Option<PathBuf>,

    /// An environment variable for the app (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub environment: Vec<(String, String)>,

    /// Arguments for the app, after `--` (the image's Cmd; replace [deploy]'s `args`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SystemdArgs {
    /// The packed executable (its name, version and run mode are read from its manifest).
    pub app: PathBuf,

    /// Where to write the files (created if missing) [default: the current directory].
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,

    /// A wrapkit.toml (or the app directory holding one) whose [deploy] table gives defaults;
    /// flags replace its values, and add to its lists and environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Unit, user and directory name [default: the app's name].
    #[arg(long)]
    pub name: Option<String>,

    /// Run as this system user, declared in sysusers.d/NAME.conf [default: the unit's name].
    #[arg(long, value_name = "USER", conflicts_with = "dynamic_user")]
    pub user: Option<String>,

    /// Run as a user systemd allocates at each start (DynamicUser=yes); no sysusers file.
    #[arg(long)]
    pub dynamic_user: bool,

    /// Which sockets the service may open [default: none for a Lua app, inet for exec mode].
    #[arg(long, value_enum, value_name = "NET")]
    pub network: Option<crate::deploy::Network>,

    /// Run in an empty root directory holding only the executable (RootDirectory= a directory
    /// tmpfiles.d/NAME.conf makes, BindReadOnlyPaths= the executable).
    #[arg(long)]
    pub empty_root: bool,

    /// The program compiles code at run time (V8, a JVM, LuaJIT): leave out
    /// MemoryDenyWriteExecute= [default: from the program's name].
    #[arg(long)]
    pub jit: bool,

    /// Where the executable will be installed [default: /usr/bin/NAME].
    #[arg(long, value_name = "PATH")]
    pub exec_path: Option<String>,

    /// Another path the service may write (ReadWritePaths=; repeatable).
    #[arg(long, value_name = "PATH")]
    pub read_write_path: Vec<String>,

    /// A host path bound read-only into the service, `PATH` or `SRC:DST`
    /// (BindReadOnlyPaths=; repeatable).
    #[arg(long, value_name = "PATH")]
    pub bind_read_only: Vec<String>,

    /// An environment variable for the service (Environment=; repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub environment: Vec<(String, String)>,

    /// Arguments for the app, after `--` (replace [deploy]'s `args`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the app [default: the current directory].
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// A Lua app, run in-process (the default).
    #[arg(long, group = "kind")]
    pub lua: bool,
    /// An app run by a program bundled from this machine with its libraries (`/bin/sh` and a
    /// script, to start from; see `program` in wrapkit.toml).
    #[arg(long, group = "kind")]
    pub program: bool,
    /// A Python app (main.py, a module), run by this machine's python3 bundled with it.
    #[arg(long, group = "kind")]
    pub python: bool,
    /// A Node.js app (package.json, index.js), run by this machine's node bundled with it.
    #[arg(long, group = "kind")]
    pub node: bool,
    /// A Tcl app (main.tcl), run by this machine's tclsh bundled with it.
    #[arg(long, group = "kind")]
    pub tcl: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The packed executable.
    pub app: PathBuf,
    /// Print a JSON object instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. `pack` or `cache gc` [default: wrapkit's own].
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The cache directory [default: $WRAPKIT_CACHE_DIR, $CACHE_DIRECTORY/wrapkit,
    /// $XDG_CACHE_HOME/wrapkit or ~/.cache/wrapkit].
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache directory.
    Dir,
    /// List the cached trees: digest, state, size, last use, app, executables.
    Ls {
        /// Print a JSON array instead.
        #[arg(long)]
        json: bool,
    },
    /// Re-read every file of each cached tree and compare it with the archive's index.
    Verify {
        /// Only these trees (digests or unique prefixes).
        digests: Vec<String>,
        /// Print a JSON array of results instead.
        #[arg(long)]
        json: bool,
    },
    /// Remove trees no executable uses any more, trees unused for a while, and leftovers of
    /// interrupted starts.
    Gc {
        /// Also remove trees not used for this many days.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        max_age: u64,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove cached trees: all of them, or those given.
    Clear {
        /// Only these trees (digests or unique prefixes).
        digests: Vec<String>,
    },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The packed executable.
    pub app: PathBuf,
    /// Show type and mode, size, stored size and method.
    #[arg(short, long)]
    pub long: bool,
    /// Print a JSON array instead.
    #[arg(long, conflicts_with = "long")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// The packed executable.
    pub app: PathBuf,
    /// Path of the file inside the archive.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The packed executable.
    pub app: PathBuf,
    /// Where to write the files (created if missing; must be empty).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The packed executable.
    pub app: PathBuf,
    /// Print a JSON object instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The packed executable.
    pub app: PathBuf,
    /// Print a JSON object instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The packed executable.
    pub app: PathBuf,
    /// Where to write the app (created if missing; must be empty).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The app directory (its `wrapkit.toml`, if any, is read), or a single script: Lua, or
    /// Python, JavaScript or Tcl (by extension or `#!` line), packed with its interpreter.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Where to write the executable (must be outside DIR) [default: the app's name, in the
    /// working directory].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print what would be packed (each entry, its size and where it comes from) and what
    /// would run; write nothing.
    #[arg(long)]
    pub list: bool,

    /// App name recorded in the manifest [default: the directory's name].
    #[arg(long)]
    pub name: Option<String>,

    /// App version recorded in the manifest [default: 0.0.0].
    #[arg(long, value_name = "VERSION")]
    pub app_version: Option<String>,

    /// Script to run, as a path inside DIR [default: main.lua; with `--python`, main.py or
    /// __main__.py; with `--node` or `--tcl`, see there]. Replaces the config's `entry` or
    /// `exec`.
    #[arg(long, value_name = "PATH", conflicts_with = "exec")]
    pub entry: Option<String>,

    /// Run this program from the app instead of Lua: the first `--exec` is a path inside DIR,
    /// each further one an argument (`{root}` and `{exe}` are expanded at run time). Replaces
    /// the config's `exec` or `entry`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub exec: Vec<String>,

    /// Bundle this program from the build machine, with the shared libraries it needs, and run
    /// it (an ELF executable; dynamically linked ones get their closure, see `--libc`).
    /// Replaces the config's `program`, `exec` or `entry`.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["entry", "exec"])]
    pub program: Option<PathBuf>,

    /// An argument for the `--program` (repeatable; `{root}` and `{exe}` are expanded at run
    /// time). Replaces the config's `args`.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// A shared library the program loads with `dlopen` (an extension module, a plugin):
    /// bundled beside its libraries, and its own needs followed (repeatable; added to the
    /// config's `libraries`).
    #[arg(long = "library", value_name = "PATH")]
    pub libraries: Vec<PathBuf>,

    /// Where a bundled program's glibc comes from: the target's (`host`), the packed file's
    /// (`bundle`: runs in an empty chroot or on an older distribution), or the target's when it
    /// is new enough, else the packed one (`auto`) [default: auto].
    #[arg(long, value_enum)]
    pub libc: Option<crate::config::LibcSetting>,

    /// Run the app with Node.js from the build machine: PATH is its binary [default: `node` on
    /// PATH], or `npm:VERSION` for that version's official build from npm. Bundles the binary with its libraries (see `--libc`) and runs the script named by
    /// `--entry`, else package.json's `bin` or `main`, else `index.js`. Put DIR before it.
    #[arg(long, value_name = "PATH", num_args = 0..=1, conflicts_with_all = ["exec", "program", "tcl", "python"])]
    pub node: Option<Option<PathBuf>>,

    /// Run the app with Tcl from the build machine: PATH is its tclsh [default: `tclsh` on
    /// PATH]. Bundles tclsh, libtcl, Tcl's script library and modules, and the packages the
    /// app's scripts `package require`; runs `--entry`, else `main.tcl`. Put DIR before it.
    #[arg(long, value_name = "PATH", num_args = 0..=1, conflicts_with_all = ["exec", "program", "node", "python"])]
    pub tcl: Option<Option<PathBuf>>,

    /// Pack a Python app with this interpreter from the build machine, its stdlib and its
    /// libraries, and run `main.py`, `__main__.py` or `--entry FILE.py` with it [default:
    /// `python3` on PATH; a pyenv shim is resolved to the real interpreter].
    #[arg(
        long,
        value_name = "PATH",
        num_args = 0..=1,
        default_missing_value = "python3",
        conflicts_with_all = ["exec", "program", "node", "tcl"]
    )]
    pub python: Option<PathBuf>,

    /// A Python app's packages: a virtual environment whose site-packages the app imports (C
    /// extensions included; their libraries are bundled).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["exec", "program"])]
    pub venv: Option<PathBuf>,

    /// A Python app's packages: install this requirements file (wheels only) with the interpreter's
    /// pip into a private directory, packed as the app's site-packages.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["exec", "program"])]
    pub requirements: Option<PathBuf>,

    /// With `--requirements` or `pyproject.toml` dependencies: take wheels only from this
    /// directory, not from the index (repeatable).
    #[arg(long, value_name = "DIR")]
    pub find_links: Vec<PathBuf>,

    /// Set an environment variable for the `exec` program (repeatable; added to the config's
    /// `env`).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// Pack only files matching this glob (repeatable; replaces the config's list).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,

    /// Leave out paths matching this glob (repeatable; added to the config's list).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// How to compress file contents [default: auto].
    #[arg(long, value_enum)]
    pub compression: Option<CompressionSetting>,

    /// Pack what symlinks point to instead of the links themselves.
    #[arg(long)]
    pub follow_symlinks: bool,

    /// Leave out what the app's `.gitignore` files (and those above it, and the repository's
    /// `.git/info/exclude`) ignore, as git would. Off by default: build outputs such as
    /// `dist/` or `node_modules/` are usually ignored and usually needed
    #[arg(long)]
    pub respect_gitignore: bool,

    /// Pack this kind of usually-mistaken content without a warning (repeatable; added to the
    /// config's `allow`).
    #[arg(long, value_enum, value_name = "KIND")]
    pub allow: Vec<crate::walk::NoticeKind>,

    /// Runtime stub to put in front of the payload [default: the one built into wrapkit].
    /// A packed executable works too: its payload is replaced.
    #[arg(long, value_name = "FILE")]
    pub runtime: Option<PathBuf>,

    /// Also print what was written as a JSON object on stdout.
    #[arg(long, conflicts_with = "list")]
    pub json: bool,
}
