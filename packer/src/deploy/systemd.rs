//! A hardened systemd service for a packed executable: `NAME.service`, and for a named user
//! `sysusers.d/NAME.conf`, and for `--empty-root` `tmpfiles.d/NAME.conf` (the empty root).
//!
//! The unit is hardened by default (docs/deploy.md says why each directive is there, and the
//! exposure `systemd-analyze security` gives it); only what breaks a kind of app is left out
//! for that kind ([`AppKind`]). Everything written comes from a checked value: names are unit-
//! and user-name safe, paths absolute and free of whitespace, and every string that reaches a
//! unit line has its specifiers (`%`) and, in `ExecStart=`, its variables (`$`) escaped, and
//! control characters refused, so an app's manifest or a flag cannot add a directive.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{AppKind, Network};

/// Everything the unit is made from, checked by [`Service::new`].
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Unit name, and the user's and the directories' (`StateDirectory=NAME`…).
    pub name: String,
    /// For `Description=`.
    pub app_name: String,
    pub app_version: String,
    pub kind: AppKind,
    pub user: User,
    pub network: Network,
    pub empty_root: bool,
    pub exec_path: String,
    pub args: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub read_write_paths: Vec<String>,
    pub bind_read_only: Vec<String>,
}

/// Who the service runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// A system user of this name, declared in sysusers.d.
    Named(String),
    /// `DynamicUser=yes`: a uid allocated at each start.
    Dynamic,
}

/// The files to write, by path relative to the output directory.
#[derive(Debug, Clone)]
pub struct Service {
    pub files: Vec<(String, String)>,
}

/// A value that cannot go into a unit.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("`{value}` cannot be the {what}: {reason}")]
    Name {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "{what} `{value}` must be an absolute path without whitespace, quotes, backslashes, colons or control characters"
    )]
    Path { what: &'static str, value: String },
    #[error("{what} `{value}` holds a control character (a newline would start another directive)")]
    Control { what: &'static str, value: String },
    #[error(
        "{what} `{value}` holds a backslash (at the end of a unit line it would join the next one)"
    )]
    Backslash { what: &'static str, value: String },
    #[error("environment variable name `{name}` is not a shell name ([A-Za-z_][A-Za-z0-9_]*)")]
    EnvName { name: String },
}

impl DeployError {
    /// What the user can do about it.
    pub fn hint_text(&self) -> &'static str {
        match self {
            DeployError::Name { .. } => {
                "choose another with --name (unit, user and directory names: lowercase letters, digits, `_` and `-`, at most 31 characters, not starting with a digit or `-`)"
            }
            DeployError::Path { .. } => "give an absolute path such as /usr/bin/NAME",
            DeployError::Control { .. }
            | DeployError::Backslash { .. }
            | DeployError::EnvName { .. } => {
                "remove the character, or set the value in a drop-in the service reads"
            }
        }
    }
}

/// The directory `--empty-root` makes the service's `RootDirectory=`: on the `/run` tmpfs, so
/// the mount points systemd creates in it go away at each boot; `tmpfiles.d/NAME.conf` makes it.
pub fn empty_root_dir(name: &str) -> String {
    format!("/run/wrapkit-root/{name}")
}

impl Service {
    pub fn new(spec: &ServiceSpec) -> Result<Service, DeployError> {
        check_name("unit name", &spec.name)?;
        if let User::Named(user) = &spec.user {
            check_name("user name", user)?;
        }
        check_path("the executable's path", &spec.exec_path)?;
        for p in &spec.read_write_paths {
            check_path("--read-write-path", p)?;
        }
        for p in &spec.bind_read_only {
            match p.split_once(':') {
                Some((src, dst)) => {
                    check_path("--bind-read-only", src)?;
                    check_path("--bind-read-only", dst)?;
                }
                None => check_path("--bind-read-only", p)?,
            }
        }
        for (k, v) in &spec.environment {
            check_env_name(k)?;
            check_text("--environment", v)?;
        }
        for a in &spec.args {
            check_text("argument", a)?;
        }
        // Unquoted in `Description=` and the comment: no control character, no backslash.
        for (what, value) in [
            ("app name", &spec.app_name),
            ("app version", &spec.app_version),
        ] {
            check_text(what, value)?;
            if value.contains('\\') {
                return Err(DeployError::Backslash {
                    what,
                    value: value.clone(),
                });
            }
        }

        let mut files = vec![(format!("{}.service", spec.name), unit(spec))];
        if let User::Named(user) = &spec.user {
            files.push((
                format!("sysusers.d/{}.conf", spec.name),
                format!("u {user} - \"{user} service user\"\n"),
            ));
        }
        if spec.empty_root {
            files.push((
                format!("tmpfiles.d/{}.conf", spec.name),
                format!(
                    "# The empty root of {name}.service (RootDirectory=); systemd creates its mount points.\nd {} 0755 root root -\n",
                    empty_root_dir(&spec.name),
                    name = spec.name
                ),
            ));
        }
        Ok(Service { files })
    }
}

