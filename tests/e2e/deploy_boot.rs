//! Deploying under systemd, booted: `wrapkit deploy systemd`'s unit and sysusers file installed
//! in a Debian bookworm root (built once by `tests/fixtures/bookworm-root.sh`), which boots with
//! `systemd-nspawn --boot` (systemd as PID 1). A oneshot driver unit starts the service, waits
//! for it to exit, writes its `systemctl show` and journal to `/wk-out` and powers off; the test
//! then reads those and the service's directories from the host.
//!
//! The shared root is never written: each test boots an overlayfs mount of it (the root as
//! lowerdir, upper and work directories in the test's temp dir).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{App, Packed, Run, missing, require_root, wrapkit};

const FIXTURE: &str = "tests/fixtures/bookworm-root.sh";

/// The shared root, if `tests/fixtures/bookworm-root.sh` completed it (its stamp is written
/// last).
fn shared_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures/bookworm-root");
    if root.join("usr/lib/systemd/systemd").exists() && root.with_extension("stamp").exists() {
        Some(root)
    } else {
        missing(&format!(
            "no bookworm root at {} (run {FIXTURE} as root; .ci/run does)",
            root.display()
        ));
        None
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An overlay of the shared root, mounted at `merged` in a temp dir; unmounted on drop.
struct Booted {
    _tmp: tempfile::TempDir,
    merged: PathBuf,
}

impl Booted {
    fn mount(root: &Path) -> Booted {
        let tmp = tempfile::Builder::new()
            .prefix("wk-boot-")
            .tempdir()
            .unwrap();
        let [upper, work, merged] = ["upper", "work", "merged"].map(|d| tmp.path().join(d));
        for d in [&upper, &work, &merged] {
            fs::create_dir(d).unwrap();
        }
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            root.display(),
            upper.display(),
            work.display()
        );
        Run::of(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(&merged),
        )
        .ok();
        Booted { _tmp: tmp, merged }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.merged.join(rel.trim_start_matches('/'))
    }

    fn install(&self, from: &Path, to: &str, mode: u32) {
        let dest = self.path(to);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(from, &dest).unwrap_or_else(|e| panic!("{} -> {to}: {e}", from.display()));
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn write(&self, to: &str, text: &str) {
        let dest = self.path(to);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(&dest, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        let p = self.path(rel);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Installs the driver unit for `name`, enabled, then boots the root; `marker` is a line the
    /// service prints (the driver waits for it to reach the journal). Returns nspawn's output.
    fn boot(&self, name: &str, marker: &str) -> Run {
        let script = format!(
            "#!/bin/sh\n\
             out=/wk-out\n\
             mkdir -p $out\n\
             systemctl start {name}.service > $out/start.txt 2>&1\n\
             echo $? > $out/start.rc\n\
             i=0\n\
             while [ $i -lt 300 ]; do\n\
               state=$(systemctl show -p ActiveState --value {name}.service)\n\
               [ \"$state\" = inactive ] || [ \"$state\" = failed ] && break\n\
               sleep 0.1; i=$((i + 1))\n\
             done\n\
             i=0\n\
             while [ $i -lt 50 ]; do\n\
               journalctl -u {name}.service -o cat --no-pager | grep -qF '{marker}' && break\n\
               sleep 0.1; i=$((i + 1))\n\
             done\n\
             systemctl show -p Result -p ExecMainStatus -p ExecMainCode -p ActiveState \
               -p User -p DynamicUser {name}.service > $out/show.txt\n\
             journalctl -u {name}.service -o cat --no-pager > $out/journal.txt 2>&1\n\
             systemctl poweroff\n"
        );
        self.write("/usr/local/sbin/wk-driver", &script);
        fs::set_permissions(
            self.path("/usr/local/sbin/wk-driver"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        self.write(
            "/etc/systemd/system/wk-driver.service",
            "[Unit]\n\
             Description=wrapkit test driver\n\
             After=basic.target systemd-sysusers.service\n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart=/usr/local/sbin/wk-driver\n\
             StandardOutput=journal+console\n\
             [Install]\n\
             WantedBy=multi-user.target\n",
        );
        let wants = self.path("/etc/systemd/system/multi-user.target.wants");
        fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink(
            "/etc/systemd/system/wk-driver.service",
            wants.join("wk-driver.service"),
        )
        .unwrap();
        let machine = format!("wk-{name}-{}", std::process::id());
        Run::of(
            Command::new("timeout")
                .args([
                    "120",
                    "systemd-nspawn",
                    "--keep-unit",
                    "--register=no",
                    "-q",
                ])
                .arg("--machine")
                .arg(&machine)
                .arg("-D")
                .arg(&self.merged)
                .arg("--boot")
                .stdin(Stdio::null()),
        )
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.merged).status();
    }
}

/// Deploys `packed` as `name` with `flags`, installs the executable, the unit and
/// the sysusers file into an overlay of the shared root and boots it. Returns the booted root,
/// still mounted, for the caller to inspect.
fn deploy_and_boot(packed: &Packed, name: &str, flags: &[&str], marker: &str) -> Option<Booted> {
    if !require_root("booting a root with systemd-nspawn") {
        return None;
    }
    if !have("systemd-nspawn") {
        missing("no systemd-nspawn (apt-get install systemd-container)");
        return None;
    }
    let root = shared_root()?;
    let out = tempfile::tempdir().unwrap();
    Run::of(
        wrapkit()
            .args(["deploy", "systemd", "-q"])
            .arg(&packed.exe)
            .arg("-o")
            .arg(out.path())
            .args(flags),
    )
    .ok();
    let booted = Booted::mount(&root);
    booted.install(&packed.exe, &format!("/usr/bin/{name}"), 0o755);
    booted.install(
        &out.path().join(format!("{name}.service")),
        &format!("/usr/lib/systemd/system/{name}.service"),
        0o644,
    );
    let sysusers = out.path().join(format!("sysusers.d/{name}.conf"));
    if sysusers.exists() {
        booted.install(
            &sysusers,
            &format!("/usr/lib/sysusers.d/{name}.conf"),
            0o644,
        );
    }
    let run = booted.boot(name, marker);
    assert!(
        !root.join("wk-out").exists(),
        "the shared root was written: {}",
        root.display()
    );
    let show = fs::read_to_string(booted.path("/wk-out/show.txt")).unwrap_or_default();
    assert!(
        run.code == Some(0) && !show.is_empty(),
        "the boot failed (exit {:?}):\n{}\n{}\nshow: {show}",
        run.code,
        run.stdout,
        run.stderr
    );
    Some(booted)
}

/// The service ran to its end, exit 0, and printed `marker`.
fn assert_ran(booted: &Booted, marker: &str) {
    let show = booted.read("/wk-out/show.txt");
    let journal = booted.read("/wk-out/journal.txt");
    let start = booted.read("/wk-out/start.txt");
    for want in ["Result=success", "ExecMainStatus=0", "ActiveState=inactive"] {
        assert!(
            show.lines().any(|l| l == want),
            "{want} not in\n{show}\njournal:\n{journal}\nstart: {start}"
        );
    }
    assert!(journal.contains(marker), "{marker:?} not in\n{journal}");
}

/// The uid of `user` in the booted root's `/etc/passwd` (sysusers wrote it at boot).
fn uid_of(booted: &Booted, user: &str) -> u32 {
    let passwd = booted.read("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == user).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no user {user} in\n{passwd}"))
}

/// An exec-mode app named `name`: a static busybox running `main.sh`, which writes
/// `$STATE_DIRECTORY/greeting.txt` and prints where.
fn busybox_app(name: &str) -> Option<Packed> {
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        missing("no static busybox (apt-get install busybox-static)");
        return None;
    };
    let script = "set -eu\n\
        echo \"written by $0\" > \"$STATE_DIRECTORY/greeting.txt\"\n\
        echo \"exec app wrote $STATE_DIRECTORY/greeting.txt, cache $CACHE_DIRECTORY\"\n";
    let toml = format!(
        "name = \"{name}\"\nversion = \"1.0\"\nexec = [\"bin/sh\", \"{{root}}/main.sh\"]\n\
         env = {{ PATH = \"{{root}}/bin\" }}\n"
    );
    let app = App::new()
        .file("main.sh", script)
        .file("wrapkit.toml", toml)
        .file("bin/busybox", fs::read(busybox).unwrap());
    fs::set_permissions(
        app.path().join("bin/busybox"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let app = app.symlink("bin/sh", "busybox");
    Some(app.pack(&[]))
}

#[test]
fn a_lua_app_runs_as_its_sysusers_user_in_a_booted_root_and_writes_its_state_directory() {
    let packed = App::new()
        .file(
            "main.lua",
            "local dir = assert(os.getenv('STATE_DIRECTORY'))\n\
             local f = assert(io.open(dir .. '/greeting.txt', 'w'))\n\
             f:write('written by bootlua\\n')\n\
             f:close()\n\
             print('lua app wrote ' .. dir .. '/greeting.txt')\n",
        )
        .file("wrapkit.toml", "name = \"bootlua\"\nversion = \"1.0\"\n")
        .pack(&[]);
    let marker = "lua app wrote /var/lib/bootlua/greeting.txt";
    let Some(booted) = deploy_and_boot(&packed, "bootlua", &[], marker) else {
        return;
    };
    assert_ran(&booted, marker);
    let uid = uid_of(&booted, "bootlua");
    assert!(uid < 1000, "a system user: {uid}");
    let file = booted.path("/var/lib/bootlua/greeting.txt");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "written by bootlua\n",
        "{}",
        file.display()
    );
    let meta = fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600));
    let dir = fs::metadata(booted.path("/var/lib/bootlua")).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (uid, 0o700));
}

