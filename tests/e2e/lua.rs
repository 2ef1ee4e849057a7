//! Lua mode: the app must not notice it lives in an archive. Each test packs a small app whose
//! scripts exercise `require`, `dofile`, `loadfile`, `io.open`, `io.lines` and the `wrapkit`
//! module on archive paths, runs it, and asserts exactly what it printed. Where stock Lua has an
//! answer (the `io` and `load` tests), the expected output is what `lua5.4` prints for the same
//! script over the same files on disk; the deliberate differences are noted. Expected output
//! writes the mount point (the executable's absolute path) as `$ROOT`.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::support::{App, Run, example, wrapkit};

/// `show(...)`: prints its arguments on one line, strings quoted (`\n`, `\r`, `\t` escaped) and
/// everything else through `tostring`, so expected output can tell `""` from `nil`.
const SHOW: &str = r##"
local function show(...)
  local out = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "string" then
      v = '"' .. v:gsub("[\\\"]", "\\%0"):gsub("\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t") .. '"'
    else
      v = tostring(v)
    end
    out[i] = v
  end
  print(table.concat(out, " "))
end
"##;

/// A script: `SHOW` followed by `body`.
fn script(body: &str) -> String {
    format!("{SHOW}\n{body}")
}

/// A packed executable in a temp dir that the caller keeps alive.
struct Exe {
    path: PathBuf,
}

impl Exe {
    fn cmd(&self) -> Command {
        Command::new(&self.path)
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd().args(args))
    }

    /// The mount point: the absolute, symlink-free path of the executable.
    fn root(&self) -> String {
        fs::canonicalize(&self.path)
            .unwrap()
            .to_str()
            .expect("temp paths are UTF-8")
            .to_owned()
    }

    /// `expected` with `$ROOT` replaced by the mount point.
    fn at(&self, expected: &str) -> String {
        expected.replace("$ROOT", &self.root())
    }
}

/// Packs `app` with `flags` to `name` in its scratch directory (so one app can be packed in
/// several ways side by side).
#[track_caller]
fn pack_as(app: &App, name: &str, flags: &[&str]) -> Exe {
    let path = app.scratch().join(name);
    let run = app.pack_to(&path, flags);
    assert_eq!(run.code, Some(0), "pack failed:\n{}", run.stderr);
    Exe { path }
}

/// Packs `app` to `packed` in its scratch directory.
#[track_caller]
fn pack(app: &App, flags: &[&str]) -> Exe {
    pack_as(app, "packed", flags)
}

/// Packs `app` stored and deflated, runs both with `args`, asserts both succeed with the same
/// output, and returns it.
#[track_caller]
fn run_both_ways(app: &App, args: &[&str]) -> (Exe, String) {
    let stored = pack_as(app, "stored", &["--compression", "store"]);
    let deflated = pack_as(app, "deflated", &["--compression", "deflate"]);
    let a = stored.run(args).ok();
    let b = deflated.run(args).ok();
    // The two executables live side by side: their mount points differ in the last name only.
    let b = b.replace(&deflated.root(), &stored.root());
    assert_eq!(a, b, "stored and deflated archives read differently");
    (stored, a)
}

// ---------------------------------------------------------------------------------------------
// require, dofile, loadfile

#[test]
fn require_finds_modules_and_init_packages_in_nested_directories() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local c = require("a.b.c")
show(c.name, c.file, c.answer())
show(require("a.b.c") == c, package.loaded["a.b.c"] == c)
local pkg = require("pkg")
show(pkg.name, pkg.file, pkg.sub.hello())
show(require("deep.x.y.z").where)
show(package.searchpath("pkg.sub", package.path))
show(package.searchpath("nope", package.path))
show(debug.getinfo(c.answer, "S").source)
"#,
            ),
        )
        .file(
            "a/b/c.lua",
            "local name, file = ...\nreturn { name = name, file = file, answer = function() return 42 end }\n",
        )
        .file(
            "pkg/init.lua",
            "local name, file = ...\nreturn { name = name, file = file, sub = require(name .. '.sub') }\n",
        )
        .file("pkg/sub.lua", "return { hello = function() return 'hi from sub' end }\n")
        .file("deep/x/y/z/init.lua", "return { where = (...) .. ' via init.lua' }\n");
    let (packed, out) = run_both_ways(&app, &[]);
    assert_eq!(
        out,
        packed.at(r#""a.b.c" "$ROOT/a/b/c.lua" 42
true true
"pkg" "$ROOT/pkg/init.lua" "hi from sub"
"deep.x.y.z via init.lua"
"$ROOT/pkg/sub.lua"
nil "no file '$ROOT/nope.lua'\n\tno file '$ROOT/nope/init.lua'"
"@$ROOT/a/b/c.lua"
"#)
    );
}

