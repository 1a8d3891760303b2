//! What ships beside the binary (`docker/`, `Makefile`): the Compose stack validates with and
//! without the development override and publishes only the gateway; its configuration passes
//! `check`; the alert rules pass `promtool` and their unit tests; the Makefile's targets run the
//! commands they say; and a real Prometheus with the shipped scrape configuration scrapes a running
//! gateway.

use crate::common::*;
use serde_yaml_ng::Value as Yaml;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `docker/.env.example` as environment variables.
fn example_env() -> Vec<(String, String)> {
    std::fs::read_to_string(root().join("docker/.env.example"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// `docker-compose config` of the stack (plus `extra` files), as Compose resolves it.
fn compose_config(extra: &[&str]) -> Yaml {
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(root().join("docker"))
        .env("MCP_GATEWAY_ENV_FILE", ".env.example")
        .args(["--env-file", ".env.example", "-f", "compose.yaml"]);
    for f in extra {
        cmd.args(["-f", f]);
    }
    let out = cmd
        .arg("config")
        .output()
        .expect("docker-compose runs (Debian's docker-compose, installed by .ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::from_slice(&out.stdout).unwrap()
}

fn names(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .or_else(|| {
            v.as_mapping().map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_stack_publishes_only_the_gateway() {
    let base = compose_config(&[]);
    let services = base["services"].as_mapping().unwrap();
    for expected in [
        "gateway",
        "migrate",
        "postgres",
        "redis",
        "calculator",
        "docs",
        "git",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains_key(expected), "service {expected}");
    }
    for (name, s) in services {
        let name = name.as_str().unwrap();
        let published = s.get("ports").is_some_and(|p| {
            !names(p).is_empty() || p.as_sequence().is_some_and(|x| !x.is_empty())
        });
        assert_eq!(
            published,
            name == "gateway",
            "{name}: only the gateway publishes a port"
        );
        let networks = names(&s["networks"]);
        if name == "gateway" {
            assert_eq!(networks, ["edge", "internal"]);
        } else {
            assert_eq!(
                networks,
                ["internal"],
                "{name} stays on the internal network"
            );
        }
    }
    assert_eq!(base["networks"]["internal"]["internal"], Yaml::Bool(true));
    assert_eq!(base["services"]["calculator"]["deploy"]["replicas"], 2);
    // Tools get their one secret, not the gateway's.
    let tool_env = names(&base["services"]["calculator"]["environment"]);
    assert_eq!(tool_env, ["TOOL_GATEWAY_SHARED_SECRET"]);
    assert_eq!(
        base["services"]["gateway"]["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );

    let dev = compose_config(&["compose.dev.yaml"]);
    let published = |s: &str| dev["services"][s].get("ports").is_some();
    assert!(["postgres", "redis", "calculator", "grafana"]
        .iter()
        .all(|s| published(s)));
}

#[test]
fn the_container_configuration_passes_check() {
    let mut env = example_env();
    env.push((
        "DATABASE_URL".into(),
        "postgres://mcp:x@postgres:5432/mcp".into(),
    ));
    env.push(("REDIS_URL".into(), "redis://redis:6379/0".into()));
    for file in ["gateway.yaml", "gateway.dev.yaml"] {
        let (ok, out) = check_file(&root().join("docker/conf").join(file), &env);
        assert!(ok, "{file}: {out}");
        assert!(out.contains("3 scopes"), "{out}");
    }
}

#[test]
fn alert_rules_pass_promtool_and_their_tests() {
    let dir = root().join("docker/prometheus");
    for args in [
        &["check", "rules", "alerts.yaml"][..],
        &["test", "rules", "alerts.test.yaml"],
        &["check", "config", "prometheus.yml"],
    ] {
        let out = Command::new("promtool")
            .current_dir(&dir)
            .args(args)
            .output()
            .expect("promtool runs (Debian's prometheus, installed by .ci/run)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool {args:?}: {text}");
    }
    // Every alert has a unit test and a runbook.
    let alerts: Yaml =
        serde_yaml_ng::from_slice(&std::fs::read(dir.join("alerts.yaml")).unwrap()).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts.test.yaml")).unwrap();
    for rule in alerts["groups"][0]["rules"].as_sequence().unwrap() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "{name} has no test"
        );
        assert!(
            rule["annotations"]["runbook"]
                .as_str()
                .is_some_and(|r| r.len() > 40),
            "{name}"
        );
    }
}

#[test]
fn make_targets_print_the_commands_they_run() {
    let expect = [
        ("up", "docker compose -f docker/compose.yaml up -d"),
        ("down", "docker compose -f docker/compose.yaml down"),
        (
            "logs",
            "docker compose -f docker/compose.yaml logs -f gateway",
        ),
        (
            "db-migrate",
            "docker compose -f docker/compose.yaml exec gateway mcp-gateway migrate",
        ),
        (
            "check",
            "docker compose -f docker/compose.yaml exec gateway mcp-gateway check",
        ),
        (
            "image",
            "docker build -f docker/Dockerfile -t mcp-gateway:latest .",
        ),
    ];
    for (target, command) in expect {
        let out = Command::new("make")
            .current_dir(root())
            .args(["-n", target])
            .output()
            .unwrap();
        assert!(out.status.success(), "make -n {target}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            command,
            "{target}"
        );
    }
    let out = Command::new("make")
        .current_dir(root())
        .args(["-n", "token", "USER=alice", "ROLES=analyst"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "docker compose -f docker/compose.yaml exec gateway mcp-gateway token --user alice --roles analyst --ttl 1h"
    );
}

/// A PromQL query's whole answer (`Null` while Prometheus is not answering yet).
async fn prometheus_query(port: u16, q: &str) -> serde_json::Value {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await;
    match r {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// The shipped scrape configuration, pointed at this test's gateway, and the shipped alert rules:
/// Prometheus scrapes it (`up` is 1) and its metrics can be queried.
#[tokio::test]
async fn prometheus_scrapes_a_running_gateway() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(root().join("docker/prometheus/prometheus.yml")).unwrap();
    let metrics = gw
        .metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let config = edit(
        &edit(&shipped, "gateway:9090", &metrics),
        "scrape_interval: 15s",
        "scrape_interval: 1s",
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        root().join("docker/prometheus/alerts.yaml"),
        dir.path().join("alerts.yaml"),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus runs (Debian's prometheus, installed by .ci/run)");
    let _prometheus = Proc { child, port };
    let query = |q: &'static str| async move {
        prometheus_query(port, q).await["data"]["result"]
            .as_array()
            .cloned()
    };
    let mut seen = None;
    for _ in 0..150 {
        if let Some(r) = query("up{job=\"mcp-gateway\"}").await {
            if r.first().is_some_and(|s| s["value"][1] == "1") {
                seen = Some(r);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.is_some(),
        "Prometheus never saw the gateway up:\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
    let info = query("mcp_config_info").await.unwrap_or_default();
    assert_eq!(info.len(), 1, "{info:?}");
    let rules: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/rules"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rules["data"]["groups"][0]["rules"].as_array().map(Vec::len),
        Some(11),
        "the alert rules load"
    );

    // Every query of the shipped dashboard is valid PromQL on this Prometheus and names only
    // metrics the gateway exports.
    let dashboard: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("docker/grafana/mcp-gateway.json")).unwrap(),
    )
    .unwrap();
    let exported = std::fs::read_to_string(root().join("src/metrics/mod.rs")).unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let r = prometheus_query(port, &expr).await;
            assert_eq!(r["status"], "success", "{}: {expr}: {r}", panel["title"]);
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("mcp_"))
            {
                let base = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(
                    exported.contains(&format!("\"{base}\"")),
                    "{name} is not a gateway metric"
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries} dashboard queries");
}

/// `kubectl kustomize` of an overlay, as documents.
fn kustomize(overlay: &str) -> Vec<Yaml> {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(root().join("deploy/k8s/overlays").join(overlay))
        .output()
        .expect("kubectl runs (installed by .ci/run)");
    assert!(
        out.status.success(),
        "{overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|d| Yaml::deserialize(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Whether `selector` (matchLabels) selects the labels of some pod template in `docs`.
fn selects_a_pod(docs: &[Yaml], selector: &Yaml) -> bool {
    let Some(want) = selector["matchLabels"].as_mapping() else {
        return true; // {} selects every pod
    };
    docs.iter()
        .filter_map(|d| d["spec"]["template"]["metadata"]["labels"].as_mapping())
        .any(|labels| want.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn the_kubernetes_overlays_render_and_their_configuration_passes_check() {
    for overlay in ["dev", "prod"] {
        let docs = kustomize(overlay);
        // The rendered ConfigMap's files pass check, with the Secret's variables set.
        let cm = of_kind(&docs, "ConfigMap")
            .into_iter()
            .find(|c| {
                c["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("mcp-gateway-config")
            })
            .expect("the configuration ConfigMap");
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in cm["data"].as_mapping().unwrap() {
            std::fs::write(
                dir.path().join(name.as_str().unwrap()),
                text.as_str().unwrap(),
            )
            .unwrap();
        }
        let env: Vec<(String, String)> = [
            ("JWT_SECRET_KEY", "k".repeat(40)),
            ("TOOL_GATEWAY_SHARED_SECRET", "t".repeat(40)),
            ("MCP_GATEWAY_SESSION_SECRETS", "s".repeat(40)),
            ("MCP_GATEWAY_PUBLIC_URL", "https://mcp.example.com".into()),
            ("DATABASE_URL", "postgres://mcp:x@postgres:5432/mcp".into()),
            ("REDIS_URL", "redis://redis:6379/0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let (ok, out) = check_file(&dir.path().join("gateway.yaml"), &env);
        assert!(ok, "{overlay}: {out}");

        let deployments = of_kind(&docs, "Deployment");
        let gw = deployments
            .iter()
            .find(|d| d["metadata"]["name"] == "mcp-gateway")
            .unwrap();
        let pod = &gw["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0]["configMap"]["name"], cm["metadata"]["name"],
            "{overlay}"
        );
        let c = &pod["containers"][0];
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert!(c["lifecycle"]["preStop"].is_mapping());
        // Longer than the preStop pause plus shutdown_grace (10 s in the shipped configuration).
        assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 15);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Yaml::Bool(true));
        for d in &deployments {
            let name = d["metadata"]["name"].as_str().unwrap();
            if ["postgres", "redis"].contains(&name) {
                continue;
            }
            let sc = &d["spec"]["template"]["spec"]["containers"][0]["securityContext"];
            assert_eq!(
                sc["readOnlyRootFilesystem"],
                Yaml::Bool(true),
                "{overlay}/{name}"
            );
            assert_eq!(
                sc["allowPrivilegeEscalation"],
                Yaml::Bool(false),
                "{overlay}/{name}"
            );
            assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{overlay}/{name}");
        }
        // Every NetworkPolicy selects pods that exist, and so do the peers it admits.
        let policies = of_kind(&docs, "NetworkPolicy");
        assert!(policies
            .iter()
            .any(|p| p["metadata"]["name"] == "default-deny-ingress"));
        for p in &policies {
            let name = p["metadata"]["name"].as_str().unwrap();
            assert!(
                selects_a_pod(&docs, &p["spec"]["podSelector"]),
                "{overlay}/{name}"
            );
            for rule in p["spec"]["ingress"].as_sequence().into_iter().flatten() {
                for peer in rule["from"].as_sequence().into_iter().flatten() {
                    if peer.get("namespaceSelector").is_none() {
                        assert!(
                            selects_a_pod(&docs, &peer["podSelector"]),
                            "{overlay}/{name}: peer"
                        );
                    }
                }
            }
        }
        // Only the gateway has a policy that admits anyone.
        let open: Vec<_> = policies
            .iter()
            .filter(|p| {
                p["spec"]["ingress"]
                    .as_sequence()
                    .is_some_and(|rules| rules.iter().any(|r| r.get("from").is_none()))
            })
            .map(|p| p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].clone())
            .collect();
        assert_eq!(open, [Yaml::from("mcp-gateway")], "{overlay}");
        let secrets = of_kind(&docs, "Secret");
        match overlay {
            "dev" => {
                assert_eq!(secrets.len(), 1);
                assert!(deployments.iter().any(|d| d["metadata"]["name"] == "redis"));
                assert!(of_kind(&docs, "StatefulSet")
                    .iter()
                    .any(|d| d["metadata"]["name"] == "postgres"));
            }
            _ => {
                assert!(
                    secrets.is_empty(),
                    "production Secrets are created by the operator"
                );
                assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
                assert_eq!(gw["spec"]["replicas"], 3);
            }
        }
        assert_eq!(of_kind(&docs, "PodDisruptionBudget").len(), 1);
        assert_eq!(of_kind(&docs, "HorizontalPodAutoscaler").len(), 1);
    }
}
