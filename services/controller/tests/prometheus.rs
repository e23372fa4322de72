//! The monitoring assets of `k8s/monitoring/` against a real Prometheus
//! (Debian's `prometheus`, installed by `scripts/setup`) scraping a real
//! `trawl-controller` every second:
//!
//! * tasks sit in the queue (a crawl and an on-demand scan, no scanner), and
//!   Prometheus ends up with the same `trawl_task_stream_depth` as the
//!   controller's `/api/v1/queue`;
//! * Prometheus loads `alerts.yaml` as a rule file, evaluates every rule
//!   without error, and `TrawlQueueNotDraining` goes pending on the stuck
//!   queue;
//! * every PromQL expression of the Grafana dashboard and of the alerts runs
//!   through `/api/v1/query` without an error (a parse error is
//!   `status: error, errorType: bad_data`).

mod common;

use common::{push_numbered, Stack};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use trawl_testkit::ServiceProcess;

/// Every metric of the controller's side of the contract in docs/monitoring.md.
const CONTROLLER_METRICS: &[&str] = &[
    "trawl_task_stream_depth",
    "trawl_tasks_pending",
    "trawl_tasks_in_flight",
    "trawl_task_queue_depth",
    "trawl_tasks_published_total",
    "trawl_results_stored_total",
    "trawl_results_repeated_total",
    "trawl_results_rejected_total",
    "trawl_tasks_reaped_total",
    "trawl_dead_letters",
    "trawl_results_pending",
    "trawl_images",
    "trawl_scanners_desired",
    "trawl_scanners_current",
    "trawl_scanners_ready",
    "trawl_scanners_live",
    "trawl_scaling_events_total",
    "trawl_autoscale_overridden",
    "trawl_autoscale_strategy",
    "trawl_controller_leader",
    "trawl_vulndb_version",
    "trawl_vulndb_age_seconds",
];

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s/monitoring")
}

/// The `prometheus` binary on PATH; CI installs it through scripts/setup.
fn prometheus_binary() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .unwrap_or_else(|| {
            panic!(
                "`prometheus` is not on PATH: run scripts/setup (it installs Debian's `prometheus` package, \
                 with promtool), or `apt-get install --no-install-recommends prometheus`"
            )
        })
}

