//! The rule parser never panics, and what it accepts prints to text that parses back to the
//! same rule.
#![no_main]

use hh::rules::Rule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(rule) = Rule::parse(text) {
        let printed = rule.to_string();
        assert_eq!(
            Rule::parse(&printed).as_ref(),
            Ok(&rule),
            "{text:?} printed as {printed:?}"
        );
    }
});
