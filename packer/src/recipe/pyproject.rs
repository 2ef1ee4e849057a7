//! `pyproject.toml`'s `[project]` table, as far as packing a Python app needs it: the name and
//! version (a `dist-info` for `importlib.metadata`), `dependencies` (installed like
//! `--requirements`) and `[project.scripts]` (the entry point to run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::PackError;

#[derive(Debug, Clone, Deserialize)]
struct File {
    project: Option<Project>,
}

/// What `[project]` says.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub name: String,
    pub version: Option<String>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub scripts: BTreeMap<String, String>,
}

/// A `[project.scripts]` entry point: `name = "module:function"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub name: String,
    pub module: String,
    pub function: String,
}

impl Project {
    /// `DIR/pyproject.toml`'s `[project]`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Project>, PackError> {
        let path = dir.join("pyproject.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PackError::Read { path, source }),
        };
        let file: File = toml::from_str(&text).map_err(|source| PackError::Config {
            path: path.clone(),
            source,
        })?;
        Ok(file.project)
    }

    /// The script to run: the only one, or the one named like the project.
    pub fn script(&self, path: &Path) -> Result<Option<Script>, PackError> {
        let chosen = match self.scripts.len() {
            0 => return Ok(None),
            1 => self.scripts.iter().next(),
            _ => self.scripts.get_key_value(&self.name),
        };
        let Some((name, target)) = chosen else {
            return Err(PackError::RunConflict {
                reason: format!(
                    "{} names {} scripts in [project.scripts] ({}) and none is called `{}`; choose one with `--entry`",
                    path.display(),
                    self.scripts.len(),
                    self.scripts.keys().cloned().collect::<Vec<_>>().join(", "),
                    self.name
                ),
            });
        };
        // `module:function`, optionally with `[extras]` after it.
        let target = target.split('[').next().unwrap_or(target).trim();
        let (module, function) = target.split_once(':').unwrap_or((target, ""));
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|part| {
                    part.chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_')
                        && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                })
        };
        if !valid(module) || !valid(function) {
            return Err(PackError::RunConflict {
                reason: format!(
                    "{}: [project.scripts] `{name} = \"{target}\"` is not `module:function`",
                    path.display()
                ),
            });
        }
        Ok(Some(Script {
            name: name.clone(),
            module: module.to_owned(),
            function: function.to_owned(),
        }))
    }

    /// The name as a `dist-info` directory spells it (PEP 503 normalised, `_` for runs of
    /// `-_.`).
    pub fn dist_name(&self) -> String {
        let mut out = String::new();
        for c in self.name.chars() {
            if matches!(c, '-' | '_' | '.') {
                if !out.ends_with('_') {
                    out.push('_');
                }
            } else {
                out.push(c.to_ascii_lowercase());
            }
        }
        out
    }
}

/// What the Python recipe is given of a project.
#[derive(Debug, Clone)]
pub struct Packaged {
    pub project: Project,
    pub script: Option<Script>,
    pub path: PathBuf,
}

/// The launcher `[project.scripts]` would install, as pip writes it (without the `#!` line:
/// the interpreter is named by the run spec).
pub fn launcher(script: &Script) -> String {
    format!(
        "import sys\nfrom {} import {}\nif __name__ == \"__main__\":\n    sys.exit({}())\n",
        script.module,
        script
            .function
            .split('.')
            .next()
            .unwrap_or(&script.function),
        script.function
    )
}
