//! The URL canonicalizer never panics; canonicalizing twice changes nothing; no path reading
//! climbs above `/` or keeps a dot segment or an empty one.
#![no_main]

use hh::rules::{Host, NormPath, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(host) = Host::parse(text) {
        assert_eq!(Host::parse(host.as_str()).as_ref(), Ok(&host), "{text:?}");
    }
    if let Ok(path) = NormPath::parse(text) {
        for reading in path.readings() {
            assert!(reading.starts_with('/'), "{text:?} -> {reading:?}");
            assert!(!reading.contains("//"), "{text:?} -> {reading:?}");
            assert!(
                reading.split('/').all(|s| s != "." && s != ".."),
                "{text:?} -> {reading:?}"
            );
        }
        let again = NormPath::parse(path.as_str()).expect("a canonical path parses");
        assert_eq!(again.as_str(), path.as_str(), "{text:?}");
    }
    if let Ok(request) = Request::from_url("GET", text) {
        assert_eq!(
            Host::parse(request.host.as_str()).as_ref(),
            Ok(&request.host),
            "{text:?}"
        );
        let http = request.http.expect("from_url makes an HTTP request");
        let again = NormPath::parse(http.path.as_str()).expect("a canonical path parses");
        assert_eq!(again.as_str(), http.path.as_str(), "{text:?}");
    }
});
