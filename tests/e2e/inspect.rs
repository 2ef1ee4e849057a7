//! `wrapkit ls`, `cat`, `info`, `verify`, `extract` and `unpack` on real packed executables.
//! Outputs are pinned exactly, with temporary paths replaced by placeholders.

use std::fs;

use crate::support::{App, Packed, Run, pack_cmd, wrapkit};

fn sample() -> (App, Packed) {
    let app = App::new()
        .file("main.lua", "print(require('lib.util').greet())\n")
        .file(
            "lib/util.lua",
            "return { greet = function() return 'hi' end }\n",
        )
        .file("data/big.txt", "line of text\n".repeat(1000))
        .executable("bin/tool", "#!/bin/sh\necho tool\n")
        .dir("empty")
        .symlink("alias.lua", "lib/util.lua");
    let packed = app.pack(&["--name", "sample", "--app-version", "1.2.3"]);
    (app, packed)
}

fn wk(args: &[&str], packed: &Packed) -> Run {
    Run::of(wrapkit().arg(args[0]).arg(&packed.exe).args(&args[1..]))
}

#[test]
fn ls_lists_names_modes_sizes_and_json() {
    let (_app, packed) = sample();
    assert_eq!(
        wk(&["ls"], &packed).ok(),
        "alias.lua\nbin/\nbin/tool\ndata/\ndata/big.txt\nempty/\nlib/\nlib/util.lua\nmain.lua\n"
    );
    let long = wk(&["ls", "--long"], &packed).ok();
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(
        lines[0],
        "lrwxrwxrwx         12         12 stored  alias.lua -> lib/util.lua"
    );
    assert_eq!(lines[1], "drwxr-xr-x          0          0 stored  bin/");
    assert_eq!(
        lines[2],
        "-rwxr-xr-x         20         20 stored  bin/tool"
    );
    assert!(
        lines[4].starts_with("-rw-r--r--      13000 ")
            && lines[4].ends_with(" deflate data/big.txt"),
        "{}",
        lines[4]
    );
    let json: serde_json::Value =
        serde_json::from_str(&wk(&["ls", "--json"], &packed).ok()).unwrap();
    assert_eq!(json[0]["name"], "alias.lua");
    assert_eq!(json[0]["type"], "symlink");
    assert_eq!(json[0]["target"], "lib/util.lua");
    assert_eq!(json[4]["method"], "deflate");
    assert_eq!(json[4]["size"], 13000);
    assert_eq!(json[2]["mode"], "0755");
}

#[test]
fn cat_prints_one_file_following_links() {
    let (_app, packed) = sample();
    assert_eq!(
        wk(&["cat", "lib/util.lua"], &packed).ok(),
        "return { greet = function() return 'hi' end }\n"
    );
    assert_eq!(
        wk(&["cat", "alias.lua"], &packed).ok(),
        "return { greet = function() return 'hi' end }\n"
    );
    assert_eq!(wk(&["cat", "data/big.txt"], &packed).ok().len(), 13000);
    let err = wk(&["cat", "nope.lua"], &packed).fails_with(1);
    assert!(
        err.contains("no entry `nope.lua` in the archive") && err.contains("hint: `wrapkit ls"),
        "{err}"
    );
    let err = wk(&["cat", "lib"], &packed).fails_with(1);
    assert!(err.contains("`lib` is a directory"), "{err}");
}

#[test]
fn info_describes_stub_payload_and_manifest() {
    let (_app, packed) = sample();
    let text = wk(&["info"], &packed).ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("file:        {} (", packed.exe.display())),
        "{text}"
    );
    assert!(
        lines[1].starts_with("stub:        ELF 64-bit x86_64, static, "),
        "{text}"
    );
    assert!(
        lines[2].starts_with("payload:     at offset ")
            && lines[2].ends_with("(9 entries, 4 files)"),
        "{text}"
    );
    assert_eq!(lines[4], "format:      version 2");
    assert!(
        lines[5].starts_with("digest:      blake3:") && lines[5].len() == 13 + 7 + 64,
        "{text}"
    );
    assert_eq!(lines[6], "app:         sample 1.2.3");
    assert_eq!(lines[7], "run:         lua main.lua");
    assert_eq!(
        lines[8],
        format!("packer:      wrapkit {}", env!("CARGO_PKG_VERSION"))
    );
    let json: serde_json::Value =
        serde_json::from_str(&wk(&["info", "--json"], &packed).ok()).unwrap();
    assert_eq!(json["stub"]["static_linked"], true);
    assert_eq!(json["manifest"]["run"]["entry"], "main.lua");
    assert_eq!(json["payload"]["files"], 4);
    // The archive lies in the stub's ELF note, its section headers after it (format::elf).
    let archive = crate::support::archive_range(&packed.bytes());
    assert_eq!(json["payload"]["offset"], archive.start as u64);
    assert_eq!(json["payload"]["size"], archive.len() as u64);
}

