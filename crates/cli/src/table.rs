//! Plain-text tables for the CLI, aligned like Kafka's tools print them.

/// Prints rows (the first is the header) in left-aligned columns.
pub fn print_table(rows: &[Vec<String>]) {
    let mut widths = vec![0; rows.first().map_or(0, |r| r.len())];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.len());
            }
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
