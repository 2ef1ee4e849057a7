//! The in-process Lua host: runs the app's entry script with the archive mounted at the
//! executable's own path, tclkit-style.
//!
//! An archive entry `lib/util.lua` of `/opt/tool` appears as `/opt/tool/lib/util.lua`: no real
//! file can exist below a regular file, so the mount point never hides anything. The host gives
//! the Lua side a small `native` table (resolve a path, open, read, list, stat); the prelude
//! (`prelude.lua`) builds the public `wrapkit` module on it and re-points `io.open`, `io.lines`,
//! `io.input`, `loadfile`, `dofile`, `require` and `package.searchpath` at the archive. Relative
//! paths keep meaning the real current directory, as in any other program.

mod stream;

use std::path::Path;

use mlua::{Lua, LuaOptions, MultiValue, StdLib, Value};

use crate::archive::Archive;
use crate::format::EntryKind;
use crate::format::FormatError;
use crate::format::index::Entry;
use crate::format::method;
use crate::format::path::normalise;

const PRELUDE: &str = include_str!("prelude.lua");
/// The prelude precompiled by build.rs (empty when it could not be).
const PRELUDE_BYTECODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/prelude.luac"));

/// What the host needs to run an app.
pub struct App {
    pub archive: &'static Archive<'static>,
    /// The mount point: the executable's absolute path.
    pub root: String,
    pub entry: String,
    pub name: String,
    pub version: String,
    /// `argv[0]` as the user typed it, then the arguments.
    pub argv0: String,
    pub args: Vec<String>,
}

/// Runs the app; returns the exit status (0, or 1 after an uncaught error, which the prelude
/// has already reported). `os.exit` leaves the process directly.
pub fn run(app: App) -> mlua::Result<u8> {
    let _ = EXE.set(app.root.clone());
    // SAFETY: the app is trusted code the user chose to pack; it gets the full standard
    // library, `debug` included, exactly as `lua script.lua` would.
    #[allow(unsafe_code)]
    let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::default()) };
    let native = native_table(&lua, &app)?;
    let precompiled = (!PRELUDE_BYTECODE.is_empty())
        .then(|| {
            lua.load(PRELUDE_BYTECODE)
                .set_mode(mlua::chunk::ChunkMode::Binary)
                .into_function()
                .ok()
        })
        .flatten();
    let prelude = match precompiled {
        Some(f) => f,
        None => lua.load(PRELUDE).set_name("=[wrapkit]").into_function()?,
    };
    let args: MultiValue = app
        .args
        .iter()
        .map(|a| lua.create_string(a).map(Value::String))
        .collect::<mlua::Result<_>>()?;
    let status: i64 = prelude.call((native, MultiValue::from_iter(args)))?;
    Ok(u8::try_from(status).unwrap_or(1))
}

/// An archive path for `path` if it lies under `root`: `Some("")` for the root itself.
fn archive_path(root: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(root)?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    normalise(rest)
}

/// `nil, "<display>: <message>", errno`, the failure triple of Lua's io functions.
fn failure(lua: &Lua, display: &str, message: &str, errno: i32) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::String(lua.create_string(format!("{display}: {message}"))?),
        Value::Integer(errno.into()),
    ]))
}

/// The packed executable, for the message of [`corrupt`].
static EXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An entry that exists but cannot be read is a damaged or tampered payload, not something
/// for the app to handle (a `pcall` must not swallow it): the runtime's own failure, reported
/// as the stub reports every other one, with the bad-payload exit code. C stdio is flushed on
/// the way out, so what the app printed before stays printed.
fn corrupt(err: &crate::format::FormatError) -> ! {
    use crate::report::Hinted;
    let exe = EXE.get().map(String::as_str);
    eprint!("{}", crate::report::render(exe, err, err.hint().as_deref()));
    std::process::exit(i32::from(err.exit_code()))
}

/// Resolves `rel` (following symlinks), or the Lua-style failure to return.
fn find(
    lua: &Lua,
    archive: &Archive<'static>,
    rel: &str,
    display: &str,
) -> mlua::Result<Result<Entry<'static>, MultiValue>> {
    match archive.resolve(rel) {
        // `file/` names a directory that is not there, as on any filesystem.
        Ok(Some(e)) if e.kind != EntryKind::Dir && display.ends_with('/') => Ok(Err(failure(
            lua,
            display,
            "Not a directory",
            libc::ENOTDIR,
        )?)),
        Ok(Some(e)) => Ok(Ok(e)),
        Ok(None) => Ok(Err(failure(
            lua,
            display,
            "No such file or directory",
            libc::ENOENT,
        )?)),
        // A loop is the app's own (as on a filesystem), not a damaged payload.
        Err(FormatError::LinkLoop { .. }) => Ok(Err(failure(
            lua,
            display,
            "Too many levels of symbolic links",
            libc::ELOOP,
        )?)),
        Err(err) => corrupt(&err),
    }
}

/// As [`find`], for something to read: a directory is a failure too.
fn find_file(
    lua: &Lua,
    archive: &Archive<'static>,
    rel: &str,
    display: &str,
) -> mlua::Result<Result<Entry<'static>, MultiValue>> {
    Ok(match find(lua, archive, rel, display)? {
        Ok(e) if e.kind == EntryKind::Dir => {
            Err(failure(lua, display, "Is a directory", libc::EISDIR)?)
        }
        other => other,
    })
}

fn kind_name(kind: EntryKind) -> &'static str {
    kind.as_str()
}