fn unit(spec: &ServiceSpec) -> String {
    let name = &spec.name;
    let mut u = String::new();
    let mut line = |s: &str| {
        u.push_str(s);
        u.push('\n');
    };
    let kind = match spec.kind {
        AppKind::Lua => "Lua app",
        AppKind::Exec { jit: false } => "exec-mode app",
        AppKind::Exec { jit: true } => "exec-mode app, JIT",
    };
    line(&format!(
        "# Written by `wrapkit deploy systemd` for {} {} ({kind}); docs/deploy.md says why each line is here.",
        escape_spec(&spec.app_name),
        escape_spec(&spec.app_version)
    ));
    line("[Unit]");
    line(&format!(
        "Description={} {}",
        escape_spec(&spec.app_name),
        escape_spec(&spec.app_version)
    ));
    if spec.network == Network::Inet {
        line("After=network.target");
    }
    line("");
    line("[Service]");
    line("Type=exec");
    let mut exec = format!("ExecStart={}", spec.exec_path.replace('%', "%%"));
    for a in &spec.args {
        exec.push(' ');
        exec.push_str(&quote_exec(a));
    }
    line(&exec);
    match &spec.user {
        User::Named(user) => line(&format!("User={user}\nGroup={user}")),
        User::Dynamic => line("DynamicUser=yes"),
    }
    for (k, v) in &spec.environment {
        line(&format!("Environment=\"{k}={}\"", escape_quoted(v)));
    }
    line(
        "# Writable places: /var/lib/NAME, /var/log/NAME, /var/cache/NAME (exec mode's cache, found through CACHE_DIRECTORY).",
    );
    line(&format!("StateDirectory={name}"));
    line(&format!("LogsDirectory={name}"));
    line(&format!("CacheDirectory={name}"));
    line("StateDirectoryMode=0700");
    line("LogsDirectoryMode=0700");
    line("CacheDirectoryMode=0700");
    for p in &spec.read_write_paths {
        line(&format!("ReadWritePaths={}", p.replace('%', "%%")));
    }
    if spec.empty_root {
        line("# An empty root (tmpfiles.d/NAME.conf makes it) holding only the executable.");
        line(&format!("RootDirectory={}", empty_root_dir(name)));
        line("MountAPIVFS=yes");
        line(&format!(
            "BindReadOnlyPaths={}",
            spec.exec_path.replace('%', "%%")
        ));
    }
    for p in &spec.bind_read_only {
        line(&format!("BindReadOnlyPaths={}", p.replace('%', "%%")));
    }
    line("# Hardening: `systemd-analyze security NAME.service` scores the whole set.");
    for d in [
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "DevicePolicy=closed",
        "PrivateUsers=yes",
        "PrivateIPC=yes",
        "PrivateMounts=yes",
        "ProtectHostname=yes",
        "ProtectClock=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
    ] {
        line(d);
    }
    if matches!(spec.kind, AppKind::Exec { jit: true }) {
        line("# MemoryDenyWriteExecute= left out: the program compiles code at run time.");
    } else {
        line("MemoryDenyWriteExecute=yes");
    }
    for d in [
        "RemoveIPC=yes",
        "KeyringMode=private",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
        "UMask=0077",
    ] {
        line(d);
    }
    match spec.network {
        Network::None => {
            line("# No network.");
            line("PrivateNetwork=yes");
            line("RestrictAddressFamilies=none");
            line("IPAddressDeny=any");
        }
        Network::Inet => {
            line("# Network: IPv4, IPv6 and local sockets only.");
            line("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6");
        }
    }
    line("");
    line("[Install]");
    line("WantedBy=multi-user.target");
    u
}

