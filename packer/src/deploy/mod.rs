//! Deploy artifacts: files that install a packed executable the way a distribution installs a
//! service: a systemd unit and its sysusers.d entry ([`systemd`]), an OCI image layout
//! ([`oci`]).
//!
//! What a deploy needs from the app (its name, version, and whether it runs Lua or a bundled
//! program) is read from the packed file's manifest; how the host runs it (the user, the
//! network, paths, extra environment) comes from the `[deploy]` table of a `wrapkit.toml`
//! (`--config`) and from flags, never from the manifest: the manifest is part of the payload
//! whose digest names the app's cache tree, so a host-side choice such as the service user
//! would otherwise repack the file and re-materialise its cache, and the same file could not be
//! deployed two ways.

pub mod oci;
pub mod portable;
pub mod systemd;

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `[deploy]` table of `wrapkit.toml`. Every key is optional; flags override it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeployConfig {
    /// The service's unit and user name [default: the app's name].
    pub name: Option<String>,
    /// A named system user, declared in sysusers.d [default: the unit's name].
    pub user: Option<String>,
    /// `DynamicUser=yes` instead of a named user.
    pub dynamic_user: Option<bool>,
    /// `none` or `inet` [default: by app kind, see [`Network::default_for`]].
    pub network: Option<Network>,
    /// Run in an empty root directory with only the executable bound into it.
    pub empty_root: Option<bool>,
    /// The program compiles code at run time (V8, a JVM, LuaJIT): no MemoryDenyWriteExecute=.
    pub jit: Option<bool>,
    /// Where the executable is installed [default: /usr/bin/NAME].
    pub exec_path: Option<String>,
    /// Extra paths the service may write (added to the flags').
    pub read_write_paths: Option<Vec<String>>,
    /// Extra host paths bound read-only into the service (added to the flags').
    pub bind_read_only: Option<Vec<String>>,
    /// Extra environment (flags add to it).
    pub environment: Option<BTreeMap<String, String>>,
    /// Arguments after the executable (flags after `--` replace them).
    pub args: Option<Vec<String>>,
}

/// Which sockets the service may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No network at all: a private network namespace, no address family.
    None,
    /// IPv4, IPv6 and local (AF_UNIX) sockets.
    Inet,
}

/// What kind of app a packed file is, as far as the sandbox is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Lua, run in-process by the stub: no sockets (PUC Lua has none, and the static stub
    /// loads no C modules), no JIT.
    Lua,
    /// A bundled program, run from the exec-mode cache; `jit` when it compiles code at run time.
    Exec { jit: bool },
}

/// Programs known to need writable-and-executable memory, by file name: V8 (Node, Deno),
/// JavaScriptCore (Bun), the JVM, LuaJIT, .NET, PyPy.
const JIT_PROGRAMS: &[&str] = &[
    "node", "nodejs", "deno", "bun", "java", "luajit", "dotnet", "pypy", "pypy3",
];

impl AppKind {
    /// The kind of an app from its manifest's run spec.
    pub fn of(run: &wrapkit_runtime::format::manifest::Run) -> AppKind {
        use wrapkit_runtime::format::manifest::Run;
        match run {
            Run::Lua { .. } => AppKind::Lua,
            Run::Exec { argv, .. } => {
                let program = argv.first().map(String::as_str).unwrap_or_default();
                let base = program.rsplit('/').next().unwrap_or(program);
                AppKind::Exec {
                    jit: JIT_PROGRAMS.contains(&base),
                }
            }
        }
    }
}

impl Network {
    /// A Lua app cannot open a socket, so it gets none; a bundled program is most often a
    /// server or a client, so it gets `inet` (`--network none` takes it away).
    pub fn default_for(kind: AppKind) -> Network {
        match kind {
            AppKind::Lua => Network::None,
            AppKind::Exec { .. } => Network::Inet,
        }
    }
}
