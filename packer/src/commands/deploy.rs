//! `wrapkit deploy systemd APP [-o DIR]`: the unit, sysusers and tmpfiles files that install a
//! packed executable as a hardened service (docs/deploy.md). The app's name and kind come from
//! its manifest; the host's choices from `[deploy]` in `--config` and from flags.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{DeployArgs, DeployTarget, SystemdArgs};
use crate::config::{self, Config};
use crate::deploy::systemd::{Service, ServiceSpec, User};
use crate::deploy::{AppKind, DeployConfig, Network};
use crate::error::PackError;
use crate::inspect;
use crate::messages::note;

pub(crate) fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        DeployTarget::Systemd(args) => systemd(*args),
    }
}

fn systemd(args: SystemdArgs) -> anyhow::Result<ExitCode> {
    let opened = inspect::open(&args.app)?;
    opened.validate()?;
    let manifest = opened.manifest()?;
    let conf = match &args.config {
        Some(path) => load_deploy(path)?,
        None => DeployConfig::default(),
    };
    let name = args
        .name
        .or(conf.name)
        .unwrap_or_else(|| manifest.name.clone());
    let mut kind = AppKind::of(&manifest.run);
    if args.jit || conf.jit == Some(true) {
        kind = match kind {
            AppKind::Lua => AppKind::Lua,
            AppKind::Exec { .. } => AppKind::Exec { jit: true },
        };
    }
    let user = match (args.user, args.dynamic_user) {
        (Some(user), _) => User::Named(user),
        (None, true) => User::Dynamic,
        (None, false) => match (conf.user, conf.dynamic_user) {
            (Some(_), Some(true)) => {
                return Err(PackError::DeployUser {
                    path: args.config.unwrap_or_default(),
                }
                .into());
            }
            (Some(user), _) => User::Named(user),
            (None, Some(true)) => User::Dynamic,
            (None, _) => User::Named(name.clone()),
        },
    };
    let mut environment = conf.environment.unwrap_or_default();
    environment.extend(args.environment);
    let mut read_write_paths = conf.read_write_paths.unwrap_or_default();
    read_write_paths.extend(args.read_write_path);
    let mut bind_read_only = conf.bind_read_only.unwrap_or_default();
    bind_read_only.extend(args.bind_read_only);
    let spec = ServiceSpec {
        exec_path: args
            .exec_path
            .or(conf.exec_path)
            .unwrap_or_else(|| format!("/usr/bin/{name}")),
        name,
        app_name: manifest.name.clone(),
        app_version: manifest.version.clone(),
        kind,
        user,
        network: args
            .network
            .or(conf.network)
            .unwrap_or_else(|| Network::default_for(kind)),
        empty_root: args.empty_root || conf.empty_root == Some(true),
        args: if args.args.is_empty() {
            conf.args.unwrap_or_default()
        } else {
            args.args
        },
        environment,
        read_write_paths,
        bind_read_only,
    };
    let service = Service::new(&spec).map_err(|source| PackError::Deploy {
        path: args.app.clone(),
        source,
    })?;
    for (rel, text) in &service.files {
        let path = args.output.join(rel);
        write_atomic(&path, text.as_bytes())?;
        note!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The `[deploy]` table of `path` (a wrapkit.toml, or a directory holding one). The whole file
/// is parsed with the packer's rules, so a typo anywhere in it is reported.
fn load_deploy(path: &Path) -> Result<DeployConfig, PackError> {
    let file = if path.is_dir() {
        path.join(config::FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| PackError::Read {
        path: file.clone(),
        source,
    })?;
    let conf: Config =
        toml::from_str(&text).map_err(|source| PackError::Config { path: file, source })?;
    Ok(conf.deploy.unwrap_or_default())
}

/// A temp file beside `path`, then a rename: an interrupted run leaves the old file or the new.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PackError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| PackError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
