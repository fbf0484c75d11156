#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! The Helm chart: lint, render, install on the real apiserver, and prove with
//! `kubectl auth can-i --as` that each ServiceAccount can do what it needs and no more.

mod support;

use support::{client, env, install_crds, namespace, run_tool as run};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/ldapsync");

fn helm(args: &[&str]) -> String {
    let (ok, out) = run(&env("LDAPSYNC_TEST_HELM"), args);
    assert!(ok, "helm {args:?} failed:\n{out}");
    out
}

#[test]
fn the_chart_lints_renders_and_ships_the_generated_crds() {
    helm(&["lint", "--strict", CHART]);
    let rendered = helm(&[
        "template",
        "demo",
        CHART,
        "--namespace",
        "mail",
        "--set",
        "exampleGateway.enabled=true",
        "--set",
        "agent.secretNames={ldap-sync-password,corp-ca}",
    ]);
    let kinds: Vec<&str> = rendered.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    for kind in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "PodDisruptionBudget",
        "StatefulSet",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(
        rendered.contains("resourceNames: [\"ldap-sync-password\",\"corp-ca\"]"),
        "agents read only the named Secrets"
    );
    assert!(rendered.contains("readOnlyRootFilesystem: true") && rendered.contains("runAsNonRoot: true"));
    assert!(rendered.contains("- --gateway-selector=ldapsync.io/gateway=true"));
    // A namespaced controller gets a Role, not a ClusterRole.
    let scoped = helm(&["template", "demo", CHART, "--namespace", "mail", "--set", "controller.watchNamespace=mail"]);
    assert!(!scoped.contains("kind: ClusterRole"), "{scoped}");
    assert!(scoped.contains("- --namespace=mail"));
    // values.schema.json refuses bad values, naming them.
    let (ok, out) = run(&env("LDAPSYNC_TEST_HELM"), &["template", "demo", CHART, "--set", "agent.listen=0.0.0.0:8389"]);
    assert!(!ok && out.contains("agent/listen"), "{out}");
    let chart_crds = std::fs::read_to_string(format!("{CHART}/crds/ldapsync.io_crds.yaml")).expect("chart CRDs");
    assert_eq!(
        chart_crds,
        ldapsync::api::crds_yaml().expect("render CRDs"),
        "charts/ldapsync/crds is stale: run `ldapsync crd`"
    );
}

/// `kubectl auth can-i VERB RESOURCE [-n NS] [--subresource S]` as a ServiceAccount.
fn can(sa: &str, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i", "--as", sa];
    all.extend(args);
    let (_, out) = run(&env("LDAPSYNC_TEST_KUBECTL"), &all);
    match out.lines().next().map(str::trim) {
        Some("yes") => true,
        Some("no") => false,
        other => panic!("kubectl auth can-i {args:?}: unexpected answer {other:?}: {out}"),
    }
}

#[tokio::test]
async fn helm_install_creates_everything_with_least_privilege() {
    let client = client().await;
    install_crds(&client).await;
    let _ = run(&env("LDAPSYNC_TEST_HELM"), &["uninstall", "lsc", "--namespace", "chart-rbac"]);
    let ns = namespace(&client, "chart-rbac").await;
    helm(&[
        "install",
        "lsc",
        CHART,
        "--namespace",
        &ns,
        "--set",
        "agent.secretNames={ldap-sync-password}",
        "--set",
        "exampleGateway.enabled=true",
    ]);
    let kubectl = env("LDAPSYNC_TEST_KUBECTL");
    for object in [
        "deployment/lsc-ldapsync-controller",
        "service/lsc-ldapsync-controller",
        "poddisruptionbudget/lsc-ldapsync-controller",
        "serviceaccount/lsc-ldapsync-controller",
        "serviceaccount/ldapsync-agent",
        "role/lsc-ldapsync-agent",
        "rolebinding/lsc-ldapsync-agent",
        "role/lsc-ldapsync-controller-lease",
        "statefulset/lsc-ldapsync-example-gateway",
        "clusterrole/lsc-ldapsync-controller",
        "clusterrolebinding/lsc-ldapsync-controller",
    ] {
        let (ok, out) = run(&kubectl, &["get", object, "-n", &ns, "-o", "name"]);
        assert!(ok, "{object} was not created: {out}");
    }

    let controller = format!("system:serviceaccount:{ns}:lsc-ldapsync-controller");
    let allowed: &[&[&str]] = &[
        &["list", "ldapconnections.ldapsync.io", "--all-namespaces"],
        &["watch", "ldapsyncschedules.ldapsync.io", "-n", "mail"],
        &["patch", "ldapconnections.ldapsync.io", "-n", "mail"],
        &["patch", "ldapconnections.ldapsync.io", "--subresource=status", "-n", "mail"],
        &["patch", "ldapsyncschedules.ldapsync.io", "--subresource=status", "-n", "mail"],
        &["get", "secrets", "-n", "mail"],
        &["watch", "pods", "-n", "mail"],
        &["deletecollection", "configmaps", "-n", "mail"],
        &["create", "events.events.k8s.io", "-n", "mail"],
        &["update", "leases.coordination.k8s.io", "-n", &ns],
    ];
    for args in allowed {
        assert!(can(&controller, args), "the controller must be able to {args:?}");
    }
    let denied: &[&[&str]] = &[
        &["create", "secrets", "-n", "mail"],
        &["update", "secrets", "-n", "mail"],
        &["delete", "ldapconnections.ldapsync.io", "-n", "mail"],
        &["create", "ldapconnections.ldapsync.io", "-n", "mail"],
        &["create", "configmaps", "-n", "mail"],
        &["delete", "pods", "-n", "mail"],
        &["update", "leases.coordination.k8s.io", "-n", "mail"],
        &["create", "clusterroles.rbac.authorization.k8s.io"],
    ];
    for args in denied {
        assert!(!can(&controller, args), "the controller must not be able to {args:?}");
    }

    let agent = format!("system:serviceaccount:{ns}:ldapsync-agent");
    let allowed: &[&[&str]] = &[
        &["get", "secret/ldap-sync-password", "-n", &ns],
        &["watch", "ldapconnections.ldapsync.io", "-n", &ns],
        &["list", "ldapsyncschedules.ldapsync.io", "-n", &ns],
        &["patch", "ldapconnections.ldapsync.io", "--subresource=status", "-n", &ns],
        &["create", "configmaps", "-n", &ns],
        &["deletecollection", "configmaps", "-n", &ns],
    ];
    for args in allowed {
        assert!(can(&agent, args), "the agent must be able to {args:?}");
    }
    let denied: &[&[&str]] = &[
        &["get", "secret/another-secret", "-n", &ns],
        &["list", "secrets", "-n", &ns],
        &["patch", "ldapconnections.ldapsync.io", "-n", &ns],
        &["delete", "ldapconnections.ldapsync.io", "-n", &ns],
        &["list", "ldapconnections.ldapsync.io", "-n", "mail"],
        &["get", "secret/ldap-sync-password", "-n", "mail"],
        &["create", "pods", "-n", &ns],
        &["update", "leases.coordination.k8s.io", "-n", &ns],
    ];
    for args in denied {
        assert!(!can(&agent, args), "the agent must not be able to {args:?}");
    }
    helm(&["uninstall", "lsc", "--namespace", &ns]);
}
