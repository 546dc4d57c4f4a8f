//! `heavylift load` and `heavylift bench` (the real binary) against an
//! in-process server.

use std::process::Command;

use crate::util::*;

fn heavylift(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run heavylift");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn load_prints_the_seed_output_and_says_fast_came_first() {
    let server = TestServer::start();
    let target = server.addr.to_string();
    let (code, out, err) = heavylift(&["load", "--target", &target, "--n", "10000"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Scheduling: http://"))
            .count(),
        23
    );
    assert!(
        lines[0].contains("/slow_threaded?id=0&n=10000"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[23], "Start sending requests....");
    let bodies = &lines[24..47];
    assert!(
        bodies[..20].iter().all(|l| l.starts_with("fast result ")),
        "{bodies:?}"
    );
    assert!(
        bodies[20..].iter().all(|l| l.starts_with("slow result ")),
        "{bodies:?}"
    );
    assert!(
        out.contains("every fast request finished before the first slow one: yes"),
        "{out}"
    );
}

#[test]
fn load_json_and_failed_requests() {
    let server = TestServer::start_with(|c| c.queue_depth = 1);
    let target = server.addr.to_string();
    // Five long jobs on one compute core with room for one waiting: some get 503.
    let (code, out, err) = heavylift(&[
        "load",
        "--target",
        &target,
        "--slow",
        "5",
        "--fast",
        "2",
        "--n",
        "20000",
        "--timeout",
        "2",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["requests"].as_array().unwrap().len(), 7);
    assert!(
        doc["summary"]["slow"]["failed"].as_u64().unwrap() >= 3,
        "{doc}"
    );
    assert_eq!(doc["summary"]["fast"]["ok"], 2);
    assert!(
        doc["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == 503),
        "{doc}"
    );
}

#[test]
fn load_and_bench_name_an_unreachable_target() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    for cmd in ["load", "bench"] {
        let (code, _, err) = heavylift(
            &[cmd, "--target", &free, "--duration", "1"][..if cmd == "load" { 3 } else { 5 }],
        );
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(
            err.contains(&free),
            "{cmd}: the message names the target: {err}"
        );
    }
    // Not the default target: a server on 127.0.0.1:8888 (a README run
    // beside the tests) would answer it.
    let (code, _, err) = heavylift(&["load", "--target", &free, "--slow-path", "elsewhere"]);
    assert_eq!(code, 2, "{err}");
}

/// A kind with no 2xx answer has no latency: `null` in the JSON and `n/a`
/// in the text, never an invented 0.
#[test]
fn bench_reports_no_latency_for_a_kind_without_2xx() {
    let server = TestServer::start();
    let target = server.addr.to_string();
    let args = [
        "bench",
        "--target",
        &target,
        "--duration",
        "1",
        "--connections",
        "1",
        "--slow-concurrency",
        "1",
        "--slow-path",
        "fail",
        "--n",
        "10",
    ];
    let (_, out, err) = heavylift(&[&args[..], &["--json"]].concat());
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(doc["slow"]["ok"], 0, "{doc}\n{err}");
    assert!(doc["slow"]["failed"].as_u64().unwrap() > 0, "{doc}");
    for field in ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(doc["slow"][field].is_null(), "slow.{field}: {doc}");
        assert!(doc["fast"][field].is_f64(), "fast.{field}: {doc}");
    }
    let (_, text, _) = heavylift(&args);
    let slow_row = text
        .lines()
        .find(|l| l.starts_with("slow "))
        .unwrap_or_else(|| panic!("a slow row: {text}"));
    assert_eq!(slow_row.matches("n/a").count(), 5, "{slow_row}");
}

#[test]
fn bench_reports_percentiles_and_draws_a_timeline() {
    let server = TestServer::start();
    let target = server.addr.to_string();
    let dir = std::env::temp_dir().join(format!("heavylift-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("run.svg");
    let (code, out, err) = heavylift(&[
        "bench",
        "--target",
        &target,
        "--duration",
        "1.5",
        "--connections",
        "4",
        "--slow-concurrency",
        "1",
        "--n",
        "300",
        "--json",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    for kind in ["fast", "slow"] {
        for field in [
            "count",
            "ok",
            "throughput_rps",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
        ] {
            assert!(!doc[kind][field].is_null(), "{kind}.{field} missing: {doc}");
        }
        assert!(doc[kind]["ok"].as_u64().unwrap() > 0, "{kind}: {doc}");
    }
    assert!(doc["fast"]["p50_ms"].as_f64().unwrap() <= doc["fast"]["max_ms"].as_f64().unwrap());
    assert!(
        doc["io_cores"][0]["requests"].as_u64().unwrap() > 0,
        "{doc}"
    );
    let picture = std::fs::read_to_string(&svg).expect("the SVG was written");
    // See: #11. The picture says its verdict and draws the p99.
    assert!(
        picture.contains(r#"<text class="verdict pass""#)
            && picture.contains("Verdict: every fast request answered, fast p99 "),
        "no verdict in the SVG"
    );
    assert!(picture.contains("while 1 slow loop kept the compute cores busy"));
    assert!(picture.contains(r#"<line class="p99""#), "no p99 line");
    assert!(
        !picture.contains("fast failures"),
        "an empty failure strip is labelled"
    );
    assert!(
        picture.starts_with("<?xml") || picture.starts_with("<svg"),
        "{}",
        &picture[..80.min(picture.len())]
    );
    let check = Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert r.tag.endswith('svg'), r.tag", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the SVG is well-formed XML: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let stats = wait_for_stats(&server, 10, identity_holds);
    assert!(identity_holds(&stats));
}

// See: #11. Off a terminal (a CI log, nohup) bench used to print nothing
// until the end.
#[test]
fn bench_off_a_terminal_prints_plain_progress_lines_unless_quiet() {
    let server = TestServer::start();
    let target = server.addr.to_string();
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--target",
            &target,
            "--duration",
            "2.5",
            "--connections",
            "2",
            "--slow-concurrency",
            "1",
            "--n",
            "300",
        ];
        args.extend_from_slice(extra);
        heavylift(&args)
    };
    // stderr is a pipe here, as in a CI log.
    let (code, out, err) = bench(&[]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("bench: ")).collect();
    assert!(!lines.is_empty(), "no progress line on stderr: {err:?}");
    assert!(lines[0].contains("req/s"), "{lines:?}");
    assert!(!err.contains('\r'), "a rewritten line in a log: {err:?}");

    let (code, out, err) = bench(&["--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !err.contains("req/s"),
        "--quiet still printed progress: {err:?}"
    );
    assert!(out.contains("fast"), "the report still comes: {out}");
}

/// `load` drives a body route: POST /gzip with a generated upload; the
/// binary answers are summed up, not printed raw.
#[test]
fn load_drives_a_body_route() {
    let server = TestServer::start();
    let target = server.addr.to_string();
    let (code, out, err) = heavylift(&[
        "load",
        "--target",
        &target,
        "--slow-path",
        "gzip",
        "--body-size",
        "200K",
        "--slow",
        "2",
        "--fast",
        "5",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Scheduling: http://") && out.contains("/gzip?id=0"),
        "{out}"
    );
    assert_eq!(out.matches(" bytes of binary body>").count(), 2, "{out}");
    let stats = server.stats();
    assert_eq!(stats["jobs"]["completed"], 2, "{stats}");
    let (code, _, err) = heavylift(&["load", "--target", &target, "--method", "post"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--method"), "{err}");
}