/// A Prometheus server on a loopback port, with its configuration and TSDB in `dir`.
struct Prometheus {
    process: ServiceProcess,
    url: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second with `rules` loaded, and
    /// waits for `/-/ready`. Retries on another port if the chosen one was taken meanwhile.
    fn start(dir: &Path, target: &str, rules: &Path) -> Prometheus {
        let binary = prometheus_binary();
        let config = dir.join("prometheus.yml");
        // JSON is YAML: the paths need no escaping of our own.
        let text = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules],
            "scrape_configs": [{"job_name": "trawl-controller", "static_configs": [{"targets": [target]}]}],
        });
        std::fs::write(&config, text.to_string()).unwrap();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = trawl_testkit::free_port().unwrap();
            let mut cmd = Command::new(&binary);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join(format!("tsdb-{attempt}")).display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn");
            let log = dir.join("prometheus.log");
            let mut process = ServiceProcess::spawn("prometheus", cmd, &log).unwrap();
            match process.wait_http_ok(([127, 0, 0, 1], port).into(), "/-/ready") {
                Ok(()) => {
                    return Prometheus {
                        process,
                        url: format!("http://127.0.0.1:{port}"),
                        http: reqwest::Client::new(),
                    }
                }
                Err(e) if attempt < 3 && e.to_string().contains("address already in use") => continue,
                Err(e) => panic!("Prometheus did not start: {e:#}"),
            }
        }
    }

    /// `GET path` as JSON. Prometheus answers errors (400 for a parse error) with a JSON body too.
    async fn get(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
        let status = r.status();
        let body = r.bytes().await.unwrap();
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: HTTP {status}, not JSON ({e}): {}", String::from_utf8_lossy(&body)))
    }

    /// An instant query: the whole answer (`status`, `data` or `errorType` and `error`).
    async fn query(&self, expr: &str) -> Value {
        self.get(&format!("/api/v1/query?query={}", percent_encode(expr))).await
    }

    /// The instant vector of `expr` as (labels, value) pairs; panics on an error.
    async fn vector(&self, expr: &str) -> Vec<(Value, f64)> {
        let answer = self.query(expr).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{expr}: not a vector: {answer}"))
            .iter()
            .map(|s| (s["metric"].clone(), s["value"][1].as_str().unwrap().parse::<f64>().unwrap()))
            .collect()
    }

    fn log(&self) -> String {
        self.process.log()
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(panels: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in panels.as_array().into_iter().flatten() {
        out.push(p);
        out.extend(self::panels(&p["panels"]));
    }
    out
}

/// Loads and checks the dashboard's shape; returns (panel title, expression with Grafana's
/// interval variables replaced by `5m`) for every query.
fn dashboard_expressions() -> Vec<(String, String)> {
    let path = monitoring_dir().join("grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    assert_eq!(dashboard["title"], "Trawl scanning");
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()), "the dashboard needs a uid");
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion {}",
        dashboard["schemaVersion"]
    );
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus `datasource` variable: {variables:?}"
    );
    let mut ids = BTreeSet::new();
    let mut expressions = Vec::new();
    for panel in panels(&dashboard["panels"]) {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel id of {title:?} is not unique");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title:?}");
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("panel {title:?} has no targets"));
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "a target of {title:?}");
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("a target of {title:?} has no expr"));
            let expr = ["$__rate_interval", "$__interval", "$__range"]
                .iter()
                .fold(expr.to_string(), |e, v| e.replace(v, "5m"));
            assert!(!expr.contains('$'), "{title:?}: a Grafana variable this test does not know: {expr}");
            expressions.push((title.clone(), expr));
        }
    }
    expressions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_queue_and_every_dashboard_and_alert_expression_runs() {
    let dashboard = dashboard_expressions();
    let rules_path = monitoring_dir().join("alerts.yaml").canonicalize().unwrap();
    let alerts_in_file = std::fs::read_to_string(&rules_path)
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();

    // Tasks that stay queued: two lanes, no scanner.
    let mut stack = Stack::start();
    stack.start_controller();
    push_numbered(&stack.registry, 6, 3).await;
    stack.add_registry("local", json!({"tags": ["v0", "v1"]})).await;
    let (code, crawl) = stack.send(0, "POST", "/api/v1/registries/local/scan?wait=true", None).await;
    assert_eq!((code, crawl["queued"].as_u64()), (200, Some(4)), "{crawl}");
    let reference = format!("{}/team-00/app:v2", stack.registry.host());
    let (code, on_demand) = stack.send(0, "POST", "/api/v1/scan", Some(json!({"reference": reference}))).await;
    assert_eq!(code, 202, "{on_demand}");
    let (_, queue) = stack.get(0, "/api/v1/queue").await;
    let depth = queue["depth"].as_u64().unwrap();
    assert_eq!(depth, 5, "{queue}");

    let target = stack.controllers[0].url.trim_start_matches("http://").to_string();
    let mut prometheus = Prometheus::start(stack.dir.path(), &target, &rules_path);

    // The scraped depth reaches the API's.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = prometheus.vector("trawl_task_stream_depth").await;
        if let [(labels, value)] = v.as_slice() {
            if *value == depth as f64 {
                assert_eq!(labels["job"], "trawl-controller", "{labels}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw trawl_task_stream_depth {depth}: {v:?}\ntargets: {}\n--- prometheus\n{}\n{}",
            prometheus.get("/api/v1/targets").await,
            prometheus.log(),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Which of the contract's controller metrics carry data here (the rest are only parse-checked).
    let names: BTreeSet<String> = prometheus
        .vector(r#"group by (__name__) ({job="trawl-controller", __name__=~"trawl_.+"})"#)
        .await
        .into_iter()
        .filter_map(|(labels, _)| labels["__name__"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&str> = CONTROLLER_METRICS.iter().copied().filter(|m| !names.contains(*m)).collect();
    if !missing.is_empty() {
        eprintln!("note: the controller does not export {missing:?} yet; their expressions are only parse-checked");
    }
    // Per lane, where the controller exports it: 1 high (on demand), 4 bulk (the crawl).
    if names.contains("trawl_task_queue_depth") {
        let mut lanes: Vec<(String, f64)> = prometheus
            .vector("trawl_task_queue_depth")
            .await
            .into_iter()
            .map(|(labels, v)| (labels["lane"].as_str().unwrap_or("?").to_string(), v))
            .collect();
        lanes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(lanes, [("bulk".to_string(), 4.0), ("high".to_string(), 1.0)]);
    }

    // Prometheus loaded every alert and evaluates each without error.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rules = loop {
        let answer = prometheus.get("/api/v1/rules").await;
        let rules: Vec<Value> = answer["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["name"] == "trawl")
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        assert_eq!(rules.len(), alerts_in_file, "Prometheus did not load every rule of alerts.yaml: {answer}");
        if rules.iter().all(|r| r["health"] != "unknown") {
            break rules;
        }
        assert!(Instant::now() < deadline, "rules not evaluated within 30 s: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "rule {} failed to evaluate: {}", rule["name"], rule["lastError"]);
    }

    // Every expression runs: the dashboard's, then the alerts' as Prometheus loaded them.
    let expressions = dashboard
        .into_iter()
        .map(|(title, expr)| (format!("dashboard panel {title:?}"), expr))
        .chain(rules.iter().map(|r| (format!("alert {}", r["name"]), r["query"].as_str().unwrap().to_string())));
    let mut errors = Vec::new();
    let mut checked = 0;
    for (what, expr) in expressions {
        let answer = prometheus.query(&expr).await;
        checked += 1;
        if answer["status"] != "success" {
            errors.push(format!("{what}: {expr}\n  {} {}", answer["errorType"], answer["error"]));
        }
    }
    assert!(errors.is_empty(), "{} of {checked} expressions fail:\n{}", errors.len(), errors.join("\n"));

    // With real data: the stuck queue makes TrawlQueueNotDraining pending (it fires after 5 m).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = prometheus.get("/api/v1/alerts").await;
        let pending = alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == "TrawlQueueNotDraining" && a["state"] == "pending");
        if let Some(alert) = pending {
            assert_eq!(alert["value"].as_str().unwrap().parse::<f64>().unwrap(), depth as f64, "{alert}");
            assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
            break;
        }
        assert!(Instant::now() < deadline, "TrawlQueueNotDraining never went pending: {alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    prometheus.process.kill();
}