#[test]
fn a_missing_module_names_the_archive_paths_tried() {
    let app = App::new().file("main.lua", "print('before')\nrequire('no.such.mod')\n");
    let packed = pack(&app, &[]);
    let run = packed.run(&[]);
    assert_eq!(run.stdout, "before\n");
    let err = run.fails_with(1);
    assert_eq!(
        err,
        packed.at("packed: $ROOT/main.lua:2: module 'no.such.mod' not found:
\tno field package.preload['no.such.mod']
\tno file '$ROOT/no/such/mod.lua'
\tno file '$ROOT/no/such/mod/init.lua'
stack traceback:
\t[C]: in function 'require'
\t$ROOT/main.lua:2: in main chunk
")
    );
}

#[test]
fn a_module_that_does_not_compile_is_reported_with_its_path() {
    let app = App::new()
        .file(
            "main.lua",
            script("show(pcall(require, 'broken'))\nshow(pcall(require, 'throws'))\n"),
        )
        .file("broken.lua", "local x = \nreturn {\n")
        .file("throws.lua", "\n\nerror('nope')\n");
    let packed = pack(&app, &[]);
    assert_eq!(
        packed.run(&[]).ok(),
        packed.at(r#"false "error loading module 'broken' from file '$ROOT/broken.lua':\n\t$ROOT/broken.lua:2: unexpected symbol near 'return'"
false "$ROOT/throws.lua:3: nope"
"#
        )
    );
}

#[test]
fn dofile_and_loadfile_read_archive_paths() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local wk = require("wrapkit")
show(dofile(wk.path("chunks/values.lua")))

-- loadfile with a mode and an environment: the chunk's globals land in `env`.
local env = { tostring = tostring }
local f = assert(loadfile(wk.path("chunks/globals.lua"), "t", env))
show(f(), env.x, env.y, rawget(_G, "x"))
show(loadfile(wk.path("chunks/globals.lua"), "b"))

-- A '#!' first line is skipped and line numbers stay right.
local script = assert(loadfile(wk.path("bin/tool")))
show(script("a", "b"))
show(pcall(dofile, wk.path("bin/failing")))

show(loadfile(wk.path("chunks/missing.lua")))
show(pcall(dofile, wk.path("chunks/missing.lua")))
show(loadfile(wk.path("chunks/syntax.lua")))
show(pcall(dofile, wk.path("chunks")))
"#,
            ),
        )
        .file("chunks/values.lua", "return 1, 'two', nil, 4\n")
        .file("chunks/globals.lua", "x = 10\ny = tostring(x * 2)\nreturn 'done'\n")
        .file("chunks/syntax.lua", "return )\n")
        .executable(
            "bin/tool",
            "#!/usr/bin/env lua\nlocal a, b = ...\nreturn b .. a, debug.getinfo(1, 'l').currentline\n",
        )
        .executable("bin/failing", "#!/usr/bin/env lua\n-- line 2\nerror('line three')\n");
    let (packed, out) = run_both_ways(&app, &[]);
    assert_eq!(
        out,
        packed.at(r#"1 "two" nil 4
"done" 10 "20" nil
nil "attempt to load a text chunk (mode is 'b')"
"ba" 3
false "$ROOT/bin/failing:3: line three"
nil "cannot open $ROOT/chunks/missing.lua: No such file or directory"
false "cannot open $ROOT/chunks/missing.lua: No such file or directory"
nil "$ROOT/chunks/syntax.lua:1: unexpected symbol near ')'"
false "cannot read $ROOT/chunks: Is a directory"
"#)
    );
}

// ---------------------------------------------------------------------------------------------
// io.open, io.lines, io.input

/// Contents for the io tests: text without a final newline, numbers, an empty line.
const TEXT: &str = "alpha\nbeta\ngamma 42 3.5 0x10\n\nfour score\nlast";

#[test]
fn io_open_gives_real_file_handles() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local wk = require("wrapkit")
local p = wk.path("data/text.txt")
local f = assert(io.open(p))
show(io.type(f), tostring(f):match("^file %(0x%x+%)$") ~= nil)
show(f:read("l"), f:read("L"), f:read(5))
show(f:read("n", "n", "n"))
show(f:read("l"), f:read("l"))
show(f:seek("cur"), f:seek("end"), f:seek("set", 6), f:read(4), f:seek("cur", 1), f:read(0))
show(f:read("a"), f:read("a"), f:read("l"), f:read(0), f:read(1))
show(f:seek("set", 1000), f:seek("cur"), f:read(1), f:seek("end", -4), f:read("a"))
show(f:seek("set", -1))
show(f:seek("set"), f:read(3, "l", 2))

