//! Shared fixtures for the micro-benchmarks (`cargo bench -p sluice-benches`). The load
//! benchmark is `benches/load.sh`.
