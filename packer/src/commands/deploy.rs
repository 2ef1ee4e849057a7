//! `wrapkit deploy systemd APP [-o DIR]`: the unit, sysusers and tmpfiles files that install a
//! packed executable as a hardened service; `wrapkit deploy oci APP -o DIR`: an OCI image
//! layout holding it (docs/deploy.md). The app's name and kind come from its manifest; the
//! host's choices from `[deploy]` in `--config` and from flags.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{DeployArgs, DeployTarget, OciArgs, PortableArgs, SystemdArgs};
use crate::config::{self, Config};
use crate::deploy::oci::{Image, ImageSpec};
use crate::deploy::systemd::{Service, ServiceSpec, User};
use crate::deploy::{AppKind, DeployConfig, Network};
use crate::error::PackError;
use crate::inspect;
use crate::messages::note;
use wrapkit_runtime::cache::{Cache, Location, Trace};
use wrapkit_runtime::format::trailer::hex;

pub(crate) fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        DeployTarget::Systemd(args) => systemd(*args),
        DeployTarget::Oci(args) => oci(*args),
        DeployTarget::Portable(args) => portable(*args),
    }
}

fn oci(args: OciArgs) -> anyhow::Result<ExitCode> {
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
    let kind = AppKind::of(&manifest.run);
    let mut environment = conf.environment.unwrap_or_default();
    environment.extend(args.environment);
    let epoch = crate::pack::source_date_epoch()?.unwrap_or(0);
    let epoch = u64::try_from(epoch).map_err(|_| PackError::SourceDateEpoch {
        value: epoch.to_string(),
    })?;
    let (parent, layout) = output_dir(&args.output)?;

    // The fill runs in a staging directory beside the output, with the runtime's own code, as
    // the app's first start would; the tree then goes into the image as it was made.
    let staging = tempfile::Builder::new()
        .prefix(".wrapkit-oci-")
        .tempdir_in(&parent)
        .map_err(|source| PackError::Write {
            path: parent.clone(),
            source,
        })?;
    let mut filled = None;
    let cache = if args.prefill {
        if kind == AppKind::Lua {
            return Err(PackError::PrefillLua { path: args.app }.into());
        }
        if !manifest.layers.is_empty() {
            return Err(PackError::PrefillLayers { path: args.app }.into());
        }
        let dir = staging.path().join("cache");
        let prefill_err = |source| PackError::Prefill {
            path: args.app.clone(),
            source,
        };
        let cache = Cache::open(&Location::explicit(dir.clone())).map_err(prefill_err)?;
        let exe = PathBuf::from(format!("/usr/bin/{name}"));
        cache
            .materialise(&opened.archive, &exe, &Trace::off())
            .map_err(prefill_err)?;
        let digest = hex(&opened.archive.trailer().digest);
        filled = Some((cache, digest.clone()));
        Some((dir, digest))
    } else {
        None
    };

    let spec = ImageSpec {
        name,
        tag: args.tag,
        app_name: manifest.name.clone(),
        app_version: manifest.version.clone(),
        kind,
        exe: opened.bytes,
        args: if args.args.is_empty() {
            conf.args.unwrap_or_default()
        } else {
            args.args
        },
        environment,
        ca_certs: args.ca_certs,
        tzdata: args.tzdata,
        cache,
        epoch,
    };
    let image = Image::new(&spec).map_err(|source| PackError::DeployOci {
        path: args.app.clone(),
        source,
    });
    // The tree is read-only, as every filled tree is: the cache's own removal takes it apart
    // (a plain recursive delete fails on it for anyone but root).
    if let Some((cache, digest)) = filled {
        let _ = cache.remove(&digest);
    }
    let image = image?;

    let built = staging.path().join("layout");
    for (rel, bytes) in &image.files {
        write_atomic(&built.join(rel), bytes)?;
    }
    let replace_err = |source| PackError::Write {
        path: args.output.clone(),
        source,
    };
    if layout {
        std::fs::remove_dir_all(&args.output).map_err(replace_err)?;
    } else if args.output.exists() {
        std::fs::remove_dir(&args.output).map_err(replace_err)?;
    }
    std::fs::rename(&built, &args.output).map_err(replace_err)?;
    note!(
        "wrote {} ({}, tag {})",
        args.output.display(),
        image.manifest_digest,
        spec.tag
    );
    Ok(ExitCode::SUCCESS)
}

