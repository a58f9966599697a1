//! The tutorial pages (`docs/src/tutorials/`) as a person follows them: every
//! shell block of a page, in order, typed into one bash session in a scratch
//! directory that is also `$HOME`, with the `certgate` `./dev test` built and
//! the project's venv (Flask, gunicorn, requests) on the `PATH`. What a block
//! prints must be what the page shows when it follows the block with its
//! output (```` ```text output ````), line by line, trailing spaces aside.
//!
//! How a page says what a person would do that a script cannot see:
//! - a command that asks at the terminal (a password) is in a block fenced
//!   ```` ```sh tty ````: it runs on a pseudo-terminal and the runner types
//!   [`TYPED`] at each prompt once it shows ([`TYPIST`]);
//! - a server started in the background (`... &`) names its address
//!   (`--listen` or `--bind`): the next block waits until it accepts
//!   connections, as a person would wait for it to start;
//! - the pages' fixed ports (`localhost:8443`, `127.0.0.1:8000`, ...) become
//!   free ones, so the pages run beside every other test.

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certgate_test_support::book::{blocks, Block};
use common::envoy::free_port;
use common::{repo, TempDir};

/// What the runner types at a `sh tty` block's prompts.
const TYPED: &str = "certgate-tutorial";

/// Runs a command on a pseudo-terminal and types `argv[1]` at each password
/// prompt, as a person would: once the prompt shows (output ending in `:` and
/// a space) *and* the program has turned the terminal's echo off. Programs
/// print the prompt first and then turn echo off with `tcsetattr(TCSAFLUSH)`,
/// which discards whatever was typed in between (NSS's `pk12util` does):
/// typing as soon as the prompt shows loses the text whenever the program is
/// descheduled between the two, and it then waits forever. Exits with the
/// command's status.
const TYPIST: &str = r#"
import os, pty, select, sys, termios, time
typed, command = sys.argv[1].encode() + b"\n", sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("bash", ["bash", command])
seen, prompted, last = b"", False, time.monotonic()
while True:
    # while a prompt waits for echo to go off, look at the terminal often
    ready, _, _ = select.select([fd], [], [], 0.01 if prompted else 30)
    if ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
        seen, last = seen + chunk, time.monotonic()
        prompted = seen.rstrip(b" ").endswith(b":") and seen.endswith(b" ")
    elif not prompted:
        sys.exit("no prompt and no output for 30 s: " + seen[-200:].decode(errors="replace"))
    if prompted:
        # the pty master reads the terminal's own settings
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            os.write(fd, typed)
            seen, prompted = b"", False
        elif time.monotonic() - last > 30:
            sys.exit("a prompt, but the terminal still echoes after 30 s (not a password prompt?): "
                     + seen[-200:].decode(errors="replace"))
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// The tutorial pages this file runs, each by its own test below.
const PAGES: [&str; 6] = [
    "from-nothing.md",
    "gunicorn.md",
    "nginx.md",
    "browsers.md",
    "enrollment.md",
    "registration.md",
];

