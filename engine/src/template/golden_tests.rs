//! Golden tests: templates rendered by ansible-core 2.19 must render byte-identically here.