-- Handles work with the io library's other functions too.
f:seek("set")
local lines = {}
for l in f:lines() do lines[#lines + 1] = l end
show(#lines, lines[1], lines[#lines])
f:seek("set")
show(f:lines("n")(), f:setvbuf("full", 4096))
show(f:write("x"))
show(f:close(), io.type(f), pcall(f.read, f))

-- Binary mode and to-be-closed variables.
local keep
do
  local g <close> = assert(io.open(p, "rb"))
  keep = g
  show(#g:read("a"))
end
show(io.type(keep))
"#,
            ),
        )
        .file("data/text.txt", TEXT);
    let (packed, out) = run_both_ways(&app, &[]);
    assert_eq!(
        out,
        packed.at(r#""file" true
"alpha" "beta\n" "gamma"
42 3.5 16
"" ""
30 45 6 "beta" 11 ""
"gamma 42 3.5 0x10\n\nfour score\nlast" "" nil nil nil
1000 1000 nil 41 "last"
nil "Invalid argument" 22
0 "alp" "ha" "be"
6 "alpha" "last"
nil true
nil "Bad file descriptor" 9
true "closed file" false "attempt to use a closed file"
45
"closed file"
"#)
    );
}

#[test]
fn io_lines_reads_archive_paths_with_formats() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local wk = require("wrapkit")
local p = wk.path("data/text.txt")
local lines = {}
for l in io.lines(p) do lines[#lines + 1] = l end
show(#lines, lines[1], lines[4], lines[6])

local kept = {}
for l in io.lines(p, "L") do kept[#kept + 1] = l end
show(#kept, kept[2], table.concat(kept) == wk.read(p))

local sums = {}
for a, b in io.lines(wk.path("data/nums.txt"), "n", "n") do sums[#sums + 1] = a + b end
show(table.concat(sums, " "))

local chunks = {}
for c in io.lines(p, 16) do chunks[#chunks + 1] = #c end
show(table.concat(chunks, " "))

-- The file is closed once the loop has seen its end, and the fourth value is that file.
local it, _, _, file = io.lines(p)
show(io.type(file))
while it() do end
show(io.type(file), pcall(it))
-- Failures inside the loop are reported where the loop is.
show(pcall(function()
  for _ in it do end
end))

show(pcall(function()
  local lines = io.lines(wk.path("data/missing.txt"))
  return lines
end))
"#,
            ),
        )
        .file("data/text.txt", TEXT)
        .file("data/nums.txt", "1 2\n3 4\n0x10 0.5\n-7 7\n");
    let (packed, out) = run_both_ways(&app, &[]);
    assert_eq!(
        out,
        packed.at(r#"6 "alpha" "" "last"
6 "beta\n" true
"3 7 16.5 0"
"16 16 13"
"file"
"closed file" false "file is already closed"
false "$ROOT/main.lua:42: file is already closed"
false "$ROOT/main.lua:46: cannot open file '$ROOT/data/missing.txt' (No such file or directory)"
"#)
    );
}

#[test]
fn io_input_takes_an_archive_path() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local wk = require("wrapkit")
io.input(wk.path("data/text.txt"))
show(io.type(io.input()), io.read("l"), io.read("n"))
local n = 0
for _ in io.lines() do n = n + 1 end
show(n)
show(pcall(io.input, wk.path("nothing")))
"#,
            ),
        )
        .file("data/text.txt", "one\n2\nthree\nfour\n");
    let packed = pack(&app, &[]);
    assert_eq!(
        packed.run(&[]).ok(),
        packed.at(r#""file" "one" 2
3
false "cannot open file '$ROOT/nothing' (No such file or directory)"
"#)
    );
}

#[test]
fn archive_files_are_read_only_and_missing_ones_are_reported() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local wk = require("wrapkit")
for _, mode in ipairs({ "w", "a", "r+", "wb", "a+b" }) do
  show(mode, io.open(wk.path("main.lua"), mode))
end
show(io.open(wk.path("new.txt"), "w"))
show(io.open(wk.path("missing.txt")))
show(io.open(wk.path("dir/missing.txt"), "r"))
-- (Stock Lua opens a directory and fails on the first read; an archive says so at once.)
show(io.open(wk.path("dir")))
show(pcall(io.open, wk.path("main.lua"), "rw"))
"#,
            ),
        )
        .file("dir/x.txt", "x");
    let packed = pack(&app, &[]);
    assert_eq!(
        packed.run(&[]).ok(),
        packed.at(r#""w" nil "$ROOT/main.lua: Read-only file system" 30
"a" nil "$ROOT/main.lua: Read-only file system" 30
"r+" nil "$ROOT/main.lua: Read-only file system" 30
"wb" nil "$ROOT/main.lua: Read-only file system" 30
"a+b" nil "$ROOT/main.lua: Read-only file system" 30
nil "$ROOT/new.txt: Read-only file system" 30
nil "$ROOT/missing.txt: No such file or directory" 2
nil "$ROOT/dir/missing.txt: No such file or directory" 2
nil "$ROOT/dir: Is a directory" 21
false "bad argument #2 to 'open' (invalid mode)"
"#)
    );
}

#[test]
fn relative_paths_mean_the_real_current_directory() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
show(io.open("main.lua"))
local f = assert(io.open("local.txt"))
show(io.type(f), f:read("a"))
f:close()
for l in io.lines("local.txt") do show(l) end
show(dofile("local.lua"))
local out = assert(io.open("written.txt", "w"))
out:write("written by the packed app\n")
out:close()
show(require("wrapkit").exists("local.txt"))
"#,
            ),
        )
        .file("local.txt", "this one is inside the archive\n");
    let packed = pack(&app, &[]);
    let cwd = tempfile::tempdir().unwrap();
    fs::write(cwd.path().join("local.txt"), "real file\nsecond line\n").unwrap();
    fs::write(cwd.path().join("local.lua"), "return 'real chunk', ...\n").unwrap();
    let out = Run::of(packed.cmd().current_dir(cwd.path())).ok();
    assert_eq!(
        out,
        r#"nil "main.lua: No such file or directory (relative paths name the working directory; the app's own main.lua is wrapkit.path(\"main.lua\"))" 2
"file" "real file\nsecond line\n"
"real file"
"second line"
"real chunk"
true
"#
    );
    assert_eq!(
        fs::read_to_string(cwd.path().join("written.txt")).unwrap(),
        "written by the packed app\n"
    );
}