/// Unit, user and directory names: what `useradd` and sysusers accept on every distribution
/// (`[a-z_][a-z0-9_-]*`, at most 31), which is also a valid unit name.
pub(super) fn check_name(what: &'static str, value: &str) -> Result<(), DeployError> {
    let err = |reason| {
        Err(DeployError::Name {
            what,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() || value.len() > 31 {
        return err("it must have 1 to 31 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return err("only lowercase ASCII letters, digits, `_` and `-` are allowed");
    }
    if value.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return err("it may not start with a digit or `-`");
    }
    Ok(())
}

pub(super) fn check_path(what: &'static str, value: &str) -> Result<(), DeployError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "\"'\\:;".contains(c);
    if !value.starts_with('/') || value.contains(bad) || value.split('/').any(|c| c == "..") {
        return Err(DeployError::Path {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// An environment variable's name: a shell name, so every consumer reads it the same way.
pub(super) fn check_env_name(name: &str) -> Result<(), DeployError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DeployError::EnvName {
            name: name.to_owned(),
        })
    }
}

pub(super) fn check_text(what: &'static str, value: &str) -> Result<(), DeployError> {
    if value.chars().any(char::is_control) {
        return Err(DeployError::Control {
            what,
            value: value.escape_debug().to_string(),
        });
    }
    Ok(())
}

/// Free text (`Description=`): specifiers escaped.
fn escape_spec(s: &str) -> String {
    s.replace('%', "%%")
}

/// Inside double quotes: `\` and `"` escaped, specifiers too.
fn escape_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out
}

/// One `ExecStart=` argument: bare when plainly safe, else double-quoted; `$` is doubled so
/// systemd does not expand a variable.
fn quote_exec(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@+,-".contains(c));
    if plain {
        return a.to_owned();
    }
    let mut out = String::from("\"");
    let _ = write!(out, "{}", escape_quoted(a).replace('$', "$$"));
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "app".into(),
            app_name: "app".into(),
            app_version: "1.0".into(),
            kind: AppKind::Lua,
            user: User::Dynamic,
            network: Network::None,
            empty_root: false,
            exec_path: "/usr/bin/app".into(),
            args: vec![],
            environment: BTreeMap::new(),
            read_write_paths: vec![],
            bind_read_only: vec![],
        }
    }

    #[test]
    fn arguments_are_quoted_so_they_stay_one_word_and_expand_nothing() {
        assert_eq!(quote_exec("--port=80"), "--port=80");
        assert_eq!(quote_exec("a b"), "\"a b\"");
        assert_eq!(quote_exec("$HOME %n"), "\"$$HOME %%n\"");
        assert_eq!(quote_exec("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
        assert_eq!(quote_exec(""), "\"\"");
    }

    #[test]
    fn nothing_from_a_value_can_start_a_directive_of_its_own() {
        let mut s = spec();
        s.args = vec!["x\nUser=root".into()];
        assert!(matches!(Service::new(&s), Err(DeployError::Control { .. })));
        let mut s = spec();
        s.app_name = "x\n[Service]".into();
        assert!(matches!(Service::new(&s), Err(DeployError::Control { .. })));
        let mut s = spec();
        s.app_version = "1.0\\".into();
        assert!(matches!(
            Service::new(&s),
            Err(DeployError::Backslash { .. })
        ));
        let mut s = spec();
        s.environment.insert("A B".into(), "1".into());
        assert!(matches!(Service::new(&s), Err(DeployError::EnvName { .. })));
        for bad in ["rel/path", "/a b", "/a/../etc", "/a:b"] {
            let mut s = spec();
            s.read_write_paths = vec![bad.into()];
            assert!(
                matches!(Service::new(&s), Err(DeployError::Path { .. })),
                "{bad}"
            );
        }
        for bad in ["", "Root", "0day", "-x", "a.b", "a/b", &"x".repeat(32)] {
            let mut s = spec();
            s.name = bad.into();
            assert!(
                matches!(Service::new(&s), Err(DeployError::Name { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn jit_programs_keep_writable_executable_memory_and_the_rest_do_not() {
        let mut s = spec();
        let lua = &Service::new(&s).unwrap().files[0].1;
        assert!(lua.contains("\nMemoryDenyWriteExecute=yes\n"));
        s.kind = AppKind::Exec { jit: true };
        let node = &Service::new(&s).unwrap().files[0].1;
        assert!(!node.contains("\nMemoryDenyWriteExecute=yes\n"));
    }
}
