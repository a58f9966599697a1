//! What operators reach for besides `--help`: shell completions that load
//! in bash and parse in zsh and fish, and man pages, one per subcommand,
//! that man(1) renders. Both come from the command's own clap definition.

use crate::common;

use std::process::Command;

use common::{certgate, TempDir};

/// The subcommands `certgate --help` lists (besides `help`).
fn subcommands(args: &[&str]) -> Vec<String> {
    let out = certgate().args(args).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section")
        .split("\n\n")
        .next()
        .unwrap();
    list.lines()
        .filter_map(|l| l.strip_prefix("  ").and_then(|l| l.split_whitespace().next()))
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

fn completion(shell: &str, dir: &TempDir) -> std::path::PathBuf {
    let out = certgate().args(["completions", shell]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.len() > 1_000, "{shell}: {} bytes", out.stdout.len());
    let path = dir.0.join(format!("certgate.{shell}"));
    std::fs::write(&path, out.stdout).unwrap();
    path
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    let dir = TempDir::new("completions").unwrap();
    let script = completion("bash", &dir);
    // as bash calls a completion function: the words so far and the
    // cursor's index; its arguments the command, the word, the one before
    let complete = |words: &str, cword: usize| {
        let line = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _certgate certgate \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$((COMP_CWORD-1))]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash").args(["-c", &line]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let all = complete("certgate ''", 1);
    for sub in subcommands(&[]) {
        assert!(all.lines().any(|l| l == sub), "bash does not offer `{sub}`: {all}");
    }
    assert_eq!(complete("certgate pk", 1).trim(), "pki");
    let serve = complete("certgate serve --pol", 2);
    assert!(serve.lines().any(|l| l == "--policy"), "{serve}");
    let registered = Command::new("bash")
        .args(["-c", &format!("source {}; complete -p certgate", script.display())])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&registered.stdout).contains("_certgate"));
}

#[test]
fn fish_completes_subcommands_and_zsh_parses_its_script() {
    let dir = TempDir::new("completions").unwrap();
    let fish = completion("fish", &dir);
    let complete = |line: &str| {
        let cmd = format!("source {}; complete -C '{line}'", fish.display());
        let out = Command::new("fish")
            .args(["-c", &cmd])
            .output()
            .unwrap_or_else(|e| panic!("fish: {e} (./dev test installs it)"));
        assert!(out.status.success(), "fish: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let all = complete("certgate ");
    for sub in subcommands(&[]) {
        assert!(
            all.lines().any(|l| l.split('\t').next() == Some(sub.as_str())),
            "fish does not offer `{sub}`: {all}"
        );
    }
    assert!(complete("certgate serve --pol").lines().any(|l| l.starts_with("--policy")));
    let zsh = completion("zsh", &dir);
    let out = Command::new("zsh")
        .arg("-n")
        .arg(&zsh)
        .output()
        .unwrap_or_else(|e| panic!("zsh: {e} (./dev test installs it)"));
    assert!(out.status.success(), "zsh: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&zsh).unwrap().starts_with("#compdef certgate"));
}

#[test]
fn man_pages_cover_every_subcommand_and_render() {
    let dir = TempDir::new("man").unwrap();
    let out = certgate().args(["man", "--out"]).arg(&dir.0).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pages = vec!["certgate".to_owned()];
    pages.extend(subcommands(&[]).into_iter().map(|s| format!("certgate-{s}")));
    pages.extend(subcommands(&["pki"]).into_iter().map(|s| format!("certgate-pki-{s}")));
    for page in &pages {
        let path = dir.0.join(format!("{page}.1"));
        assert!(path.is_file(), "{page}.1 missing");
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(rendered.status.success() && text.contains("NAME"), "{page}: {text}");
    }
    let main = Command::new("man")
        .arg("-l")
        .arg(dir.0.join("certgate.1"))
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    let main = String::from_utf8_lossy(&main.stdout);
    assert!(main.contains("Admit HTTP requests by their TLS client certificate"), "{main}");
    assert!(
        main.contains("certgate-serve(1)"),
        "the main page names the subcommands' pages: {main}"
    );
}