fn native_table(lua: &Lua, app: &App) -> mlua::Result<mlua::Table> {
    let archive = app.archive;
    let t = lua.create_table()?;
    t.set("root", app.root.as_str())?;
    t.set("entry", app.entry.as_str())?;
    t.set("name", app.name.as_str())?;
    t.set("version", app.version.as_str())?;
    t.set("argv0", app.argv0.as_str())?;
    t.set(
        "progname",
        Path::new(&app.argv0)
            .file_name()
            .map_or(app.argv0.clone(), |n| n.to_string_lossy().into_owned()),
    )?;

    let root = app.root.clone();
    t.set(
        "archive_path",
        lua.create_function(move |_, path: mlua::LuaString| {
            Ok(path.to_str().ok().and_then(|p| archive_path(&root, &p)))
        })?,
    )?;
    t.set(
        "normalise",
        lua.create_function(|_, path: String| Ok(normalise(&path)))?,
    )?;

    t.set(
        "open",
        lua.create_function(move |lua, (rel, display): (String, String)| {
            let e = match find_file(lua, archive, &rel, &display)? {
                Ok(e) => e,
                Err(failed) => return Ok(failed),
            };
            let data = if e.method == method::STORED {
                archive.raw_data(&e).map(stream::Data::Mapped)
            } else {
                archive
                    .contents(&e, true)
                    .map(|c| stream::Data::Owned(c.into_owned()))
            };
            match data {
                Ok(data) => Ok(MultiValue::from_iter([stream::push(lua, data)?])),
                Err(err) => corrupt(&err),
            }
        })?,
    )?;

    t.set(
        "read",
        lua.create_function(move |lua, (rel, display): (String, String)| {
            let e = match find_file(lua, archive, &rel, &display)? {
                Ok(e) => e,
                Err(failed) => return Ok(failed),
            };
            match archive.contents(&e, true) {
                Ok(bytes) => Ok(MultiValue::from_iter([Value::String(
                    lua.create_string(&*bytes)?,
                )])),
                Err(err) => corrupt(&err),
            }
        })?,
    )?;

    t.set(
        "kind",
        lua.create_function(move |_, rel: String| {
            Ok(archive
                .resolve(&rel)
                .ok()
                .flatten()
                .map(|e| kind_name(e.kind)))
        })?,
    )?;

    t.set(
        "stat",
        lua.create_function(move |lua, (rel, display): (String, String)| {
            let e = match find(lua, archive, &rel, &display)? {
                Ok(e) => e,
                Err(f) => return Ok(f),
            };
            let st = lua.create_table()?;
            st.set("type", kind_name(e.kind))?;
            st.set("size", e.size)?;
            st.set("mode", e.mode)?;
            st.set("compressed", e.method != method::STORED)?;
            Ok(MultiValue::from_iter([Value::Table(st)]))
        })?,
    )?;

    t.set(
        "list",
        lua.create_function(move |lua, (rel, display): (String, String)| {
            let e = match find(lua, archive, &rel, &display)? {
                Ok(e) => e,
                Err(f) => return Ok(f),
            };
            if e.kind != EntryKind::Dir {
                return failure(lua, &display, "Not a directory", libc::ENOTDIR);
            }
            let names = lua.create_table()?;
            for child in archive.index().children(e.name) {
                match child {
                    Ok(c) => names.raw_push(c.name.rsplit('/').next().unwrap_or(c.name))?,
                    Err(err) => {
                        return failure(
                            lua,
                            &display,
                            &format!("corrupt archive index: {err}"),
                            libc::EIO,
                        );
                    }
                }
            }
            Ok(MultiValue::from_iter([Value::Table(names)]))
        })?,
    )?;
    // `wrapkit.extract`: a real path for an archive entry, from the exec-mode cache (the whole
    // archive is materialised once per digest; docs/cache.md).
    let exe = std::path::PathBuf::from(&app.root);
    let tree: std::cell::OnceCell<std::path::PathBuf> = std::cell::OnceCell::new();
    t.set(
        "extract",
        lua.create_function(move |lua, (rel, display): (String, String)| {
            if let Err(f) = find(lua, archive, &rel, &display)? {
                return Ok(f);
            }
            let root = match tree.get() {
                Some(root) => root.clone(),
                None => match crate::cache::materialise_from_env(archive, &exe) {
                    Ok(root) => tree.get_or_init(|| root).clone(),
                    Err(err) => {
                        let msg = format!("cannot extract: {}", crate::cache::chain(&err));
                        return failure(lua, &display, &msg, libc::EIO);
                    }
                },
            };
            let path = if rel.is_empty() {
                root
            } else {
                root.join(&rel)
            };
            Ok(MultiValue::from_iter([Value::String(
                lua.create_string(path.as_os_str().as_encoded_bytes())?,
            )]))
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_live_under_the_root_only() {
        assert_eq!(
            archive_path("/opt/app", "/opt/app/lib/x.lua").as_deref(),
            Some("lib/x.lua")
        );
        assert_eq!(archive_path("/opt/app", "/opt/app").as_deref(), Some(""));
        assert_eq!(
            archive_path("/opt/app", "/opt/app/./a//b/../c").as_deref(),
            Some("a/c")
        );
        assert_eq!(archive_path("/opt/app", "/opt/app/.."), None);
        assert_eq!(archive_path("/opt/app", "/opt/apple/x"), None);
        assert_eq!(archive_path("/opt/app", "lib/x.lua"), None);
    }
}
