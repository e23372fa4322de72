//! One image holding a file for every cataloger, pushed to a real registry
//! and inventoried end to end: each format is found, named in its OSV
//! ecosystem and given a purl. Formats whose realistic fixtures are binary
//! (rpm databases, Go executables) use real files from the corpus and the
//! installed nats-server, and skip with a message without them.

mod common;

use common::*;
use std::collections::BTreeSet;
use trawl_catalog::PackageType;
use trawl_testkit::{corpus_dir, nats_server_binary, push, ImageBuilder, LayerBuilder};

/// A minimal stored (uncompressed) zip, enough to be a real jar.
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let header = |sig: u32, central_dir: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central_dir {
                h.extend_from_slice(&20u16.to_le_bytes()); // version made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&0u16.to_le_bytes()); // method: stored
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            h.extend_from_slice(&crc.sum().to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra length
            if central_dir {
                h.extend_from_slice(&[0u8; 8]); // comment len, disk, internal attrs
                h.extend_from_slice(&0u32.to_le_bytes()); // external attrs
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[tokio::test]
async fn every_cataloger_finds_its_format_in_a_registry_image() {
    let registry = registry();
    let inner_jar = stored_zip(&[(
        "META-INF/maven/com.fasterxml.jackson.core/jackson-databind/pom.properties",
        b"groupId=com.fasterxml.jackson.core\nartifactId=jackson-databind\nversion=2.9.10.1\n",
    )]);
    let war = stored_zip(&[
        ("META-INF/maven/com.example/shop/pom.properties", b"groupId=com.example\nartifactId=shop\nversion=1.4.0\n"),
        ("WEB-INF/lib/jackson-databind-2.9.10.1.jar", &inner_jar),
    ]);
    let mut os = LayerBuilder::new()
        .file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n", 0o644)
        .file("var/lib/dpkg/status", dpkg_status(&[("libssl3", "3.0.11-1~deb12u1", Some("openssl"))]), 0o644)
        .file("var/lib/dpkg/status.d/tzdata", "Package: tzdata\nVersion: 2023c-5\nArchitecture: all\n", 0o644);
    let mut expected_rpm = false;
    if let Some(corpus) = corpus_dir() {
        os = os
            .file_from_disk("usr/lib/sysimage/rpm/rpmdb.sqlite", corpus.join("pkgdb/rpm/cbl-mariner-2.0-rpmdb.sqlite"));
        expected_rpm = true;
    }
    let mut languages = LayerBuilder::new()
        .compression(trawl_testkit::Compression::Zstd)
        .file("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", python_metadata("six", "1.16.0"), 0o644)
        .file("usr/lib/python3/dist-packages/chardet-3.0.4.egg-info", "Metadata-Version: 1.1\nName: chardet\nVersion: 3.0.4\n", 0o644)
        .file(
            "srv/app/package-lock.json",
            r#"{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/minimist":{"version":"1.2.5"},"node_modules/@babel/traverse":{"version":"7.22.0"}}}"#,
            0o644,
        )
        .file("srv/app/node_modules/qs/package.json", npm_package_json("qs", "6.5.2"), 0o644)
        .file("opt/shop/shop.war", &war, 0o644)
        .file("usr/lib/ruby/gems/3.1.0/specifications/rack-2.2.3.gemspec", "Gem::Specification.new do |s|\n  s.name = \"rack\".freeze\n  s.version = \"2.2.3\"\n  s.licenses = [\"MIT\".freeze]\nend\n", 0o644)
        .file("var/www/composer.lock", r#"{"packages":[{"name":"guzzlehttp/guzzle","version":"7.4.1"}],"packages-dev":[]}"#, 0o644)
        .file(
            "src/tool/Cargo.lock",
            "version = 3\n\n[[package]]\nname = \"tool\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
            0o644,
        );
    let go_binary = nats_server_binary();
    match &go_binary {
        Some(bin) => languages = languages.file_from_disk("usr/local/bin/nats-server", bin),
        None => eprintln!("skipping the Go binary part: nats-server is not installed (run scripts/setup)"),
    }
    let image = ImageBuilder::new().layer(os).layer(languages).build().unwrap();
    push(&registry, "all/formats", "v1", &image, None).await.unwrap();

    let inv = analyze(&format!("{}/all/formats:v1", registry.host()), plain_http_options()).await.unwrap().inventory;
    assert!(inv.issues.is_empty(), "{:?}", inv.issues);
    let found: BTreeSet<(PackageType, String, String)> = triples(&inv).into_iter().collect();
    let mut expected: Vec<(PackageType, &str, &str)> = vec![
        (PackageType::Deb, "libssl3", "3.0.11-1~deb12u1"),
        (PackageType::Deb, "tzdata", "2023c-5"),
        (PackageType::Python, "six", "1.16.0"),
        (PackageType::Python, "chardet", "3.0.4"),
        (PackageType::Npm, "minimist", "1.2.5"),
        (PackageType::Npm, "@babel/traverse", "7.22.0"),
        (PackageType::Npm, "qs", "6.5.2"),
        (PackageType::Maven, "com.example:shop", "1.4.0"),
        (PackageType::Maven, "com.fasterxml.jackson.core:jackson-databind", "2.9.10.1"),
        (PackageType::Gem, "rack", "2.2.3"),
        (PackageType::Composer, "guzzlehttp/guzzle", "7.4.1"),
        (PackageType::Cargo, "smallvec", "1.6.0"),
    ];
    if go_binary.is_some() {
        expected.push((PackageType::Go, "github.com/klauspost/compress", ""));
        expected.push((PackageType::Go, "stdlib", ""));
    }
    for (kind, name, version) in &expected {
        assert!(
            found.iter().any(|(k, n, v)| k == kind && n == name && (version.is_empty() || v == version)),
            "missing {kind:?} {name} {version}; found {found:?}"
        );
    }
    if expected_rpm {
        let bash = package(&inv, "bash");
        assert_eq!((bash.kind, bash.version.as_str()), (PackageType::Rpm, "5.1.8-1.cm2"));
    }
    // Workspace-local crates are not dependencies.
    assert!(!found.iter().any(|(_, n, _)| n == "tool"));

    let nested = package(&inv, "com.fasterxml.jackson.core:jackson-databind");
    assert_eq!(nested.path, "opt/shop/shop.war:WEB-INF/lib/jackson-databind-2.9.10.1.jar");
    assert_eq!(nested.purl, "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.10.1");
    for p in &inv.packages {
        assert!(!p.ecosystem.is_empty(), "{} has no ecosystem", p.name);
        assert!(p.purl.starts_with("pkg:"), "{}", p.purl);
    }
    assert_eq!(package(&inv, "six").ecosystem, "PyPI");
    assert_eq!(package(&inv, "libssl3").ecosystem, "Debian:12");

    // The CycloneDX rendering of the same inventory names every package once.
    let report = trawl_report::SbomReport::new(Default::default(), inv.clone());
    let bom = trawl_report::cyclonedx::to_cyclonedx(&report);
    let purls: Vec<&str> = bom["components"].as_array().unwrap().iter().filter_map(|c| c["purl"].as_str()).collect();
    assert_eq!(purls.len(), inv.packages.len());
}
