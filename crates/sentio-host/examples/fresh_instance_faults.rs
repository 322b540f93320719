//! What a fresh instance of the `redactor` library component costs per text, and how many page
//! faults it takes: every page of the pre-initialized snapshot an instance touches faults in
//! again (the pooling allocator hands the last instance's memory back), so the fault count is
//! the first thing to look at when a fresh instance is slow. Linux only (`/proc/self/stat`).
//!
//! ```sh
//! cargo run --release -p sentio-host --example fresh_instance_faults -- \
//!     target/wasm32-wasip2/component/redactor.preinit.wasm ["one text to repeat"]
//! ```
//!
//! With a text, it only instantiates and redacts that text 100 times (for
//! `perf record -e exceptions:page_fault_user`); without, it prints a table for a few texts.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};
use sentio_host::library::{Policy, RedactorComponent};

/// Minor page faults of this process so far (field 10 of `/proc/self/stat`).
fn minor_faults() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_name = stat.rfind(')').context("no ')' in /proc/self/stat")? + 2;
    Ok(stat[after_name..]
        .split(' ')
        .nth(7)
        .context("short /proc/self/stat")?
        .parse()?)
}

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: fresh_instance_faults COMPONENT [TEXT]")?;
    let engine = sentio_host::runtime::engine(&Default::default())?;
    let cache = std::env::temp_dir().join("sentio-bench-cache");
    let component = RedactorComponent::load(&engine, Path::new(&path), &cache)?;
    let policy = Policy::default();
    for _ in 0..50 {
        component.instantiate()?.redact("warm", &policy)??;
    }
    if let Some(text) = std::env::args().nth(2) {
        for _ in 0..100 {
            component.instantiate()?.redact(&text, &policy)??;
        }
        return Ok(());
    }
    let texts = [
        "",
        "hello there",
        "card 4111 1111 1111 1111",
        "call +44 20 7946 0958",
        "mail maria.g@example.com",
        "Hi, my name is Tom Baker",
        "wire to DE89370400440532013000",
        "My card ending 5500-0055-5555-5559 was charged twice, please refund it.",
    ];
    let rounds = 300;
    println!("| fresh instance, µs | faults | warm instance, µs | text |");
    println!("|---:|---:|---:|---|");
    for text in texts {
        let faults_before = minor_faults()?;
        let start = Instant::now();
        for _ in 0..rounds {
            component.instantiate()?.redact(text, &policy)??;
        }
        let fresh_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        let faults = (minor_faults()? - faults_before) as f64 / f64::from(rounds);
        let mut warm = component.instantiate()?;
        warm.redact(text, &policy)??;
        let start = Instant::now();
        for _ in 0..rounds {
            warm.redact(text, &policy)??;
        }
        let warm_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!("| {fresh_us:.1} | {faults:.0} | {warm_us:.1} | {text:?} |");
    }
    Ok(())
}
