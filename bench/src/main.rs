//! `ferrobench`: see the crate docs of `ferrocd-bench`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    ferrocd_bench::run(ferrocd_bench::Cli::parse())
}
