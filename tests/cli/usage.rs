//! What a newcomer meets first: the README's Quick start run as shown,
//! help texts, flag conflicts, batch limits of a server, bench verdicts and
//! what `put` and `batch` say on a terminal (in tmux).

use super::numbered_puts;
use super::util::{self, Env};

/// The README's Quick start, run command by command through bash with the
/// real binary first on PATH: every command exits 0 and prints what the
/// README shows (stdout and stderr together; file sizes and timings masked).
#[test]
fn readme_quick_start_runs_as_shown() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Quick start\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Quick start section");
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in section.lines().filter_map(|l| l.strip_prefix("    ")) {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
            None => steps
                .last_mut()
                .expect("output before a command")
                .1
                .push(line.into()),
        }
    }
    assert!(steps.len() > 10, "{steps:?}");
    // A newline before `}`: a command may end in a `#` comment.
    let script: String = steps
        .iter()
        .enumerate()
        .map(|(i, (cmd, _))| {
            format!("echo '@@step {i}'\n{{ {cmd}\n}} 2>&1\nrc=$?\necho\necho \"@@rc $rc\"\n")
        })
        .collect();
    let env = Env::new();
    let bin_dir = std::path::Path::new(util::KVR).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(env.dir.path())
        .env("PATH", path);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KVR_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut got = text.split("@@step ").skip(1);
    for (i, (command, expected)) in steps.iter().enumerate() {
        let chunk = got
            .next()
            .unwrap_or_else(|| panic!("no output for {command}:\n{text}"));
        let mut lines: Vec<&str> = chunk.lines().skip(1).collect();
        let rc = lines.pop().unwrap_or_default();
        // The `echo` before the marker ends a last line without a newline
        // (`kvr get` adds none), else it is an empty line of its own.
        if lines.last() == Some(&"") {
            lines.pop();
        }
        assert_eq!(rc, "@@rc 0", "step {i} `{command}` failed:\n{chunk}");
        let shown: Vec<String> = expected.iter().map(|l| mask(l)).collect();
        let printed: Vec<String> = lines.iter().map(|l| mask(l)).collect();
        assert_eq!(
            printed, shown,
            "step {i} `{command}` prints other than the README shows"
        );
    }
}

