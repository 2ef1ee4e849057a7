//! Damaged and hostile payloads: every one gets one `error:` line naming the file, a documented
//! exit code, and never a crash, a panic or a backtrace.

use std::process::Command;

use crate::support::{App, Packed, Run, archive_range, stub_of};

const BAD_PAYLOAD: i32 = 120;
const UNSUPPORTED: i32 = 121;
const TRAILER_LEN: usize = 158;

/// An app whose payload is large enough (incompressible) that cuts land in it, not in the stub.
fn big_app() -> Packed {
    let mut noise = Vec::with_capacity(256 * 1024);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..256 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    App::new()
        .file("main.lua", "print('ran')")
        .file("noise.bin", noise)
        .pack(&[])
}

/// File position of the archive start (equal to its zip offset: wrapkit writes absolute ones).
fn start_of_payload(bytes: &[u8]) -> usize {
    archive_range(bytes).start
}

/// File position one past the archive's last byte (the trailer ends there).
fn end_of_payload(bytes: &[u8]) -> usize {
    archive_range(bytes).end
}

/// Runs a damaged variant and checks the shape of the failure.
#[track_caller]
fn refuses(packed: &Packed, name: &str, bytes: &[u8], code: i32) -> String {
    let path = packed.variant(name, bytes);
    let run = Run::of(&mut Command::new(&path));
    assert_eq!(run.signal, None, "{name}: killed by a signal");
    assert_eq!(run.stdout, "", "{name}: the app must not run");
    let err = run.fails_with(code);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains(path.to_str().unwrap()),
        "{name}: {err}"
    );
    assert_eq!(
        err.matches("error:").count(),
        1,
        "{name}: one error line: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{name}: {err}"
    );
    err
}

#[test]
fn truncated_executables_are_refused_before_anything_runs() {
    let packed = big_app();
    let bytes = packed.bytes();
    assert_eq!(packed.run(&[]).ok(), "ran\n");
    let start = start_of_payload(&bytes);
    let cuts = [1, 4096, (bytes.len() - start) / 2, bytes.len() - start - 10];
    for cut in cuts {
        let err = refuses(
            &packed,
            &format!("cut{cut}"),
            &bytes[..bytes.len() - cut],
            BAD_PAYLOAD,
        );
        assert!(
            err.contains("no wrapkit payload at the end of the file"),
            "{err}"
        );
        assert!(err.contains("hint: "), "{err}");
    }
}

#[test]
fn the_bare_stub_says_it_has_no_payload() {
    let packed = big_app();
    let err = refuses(&packed, "bare", &stub_of(&packed.bytes()), BAD_PAYLOAD);
    assert!(
        err.contains("ends exactly where its ELF image ends"),
        "{err}"
    );
}

#[test]
fn a_zero_filled_payload_is_refused() {
    let packed = big_app();
    let mut bytes = packed.bytes();
    let start = start_of_payload(&bytes);
    bytes[start..].fill(0);
    refuses(&packed, "zeros", &bytes, BAD_PAYLOAD);
}

/// Format 1 appended the payload, which `strip` drops (format 2 carries it in an ELF note, which
/// strip keeps: tests/e2e/strip.rs): the runtime and `verify` both say what happened.
#[test]
fn a_stripped_format_1_executable_explains_what_happened() {
    let packed = big_app();
    let old = crate::strip::format_1_file(&packed);
    let old_path = packed.variant("old", &old);
    let stripped = packed.exe.with_file_name("stripped");
    let strip = Run::of(
        Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(&old_path),
    );
    assert_eq!(strip.code, Some(0), "strip: {}", strip.stderr);
    let bytes = std::fs::read(&stripped).unwrap();
    let err = refuses(&packed, "stripped", &bytes, BAD_PAYLOAD);
    assert!(
        err.contains("ends exactly where its ELF image ends") && err.contains("`strip`"),
        "{err}"
    );
    assert!(
        err.contains("hint: install the packed file as it came"),
        "{err}"
    );
    let err = Run::of(crate::support::wrapkit().arg("verify").arg(&stripped)).fails_with(1);
    assert!(
        err.contains("payload: no wrapkit payload: the file") && err.contains("`strip`"),
        "{err}"
    );
}

