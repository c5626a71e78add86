//! The embedded Confluent-compatible schema registry. (Being built.)
