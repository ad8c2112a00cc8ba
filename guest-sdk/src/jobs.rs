//! placeholder: jobs (being written)
