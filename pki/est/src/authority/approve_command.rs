//! `--approve-command`: a command that decides each new queued request at
//! once. It reads the request (JSON) on standard input; exit status 0
//! approves, anything else (or taking over 10 s) leaves it for a person.

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use certgate_pki::enroll::audit::{Decision, Mode, Operation, Outcome};
use certgate_pki::enroll::queue::{self, Queued};

use super::{Authority, Signer};

/// How long the approval command may take; after that it is killed and the
/// request waits for a person (the requester's HTTP request is held meanwhile).
const TIMEOUT: Duration = Duration::from_secs(10);

impl Authority {
    /// Runs the approval command on a new request; its exit status 0
    /// approves it. Returns the request as it now stands.
    pub(super) fn run_approve_command(&self, signer: &Signer, request: Queued) -> Queued {
        let Some((program, args)) = self.settings.approve_command.as_ref().and_then(|c| c.split_first()) else {
            return request;
        };
        if self.makes_approver(&request, "") {
            tracing::warn!(ca = %signer.ca.name, request = %request.id, "the approval command is not asked: the request would make a new approver, which only an operator may approve (`pki requests approve`)");
            return request;
        }
        let json = serde_json::to_string(&request).unwrap_or_default();
        let run = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    // written beside the wait, so the time limit covers a
                    // command that never reads (a request over the pipe's
                    // buffer would block); it ends with the command
                    std::thread::spawn(move || {
                        let _ignored = stdin.write_all(json.as_bytes());
                    });
                }
                wait_at_most(&mut child, TIMEOUT)
            });
        let ca = &signer.ca.name;
        match run {
            Ok(status) if status.success() => match queue::approve(&signer.ca, &signer.issuer, &request.id, self.settings.days) {
                Ok((approved, issued)) => {
                    self.audit(&Decision {
                        operation: Operation::Approve,
                        ca,
                        mode: Mode::Hook,
                        requester: &approved.requester,
                        subject: &approved.subject,
                        sans: &approved.sans,
                        outcome: Outcome::Issued,
                        request: Some(&approved.id),
                        serial: Some(&issued.serial),
                        reason: None,
                    });
                    approved
                }
                Err(e) => {
                    tracing::error!(ca, request = %request.id, error = %e, "the approval command approved, but signing failed");
                    request
                }
            },
            Ok(status) => {
                tracing::info!(ca, request = %request.id, %status, "the approval command left the request for a person");
                request
            }
            Err(e) => {
                tracing::error!(ca, request = %request.id, error = %e, "the approval command did not run");
                request
            }
        }
    }
}

/// The child's exit status, or an error once `limit` has passed (it is killed).
fn wait_at_most(child: &mut Child, limit: Duration) -> std::io::Result<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() > limit {
            let _killed = child.kill();
            let _reaped = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("it took over {} s and was killed", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::wait_at_most;
    use std::time::Duration;

    #[test]
    fn an_approval_command_that_hangs_is_killed_and_decides_nothing() {
        let mut slow = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let started = std::time::Instant::now();
        let err = wait_at_most(&mut slow, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        assert!(wait_at_most(&mut quick, Duration::from_secs(5)).unwrap().success());
    }
}
