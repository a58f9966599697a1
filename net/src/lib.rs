//! What every server certgate runs shares, so each is held to the edge's
//! standards: a cap on connections and a backoff when accepting fails
//! (`accept`), timeouts for a handshake, a request's headers, a kept-alive
//! connection and a request's body (`limits`, `conn`, `body`), a lingering
//! close so a refused client still reads its answer (`conn`), and a bounded
//! drain at shutdown (`serve`).
#![warn(missing_docs)]

pub mod accept;
pub mod body;
pub mod conn;
pub mod limits;
pub mod serve;

pub use accept::{Acceptor, Slot};
pub use body::{discard_body, read_body, BodyError};
pub use conn::{Guarded, Phase};
pub use limits::Limits;
pub use serve::{serve_http1, Stopping};
