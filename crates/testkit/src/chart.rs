//! The Helm chart (`charts/cloudjob-operator`) as its tests see it: rendered or installed manifests as
//! objects, and the values of its Deployment.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
};

use anyhow::{Context as _, Result};
use serde_json::Value;

/// The release name the tests use.
pub const RELEASE: &str = "cloudjob-operator";
/// The namespace the tests install the release in.
pub const RELEASE_NAMESPACE: &str = "cloudjob-system";
/// With the release named like the chart, every object is named `cloudjob-operator` (stable, for other tests).
pub const FULLNAME: &str = "cloudjob-operator";

/// The chart's directory.
pub fn chart_dir() -> Result<PathBuf> {
    Ok(crate::repo_root()?.join("charts/cloudjob-operator"))
}

pub fn helm_args(mut command: Command, args: &[&str], sets: &[&str]) -> Command {
    command.args(args);
    for set in sets {
        command.arg("--set").arg(set);
    }
    command
}

/// (kind, namespace, name); the namespace is empty for cluster-scoped objects.
pub type ObjectId = (String, String, String);

/// The objects of a rendered manifest.
pub struct Rendered {
    pub objects: Vec<Value>,
}

impl Rendered {
    pub fn parse(yaml: &str) -> Result<Self> {
        let mut objects = Vec::new();
        for document in serde_yaml::Deserializer::from_str(yaml) {
            let value = <Value as serde::Deserialize>::deserialize(document)
                .context("parsing rendered YAML")?;
            if !value.is_null() {
                objects.push(value);
            }
        }
        Ok(Self { objects })
    }

    pub fn ids(&self) -> BTreeSet<ObjectId> {
        self.objects.iter().map(id).collect()
    }

    pub fn kinds(&self) -> BTreeSet<String> {
        self.objects
            .iter()
            .map(|o| str_at(o, "/kind").to_owned())
            .collect()
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<&Value> {
        self.objects
            .iter()
            .find(|o| id(o) == (kind.to_owned(), namespace.to_owned(), name.to_owned()))
            .with_context(|| {
                format!(
                    "no {kind} {namespace}/{name} in the rendered chart; it has {:?}",
                    self.ids()
                )
            })
    }

    pub fn deployment(&self) -> Result<&Value> {
        self.get("Deployment", RELEASE_NAMESPACE, FULLNAME)
    }
}

pub fn id(object: &Value) -> ObjectId {
    (
        str_at(object, "/kind").to_owned(),
        str_at(object, "/metadata/namespace").to_owned(),
        str_at(object, "/metadata/name").to_owned(),
    )
}

pub fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn objects(ids: &[(&str, &str, &str)]) -> BTreeSet<ObjectId> {
    ids.iter()
        .map(|(k, ns, n)| ((*k).to_owned(), (*ns).to_owned(), (*n).to_owned()))
        .collect()
}

/// What every release of the chart holds: the Deployment with its ServiceAccount and metrics Service, the
/// ClusterRole and its binding when it watches all namespaces (`cluster_wide`), and `extra`.
pub fn release_objects(cluster_wide: bool, extra: &[(&str, &str, &str)]) -> BTreeSet<ObjectId> {
    let mut ids = objects(&[
        ("Deployment", RELEASE_NAMESPACE, FULLNAME),
        ("Service", RELEASE_NAMESPACE, "cloudjob-operator-metrics"),
        ("ServiceAccount", RELEASE_NAMESPACE, FULLNAME),
    ]);
    if cluster_wide {
        ids.extend(objects(&[
            ("ClusterRole", "", FULLNAME),
            ("ClusterRoleBinding", "", FULLNAME),
        ]));
    }
    ids.extend(objects(extra));
    ids
}

/// The operator container's environment as name -> value (or the valueFrom object, as JSON text).
pub fn container_env(deployment: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let vars = deployment
        .pointer("/spec/template/spec/containers/0/env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for var in vars {
        let value = match (var.get("value"), var.get("valueFrom")) {
            (Some(v), _) => v.as_str().unwrap_or("").to_owned(),
            (None, Some(from)) => from.to_string(),
            (None, None) => String::new(),
        };
        env.insert(str_at(&var, "/name").to_owned(), value);
    }
    env
}
