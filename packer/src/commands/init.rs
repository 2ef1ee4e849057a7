//! `wrapkit init [DIR] [--lua | --program | --python | --node | --tcl]`: a small working app from a template embedded in the binary
//! (`packer/templates/`, real files in the repository, packed and run by the tests). `{{name}}`
//! in a template becomes the app's name, the directory's. Files are created new beneath a
//! handle on DIR, never through a link; a DIR that holds anything is refused.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use include_dir::{Dir as Template, DirEntry, include_dir};
use wrapkit_runtime::beneath::Dir;

use crate::cli::InitArgs;
use crate::error::PackError;

static LUA: Template<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/lua");
static PROGRAM: Template<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/program");
static NODE: Template<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/node");
static TCL: Template<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/tcl");
static PYTHON: Template<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/python");

pub(crate) fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let (template, kind) = if args.program {
        (&PROGRAM, "an app run by a bundled program (/bin/sh)")
    } else if args.node {
        (&NODE, "a Node.js app")
    } else if args.tcl {
        (&TCL, "a Tcl app")
    } else if args.python {
        (&PYTHON, "a Python app")
    } else {
        (&LUA, "a Lua app")
    };
    let write_err = |source| PackError::Write {
        path: args.dir.clone(),
        source,
    };
    let (target, _) = Dir::open_or_create(&args.dir, 0o755).map_err(write_err)?;
    if !target.entries().map_err(write_err)?.is_empty() {
        return Err(PackError::InitNotEmpty { path: args.dir }.into());
    }
    let name = std::fs::canonicalize(&args.dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let mut files = 0;
    write_tree(&target, template, &name, &args.dir, &mut files)?;
    crate::messages::note!(
        "wrote {kind} ({files} files) into {}; pack it with `wrapkit pack {}`",
        args.dir.display(),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_tree(
    target: &Dir,
    template: &Template<'_>,
    name: &str,
    shown: &Path,
    files: &mut usize,
) -> Result<(), PackError> {
    for entry in template.entries() {
        let rel = entry.path().to_string_lossy().into_owned();
        let err = |source| PackError::Write {
            path: shown.join(&rel),
            source,
        };
        match entry {
            DirEntry::Dir(d) => {
                target.create_dir(&rel, 0o755).map_err(err)?;
                write_tree(target, d, name, shown, files)?;
            }
            DirEntry::File(f) => {
                let text = String::from_utf8_lossy(f.contents()).replace("{{name}}", name);
                target
                    .create_file(&rel, 0o644)
                    .and_then(|mut out| out.write_all(text.as_bytes()))
                    .map_err(err)?;
                *files += 1;
            }
        }
    }
    Ok(())
}
