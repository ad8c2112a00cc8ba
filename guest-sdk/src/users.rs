//! placeholder: users (being written)
