//! The deployment kit, checked as far as a machine without a container engine or a cluster
//! allows (see deploy/README.md): YAML parses and says what the README says, the systemd unit
//! verifies, the example configurations load, the Dockerfile's health check is the command
//! that works against a real gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn one(file: &str) -> Yaml {
    let mut docs = yaml(&deploy().join(file));
    assert_eq!(docs.len(), 1, "{file}");
    docs.remove(0)
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

#[test]
fn kubernetes_manifests_parse_and_say_what_the_readme_says() {
    let kinds: Vec<String> = std::fs::read_dir(deploy().join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .flat_map(|p| yaml(&p))
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Kustomization",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }

    let d = one("k8s/statefulset.yaml");
    assert_eq!(d["spec"]["replicas"].as_i64(), Some(2));
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        let command: Vec<&str> = c[probe]["exec"]["command"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&command[..2], ["focalgate", "health"], "{probe}");
    }
    let config = one("k8s/configmap.yaml");
    let toml = config["data"]["focalgate.toml"].as_str().unwrap();
    let dir = common::tempdir();
    std::fs::write(dir.path().join("gw.toml"), toml).unwrap();
    let settings =
        focalgate::config::Settings::load_with_env(Some(&dir.path().join("gw.toml")), false, [])
            .expect("the ConfigMap's configuration loads");
    // The data directory (the published checkpoint) is on a volume that outlives the pod.
    let data_mount = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"].as_str() == settings.data_dir.to_str())
        .expect("the configured data_dir is mounted");
    let claims = d["spec"]["volumeClaimTemplates"].as_vec().unwrap();
    assert!(
        claims
            .iter()
            .any(|t| t["metadata"]["name"].as_str() == data_mount["name"].as_str()),
        "data_dir is on a volume claim, not an emptyDir"
    );
    assert_eq!(
        one("k8s/pdb.yaml")["spec"]["minAvailable"].as_i64(),
        Some(1)
    );

    // Rendered as `kubectl apply -k deploy/k8s` would, where kubectl is installed.
    if tool("kubectl") {
        let out = Command::new("kubectl")
            .args(["kustomize"])
            .arg(deploy().join("k8s"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rendered = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
        assert!(
            rendered
                .iter()
                .filter(|d| d["kind"].as_str() != Some("Namespace"))
                .all(|d| d["metadata"]["namespace"].as_str() == Some("focalgate"))
        );
    }
}

#[test]
fn the_compose_stack_has_a_database_two_replicas_and_a_tcp_load_balancer() {
    let compose = one("compose/compose.yaml");
    let services = &compose["services"];
    for s in ["postgres", "gateway-a", "gateway-b", "lb"] {
        assert!(!services[s].is_badvalue(), "service {s}");
    }
    for g in ["gateway-a", "gateway-b"] {
        // The replicas share their definition through a YAML merge key.
        let service = &services[g];
        let env = match &service["environment"] {
            Yaml::BadValue => &service["<<"]["environment"],
            env => env,
        };
        assert!(
            env["FOCALGATE_STORE_URL"]
                .as_str()
                .unwrap()
                .starts_with("postgres://")
        );
        assert_eq!(
            env["FOCALGATE_LOG__KEY"].as_str(),
            Some("/run/secrets/gateway.key"),
            "one log key for every replica"
        );
    }
    let haproxy = std::fs::read_to_string(deploy().join("compose/haproxy.cfg")).unwrap();
    assert!(haproxy.contains("mode tcp"), "TLS passes through");
    focalgate::config::Settings::load_with_env(
        Some(&deploy().join("compose/focalgate.toml")),
        false,
        [],
    )
    .unwrap();
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(deploy().join("focalgate.service")).unwrap();
    for directive in [
        "User=focalgate",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "LoadCredential=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(directive), "{directive}");
    }
    if !tool("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    }
    // As installed, with the binary where the unit expects it.
    let dir = common::tempdir();
    let path = dir.path().join("focalgate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/focalgate", common::BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_example_configuration_loads_and_the_dockerfile_runs_unprivileged() {
    let settings = focalgate::config::Settings::load_with_env(
        Some(&deploy().join("focalgate.toml")),
        false,
        [],
    )
    .unwrap();
    assert!(settings.store_url().starts_with("postgres://"));
    settings.resolved().unwrap();

    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    assert_eq!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2,
        "two stages"
    );
    assert!(dockerfile.contains("\nUSER 10001:10001\n"));
    let healthcheck = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .nth(1)
        .unwrap();
    assert!(
        healthcheck.contains(r#"CMD ["focalgate", "health""#),
        "{healthcheck}"
    );

    // The README's commands name files that exist.
    let readme = std::fs::read_to_string(deploy().join("README.md")).unwrap();
    for path in [
        "deploy/Dockerfile",
        "deploy/compose/compose.yaml",
        "deploy/focalgate.service",
        "deploy/k8s",
    ] {
        assert!(readme.contains(path), "{path}");
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(path).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focalgate_health_answers_over_mtls_with_an_identity_without_a_role() {
    let dir = common::tempdir();
    let pki = common::copy_pki(dir.path());
    let ca = focalgate::pki::ca::CaDir::open(&pki.join("ca")).unwrap();
    let monitor = focalgate::identity::MemberId::parse("BEL:monitor").unwrap();
    let (cert, key) = ca
        .issue(
            &monitor,
            "Hub operator",
            focalgate::pki::CertKind::Auth,
            focalgate::pki::ca::KeyType::P256,
            focalgate::pki::ca::Validity::days(30),
            &focalgate::schema::CodeLists::builtin().unwrap(),
        )
        .unwrap();
    let health = dir.path().join("health");
    focalgate::pki::ca::write_identity(&health, &ca.ca_pem().unwrap(), "auth", &cert, &key)
        .unwrap();
    let gw = common::Gateway::start_with(common::settings_with_pki(&dir.path().join("data"), &pki))
        .await;
    let run = |service: &str| {
        Command::new(common::BIN)
            .args(["health", "--server", &gw.url(), "--identity"])
            .arg(&health)
            .args(["--service", service])
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| run(""));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "serving");
    let out = tokio::task::block_in_place(|| run("focalgate.v1.Submissions"));
    assert!(out.status.success());
    let out = tokio::task::block_in_place(|| run("no.such.Service"));
    assert!(!out.status.success());
    gw.stop().await;
}