#[test]
fn an_exec_app_runs_as_its_sysusers_user_in_a_booted_root_and_fills_its_cache() {
    let Some(packed) = busybox_app("bootbb") else {
        return;
    };
    let marker = "exec app wrote /var/lib/bootbb/greeting.txt, cache /var/cache/bootbb";
    let Some(booted) = deploy_and_boot(&packed, "bootbb", &[], marker) else {
        return;
    };
    assert_ran(&booted, marker);
    let uid = uid_of(&booted, "bootbb");
    let file = booted.path("/var/lib/bootbb/greeting.txt");
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .starts_with("written by "),
        "{}",
        file.display()
    );
    assert_eq!(fs::metadata(&file).unwrap().uid(), uid);
    let cache = fs::metadata(booted.path("/var/cache/bootbb/wrapkit")).unwrap();
    assert_eq!((cache.uid(), cache.mode() & 0o777), (uid, 0o700));
}

#[test]
fn an_exec_app_with_a_dynamic_user_runs_in_a_booted_root_and_fills_its_private_cache() {
    let Some(packed) = busybox_app("bootdyn") else {
        return;
    };
    let marker = "exec app wrote /var/lib/bootdyn/greeting.txt, cache /var/cache/bootdyn";
    let Some(booted) = deploy_and_boot(&packed, "bootdyn", &["--dynamic-user"], marker) else {
        return;
    };
    assert_ran(&booted, marker);
    assert!(!booted.path("/usr/lib/sysusers.d/bootdyn.conf").exists());
    // systemd's DynamicUser= layout: the directories are private/NAME, reached by a symlink.
    let link = fs::read_link(booted.path("/var/cache/bootdyn")).unwrap();
    assert_eq!(link, Path::new("private/bootdyn"));
    let cache = fs::metadata(booted.path("/var/cache/private/bootdyn/wrapkit")).unwrap();
    assert_eq!(cache.mode() & 0o777, 0o700);
    // The dynamic uid is in systemd's range for them (61184–65519), not a declared user.
    assert!((61184..=65519).contains(&cache.uid()), "{}", cache.uid());
    let file = booted.path("/var/lib/private/bootdyn/greeting.txt");
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .starts_with("written by "),
        "{}",
        file.display()
    );
    assert_eq!(fs::metadata(&file).unwrap().uid(), cache.uid());
}
