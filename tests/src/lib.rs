//! End-to-end tests live in `tests/tests/system/`; this library is empty.