#[test]
fn verify_passes_a_clean_file_and_names_the_region_of_each_flipped_byte() {
    let (_app, packed) = sample();
    let ok = wk(&["verify"], &packed).ok();
    assert!(
        ok.starts_with("ok: 9 entries (4 files, 13113 bytes) check out; blake3 "),
        "{ok}"
    );

    let bytes = packed.bytes();
    let info: serde_json::Value =
        serde_json::from_str(&wk(&["info", "--json"], &packed).ok()).unwrap();
    let start = info["payload"]["offset"].as_u64().unwrap() as usize;
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    let cd = start
        + bytes[start..]
            .windows(4)
            .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
            .unwrap();
    let end = crate::support::archive_range(&bytes).end;
    let eocd = end - 158 - 22;
    let cases: Vec<(&str, usize, &str)> = vec![
        ("stub", 1000, "stub: its bytes differ"),
        ("local header", start + 10, "local header of `alias.lua`"),
        ("entry data", find(b"echo tool"), "data of `bin/tool`"),
        ("central directory", cd + 12, "central directory"),
        ("end record", eocd + 10, "end of central directory"),
        ("trailer", end - 20, "trailer"),
    ];
    for (what, at, expect) in cases {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        let path = packed.variant("damaged", &damaged);
        let err = Run::of(wrapkit().arg("verify").arg(&path)).fails_with(1);
        assert!(
            err.contains("verification failed") && err.contains(expect),
            "{what}: expected `{expect}` in:\n{err}"
        );
    }
    let mut appended = bytes.clone();
    appended.extend_from_slice(b"junk after the payload");
    let path = packed.variant("appended", &appended);
    let err = Run::of(wrapkit().arg("verify").arg(&path)).fails_with(1);
    assert!(
        err.contains(&format!("22 bytes appended at offset {}", bytes.len())),
        "{err}"
    );
}

#[test]
fn extract_writes_the_tree_with_modes_and_links() {
    let (app, packed) = sample();
    let out = app.scratch().join("extracted");
    let err = wk(&["extract", out.to_str().unwrap()], &packed).ok();
    assert_eq!(err, "");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        fs::symlink_metadata(out.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(
        fs::read_to_string(out.join("data/big.txt")).unwrap(),
        "line of text\n".repeat(1000)
    );
    assert_eq!(mode("bin/tool"), 0o755);
    assert_eq!(mode("main.lua"), 0o644);
    assert!(out.join("empty").is_dir());
    assert_eq!(
        fs::read_link(out.join("alias.lua")).unwrap().to_str(),
        Some("lib/util.lua")
    );
    let again = wk(&["extract", out.to_str().unwrap()], &packed).fails_with(1);
    assert!(
        again.contains("must be an existing, empty directory"),
        "{again}"
    );
}

#[test]
fn unpack_then_pack_gives_the_same_bytes() {
    for flags in [
        &[][..],
        &["--compression", "store"][..],
        &["--compression", "deflate"][..],
    ] {
        let (app, _) = sample();
        let packed = app.pack(flags);
        let dir = app.scratch().join("unpacked");
        let _ = fs::remove_dir_all(&dir);
        Run::of(wrapkit().arg("unpack").arg(&packed.exe).arg(&dir)).ok();
        let again = app.scratch().join("again");
        Run::of(&mut pack_cmd(&dir, &again)).ok();
        assert!(
            fs::read(&again).unwrap() == packed.bytes(),
            "repack differs for {flags:?}"
        );
    }
    // A timestamp from SOURCE_DATE_EPOCH survives the round trip too.
    let (app, _) = sample();
    let dated = app.scratch().join("dated");
    Run::of(pack_cmd(app.path(), &dated).env("SOURCE_DATE_EPOCH", "1700000000")).ok();
    let dir = app.scratch().join("unpacked-dated");
    Run::of(wrapkit().arg("unpack").arg(&dated).arg(&dir)).ok();
    let toml = fs::read_to_string(dir.join("wrapkit.toml")).unwrap();
    assert!(toml.contains("source-date-epoch = 1700000000"), "{toml}");
    let again = app.scratch().join("dated-again");
    Run::of(&mut pack_cmd(&dir, &again)).ok();
    assert!(fs::read(&again).unwrap() == fs::read(&dated).unwrap());
}