/// The output's parent (created if missing), and whether the output is a layout to replace.
/// Anything else that is there already (a file, a directory with other things in it) is left
/// alone: an error, not a deletion.
fn output_dir(output: &Path) -> Result<(PathBuf, bool), PackError> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|source| PackError::Write {
        path: parent.clone(),
        source,
    })?;
    let refuse = || PackError::OciOutput {
        path: output.to_path_buf(),
    };
    match std::fs::symlink_metadata(output) {
        Err(_) => Ok((parent, false)),
        Ok(m) if !m.is_dir() => Err(refuse()),
        Ok(_) => {
            let mut entries = std::fs::read_dir(output).map_err(|source| PackError::Read {
                path: output.to_path_buf(),
                source,
            })?;
            if entries.next().is_none() {
                Ok((parent, false))
            } else if output.join("oci-layout").is_file() {
                Ok((parent, true))
            } else {
                Err(refuse())
            }
        }
    }
}

fn systemd(args: SystemdArgs) -> anyhow::Result<ExitCode> {
    let output = args.output.clone();
    let app = args.app.clone();
    let (spec, _) = service_spec(args)?;
    let service = Service::new(&spec).map_err(|source| PackError::Deploy { path: app, source })?;
    for (rel, text) in &service.files {
        let path = output.join(rel);
        write_atomic(&path, text.as_bytes())?;
        note!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `wrapkit deploy portable`: the service as `deploy systemd` writes it, with `DynamicUser=`,
/// in an image directory `portablectl attach` takes (docs/deploy.md, "Portable services").
fn portable(args: PortableArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.clone();
    let (spec, opened) = service_spec(SystemdArgs {
        app: args.app,
        output: PathBuf::new(),
        config: args.config,
        name: args.name,
        user: None,
        dynamic_user: true,
        network: args.network,
        empty_root: false,
        jit: args.jit,
        exec_path: None,
        read_write_path: Vec::new(),
        bind_read_only: args.bind_read_only,
        environment: args.environment,
        args: args.args,
    })?;
    // By default NAME_VERSION, the versioned image name portablectl strips to NAME.
    let output = args.output.unwrap_or_else(|| {
        let version = &spec.app_version;
        let safe = !version.is_empty()
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~+-".contains(&b));
        PathBuf::from(match safe {
            true => format!("{}_{version}", spec.name),
            false => spec.name.clone(),
        })
    });
    // An image is named by its directory, and attaches only units named after it.
    let base = output.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if base != spec.name && !base.starts_with(&format!("{}_", spec.name)) {
        return Err(PackError::PortableName {
            path: output,
            name: spec.name,
        }
        .into());
    }
    let image = crate::deploy::portable::Image::new(&spec, opened.bytes.to_vec())
        .map_err(|source| PackError::Deploy { path: app, source })?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if std::fs::symlink_metadata(&output).is_ok() {
        return Err(PackError::PortableOutput { path: output }.into());
    }
    std::fs::create_dir_all(&parent).map_err(|source| PackError::Write {
        path: parent.clone(),
        source,
    })?;
    // Built beside the output and renamed into place: an interrupted run leaves no half image.
    let staging = tempfile::Builder::new()
        .prefix(".wrapkit-portable-")
        .tempdir_in(&parent)
        .map_err(|source| PackError::Write {
            path: parent.clone(),
            source,
        })?;
    let built = staging.path().join("image");
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Write { path, source }
    };
    std::fs::create_dir(&built).map_err(write_err(&built))?;
    for (rel, node) in &image.entries {
        use std::os::unix::fs::PermissionsExt;
        let path = built.join(rel);
        match node {
            crate::deploy::portable::Node::Dir => {
                std::fs::create_dir(&path).map_err(write_err(&path))?
            }
            crate::deploy::portable::Node::File { bytes, mode } => {
                std::fs::write(&path, bytes).map_err(write_err(&path))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                    .map_err(write_err(&path))?;
            }
        }
    }
    std::fs::rename(&built, &output).map_err(write_err(&output))?;
    note!(
        "wrote {} (attach it with `portablectl attach --profile=strict --now {}`)",
        output.display(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The service a `deploy systemd` run describes, from the packed file's manifest, `[deploy]`
/// and the flags; and the opened file.
fn service_spec(args: SystemdArgs) -> anyhow::Result<(ServiceSpec, inspect::Opened)> {
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
    Ok((spec, opened))
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
