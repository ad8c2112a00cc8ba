//! placeholder: search (being written)
