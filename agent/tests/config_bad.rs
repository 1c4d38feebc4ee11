//! The bad-configuration table: every row is a file the agent must refuse before anything
//! starts: exit 78, the key and its line in the message, and no state directory created.

use std::path::Path;
use std::process::Command;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

/// One case: what the file says (after a `[sensor]` table that sets the state directory)
/// and which key on which line the agent must name.
struct Case {
    name: &'static str,
    text: String,
    key: &'static str,
    line: usize,
}

/// A case whose text is top-level keys: it goes before `[sensor]`, from line 1.
fn top(name: &'static str, text: &str, key: &'static str, line: usize) -> Case {
    case(name, &format!("{text}# top\n"), key, line)
}

fn case(name: &'static str, text: &str, key: &'static str, line: usize) -> Case {
    Case {
        name,
        text: text.to_owned(),
        key,
        line,
    }
}

/// `[elasticsearch]` on line 3 with a good URL, then `rest` from line 5 on.
fn es(name: &'static str, rest: &str, key: &'static str, line: usize) -> Case {
    case(
        name,
        &format!("[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\n{rest}"),
        key,
        line,
    )
}

#[test]
fn every_bad_value_is_exit_78_naming_key_and_line_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-pem.crt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let missing = dir.path().join("missing");
    let cases = vec![
        case(
            "a huge window",
            "[window]\nsize = 1000000000000\n",
            "window.size",
            4,
        ),
        case("window size 0", "[window]\nsize = 0\n", "window.size", 4),
        top("a dotted key", "window.size = 100000\n", "window.size", 1),
        top(
            "an inline table",
            "\nwindow = { size = 10, hop = 20 }\n",
            "window.hop",
            2,
        ),
        case(
            "hop above size",
            "[window]\nsize = 10\n\nhop = 20\n",
            "window.hop",
            6,
        ),
        case(
            "memory that wraps on armv7",
            "[function]\nmax_memory_mib = 4096\n",
            "function.max_memory_mib",
            4,
        ),
        case(
            "fuel 0",
            "[function]\nfuel_per_call = 0\n",
            "function.fuel_per_call",
            4,
        ),
        case("spool 0", "[spool]\nmax_mib = 0\n", "spool.max_mib", 4),
        case("output 0", "[output]\nmax_mib = 0\n", "output.max_mib", 4),
        case(
            "a spool path naming a folder",
            &format!("[spool]\npath = \"{}\"\n", dir.path().display()),
            "spool.path",
            4,
        ),
        case(
            "a spool path ending in a slash",
            "[spool]\npath = \"/tmp/no-such-spool-dir/\"\n",
            "spool.path",
            4,
        ),
        case(
            "an empty spool path",
            "[spool]\npath = \"\"\n",
            "spool.path",
            4,
        ),
        // An empty path is no file: every verdict would fail its write (`output.path`,
        // the only copy without an upstream) while the agent ran on and exited 0.
        case(
            "an empty output path",
            "[output]\npath = \"\"\n",
            "output.path",
            4,
        ),
        es(
            "an empty dead-letter path",
            "dead_letter_path = \"\"\n",
            "elasticsearch.dead_letter_path",
            5,
        ),
        case("an unknown key", "[spool]\nmax_mb = 3\n", "spool.max_mb", 4),
        case(
            "a wrong type",
            "[spool]\nmax_mib = \"big\"\n",
            "spool.max_mib",
            4,
        ),
        case(
            "a bad listen address",
            "[metrics]\nlisten = \"localhost\"\n",
            "metrics.listen",
            4,
        ),
        top(
            "an inline upstream without a host",
            "elasticsearch = { url = \"http://\" }\n",
            "elasticsearch.url",
            1,
        ),
        case(
            "url http://",
            "[elasticsearch]\nurl = \"http://\"\n",
            "elasticsearch.url",
            4,
        ),
        case(
            "a host with a space",
            "[elasticsearch]\nurl = \"http://es host:9200\"\n",
            "elasticsearch.url",
            4,
        ),
        case(
            "port 99999",
            "[elasticsearch]\nurl = \"http://127.0.0.1:99999\"\n",
            "elasticsearch.url",
            4,
        ),
        case(
            "not http",
            "[elasticsearch]\nurl = \"ftp://127.0.0.1\"\n",
            "elasticsearch.url",
            4,
        ),
        es(
            "an uppercase index",
            "index = \"Edge\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with a space",
            "index = \"a b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with #",
            "index = \"a#b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with /",
            "index = \"a/b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with ,",
            "index = \"a,b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with ?",
            "index = \"a?b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with \\",
            "index = \"a\\\\b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with *",
            "index = \"a*b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with <",
            "index = \"a<b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with |",
            "index = \"a|b\"\n",
            "elasticsearch.index",
            5,
        ),
        es(
            "an index with \"",
            "index = 'a\"b'\n",
            "elasticsearch.index",
            5,
        ),
        es("index ..", "index = \"..\"\n", "elasticsearch.index", 5),
        es("index .", "index = \".\"\n", "elasticsearch.index", 5),
        es("index _x", "index = \"_x\"\n", "elasticsearch.index", 5),
        Case {
            name: "an index of 256 bytes",
            text: format!(
                "[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\nindex = \"{}\"\n",
                "a".repeat(256)
            ),
            key: "elasticsearch.index",
            line: 5,
        },
        es(
            "batch_max_bytes 0",
            "batch_max_docs = 10\nbatch_max_bytes = 0\n",
            "elasticsearch.batch_max_bytes",
            6,
        ),
        es(
            "batch_max_docs 0",
            "batch_max_docs = 0\n",
            "elasticsearch.batch_max_docs",
            5,
        ),
        es(
            "timeout 0",
            "timeout_ms = 0\n",
            "elasticsearch.timeout_ms",
            5,
        ),
        es(
            "retry max below initial",
            "retry_initial_ms = 500\nretry_max_ms = 100\n",
            "elasticsearch.retry_max_ms",
            6,
        ),
        es(
            "a missing password file",
            &format!(
                "username = \"u\"\npassword_file = \"{}\"\n",
                missing.join("pw").display()
            ),
            "elasticsearch.password_file",
            6,
        ),
        es(
            "a missing API-key file",
            &format!("api_key_file = \"{}\"\n", missing.join("key").display()),
            "elasticsearch.api_key_file",
            5,
        ),
        es(
            "a missing CA file",
            &format!("ca_file = \"{}\"\n", missing.join("ca.crt").display()),
            "elasticsearch.ca_file",
            5,
        ),
        es(
            "a CA file that is not PEM",
            &format!("ca_file = \"{}\"\n", not_pem.display()),
            "elasticsearch.ca_file",
            5,
        ),
        es(
            "a dead-letter folder that is missing",
            &format!(
                "dead_letter_path = \"{}\"\n",
                missing.join("dead.ndjson").display()
            ),
            "elasticsearch.dead_letter_path",
            5,
        ),
        es(
            "a password without a user",
            "password = \"p\"\n",
            "elasticsearch.password",
            5,
        ),
        es(
            "dead-letter bound 0",
            "dead_letter_max_mib = 0\n",
            "elasticsearch.dead_letter_max_mib",
            5,
        ),
    ];
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let case_dir = dir.path().join(format!("case-{n}"));
        std::fs::create_dir(&case_dir).unwrap();
        let state = case_dir.join("state");
        let config = case_dir.join("agent.toml");
        // Line 1-2: the state directory; the case's text starts on line 3 (top-level
        // keys before it, from line 1).
        let sensor = format!("[sensor]\nstate_dir = \"{}\"\n", state.display());
        let text = match case.text.strip_suffix("# top\n") {
            Some(top) => format!("{top}{sensor}"),
            None => format!("{sensor}{}", case.text),
        };
        std::fs::write(&config, text).unwrap();
        let output = Command::new(binary())
            .args(["run", "--simulate", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let wanted_line = format!("line {}:", case.line);
        let ok = output.status.code() == Some(78)
            && stderr.contains(&format!("`{}`", case.key))
            && (case.line == 0 || stderr.contains(&wanted_line))
            && !state.exists();
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, state created: {}, stderr: {stderr}",
                case.name,
                output.status.code(),
                state.exists()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_output_whose_folder_is_missing_is_a_configuration_error_too() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("[sensor]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap();
    let output = Command::new(binary())
        .args(["run", "--simulate", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(dir.path().join("no/such/dir/out.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("`output.path`"), "{stderr}");
    assert!(!state.exists());
}

#[test]
fn a_config_path_that_is_no_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("agent.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // A FIFO nobody writes to, and a device that never ends: neither is read.
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let out = Command::new(binary())
            .args(["run", "--simulate", "--config"])
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{}", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
}

#[test]
fn an_empty_state_directory_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for (state_dir, why) in [("", "empty"), (file.to_str().unwrap(), "names a file")] {
        std::fs::write(
            &config,
            format!("[agent]\nsensor_id = \"s\"\n[sensor]\nstate_dir = \"{state_dir}\"\n"),
        )
        .unwrap();
        let output = Command::new(binary())
            .args(["run", "--simulate", "--config"])
            .arg(&config)
            .current_dir(&cwd)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{why}: {stderr}");
        assert!(stderr.contains("`sensor.state_dir`"), "{why}: {stderr}");
        assert!(stderr.contains("line 4:"), "{why}: {stderr}");
        assert_eq!(
            std::fs::read_dir(&cwd).unwrap().count(),
            0,
            "{why}: wrote in the cwd"
        );
    }
}
