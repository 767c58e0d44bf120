#![cfg(unix)]
