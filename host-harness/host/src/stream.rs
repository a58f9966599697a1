//! Envoy's stream semantics between callbacks: after a callback (or an HTTP
//! call's response), does the stream go on, wait, stay held, or end with the
//! filter's local reply; and which body the filter held goes on with it. The
//! edge only moves bytes between sockets by these answers.

use crate::plugin::{Action, Plugin};
use certgate_wire::Pairs;

/// What a callback leaves the stream in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The filter sent a local reply.
    Reply(crate::state::LocalResponse),
    /// The stream goes on: the callback continued, or the filter resumed it.
    Go,
    /// Paused, waiting for HTTP calls the stream made.
    Wait,
    /// Paused with nothing outstanding: only a later callback can resume it.
    Held,
}

/// Which half of the stream a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// The request (`continue_stream(Request)` resumes it).
    Request,
    /// The response.
    Response,
}

/// One half's headers and trailers, as the filter left them.
pub type HalfHeaders = (Pairs, Pairs);

/// Where a callback left a stream, and the body that goes on with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where the callback left the stream.
    pub verdict: Verdict,
    /// On [`Verdict::Go`]: the body the filter held, now passed on.
    pub body: Vec<u8>,
}

impl Plugin {
    /// Where stream `id` stands after a callback returned `action` (`Pause`
    /// after one of its HTTP calls came back), with `pending` calls of it
    /// still outstanding; and on [`Verdict::Go`] the body that goes on.
    pub fn settle(&mut self, id: u32, action: Action, half: Half, pending: usize) -> Step {
        let verdict = self.verdict(id, action, half, pending);
        let body = match (&verdict, half) {
            (Verdict::Go, Half::Request) => self.take_request_body(id),
            (Verdict::Go, Half::Response) => self.take_response_body(id),
            _ => Vec::new(),
        };
        Step { verdict, body }
    }

    fn verdict(&mut self, id: u32, action: Action, half: Half, pending: usize) -> Verdict {
        let Some(state) = self.stream_state_mut(id) else {
            return Verdict::Held;
        };
        if let Some(local) = state.local_response.take() {
            return Verdict::Reply(local);
        }
        let resumed = match half {
            Half::Request => std::mem::take(&mut state.resume_request),
            Half::Response => std::mem::take(&mut state.resume_response),
        };
        if action == Action::Continue || resumed {
            Verdict::Go
        } else if pending > 0 {
            Verdict::Wait
        } else {
            Verdict::Held
        }
    }

    /// One half's headers and trailers as the filter left them.
    pub fn snapshot(&self, id: u32, half: Half) -> Option<HalfHeaders> {
        let state = self.stream_state(id)?;
        Some(match half {
            Half::Request => (state.request_headers.clone(), state.request_trailers.clone()),
            Half::Response => (state.response_headers.clone(), state.response_trailers.clone()),
        })
    }
}
