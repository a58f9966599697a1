#![no_main]
libfuzzer_sys::fuzz_target!(|input: certgate_fuzz::Request| certgate_fuzz::admission(&input));