/// Replaces `field=` + 16 hex digits in the trailer.
fn patch_trailer(bytes: &mut [u8], field: &str, value: &str) {
    let end = end_of_payload(bytes);
    let trailer = &mut bytes[end - TRAILER_LEN..end];
    let text = String::from_utf8(trailer.to_vec()).unwrap();
    let at = text.find(field).unwrap() + field.len();
    trailer[at..at + value.len()].copy_from_slice(value.as_bytes());
}

#[test]
fn a_trailer_pointing_outside_the_file_is_refused() {
    let packed = big_app();
    for (field, value) in [
        ("index=", "7fffffffffffffff"),
        ("manifest=", "ffffffffffffffff"),
        ("start=", "00000000ffffffff"),
        ("index=", "0000000000000000"),
    ] {
        let mut bytes = packed.bytes();
        patch_trailer(&mut bytes, field, value);
        let err = refuses(&packed, "pointer", &bytes, BAD_PAYLOAD);
        assert!(
            err.contains("outside") || err.contains("malformed"),
            "{field}{value}: {err}"
        );
    }
}

#[test]
fn a_central_directory_that_cannot_fit_is_refused() {
    let packed = big_app();
    let mut bytes = packed.bytes();
    let eocd = end_of_payload(&bytes) - TRAILER_LEN - 22;
    // Claim a huge central directory size (the real archive is far smaller).
    bytes[eocd + 12..eocd + 16].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let err = refuses(&packed, "cdsize", &bytes, BAD_PAYLOAD);
    assert!(err.contains("exceeds the file"), "{err}");
    let mut bytes = packed.bytes();
    // 65534 entries in a central directory of a few hundred bytes.
    bytes[eocd + 8..eocd + 12].copy_from_slice(&[0xfe, 0xff, 0xfe, 0xff]);
    let err = refuses(&packed, "count", &bytes, BAD_PAYLOAD);
    assert!(err.contains("entries cannot fit"), "{err}");
}

#[test]
fn a_newer_format_or_unknown_run_mode_is_unsupported() {
    let packed = big_app();
    let mut bytes = packed.bytes();
    let end = end_of_payload(&bytes);
    bytes[end - TRAILER_LEN + 11] = b'0';
    bytes[end - TRAILER_LEN + 12] = b'3';
    let err = refuses(&packed, "v3", &bytes, UNSUPPORTED);
    assert!(err.contains("format version 3 is not supported"), "{err}");

    // A manifest edited without fixing its CRC is corruption...
    let mut bytes = packed.bytes();
    let at = find(&bytes, b"\"mode\": \"lua\"").expect("manifest in the file");
    bytes[at + 9..at + 12].copy_from_slice(b"xyz");
    let err = refuses(&packed, "edited", &bytes, BAD_PAYLOAD);
    assert!(err.contains("manifest.json`: CRC-32 mismatch"), "{err}");
    // ...and with its CRC fixed, it is a manifest from the future.
    let manifest_start = find(&bytes, b"{\n  \"format\"").unwrap();
    let local = manifest_start - 30 - ".wrapkit/manifest.json".len();
    let size = u32::from_le_bytes(bytes[local + 22..local + 26].try_into().unwrap()) as usize;
    let manifest_end = manifest_start + size;
    let crc = crc32fast::hash(&bytes[manifest_start..manifest_end]).to_le_bytes();
    bytes[local + 14..local + 18].copy_from_slice(&crc);
    let central = manifest_end
        + find(
            &bytes[manifest_end..],
            b"PK\x01\x02\x3f\x03\x0a\x00\x00\x00\x00\x00",
        )
        .unwrap();
    let central = central + find(&bytes[central..], b".wrapkit/manifest.json").unwrap() - 46;
    bytes[central + 16..central + 20].copy_from_slice(&crc);
    let err = refuses(&packed, "mode", &bytes, UNSUPPORTED);
    assert!(
        err.contains("the manifest asks for run mode `xyz`, which this runtime does not know"),
        "{err}"
    );
    assert!(
        err.contains("hint: this executable was packed by a newer wrapkit"),
        "{err}"
    );
}

#[test]
fn a_flipped_byte_in_compressed_data_is_caught_by_its_crc() {
    let source = "print('".to_string() + &"abc".repeat(500) + "')";
    let packed = App::new()
        .file("main.lua", source)
        .pack(&["--compression", "deflate"]);
    let mut bytes = packed.bytes();
    let start = start_of_payload(&bytes);
    // main.lua is the first entry: flip a byte in the middle of its data.
    bytes[start + 30 + "main.lua".len() + 8] ^= 0x55;
    let path = packed.variant("flipped", &bytes);
    let run = Run::of(&mut Command::new(&path));
    assert_eq!(run.stdout, "");
    let err = run.fails_with(BAD_PAYLOAD);
    assert!(
        err.starts_with(&format!("error: {}: entry `main.lua`: ", path.display()))
            && err.contains("hint: the file is corrupt; `wrapkit verify` shows where"),
        "{err}"
    );
}

