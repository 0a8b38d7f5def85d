//! The two image recipes stay the same image: the `Dockerfile` (for people with Docker) and
//! `tools/image/build.sh` (umoci + skopeo, what the tests and the node use). Both are parsed and compared
//! (base, user, entrypoint, command, port, files), and the image build.sh writes is checked the same way
//! from its OCI config and its single layer.

mod node_support;

use std::collections::BTreeSet;

use node_support::{output_of, repo_root};

/// What an image recipe says about the image.
#[derive(Debug, Default, PartialEq, Eq)]
struct Layout {
    user: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    ports: BTreeSet<String>,
    /// Files in the image (absolute paths).
    files: BTreeSet<String>,
}

/// The final stage of the Dockerfile.
fn dockerfile_layout(text: &str) -> (String, Layout) {
    // Join continuation lines, drop comments.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() && current.is_empty() {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let last_from = instructions
        .iter()
        .rposition(|i| i.to_ascii_uppercase().starts_with("FROM "))
        .expect("the Dockerfile has a FROM");
    let base = instructions[last_from][5..]
        .split_whitespace()
        .next()
        .expect("FROM names a base")
        .to_owned();
    let mut layout = Layout::default();
    let json_list = |rest: &str| -> Vec<String> {
        serde_json::from_str(rest.trim()).unwrap_or_else(|e| panic!("exec form {rest:?}: {e}"))
    };
    for instruction in &instructions[last_from + 1..] {
        let (keyword, rest) = instruction
            .split_once(' ')
            .unwrap_or((instruction.as_str(), ""));
        match keyword.to_ascii_uppercase().as_str() {
            "USER" => layout.user = rest.trim().to_owned(),
            "ENTRYPOINT" => layout.entrypoint = json_list(rest),
            "CMD" => layout.cmd = json_list(rest),
            "EXPOSE" => layout.ports.extend(rest.split_whitespace().map(|p| {
                if p.contains('/') {
                    p.to_owned()
                } else {
                    format!("{p}/tcp")
                }
            })),
            "COPY" | "ADD" => {
                let dest = rest
                    .split_whitespace()
                    .rfind(|w| !w.starts_with("--"))
                    .expect("COPY has a destination");
                layout.files.insert(dest.to_owned());
            }
            "LABEL" => {}
            other => panic!(
                "the runtime stage has an instruction the image script cannot mirror: {other}"
            ),
        }
    }
    (base, layout)
}

/// The layout tools/image/build.sh passes to pack.sh.
fn script_layout(text: &str) -> Layout {
    let mut layout = Layout::default();
    let start = text.find("pack.sh\"").expect("build.sh calls pack.sh");
    let call: String = text[start..]
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with("log "))
        .map(|l| l.trim().trim_end_matches('\\'))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = call.split_whitespace().collect();
    let mut i = 0;
    let mut after_dashes = false;
    while i < words.len() {
        let word = words[i].trim_matches('"');
        match word {
            "--" => after_dashes = true,
            "--user" => layout.user = words[i + 1].trim_matches('"').to_owned(),
            "--entrypoint" => layout
                .entrypoint
                .push(words[i + 1].trim_matches('"').to_owned()),
            "--cmd" => layout.cmd.push(words[i + 1].trim_matches('"').to_owned()),
            "--port" => {
                layout
                    .ports
                    .insert(words[i + 1].trim_matches('"').to_owned());
            }
            _ if after_dashes && word.contains('=') => {
                let dest = word.split_once('=').map(|(_, d)| d).unwrap_or_default();
                let dest = dest.split(':').next().unwrap_or_default();
                layout.files.insert(dest.to_owned());
            }
            _ => {}
        }
        i += 1;
    }
    layout
}

#[test]
fn the_dockerfile_and_the_image_script_describe_the_same_image() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let script = std::fs::read_to_string(root.join("tools/image/build.sh")).expect("build.sh");
    let (base, docker) = dockerfile_layout(&dockerfile);
    let packed = script_layout(&script);
    assert_eq!(base, "scratch", "the runtime stage has no base image");
    assert_eq!(
        docker, packed,
        "Dockerfile (left) and tools/image/build.sh (right) drifted apart"
    );
    // And what both must be, for the chart (runAsUser 65532, port 8080, args ["run"]).
    assert_eq!(docker.user, "65532:65532");
    assert_eq!(docker.entrypoint, ["/usr/local/bin/cloudjob-operator"]);
    assert_eq!(docker.cmd, ["run"]);
    assert_eq!(docker.ports, BTreeSet::from(["8080/tcp".to_owned()]));
    assert_eq!(
        docker.files,
        BTreeSet::from([
            "/usr/local/bin/cloudjob-operator".to_owned(),
            "/etc/ssl/certs/ca-certificates.crt".to_owned()
        ])
    );
    // Both build the same static binary.
    assert!(dockerfile.contains("--target x86_64-unknown-linux-musl"));
    assert!(script.contains("target=x86_64-unknown-linux-musl"));
}

#[test]
fn the_built_image_is_what_the_dockerfile_says() {
    let Some(image) = node_support::operator_image_or_skip(node_support::IMAGE_TAG) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut untar = std::process::Command::new("tar");
    untar
        .arg("-xf")
        .arg(&image.archive)
        .arg("-C")
        .arg(dir.path());
    output_of(untar);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest JSON");
    let entry = &manifest[0];
    assert_eq!(
        entry["RepoTags"][0],
        format!("localhost/cloudjob-operator:{}", node_support::IMAGE_TAG)
    );
    let config_file = entry["Config"].as_str().expect("config path");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(config_file)).expect("config"))
            .expect("config JSON");
    let layers = entry["Layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer, no base image");
    let mut list = std::process::Command::new("tar");
    list.arg("-tvf")
        .arg(dir.path().join(layers[0].as_str().expect("layer path")));
    let listing = String::from_utf8_lossy(&output_of(list).stdout).into_owned();
    let files: BTreeSet<String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| format!("/{}", p.trim_start_matches("./")))
        .collect();
    assert!(
        !listing.contains("bin/sh"),
        "no shell in the image:\n{listing}"
    );

    let (_, docker) = dockerfile_layout(
        &std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile"),
    );
    let c = &config["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let built = Layout {
        user: c["User"].as_str().unwrap_or_default().to_owned(),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        ports: c["ExposedPorts"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        files,
    };
    assert_eq!(built, docker, "the built image differs from the Dockerfile");
    let size = std::fs::metadata(&image.archive).expect("archive").len();
    eprintln!(
        "image {} is {:.1} MiB ({} bytes)",
        image.name,
        size as f64 / (1024.0 * 1024.0),
        size
    );
    // A static binary and the CA bundle: tens of MiB at most, not a distribution.
    assert!(size < 64 * 1024 * 1024, "image archive is {size} bytes");
    // The binary is static: it runs without any libc in the image.
    let binary = dir.path().join("bin");
    std::fs::create_dir_all(&binary).expect("dir");
    let mut extract = std::process::Command::new("tar");
    extract
        .arg("-xf")
        .arg(dir.path().join(layers[0].as_str().expect("layer path")))
        .arg("-C")
        .arg(&binary)
        .arg("usr/local/bin/cloudjob-operator");
    output_of(extract);
    let mut file = std::process::Command::new("file");
    file.arg(binary.join("usr/local/bin/cloudjob-operator"));
    if let Ok(out) = file.output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("statically linked") || text.contains("static-pie"),
            "{text}"
        );
    }
}
