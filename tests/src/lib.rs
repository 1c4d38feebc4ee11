//! Support for the end-to-end tests: building the wasm functions the tests load.
