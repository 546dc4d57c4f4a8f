//! TEMPORARY STUB (replaced by the real client).
pub fn load(_args: &crate::cli::LoadArgs) -> anyhow::Result<std::process::ExitCode> { anyhow::bail!("not yet") }
pub fn bench(_args: &crate::cli::BenchArgs) -> anyhow::Result<std::process::ExitCode> { anyhow::bail!("not yet") }