#[test]
fn every_tutorial_page_is_run() {
    let mut found: Vec<String> = std::fs::read_dir(repo().join("docs/src/tutorials"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    found.sort();
    let mut listed = PAGES.map(str::to_owned).to_vec();
    listed.sort();
    assert_eq!(
        found, listed,
        "a tutorial page without its test in tests/tests/system/tutorials.rs, or the other way round"
    );
}

#[test]
fn from_nothing_to_a_protected_service() {
    run_page("from-nothing.md");
}

#[test]
fn migrating_the_gunicorn_application() {
    run_page("gunicorn.md");
}

#[test]
fn nginx_optional_client_certificates() {
    run_page("nginx.md");
}

#[test]
fn browsers_with_a_pkcs12() {
    run_page("browsers.md");
}

#[test]
fn enrollment_over_est() {
    run_page("enrollment.md");
}

#[test]
fn registering_in_a_browser() {
    run_page("registration.md");
}

/// The registration page's screenshots: every one the page shows is in
/// docs/src/images/registration (`./dev docs` copies them from the
/// registration tests' run), a PNG; and every one there is shown.
#[test]
fn the_registration_page_shows_the_screenshots_the_tests_took() {
    let page = std::fs::read_to_string(repo().join("docs/src/tutorials/registration.md")).unwrap();
    let dir = repo().join("docs/src/images/registration");
    let shown: std::collections::BTreeSet<String> = page
        .split("](../images/registration/")
        .skip(1)
        .map(|rest| rest.split(')').next().unwrap().to_owned())
        .collect();
    assert!(shown.len() >= 10, "{shown:?}");
    for name in &shown {
        let png = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e} (run the registration tests, then ./dev docs)"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000, "{name} is a screenshot");
    }
    let there: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(there, shown, "docs/src/images/registration holds what the page shows");
}

/// The page's fixed `localhost:`/`127.0.0.1:` ports, each mapped to a free one.
fn with_free_ports(text: &str) -> String {
    let mut ports = BTreeMap::new();
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = ["localhost:", "127.0.0.1:"]
        .iter()
        .filter_map(|h| rest.find(h).map(|i| i + h.len()))
        .min()
    {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits >= 4 {
            let port: u16 = rest[..digits].parse().unwrap();
            out.push_str(&ports.entry(port).or_insert_with(free_port).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// The addresses a block's background commands listen on.
fn background_addresses(block: &Block) -> Vec<(String, String)> {
    let logical = block.body.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in logical
        .lines()
        .filter(|l| l.split('#').next().unwrap_or("").trim_end().ends_with('&'))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let addr = words.windows(2).find(|w| w[0] == "--listen" || w[0] == "--bind").map(|w| w[1]);
        let addr = addr.unwrap_or_else(|| {
            panic!(
                "line {}: a background command must name its address (--listen or --bind): {line}",
                block.line
            )
        });
        let (host, port) = addr.rsplit_once(':').unwrap();
        out.push((host.to_owned(), port.to_owned()));
    }
    out
}

/// Runs a tutorial page's shell blocks and compares what they print.
fn run_page(name: &str) {
    let page = repo().join("docs/src/tutorials").join(name);
    let all = blocks(&with_free_ports(&std::fs::read_to_string(&page).unwrap()));
    let home = TempDir::new("tutorial").unwrap();
    let runner = home.0.join(".runner");
    std::fs::create_dir_all(&runner).unwrap();
    std::fs::write(runner.join("typist.py"), TYPIST).unwrap();

    // one script, the blocks in order, each followed by its mark on stdout
    let mut script = String::from(
        "set -eo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n\
         wait_for() { for _ in $(seq 300); do (exec 3<>\"/dev/tcp/$1/$2\") 2>/dev/null && return; sleep 0.1; done; echo \"nothing listens on $1:$2\" >&2; exit 1; }\n",
    );
    let (mut shown, mut ttys) = (Vec::new(), 0);
    let sh: Vec<(usize, &Block)> = all
        .iter()
        .enumerate()
        .filter(|(_, b)| b.info == "sh" || b.info == "sh tty")
        .collect();
    assert!(!sh.is_empty(), "{name}: a tutorial with no shell block");
    for (n, (i, b)) in sh.iter().enumerate() {
        if b.info == "sh tty" {
            ttys += 1;
            let file = runner.join(format!("block-{n}.sh"));
            std::fs::write(&file, &b.body).unwrap();
            script.push_str(&format!(
                "python3 {} {TYPED} {} > {}\n",
                runner.join("typist.py").display(),
                file.display(),
                runner.join(format!("block-{n}.tty")).display()
            ));
        } else {
            script.push_str(&b.body);
        }
        script.push_str(&format!("printf '\\036{n}\\036'\n"));
        for (host, port) in background_addresses(b) {
            script.push_str(&format!("wait_for {host} {port}\n"));
        }
        if let Some(next) = all.get(i + 1).filter(|next| next.info == "text output") {
            assert!(b.info == "sh", "{name}:{}: a `sh tty` block's output is not compared", b.line);
            shown.push((n, b.line, next.body.clone()));
        }
    }
    std::fs::write(runner.join("page.sh"), &script).unwrap();

    let path = format!(
        "{}:{}:{}",
        repo().join("target/debug").display(),
        repo().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (stdout, stderr) = (runner.join("stdout"), runner.join("stderr"));
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new("bash")
            .arg(runner.join("page.sh"))
            .current_dir(&home.0)
            .env("HOME", &home.0)
            .env("PATH", path)
            .env_remove("CERTGATE_PKI")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // whatever the page left running
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let printed = std::fs::read_to_string(&stdout).unwrap();
    let errors = std::fs::read_to_string(&stderr).unwrap();
    let parts: Vec<&str> = printed.split('\u{1e}').collect();
    // parts: output of block 0, "0", output of block 1, "1", ...
    let done = parts.len() / 2;
    let stopped = sh
        .get(done)
        .map_or(String::new(), |(_, b)| format!(" at the block of line {}", b.line));
    assert!(
        status.is_some_and(|s| s.success()),
        "{name}: the commands stopped{stopped} ({status:?}):\n{errors}"
    );
    assert_eq!(done, sh.len(), "{name}: {done} of {} blocks ran:\n{errors}", sh.len());
    // line by line as a reader sees them: trailing spaces aside
    let lines = |text: &str| text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
    for (n, line, want) in &shown {
        assert_eq!(
            lines(parts[2 * n]),
            lines(want),
            "{name}:{line}: printed otherwise than the page shows\n{errors}"
        );
    }
    eprintln!(
        "{name}: {} shell blocks run ({ttys} on a terminal), {} outputs compared",
        sh.len(),
        shown.len()
    );
    assert!(!shown.is_empty(), "{name}: the page shows no output to compare");
}

/// The typist against a program that does what `pk12util` does, slowly: it
/// prints its prompt, waits, then turns echo off with `TCSAFLUSH` (which
/// drops what was typed before) and reads. Typing at the prompt alone loses
/// the text every time here; the typist must wait for echo to go off.
#[test]
fn the_typist_types_a_password_once_the_prompt_turned_echo_off() {
    let dir = TempDir::new("typist").unwrap();
    std::fs::write(dir.0.join("typist.py"), TYPIST).unwrap();
    let prompter = r#"
import sys, termios, time
print("Enter password for PKCS12 file: ", end="", flush=True)
time.sleep(0.5)
attrs = termios.tcgetattr(0)
attrs[3] &= ~termios.ECHO
termios.tcsetattr(0, termios.TCSAFLUSH, attrs)
line = sys.stdin.readline().strip()
attrs[3] |= termios.ECHO
termios.tcsetattr(0, termios.TCSANOW, attrs)
print("\nread:" + line)
"#;
    std::fs::write(dir.0.join("prompter.py"), prompter).unwrap();
    std::fs::write(dir.0.join("block.sh"), "python3 prompter.py\n").unwrap();
    let out = Command::new("python3")
        .arg(dir.0.join("typist.py"))
        .args([TYPED, "block.sh"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("read:{TYPED}")), "{stdout}");
}