// ---------------------------------------------------------------------------------------------
// The wrapkit module

#[test]
fn the_wrapkit_module_lists_reads_and_stats_the_archive() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local wk = require("wrapkit")
show(wk.root == wk.exe, wk.root, wk.name, wk.version)
show(table.concat(wk.list(), ","), table.concat(wk.list("docs"), ","))
show(table.concat(wk.list(wk.root .. "/docs/"), ","), table.concat(wk.list("docs/empty"), ","))
show(wk.list("docs/a.txt"))
show(wk.list("nowhere"))
show(wk.read("docs/a.txt"), #wk.read(wk.root .. "/docs/b.txt"), wk.read("./docs/../docs/a.txt"))
show(wk.read("docs"))
show(wk.read("docs/zzz.txt"))
show(wk.exists("docs"), wk.exists("docs/a.txt"), wk.exists(wk.root), wk.exists("docs/zzz.txt"))
local st = wk.stat("docs/b.txt")
show(st.type, st.size, st.mode & 0x1ff, st.compressed)
st = wk.stat("bin/run.sh")
show(st.type, st.size, st.mode & 0x1ff)
show(wk.stat("docs").type, wk.stat("").type)
show(wk.stat("docs/zzz.txt"))
show(wk.path("docs/a.txt") == wk.root .. "/docs/a.txt", wk.path("") == wk.root, wk.path("x/../y"))
show(pcall(wk.path, "../elsewhere"))
show(pcall(wk.read, "/etc/passwd"))
show(pcall(wk.list, 42))
"#,
            ),
        )
        .file("docs/a.txt", "AAA")
        .file("docs/b.txt", "b".repeat(4000))
        .dir("docs/empty")
        .executable("bin/run.sh", "#!/bin/sh\necho hi\n");
    let packed = pack(
        &app,
        &[
            "--name",
            "kit",
            "--app-version",
            "3.1.4",
            "--compression",
            "auto",
        ],
    );
    assert_eq!(
        packed.run(&[]).ok(),
        packed.at(r#"true "$ROOT" "kit" "3.1.4"
"bin,docs,main.lua" "a.txt,b.txt,empty"
"a.txt,b.txt,empty" ""
nil "docs/a.txt: Not a directory" 20
nil "nowhere: No such file or directory" 2
"AAA" 4000 "AAA"
nil "docs: Is a directory" 21
nil "docs/zzz.txt: No such file or directory" 2
true true true false
"file" 4000 420 true
"file" 18 493
"directory" "directory"
nil "docs/zzz.txt: No such file or directory" 2
true true "$ROOT/y"
false "bad argument #1 to 'path' ('../elsewhere' is outside the archive mounted at $ROOT)"
false "bad argument #1 to 'read' ('/etc/passwd' is outside the archive mounted at $ROOT)"
false "bad argument #1 to 'list' (string expected, got number)"
"#)
    );
}