#[test]
fn a_corrupt_module_read_at_run_time_stops_the_app_with_the_bad_payload_code() {
    // Found after the app has started and printed, inside a pcall: the runtime's own failure
    // all the same (exit 120, one error block), not a Lua error the app could swallow.
    let module = "return '".to_string() + &"xyz".repeat(500) + "'";
    let packed = App::new()
        .file(
            "main.lua",
            "print('before')\nprint(pcall(require, 'mod'))\nprint('after')\n",
        )
        .file("mod.lua", module)
        .pack(&["--compression", "deflate"]);
    let mut bytes = packed.bytes();
    let name_at = find(&bytes, b"mod.lua").expect("local header of mod.lua");
    bytes[name_at + "mod.lua".len() + 20] ^= 0x55;
    let path = packed.variant("corrupt-module", &bytes);
    let run = Run::of(&mut Command::new(&path));
    assert_eq!(run.stdout, "before\n");
    let err = run.fails_with(BAD_PAYLOAD);
    assert!(
        err.starts_with(&format!("error: {}: entry `mod.lua`: ", path.display())),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        err.ends_with(
            "hint: the file is corrupt; `wrapkit verify` shows where. Pack the app again\n"
        ),
        "{err}"
    );
}

#[test]
fn a_local_header_that_disagrees_with_the_index_is_refused() {
    let packed = App::new().file("main.lua", "print('x')").pack(&[]);
    let mut bytes = packed.bytes();
    let start = start_of_payload(&bytes);
    // Rename the entry in its local header only: main.lua -> main.lux
    let name_at = start + 30;
    assert_eq!(&bytes[name_at..name_at + 8], b"main.lua");
    bytes[name_at + 7] = b'x';
    let path = packed.variant("renamed", &bytes);
    let err = Run::of(&mut Command::new(&path)).fails_with(BAD_PAYLOAD);
    assert!(err.contains("names `main.lux` instead"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
}

#[test]
fn the_stub_does_not_contain_the_trailer_magic() {
    let packed = big_app();
    let bytes = packed.bytes();
    let stub = &bytes[..start_of_payload(&bytes)];
    assert!(
        find(stub, b"WKPAYLOAD").is_none(),
        "the stub would find itself"
    );
    assert!(find(&bytes, b"WKPAYLOAD").is_some());
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_multi_disk_archive_is_refused() {
    let packed = big_app();
    let mut bytes = packed.bytes();
    let eocd = end_of_payload(&bytes) - TRAILER_LEN - 22;
    bytes[eocd + 4] = 1; // "number of this disk"
    let err = refuses(&packed, "disk", &bytes, BAD_PAYLOAD);
    assert!(
        err.contains("multi-disk archives are not supported"),
        "{err}"
    );
}

/// The app waits for a line on stdin, then reads from its archive: by then its file is gone.
#[test]
fn an_executable_deleted_while_running_keeps_reading_its_archive() {
    use std::io::Write;
    let packed = App::new()
        .file(
            "main.lua",
            "io.read('l') local m = require('lib.late') print(m, require('wrapkit').read('data.txt'))",
        )
        .file("lib/late.lua", "return 'module'")
        .file("data.txt", "data ".repeat(400))
        .pack(&[]);
    let mut child = Command::new(&packed.exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::remove_file(&packed.exe).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("module\t{}\n", "data ".repeat(400))
    );
}

#[test]
fn an_executable_run_from_a_memfd_works() {
    let packed = App::new()
        .file("main.lua", "print(require('lib.m'), arg[1])")
        .file("lib/m.lua", "return 'from memfd'")
        .pack(&[]);
    let out = Run::of(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import os, sys\n\
                 fd = os.memfd_create('packed', 0)\n\
                 os.write(fd, open(sys.argv[1], 'rb').read())\n\
                 os.execv(f'/proc/self/fd/{fd}', ['packed', 'arg1'])",
            )
            .arg(&packed.exe),
    )
    .ok();
    assert_eq!(out, "from memfd\targ1\n");
}