/// Masks what differs between runs: `"file_bytes":N` and `in S s` timings.
fn mask(line: &str) -> String {
    let mut line = line.to_string();
    if let Some(at) = line.find("\"file_bytes\":") {
        let start = at + "\"file_bytes\":".len();
        let end = line[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(line.len(), |e| start + e);
        line.replace_range(start..end, "N");
    }
    if line.starts_with("applied ")
        && let Some(at) = line.rfind(" in ")
    {
        line.replace_range(at.., " in S s");
    }
    line
}

#[test]
fn db_and_server_flags_together_are_a_usage_error_for_every_command() {
    let env = Env::new();
    let db = env.path("never.redb");
    let commands: [&[&str]; 10] = [
        &["put", "k", "v"],
        &["get", "k"],
        &["delete", "k"],
        &["range"],
        &["batch"],
        &["stats"],
        &["tui"],
        &["completions", "bash"],
        // Were the check missing, these would fail differently, not hang.
        &["serve", "--listen", "256.0.0.1:1"],
        &["bench", "--requests", "1"],
    ];
    for args in commands {
        let mut run = env.kvr_bare([
            "--db",
            db.to_str().unwrap(),
            "--server",
            "http://127.0.0.1:1",
        ]);
        run.cmd.args(args);
        let done = run.stdin("").code(2);
        let done = done.stderr_has("give either --db or --server, not both");
        assert!(done.out.stdout.is_empty(), "{}", done.report());
        assert!(!db.exists(), "{args:?} created the database");
    }
    // An environment variable is beaten by the other flag: not an error.
    env.kvr_bare(["--db", db.to_str().unwrap(), "put", "k", "v"])
        .env("KVR_SERVER", "http://127.0.0.1:1")
        .ok();
}

#[test]
fn help_puts_global_options_apart_and_shows_no_empty_env_values() {
    let env = Env::new();
    let commands: [&[&str]; 6] = [
        &["--help"],
        &["serve", "--help"],
        &["completions", "--help"],
        &["bench", "--help"],
        &["put", "--help"],
        &["range", "--help"],
    ];
    for args in commands {
        let help = env.kvr_bare(args).ok().stdout_text();
        assert!(
            !help.contains("=]"),
            "{args:?} shows an empty env value:\n{help}"
        );
        if args.len() > 1 {
            let (own, global) = help
                .split_once("Global options:")
                .unwrap_or_else(|| panic!("{args:?} has no Global options heading:\n{help}"));
            // An option line, not a mention in the command's about text.
            let lists_db = own.lines().any(|l| l.trim_start().starts_with("--db"));
            assert!(!lists_db, "{args:?} lists --db as its own:\n{help}");
            assert!(
                global.contains("--db") && global.contains("--server"),
                "{help}"
            );
        }
    }
    let serve = env.kvr_bare(["serve", "--help"]).ok().stdout_text();
    let (own, _) = serve.split_once("Global options:").unwrap();
    assert!(
        own.contains("--listen") && !own.contains("--timeout <"),
        "{serve}"
    );
    // bench ignores KVR_DB and KVR_SERVER: its help says so and shows no [env: …].
    let bench = env.kvr_bare(["bench", "--help"]).ok().stdout_text();
    assert!(
        !bench.contains("[env: KVR_DB") && !bench.contains("[env: KVR_SERVER"),
        "{bench}"
    );
    // Nor ./kvr.redb: without --db it measures a temporary file.
    assert!(
        !bench.contains("kvr.redb") && bench.contains("a temporary file, removed"),
        "{bench}"
    );
    let put = env.kvr_bare(["put", "--help"]).ok().stdout_text();
    assert!(put.contains("[env: KVR_DB]"), "{put}");
    // delete's usage shows its three forms apart: a refused mix is not
    // answered with a usage line offering a KEY after --prefix.
    let done = env
        .kvr(["delete", "--prefix", "k", "--range", "a", "b"])
        .code(2);
    let err = done.stderr_text();
    assert!(
        err.contains(
            "Usage: kvr delete [OPTIONS] <KEY>\n       kvr delete [OPTIONS] --prefix <P>\n       \
             kvr delete [OPTIONS] --range <START> <END>"
        ) && !err.contains("[KEY]"),
        "{err}"
    );
}

#[test]
fn batch_over_the_server_limits_names_them_and_writes_nothing() {
    let env = Env::served_with(&["--max-batch-ops", "10", "--max-batch-bytes", "2000"]);
    env.kvr(["put", "keep", "me"]).ok();
    let before = env.snapshot();
    let many = numbered_puts(0..25);
    let big = numbered_puts(0..90); // 10 lines a part, but over 2,000 bytes
    std::fs::write(env.path("many.jsonl"), &many).unwrap();
    std::fs::write(env.path("big.jsonl"), &big).unwrap();
    let runs = [
        (
            env.kvr(["batch"]).stdin(many.clone()),
            "more than 10 operations",
        ),
        (env.kvr(["batch", "many.jsonl"]), "more than 10 operations"),
        (env.kvr(["batch"]).stdin(big.clone()), "server's limit"),
        (env.kvr(["batch", "big.jsonl"]), "server's limit"),
    ];
    for (run, needle) in runs {
        let done = run.code(2).stderr_has(needle).stderr_has("server's limit");
        let done = done
            .stderr_has("--chunk-size")
            .stderr_has("nothing was written");
        let text = done.stderr_text();
        assert!(!text.contains("--max-batch"), "names a server flag: {text}");
        assert_eq!(env.snapshot(), before);
    }
    // In parts of 10 lines each request is within the limits.
    env.kvr(["batch", "--chunk-size", "10"]).stdin(many).ok();
    env.kvr(["batch", "--chunk-size", "10", "big.jsonl"]).ok();
    assert_eq!(env.stats()["keys"], 91);
}

#[test]
fn bench_fails_fast_on_an_unreachable_server() {
    let env = Env::new();
    let done = env
        .kvr_bare([
            "--server",
            "http://127.0.0.1:1",
            "bench",
            "--duration",
            "600",
        ])
        .code(5)
        .stderr_has("cannot reach kvr server");
    assert!(done.out.stdout.is_empty(), "{}", done.report());
}

#[test]
fn bench_of_mostly_failed_reads_exits_1_and_suggests_prefill() {
    let env = Env::new();
    let db = env.path("bench.redb");
    let db = db.to_str().unwrap();
    let get = ["--db", db, "bench", "--workload", "get", "--requests", "40"];
    let done = env.kvr_bare(get).env("KVR_DB", "ignored.redb").code(1);
    let done = done
        .stderr_has("40 of 40 requests failed")
        .stderr_has("--prefill");
    assert!(
        done.stdout_text().contains("error not_found: 40"),
        "{}",
        done.report()
    );
    // No latencies of 0.000, as if the server were very fast.
    assert!(
        done.stdout_text()
            .contains("latency ms: none (no request succeeded)"),
        "{}",
        done.report()
    );
    // With the keys written first the same run succeeds.
    let prefilled = ["--prefill", "100", "--keyspace", "100", "--clients", "2"];
    let mut run = env.kvr_bare(get);
    run.cmd.args(prefilled);
    run.ok();
    assert!(!env.path("ignored.redb").exists());
    // A range workload past every key measured nothing too (it was 0
    // errors and exit 0): ranges that find no key are counted as errors.
    let empty = env.path("empty.redb");
    let empty = empty.to_str().unwrap();
    let range = [
        "--db",
        empty,
        "bench",
        "--workload",
        "range",
        "--requests",
        "30",
    ];
    let done = env.kvr_bare(range).code(1);
    let done = done
        .stderr_has("30 of 30 requests failed (most often: empty_range")
        .stderr_has("--prefill 100000 (or run a put workload");
    assert!(
        done.stdout_text().contains("error empty_range: 30"),
        "{}",
        done.report()
    );
    let mut run = env.kvr_bare(range);
    run.cmd.args(prefilled);
    run.ok();
    // Without --db each run has a new file: only a prefill in the same run
    // helps, so no word of an earlier put run.
    let bare = env
        .kvr_bare(["bench", "--workload", "get", "--requests", "20"])
        .code(1)
        .stderr_has("add --prefill 100000");
    assert!(
        !bare.stderr_text().contains("put workload"),
        "{}",
        bare.report()
    );
}

/// A tmux server of a test's own (skipped without tmux, as the TUI test),
/// killed on drop.
struct Tmux(String);

impl Tmux {
    /// Runs `command` (through the shell) in an 80x10 terminal.
    fn start(command: &str) -> Option<Tmux> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let available = std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            eprintln!("SKIPPED: tmux is not installed (CI installs it)");
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tmux = Tmux(format!("kvr-cli-test-{}-{n}", std::process::id()));
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "10",
            "-s",
            "main",
            command,
        ]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

/// Polls `read` until its text contains every one of `needles`; returns it.
fn wait_for(what: &str, needles: &[&str], read: impl Fn() -> String) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = read();
        if needles.iter().all(|n| text.contains(n)) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never had {needles:?}: {text:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn shell_quote(p: &std::path::Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `kvr put KEY` with stdin a terminal says where the value comes from.
#[test]
fn put_on_a_terminal_says_it_reads_stdin_until_ctrl_d() {
    let env = Env::new();
    let command = format!(
        "env -u KVR_DB -u KVR_SERVER {} --db {} put k 2>{}; echo $? >{}",
        util::KVR,
        shell_quote(&env.db()),
        shell_quote(&env.path("stderr")),
        shell_quote(&env.path("rc"))
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    let file = |name: &str| std::fs::read_to_string(env.path(name)).unwrap_or_default();
    let said = wait_for("stderr", &["Ctrl-D"], || file("stderr"));
    assert_eq!(
        said,
        "kvr: reading the value from stdin until Ctrl-D (end of input)\n"
    );
    // Typed text, then Ctrl-D twice: the first ends the unfinished line, the
    // second is the end of input.
    tmux.run(&["send-keys", "-t", "main", "-l", "typed value"]);
    tmux.run(&["send-keys", "-t", "main", "C-d"]);
    tmux.run(&["send-keys", "-t", "main", "C-d"]);
    assert_eq!(wait_for("rc", &["\n"], || file("rc")), "0\n");
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"typed value");
    // Not on a terminal: nothing said (the other tests' stdin is a pipe).
    let done = env.kvr(["put", "k2"]).stdin("v").ok();
    assert_eq!(done.stderr_text(), "");
}

/// The batch progress bar on a terminal names its phase, and its clock runs
/// while no input arrives (the input here stalls after one line).
#[test]
fn batch_progress_shows_the_phase_and_a_running_clock() {
    let env = Env::new();
    let command = format!(
        "{{ echo '{{\"key\":\"a\",\"value\":\"1\"}}'; sleep 600; }} | \
         env -u KVR_DB -u KVR_SERVER {} --db {} batch",
        util::KVR,
        shell_quote(&env.db()),
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    // A clock past 2 s shows the bar redrawn with no input moving.
    let screen = wait_for("the screen", &["00:00:02", "reading: 1 line"], || {
        tmux.screen()
    });
    // One line, read at once: no rate (it showed "1 lines, 1000 lines/s",
    // found by an audit).
    assert!(
        !screen.contains("1 lines") && !screen.contains("lines/s"),
        "{screen}"
    );
}

/// `kvr` alone is a usage error whose first line says so, then the help.
#[test]
fn no_command_says_one_is_required() {
    let env = Env::new();
    let done = env.kvr_bare(Vec::<&str>::new()).code(2);
    let text = done.stderr_text();
    assert!(
        text.starts_with("kvr: error: a command is required\n"),
        "{text}"
    );
    assert!(text.contains("Usage: kvr"), "{text}");
}

/// Keys may start with `-`: `--prefix` and `--range` take such values as
/// they come, since `--` (which ends options) cannot help an option's value.
#[test]
fn prefix_and_range_take_keys_that_start_with_a_hyphen() {
    let env = Env::new();
    for key in ["-a", "-b1", "-b2", "-c", "b"] {
        env.kvr(["put", "--", key, "v"]).ok();
    }
    let keys = |args: &[&str]| -> Vec<String> {
        env.range_json(args)
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&["--prefix", "-b"]), ["-b1", "-b2"]);
    env.kvr(["delete", "--prefix", "-b"]).ok();
    assert_eq!(keys(&[]), ["-a", "-c", "b"]);
    env.kvr(["delete", "--range", "-a", "-c"]).ok();
    assert_eq!(keys(&[]), ["-c", "b"]);
    env.kvr(["delete", "--range", "-c", "b"]).ok();
    assert_eq!(keys(&[]), ["b"]);
}

/// A count, size or MiB that is not a whole number says so in words, for
/// every such flag: it said "invalid digit found in string", Rust's own
/// words, also for a negative number (found by an audit). Nothing is
/// written.
#[test]
fn a_bad_whole_number_says_so() {
    let env = Env::new();
    env.kvr(["put", "k", "v1"]).ok();
    let before = env.snapshot();
    let cases: [(&[&str], &str); 5] = [
        (
            &["put", "k", "v2", "--cache-mib", "lots"],
            "for '--cache-mib <MIB>': \"lots\" is not a whole number",
        ),
        (
            &["put", "k", "v2", "--cache-mib", "-1"],
            "for '--cache-mib <MIB>': must be 0 or more",
        ),
        (
            &["batch", "--max-value-bytes", "1k"],
            "for '--max-value-bytes <BYTES>': \"1k\" is not a whole number",
        ),
        (
            &["watch", "--from-revision", "-3"],
            "for '--from-revision <R>': must be 0 or more",
        ),
        (
            &["bench", "--clients", "99999999999999999999"],
            "for '--clients <N>': must be at most 18446744073709551615",
        ),
    ];
    for (args, says) in cases {
        let value = args[args.len() - 1];
        env.kvr(args)
            .stdin("{\"key\":\"k\",\"value\":\"v3\"}\n")
            .code(2)
            .stderr_has(&format!("kvr: error: invalid value '{value}' {says}"));
    }
    assert_eq!(env.snapshot(), before);
}

/// A bad value from an environment variable names the variable: a stale
/// `KVR_TIMEOUT` in a profile is not a `--timeout` the user typed. Nothing
/// is written.
#[test]
fn a_bad_environment_value_names_its_variable() {
    let env = Env::new();
    env.kvr(["put", "k", "v1"]).ok();
    let cases = [
        (
            "KVR_TIMEOUT",
            "abc",
            "(it sets --timeout): \"abc\" is not a number of seconds such as 30",
        ),
        (
            "KVR_CONSISTENCY",
            "fresh",
            "(it sets --consistency): possible values: linearizable, stale",
        ),
        (
            "KVR_CACHE_MIB",
            "lots",
            "(it sets --cache-mib): \"lots\" is not a whole number",
        ),
        (
            "KVR_CACHE_MIB",
            "-5",
            "(it sets --cache-mib): must be 0 or more",
        ),
    ];
    for (variable, value, says) in cases {
        let done = env.kvr(["put", "k", "v2"]).env(variable, value).code(2);
        let text = done.stderr_text();
        let expected = format!(
            "kvr: error: invalid value '{value}' in the environment variable {variable} {says}"
        );
        assert!(text.starts_with(&expected), "{text}");
    }
    // Values that parse but are out of range are named the same way.
    let ranges = [
        (
            "KVR_LOCK_TIMEOUT",
            "-1",
            "--lock-timeout (from the environment variable KVR_LOCK_TIMEOUT) must be a number of seconds, 0 or more",
        ),
        (
            "KVR_CACHE_MIB",
            "0",
            "--cache-mib (from the environment variable KVR_CACHE_MIB) must be at least 1",
        ),
        // With --db too, where no request is timed: the same script with
        // --server would fail.
        (
            "KVR_TIMEOUT",
            "-1",
            "--timeout (from the environment variable KVR_TIMEOUT) must be a positive number of seconds",
        ),
    ];
    for (variable, value, says) in ranges {
        let done = env.kvr(["put", "k", "v2"]).env(variable, value).code(2);
        done.stderr_has(says);
    }
    env.kvr(["--lock-timeout=-1", "put", "k", "v2"])
        .code(2)
        .stderr_has("kvr: error: --lock-timeout must be a number of seconds, 0 or more");
    for below in ["0", "0.0009", "0.0000000001"] {
        env.kvr(["--timeout", below, "get", "k"])
            .code(2)
            .stderr_has(
                "kvr: error: --timeout must be a positive number of seconds, at least 0.001",
            );
    }
    // A negative number after a space is the option's value, refused with
    // its reason, not "unexpected argument '-1'".
    env.kvr(["--timeout", "-1", "get", "k"])
        .code(2)
        .stderr_has("kvr: error: --timeout must be a positive number of seconds");
    env.kvr(["--lock-timeout", "-1", "put", "k", "v2"])
        .code(2)
        .stderr_has("kvr: error: --lock-timeout must be a number of seconds, 0 or more");
    env.kvr(["--cache-mib", "-1", "put", "k", "v2"])
        .code(2)
        .stderr_has("invalid value '-1' for '--cache-mib <MIB>'");
    // Typed as the flag, it is the flag's error, as clap words it.
    let done = env.kvr(["--timeout", "abc", "put", "k", "v2"]).code(2);
    done.stderr_has("invalid value 'abc' for '--timeout <SECS>'");
    assert_eq!(env.kvr(["get", "k"]).ok().stdout_text(), "v1");
}

/// A typed option beats its environment variable, wherever it is typed
/// (SPEC "Command line"): a stale bad value in the variable is then not
/// read at all. clap read a global option's variable again for the
/// subcommand, so `KVR_TIMEOUT=abc kvr --timeout 5 get k` was exit 2.
#[test]
fn a_typed_option_leaves_its_bad_variable_unread() {
    let env = Env::new();
    env.kvr(["put", "k", "v1"]).ok();
    let cases: [(&str, &str, &[&str]); 5] = [
        ("KVR_TIMEOUT", "abc", &["--timeout", "5", "put", "k", "v2"]),
        ("KVR_TIMEOUT", "abc", &["put", "k", "v2", "--timeout=5"]),
        (
            "KVR_CONSISTENCY",
            "fresh",
            &["--consistency", "stale", "put", "k", "v2"],
        ),
        (
            "KVR_CACHE_MIB",
            "lots",
            &["put", "--cache-mib", "64", "k", "v2"],
        ),
        (
            "KVR_LOCK_TIMEOUT",
            "-1",
            &["--lock-timeout", "0", "put", "k", "v2"],
        ),
    ];
    for (variable, value, args) in cases {
        env.kvr(args.iter().copied()).env(variable, value).ok();
        assert_eq!(env.kvr(["get", "k"]).ok().stdout_text(), "v2");
        env.kvr(["put", "k", "v1"]).ok();
    }
    // The same word after `--` is a key, not the option: the variable is
    // read, and its bad value refused with nothing written.
    env.kvr(["put", "--", "--timeout", "x"])
        .env("KVR_TIMEOUT", "abc")
        .code(2)
        .stderr_has("in the environment variable KVR_TIMEOUT");
    env.kvr(["get", "--", "--timeout"]).code(1);
    assert_eq!(env.kvr(["get", "k"]).ok().stdout_text(), "v1");
}

/// A missing argument is named on the first line, which SPEC says tells
/// what failed: clap put it on the next one, under "the following required
/// arguments were not provided:" (found by an audit). Nothing is written.
#[test]
fn a_missing_argument_is_named_on_the_first_line() {
    let env = Env::new();
    for (args, missing) in [
        (&["get"][..], "<KEY>"),
        (&["put"], "<KEY>"),
        (&["completions"], "<SHELL>"),
    ] {
        let done = env.kvr(args).code(2);
        let text = done.stderr_text();
        assert_eq!(
            text.lines().next().unwrap(),
            format!("kvr: error: the following required arguments were not provided: {missing}"),
            "{text}"
        );
        assert!(text.contains("\nUsage: kvr "), "{text}");
    }
    assert!(!env.db().exists());
}

/// Every example in a command's `--help` that needs no server runs as
/// shown, each in a directory of its own holding the keys and files the
/// examples name, with the real binary first on PATH: exit 0.
#[test]
fn help_examples_run_as_shown() {
    let bin_dir = std::path::Path::new(util::KVR).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let seed = "printf '%s\\n' '{\"key\":\"user:1\",\"value\":\"alice\"}' \
                '{\"key\":\"user:2\",\"value\":\"bob\"}' '{\"key\":\"tmp:1\",\"value\":\"x\"}' \
                '{\"key\":\"img:1\",\"value_b64\":\"iVBORw==\"}' > import.jsonl \
                && kvr batch import.jsonl 2>/dev/null \
                && kvr --db old.redb batch import.jsonl 2>/dev/null";
    let mut ran = 0;
    for command in [
        "put", "get", "delete", "range", "watch", "batch", "backup", "serve",
    ] {
        let env = Env::new();
        let help = env.kvr_bare([command, "--help"]).ok().stdout_text();
        let examples = help
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("kvr {command} --help has no examples:\n{help}"));
        for example in examples.lines().filter_map(|l| l.strip_prefix("  ")) {
            if example.contains("--server") || example.contains("kvr serve") {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = std::process::Command::new("bash");
            cmd.arg("-c")
                .arg(format!("set -eo pipefail; {seed}; {example}"))
                .current_dir(dir.path())
                .env("PATH", &path);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("KVR_") {
                    cmd.env_remove(k);
                }
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "kvr {command} --help: `{example}` failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 15, "{ran} examples ran");
}
