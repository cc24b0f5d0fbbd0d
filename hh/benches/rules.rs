//! Decision time at 10, 100, 1,000 and 10,000 rules: the compiled index against the naive
//! linear scan, in the same run. `cargo xtask bench rules` runs this and prints the table.
//!
//! Target: at most 1 µs per decision at 1,000 rules.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hh::rules::{Action, Layer, LayerRules, Policy, Request, Rule, Verdict};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// `n` rules in two layers, every tenth a deny, mixing exact hosts, subdomain patterns, methods,
/// paths and ports the way real rule files do.
fn policy(n: usize) -> Policy {
    let mut global = LayerRules::new(Layer::Global, "global.toml");
    let mut workspace = LayerRules::new(Layer::Workspace, "harness-rules.toml");
    for k in 0..n {
        let text = match k % 4 {
            0 => format!("domain=host{k}.example.com"),
            1 => format!("domain=*.svc{k}.example.org port=443"),
            2 => format!("method=GET,POST domain=api{k}.example.net path=/v1/*,/v2/items/*"),
            _ => format!("domain=*.cdn{k}.example.io path=/static/*"),
        };
        let rule = Rule::parse(&text).expect("valid rule");
        let (layer, action) = match k % 10 {
            0 => (&mut global, Action::Deny),
            9 => (&mut workspace, Action::Deny),
            _ => (&mut workspace, Action::Allow),
        };
        layer.push(action, rule, text);
    }
    Policy::new(vec![global, workspace])
}

/// 64 requests: hits on every kind of rule, deep subdomains, path misses and unknown hosts.
fn requests(n: usize) -> Vec<Request> {
    (0..64)
        .map(|i| {
            let k = (i * 7919) % n;
            let url = match i % 8 {
                0 => format!("https://host{}.example.com/", k - k % 4),
                1 => format!("https://a.b.svc{}.example.org/x", k - k % 4 + 1),
                2 => format!("https://api{}.example.net/v2/items/3", k - k % 4 + 2),
                3 => format!("https://api{}.example.net/v3/nope", k - k % 4 + 2),
                4 => format!(
                    "https://img.cdn{}.example.io/static/a.png?v=1",
                    k - k % 4 + 3
                ),
                5 => "https://unknown.example.com/".to_string(),
                6 => "https://very.deep.name.under.an.unknown.example.io/a/b/../c".to_string(),
                _ => format!("http://host{}.example.com:8080/", k - k % 4),
            };
            Request::from_url(if i % 3 == 0 { "POST" } else { "GET" }, &url).expect("valid URL")
        })
        .collect()
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in SIZES {
        let policy = policy(n);
        let requests = requests(n);
        // Same verdicts both ways, and not all asks.
        let verdicts: Vec<Verdict> = requests.iter().map(|r| policy.decide(r).verdict).collect();
        let scanned: Vec<Verdict> = requests
            .iter()
            .map(|r| policy.decide_by_scan(r).verdict)
            .collect();
        assert_eq!(verdicts, scanned, "index and scan disagree at {n} rules");
        assert!(verdicts.contains(&Verdict::Allow) && verdicts.contains(&Verdict::Deny));

        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("indexed", n), &policy, |b, policy| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                black_box(policy.decide(black_box(&requests[i])).verdict)
            });
        });
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("naive", n), &policy, |b, policy| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                black_box(policy.decide_by_scan(black_box(&requests[i])).verdict)
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = decide
}
criterion_main!(benches);