// ---------------------------------------------------------------------------------------------
// Symlinks and big files

#[test]
fn symlinks_inside_the_archive_resolve() {
    let app = App::new()
        .file(
            "main.lua",
            script(
                r#"
local wk = require("wrapkit")
show(require("alias").name, require("linked.mod").name, require("real.mod").name)
show(require("alias") ~= require("real.mod"))
show(wk.read("linked/mod.lua") == wk.read("real/mod.lua"), io.open(wk.path("alias.lua")):read("l"))
show(table.concat(wk.list("linked"), ","), wk.stat("alias.lua").type, wk.stat("linked").type)
show(io.lines(wk.path("linked/data.txt"))())
"#,
            ),
        )
        .file("real/mod.lua", "return { name = (...) }\n")
        .file("real/data.txt", "through the link\n")
        .symlink("alias.lua", "real/mod.lua")
        .symlink("linked", "real");
    let (_, out) = run_both_ways(&app, &[]);
    assert_eq!(
        out,
        r#""alias" "linked.mod" "real.mod"
true
true "return { name = (...) }"
"data.txt,mod.lua" "file" "directory"
"through the link"
"#
    );
}

/// 64-bit FNV-1a, as the Lua side computes it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `len` bytes, deterministic: runs of text (which deflate shrinks) between noise (which it
/// cannot).
fn big_contents(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(3) {
            out.extend_from_slice(b"the quick brown fox jumps over the lazy dog\n");
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

#[test]
fn a_large_file_reads_back_byte_identical() {
    let contents = big_contents(3 * 1024 * 1024 + 17);
    let app = App::new()
        .file(
            "main.lua",
            r#"
local wk = require("wrapkit")
local p = wk.path("big/blob.bin")
local function fnv1a(s)
  local h = 0xcbf29ce484222325
  for i = 1, #s, 4096 do
    local bytes = { s:byte(i, i + 4095) }
    for j = 1, #bytes do h = (h ~ bytes[j]) * 0x100000001b3 end
  end
  return ("%016x"):format(h)
end

local whole = wk.read("big/blob.bin")
local f = assert(io.open(p, "rb"))
local all = f:read("a")
-- Odd-sized reads across stdio's buffer boundaries, then a seek back into the middle.
f:seek("set")
local parts = {}
while true do
  local part = f:read(65521)
  if part == nil then break end
  parts[#parts + 1] = part
end
f:seek("set", 1234567)
local middle = f:read(100000)
f:close()
assert(all == whole, "io.open and wrapkit.read disagree")
assert(table.concat(parts) == whole, "chunked reads disagree")
assert(middle == whole:sub(1234568, 1234567 + 100000), "seek and read disagree")
local out = assert(io.open(arg[1], "wb"))
out:write(all)
out:close()
local st = wk.stat("big/blob.bin")
print(#whole, fnv1a(whole), st.size, st.compressed)
"#,
        )
        .file("big/blob.bin", &contents);
    for compression in ["store", "deflate"] {
        let expected = format!(
            "{len}\t{:016x}\t{len}\t{}\n",
            fnv1a(&contents),
            compression == "deflate",
            len = contents.len(),
        );
        let packed = pack_as(&app, compression, &["--compression", compression]);
        let copy = app.scratch().join(format!("copy-{compression}"));
        let out = packed.run(&[copy.to_str().unwrap()]).ok();
        assert_eq!(out, expected, "{compression}");
        assert!(
            fs::read(&copy).unwrap() == contents,
            "{compression}: the copy written from Lua differs"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments, errors and exit statuses

#[test]
fn arguments_reach_arg_and_the_main_chunk() {
    let app = App::new().file(
        "main.lua",
        script(
            r##"
show(#arg, arg[0], arg[1], arg[2], arg[3], arg[4], arg[-1])
show(select("#", ...), ...)
local root = require("wrapkit").root
show(arg[0] == root, root:sub(1, 1) == "/")
"##,
        ),
    );
    let packed = pack(&app, &[]);
    let exe = packed.path.to_str().unwrap();
    // arg[0] is the path as given, wrapkit.root the resolved one: equal unless TMPDIR has a
    // symlink in it.
    let same = exe == packed.root();
    assert_eq!(
        packed.run(&["one", "two words", ""]).ok(),
        format!(
            "3 \"{exe}\" \"one\" \"two words\" \"\" nil nil\n3 \"one\" \"two words\" \"\"\n{same} true\n"
        )
    );
    // arg[0] is the name as typed; the mount point is absolute all the same.
    let out = Run::of(
        Command::new("./packed")
            .current_dir(app.scratch())
            .arg("--flag"),
    )
    .ok();
    assert_eq!(
        out,
        "1 \"./packed\" \"--flag\" nil nil nil nil\n1 \"--flag\"\nfalse true\n"
    );
    let none = packed.run(&[]).ok();
    assert_eq!(
        none,
        format!("0 \"{exe}\" nil nil nil nil nil\n0\n{same} true\n")
    );
}

#[test]
fn an_uncaught_error_names_the_archive_file_and_exits_1() {
    let app = App::new()
        .file(
            "main.lua",
            "local bad = require('lib.bad')\nio.write('partial output')\nbad.explode('boom')\n",
        )
        .file(
            "lib/bad.lua",
            "local M = {}\nfunction M.explode(what)\n  error(what .. '!')\nend\nreturn M\n",
        );
    let packed = pack(&app, &[]);
    let run = packed.run(&[]);
    assert_eq!(run.stdout, "partial output");
    let err = run.fails_with(1);
    assert_eq!(
        err,
        packed.at("packed: $ROOT/lib/bad.lua:3: boom!
stack traceback:
\t[C]: in function 'error'
\t$ROOT/lib/bad.lua:3: in function 'lib.bad.explode'
\t$ROOT/main.lua:3: in main chunk
")
    );
}

#[test]
fn errors_that_are_not_strings_are_reported_like_lua_does() {
    let app = App::new().file(
        "main.lua",
        r#"
local what = arg[1]
if what == "table" then error({ code = 1 }) end
if what == "tostring" then error(setmetatable({}, { __tostring = function() return "custom error" end })) end
if what == "number" then error(42) end
if what == "nil" then error() end
if what == "syntax" then load("x =")() end
"#,
    );
    let packed = pack(&app, &[]);
    let err = packed.run(&["table"]).fails_with(1);
    assert_eq!(
        err,
        packed.at("packed: (error object is a table value)
stack traceback:
\t[C]: in function 'error'
\t$ROOT/main.lua:3: in main chunk
")
    );
    assert_eq!(
        packed.run(&["tostring"]).fails_with(1),
        "packed: custom error\n"
    );
    let err = packed.run(&["number"]).fails_with(1);
    assert!(err.starts_with("packed: 42\nstack traceback:\n"), "{err}");
    let err = packed.run(&["nil"]).fails_with(1);
    assert!(
        err.starts_with("packed: (error object is a nil value)\n"),
        "{err}"
    );
    let err = packed.run(&["syntax"]).fails_with(1);
    assert!(
        err.starts_with(
            "packed: $ROOT/main.lua:7: attempt to call a nil value\n"
                .replace("$ROOT", &packed.root())
                .as_str()
        ),
        "{err}"
    );
}

#[test]
fn a_syntax_error_in_the_entry_script_exits_1() {
    let app = App::new().file("main.lua", "print('never')\nlocal = 1\n");
    let packed = pack(&app, &[]);
    let run = packed.run(&[]);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.fails_with(1),
        packed.at("packed: $ROOT/main.lua:2: <name> expected near '='\n")
    );
}

#[test]
fn os_exit_sets_the_exit_status() {
    let app = App::new().file(
        "main.lua",
        r#"
io.write("buffered, no newline")
local how = arg[1]
if how == "7" then os.exit(7) end
if how == "true" then os.exit(true) end
if how == "false" then os.exit(false) end
if how == "close" then os.exit(3, true) end
if how == "255" then os.exit(255) end
"#,
    );
    let packed = pack(&app, &[]);
    for (how, code) in [
        ("7", 7),
        ("true", 0),
        ("false", 1),
        ("close", 3),
        ("255", 255),
        ("none", 0),
    ] {
        let run = packed.run(&[how]);
        assert_eq!(run.stdout, "buffered, no newline", "os.exit({how})");
        assert_eq!(run.stderr, "", "os.exit({how})");
        assert_eq!(run.code, Some(code), "os.exit({how})");
    }
}

// ---------------------------------------------------------------------------------------------
// The report example

/// The report example, packed.
fn report() -> (tempfile::TempDir, Exe) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report");
    let run = Run::of(
        wrapkit()
            .arg("pack")
            .arg(example("report"))
            .arg("-o")
            .arg(&path)
            .arg("-q"),
    );
    assert_eq!(run.code, Some(0), "pack failed:\n{}", run.stderr);
    (dir, Exe { path })
}

const SUMMARY: &str = "\
Sales report: sales

  records        420
  period         2024-01-01 to 2024-12-27
  units sold     8,780
  revenue        99,332.38
  average order  236.51
  median order   97.49

Top 3 products by revenue:
  1. The \"Deluxe\" Kit      58,297.59
  2. Gadget                14,325.18
  3. Gizmo                 10,429.01
";

const BY_REGION: &str = "\
region   rows  units    revenue  avg price
-------  ----  -----  ---------  ---------
North      87  1,766  22,071.91      12.50
South      90  1,787  20,583.97      11.52
West       69  1,563  19,967.92      12.78
East       80  1,777  19,231.09      10.82
Central    94  1,887  17,477.49       9.26
-------  ----  -----  ---------  ---------
total     420  8,780  99,332.38      11.31
";

#[test]
fn the_report_example_prints_its_summary_and_tables() {
    let (_dir, report) = report();
    assert_eq!(report.run(&[]).ok(), SUMMARY);
    assert_eq!(report.run(&["--by", "region"]).ok(), BY_REGION);
    assert_eq!(
        report.run(&["--by=region", "--data", "sales"]).ok(),
        BY_REGION
    );
    assert_eq!(
        report.run(&["--by", "product", "--top", "3"]).ok(),
        "\
product           rows  units    revenue  avg price
----------------  ----  -----  ---------  ---------
The \"Deluxe\" Kit    61  1,166  58,297.59      50.00
Gadget              56  1,102  14,325.18      13.00
Gizmo               64  1,304  10,429.01       8.00
----------------  ----  -----  ---------  ---------
total              420  8,780  99,332.38      11.31
"
    );
    assert_eq!(
        report
            .run(&["--by", "month", "--sort", "name", "--top", "2"])
            .ok(),
        "\
month    rows  units    revenue  avg price
-------  ----  -----  ---------  ---------
2024-01    35    776   8,201.44      10.57
2024-02    35    801  13,220.34      16.50
-------  ----  -----  ---------  ---------
total     420  8,780  99,332.38      11.31
"
    );
    assert_eq!(
        report
            .run(&["--by", "rep", "--sort", "units", "--top=4"])
            .ok(),
        "\
rep    rows  units    revenue  avg price
-----  ----  -----  ---------  ---------
Farah    64  1,323   9,919.06       7.50
Goran    53  1,153  12,373.50      10.73
Chen     50  1,108  12,289.13      11.09
Dana     51  1,100  11,426.55      10.39
-----  ----  -----  ---------  ---------
total   420  8,780  99,332.38      11.31
"
    );
    assert_eq!(
        report.run(&["--data", "returns", "--top", "1"]).ok(),
        "\
Sales report: returns

  records        60
  period         2024-01-01 to 2024-12-28
  units sold     202
  revenue        2,423.72
  average order  40.40
  median order   14.25

Top 1 products by revenue:
  1. The \"Deluxe\" Kit       1,549.69
"
    );
    assert_eq!(
        report.run(&["--list"]).ok(),
        "returns    60 rows    2506 bytes\nsales     420 rows   17447 bytes\n"
    );
    assert_eq!(report.run(&["--version"]).ok(), "report 1.2.0\n");
    assert_eq!(report.run(&["-V"]).ok(), "report 1.2.0\n");
    let help = report.run(&["--help"]).ok();
    assert!(help.starts_with("Usage: report [OPTIONS]\n\n"), "{help}");
    assert!(
        help.contains(
            "  --by FIELD     Print a table grouped by FIELD (month, product, region, rep)\n"
        ),
        "{help}"
    );
    assert_eq!(report.run(&["-h"]).ok(), help);
}

#[test]
fn the_report_example_exits_2_on_bad_usage() {
    let (_dir, report) = report();
    let hint = "Try 'report --help' for more information.\n";
    for (args, message) in [
        (&["--by"][..], "option '--by' needs a value (FIELD)"),
        (&["--bogus"], "unknown option '--bogus'"),
        (
            &["--top", "0"],
            "--top wants a positive whole number, not '0'",
        ),
        (
            &["--top", "2.5"],
            "--top wants a positive whole number, not '2.5'",
        ),
        (
            &["--by", "colour"],
            "cannot group by 'colour' (fields: month, product, region, rep)",
        ),
        (
            &["--sort", "price"],
            "--sort wants revenue, units or name, not 'price'",
        ),
        (
            &["--data", "nope"],
            "no data set 'nope' (bundled: returns, sales)",
        ),
        (&["--help=yes"], "option '--help' takes no value"),
        (
            &["--data", "sales", "--file", "x.csv"],
            "--data and --file cannot be used together",
        ),
        (&["extra"], "unexpected argument 'extra'"),
    ] {
        let run = report.run(args);
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(
            run.fails_with(2),
            format!("report: {message}\n{hint}"),
            "{args:?}"
        );
    }
}

#[test]
fn the_report_example_runs_with_an_empty_environment() {
    let (_dir, report) = report();
    let run = |args: &[&str]| Run::of(Command::new("env").arg("-i").arg(&report.path).args(args));
    assert_eq!(run(&[]).ok(), SUMMARY);
    assert_eq!(run(&["--by", "region"]).ok(), BY_REGION);
    assert_eq!(
        run(&["--top", "x"]).fails_with(2),
        "report: --top wants a positive whole number, not 'x'\nTry 'report --help' for more information.\n"
    );
}

#[test]
fn the_report_example_reads_a_csv_relative_to_another_cwd() {
    let (_dir, report) = report();
    let cwd = tempfile::tempdir().unwrap();
    fs::create_dir(cwd.path().join("in")).unwrap();
    fs::write(
        cwd.path().join("in/mine.csv"),
        "date,region,rep,product,units,unit_price\r\n\
         2024-03-01,North,Zed,\"Bolt, small\",10,1.50\r\n\
         2024-03-02,South,Zed,Nut,4,0.25\r\n\
         2024-02-28,North,Yan,\"Bolt, small\",2,1.50\r\n",
    )
    .unwrap();
    let run = |args: &[&str]| Run::of(report.cmd().current_dir(cwd.path()).args(args));
    assert_eq!(
        run(&["--file", "in/mine.csv", "--by", "product"]).ok(),
        "\
product      rows  units  revenue  avg price
-----------  ----  -----  -------  ---------
Bolt, small     2     12    18.00       1.50
Nut             1      4     1.00       0.25
-----------  ----  -----  -------  ---------
total           3     16    19.00       1.19
"
    );
    assert_eq!(
        run(&["--file", "in/mine.csv"]).ok(),
        "\
Sales report: in/mine.csv

  records        3
  period         2024-02-28 to 2024-03-02
  units sold     16
  revenue        19.00
  average order  6.33
  median order   3.00

Top 2 products by revenue:
  1. Bolt, small               18.00
  2. Nut                        1.00
"
    );
    // The bundled data is still there from any directory, and a missing file is exit 1.
    assert_eq!(run(&["--by", "region"]).ok(), BY_REGION);
    assert_eq!(
        run(&["--file", "missing.csv"]).fails_with(1),
        "report: missing.csv: No such file or directory\n"
    );
    fs::write(
        cwd.path().join("bad.csv"),
        "date,region,rep,product,units,unit_price\n2024-01-01,North,A,\"Open,5,1.00\n",
    )
    .unwrap();
    assert_eq!(
        run(&["--file", "bad.csv"]).fails_with(1),
        "report: bad.csv:2: unterminated quoted field\n"
    );
}

#[test]
fn a_trailing_slash_after_a_file_is_not_a_directory() {
    let app = App::new().file(
        "main.lua",
        "local w = require('wrapkit') print(io.open(w.root .. '/main.lua/')) print(w.stat('main.lua/')) print(#w.list('lib/'))",
    )
    .file("lib/x.lua", "");
    let out = app.pack(&[]).run(&[]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("nil\t") && lines[0].ends_with("main.lua/: Not a directory\t20"),
        "{out}"
    );
    assert_eq!(lines[1], "nil\tmain.lua/: Not a directory\t20", "{out}");
    assert_eq!(lines[2], "1", "{out}");
}

#[test]
fn opening_a_packed_file_by_a_relative_path_hints_at_wrapkit_path() {
    let packed = App::new()
        .file(
            "main.lua",
            "local f, err, code = io.open('data/table.csv')\n\
             print(f, err, code)\n\
             print(select(2, io.open('not-packed.txt')))\n\
             local w = require('wrapkit')\n\
             print(io.open(w.path('data/table.csv')):read('l'))\n",
        )
        .file("data/table.csv", "a,b\n")
        .pack(&[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Run::of(packed.cmd().current_dir(elsewhere.path())).ok();
    assert_eq!(
        out,
        "nil\tdata/table.csv: No such file or directory (relative paths name the working directory; the app's own data/table.csv is wrapkit.path(\"data/table.csv\"))\t2\n\
         not-packed.txt: No such file or directory\t2\n\
         a,b\n"
    );
}

#[test]
fn a_symlink_loop_in_the_app_is_eloop_not_a_damaged_payload() {
    // Links that loop pack as they are (docs/cli.md); opening one is the app's error to
    // handle, as on a filesystem, not the runtime's exit 120.
    let packed = App::new()
        .file(
            "main.lua",
            "local w = require('wrapkit')\nprint(io.open(w.path('a')))\nprint('still running')\n",
        )
        .symlink("a", "b")
        .symlink("b", "a")
        .pack(&[]);
    let out = Run::of(&mut packed.cmd()).ok();
    assert_eq!(
        out,
        format!(
            "nil\t{}/a: Too many levels of symbolic links\t40\nstill running\n",
            packed.exe.display()
        )
    );
}
