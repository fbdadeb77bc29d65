//! Table-driven tests of the loader: each bad config with its expected errors.
