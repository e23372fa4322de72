//! Markdown rendering and number formatting for benchmark reports.

/// A Markdown table; `|` inside cells is escaped so a cell cannot split the row.
pub fn table<S: AsRef<str>>(headers: &[&str], rows: &[Vec<S>]) -> String {
    let mut out = String::new();
    out.push_str(&format!("| {} |\n", headers.join(" | ")));
    out.push_str(&format!("|{}\n", headers.iter().map(|_| "---|").collect::<String>()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.as_ref().replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// `PASS` or `MISS`.
pub fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "**MISS**"
    }
}

/// Bytes in MiB or GiB, whichever reads better.
pub fn bytes(n: u64) -> String {
    let mib = n as f64 / (1u64 << 20) as f64;
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// Throughput in MB/s (10^6 bytes per second).
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables_and_numbers() {
        let t = table(&["a", "b"], &[vec!["1", "x|y"], vec!["2", "z"]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | x\\|y |\n| 2 | z |\n");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(verdict(true), "PASS");
        assert!((mb_per_s(200_000_000, 2.0) - 100.0).abs() < 1e-9);
    }
}
